"""Who is connecting: the real client address behind trusted proxies, the
key per-address limits count under, and the browser Origin allow-list.

Pure functions over text; the adapter hands in the transport's peer address
and the request's headers.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# One IPv6 subscriber usually gets a /56 (or a /48): counting single
# addresses, or /64s, would let one subscriber rotate through fresh budgets.
# The servers take the prefix from their settings (``ipv6_prefix``).
IPV6_LIMIT_PREFIX = 56


# Parsing costs microseconds per connection, and the same addresses come back
# (reconnects, players behind one NAT, proxies): remember recent ones.
@functools.lru_cache(maxsize=4096)
def _parse_address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d.
        return address.ipv4_mapped
    return address


def normalize_address(text: str) -> str:
    """``text`` as a canonical IP address string, or unchanged if it is none."""
    address = _parse_address(text)
    return str(address) if address is not None else text


@functools.lru_cache(maxsize=4096)
def limit_key(address: str, ipv6_prefix: int = IPV6_LIMIT_PREFIX) -> str:
    """What per-address limits count under: the address itself for IPv4, its
    network of ``ipv6_prefix`` bits for IPv6, the text as given when it is
    not an address."""
    parsed = _parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((parsed, ipv6_prefix), strict=False)
        return str(network)
    return str(parsed) if parsed is not None else address


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDR texts ("10.0.0.0/8", "::1", "127.0.0.1") as networks; raises
    ``ValueError`` naming the first one that is not."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{cidr!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    """Whether ``address`` (text) is in one of ``networks``."""
    if not networks:
        return False
    parsed = _parse_address(address)
    return parsed is not None and _trusted(parsed, networks)


def real_client_address(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The client address a connection stands for.

    ``X-Forwarded-For`` counts only when the connection comes from a trusted
    proxy (anyone can write the header). Each proxy appends the address it
    saw, so the list is read from the right: the first address that is not a
    trusted proxy itself is the client. Anything the client wrote to the left
    of that is ignored, and an entry that is not an address stops the walk at
    the last trusted hop."""
    address = _parse_address(peer)
    if address is None:
        return peer
    if not forwarded_for or not trusted or not _trusted(address, trusted):
        return str(address)
    for entry in reversed(forwarded_for.split(",")):
        hop = _parse_address(entry)
        if hop is None:
            break
        address = hop
        if not _trusted(hop, trusted):
            break
    return str(address)


def check_origin_pattern(pattern: str) -> str:
    """``pattern`` normalized for `origin_allowed`, or ``ValueError``.

    Allowed forms: an exact origin ``scheme://host[:port]`` (``https://game.example.com``,
    ``http://localhost:8080``), or a subdomain wildcard ``scheme://*.domain[:port]``
    (``https://*.example.com``, which does not match ``https://example.com`` itself)."""
    text = pattern.strip().lower().rstrip("/")
    scheme, separator, rest = text.partition("://")
    if not separator or scheme not in ("http", "https") or not rest:
        raise ValueError(f"{pattern!r} is not an origin like https://game.example.com")
    host = rest[2:] if rest.startswith("*.") else rest
    if not host or any(c in host for c in "*/@?# ") or host.startswith("."):
        raise ValueError(
            f"{pattern!r}: only a leading '*.' wildcard is allowed, as in https://*.example.com"
        )
    return text


def origin_allowed(origin: str | None, patterns: tuple[str, ...]) -> bool:
    """Whether a browser's ``Origin`` header passes the allow-list (patterns as
    returned by `check_origin_pattern`). No header (native clients) and an
    empty list always pass."""
    if origin is None or not patterns:
        return True
    origin = origin.strip().lower()
    scheme, _, rest = origin.partition("://")
    for pattern in patterns:
        if pattern == origin:
            return True
        pattern_scheme, _, pattern_rest = pattern.partition("://")
        if pattern_rest.startswith("*.") and scheme == pattern_scheme:
            suffix = pattern_rest[1:]  # ".example.com[:port]"
            label = rest[: -len(suffix)]
            if rest.endswith(suffix) and label and not any(c in label for c in "/@:?#"):
                return True
    return False
