"""ICE servers for clients: STUN/TURN URLs and time-limited TURN credentials.

TURN servers such as coturn (``use-auth-secret`` + ``static-auth-secret``)
accept credentials derived from a secret they share with us, the "TURN REST
API" convention:

    username   = "<expiry, Unix seconds>:<user>"
    credential = base64(HMAC-SHA1(secret, username))

The TURN server recomputes the HMAC and refuses a username whose expiry has
passed, so a credential we hand out works for ``ttl`` seconds and needs no
storage on either side. Pure: the time comes in as an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from .settings import InvalidSetting, Kind, check_settings, setting

STUN_SCHEMES = ("stun", "stuns")
TURN_SCHEMES = ("turn", "turns")

# RFC 7064 (stun:) and RFC 7065 (turn:): scheme ":" host [":" port], turn URLs
# with an optional "?transport=udp|tcp". No "//", no user info, no path.
_URL = re.compile(
    r"(?P<scheme>stuns?|turns?):"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?"
)
# What the <user> part may hold: it travels in a STUN USERNAME attribute and
# in coturn's logs; anything else becomes "_".
_UNSAFE_USER = re.compile(r"[^A-Za-z0-9._@+-]")
MAX_USER_LENGTH = 64


def url_problem(url: object, schemes: tuple[str, ...]) -> str | None:
    """Why ``url`` is not a usable ICE server URL of one of ``schemes``
    (None if it is)."""
    if not isinstance(url, str):
        return f"must be a URL string, not {url!r}"
    match = _URL.fullmatch(url)
    wanted = " or ".join(f"{scheme}:" for scheme in schemes)
    if match is None or match["scheme"] not in schemes:
        query = "[?transport=udp|tcp]" if schemes == TURN_SCHEMES else ""
        return f"must be a {wanted} URL like {schemes[0]}:host[:port]{query}, not {url!r}"
    if match["transport"] is not None and match["scheme"] in STUN_SCHEMES:
        return f"{url!r}: a {match['scheme']}: URL takes no ?transport="
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        return f"{url!r}: the port must be from 1 to 65535"
    return None


def turn_username(user: str, now: float, ttl: int) -> str:
    """``"<expiry>:<user>"``, expiring ``ttl`` seconds after ``now``."""
    safe = _UNSAFE_USER.sub("_", user)[:MAX_USER_LENGTH] or "_"
    return f"{int(now) + ttl}:{safe}"


def turn_password(secret: str, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))``, what coturn computes."""
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def ice_servers(
    stun_urls: tuple[str, ...],
    turn_urls: tuple[str, ...],
    turn_secret: str,
    ttl: int,
    user: str,
    now: float,
) -> list[dict[str, Any]]:
    """The ``iceServers`` list for RTCPeerConnection and Godot's
    ``WebRTCPeerConnection.initialize()``: one entry for the STUN URLs, one
    for the TURN URLs with a fresh credential (they share the secret)."""
    servers: list[dict[str, Any]] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls:
        username = turn_username(user, now, ttl)
        servers.append(
            {
                "urls": list(turn_urls),
                "username": username,
                "credential": turn_password(turn_secret, username),
            }
        )
    return servers


# A TURN credential outlives its game session by up to this much; a leaked one
# relays for anyone until then, so a day is the most we hand out.
MAX_TURN_TTL = 86400


def _stun_problem(urls: tuple[str, ...]) -> str | None:
    return next((p for p in (url_problem(u, STUN_SCHEMES) for u in urls) if p), None)


def _turn_problem(urls: tuple[str, ...]) -> str | None:
    return next((p for p in (url_problem(u, TURN_SCHEMES) for u in urls) if p), None)


@dataclass(frozen=True, slots=True)
class IceConfig:
    """The ICE servers handed out at ``GET /ice-servers``."""

    stun_urls: tuple[str, ...] = setting(
        (),
        "A STUN server for clients, e.g. stun:stun.example.org:3478 (repeatable).",
        option="stun",
        shown_default="none",
        check=_stun_problem,
        doc="A STUN server handed to clients at `GET /ice-servers` (`stun:`/`stuns:` "
        "host[:port]); repeatable.",
    )
    turn_urls: tuple[str, ...] = setting(
        (),
        "A TURN server for clients, e.g. turn:turn.example.org:3478 (repeatable; needs "
        "--turn-secret-file).",
        option="turn",
        shown_default="none",
        check=_turn_problem,
        doc="A TURN server handed to clients with fresh time-limited credentials "
        "(`turn:`/`turns:` host[:port][?transport=udp\\|tcp], kept as given); repeatable; "
        "needs `--turn-secret-file`. Lets players behind strict NATs connect.",
    )
    # Kept out of repr, so that it never reaches a log.
    turn_secret: str = setting(
        "",
        "File holding the secret shared with the TURN server (coturn's static-auth-secret); "
        "needed with --turn.",
        kind=Kind.SECRET_FILE,
        option="turn-secret-file",
        shown_default="none",
        secret=True,
        doc="File holding the secret shared with the TURN server (coturn's `use-auth-secret` + "
        "`static-auth-secret`); read at start, from a file so it never shows in `ps`.",
    )
    turn_ttl: int = setting(
        3600,
        "Seconds a TURN credential from /ice-servers stays valid.",
        minimum=1,
        maximum=MAX_TURN_TTL,
        doc="Seconds a TURN credential stays valid (1-86400): longer than a game session; "
        "shorter limits what a leaked one is good for.",
        unit="seconds",
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if self.turn_urls and not self.turn_secret:
            raise InvalidSetting("turn_secret", "is needed to make credentials for the TURN URLs")
