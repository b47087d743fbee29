"""The standalone server's own parts: its settings beyond `SignalingConfig`
(where to listen, logs, metrics, token auth), the checks of endpoint
descriptions twistd is given, and how a start-up failure ends the program.
The twistd plugin (`webrtc_signal.app`) puts them together."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.web.server import Site

from ..protocol.settings import Kind, Source, check_settings, setting
from . import logs
from .auth_callback import DEFAULT_CONCURRENCY as DEFAULT_AUTH_CONCURRENCY
from .auth_callback import DEFAULT_TIMEOUT as DEFAULT_AUTH_TIMEOUT
from .port_file import check_writable
from .webhooks import DEFAULT_QUEUE_LIMIT, check_url

DEFAULT_PORT = 9080


def default_port_description(port: int = DEFAULT_PORT) -> str:
    """Where the server listens when --port is not given: IPv6 and IPv4 on one
    socket (``tcp6:``, interface ``::``) where the host allows it, else IPv4
    alone (``tcp:``), as before."""
    return f"tcp6:{port}" if _dual_stack() else f"tcp:{port}"


def _dual_stack() -> bool:
    """Whether an IPv6 socket bound to ``::`` also takes IPv4 clients. Twisted
    leaves IPV6_V6ONLY as the system sets it: off on Linux unless
    net.ipv6.bindv6only says otherwise. A host without IPv6, or one where such
    a socket would be IPv6 only, keeps IPv4 rather than lose it."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::", 0))
            return probe.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    except OSError:
        return False


def _log_format_problem(text: str) -> str | None:
    try:
        logs.parse_format(text)
    except ValueError as error:
        return f"{error}, not {text!r}"
    return None


def _port_file_problem(path: str) -> str | None:
    # Checked at start, so that a mistyped directory is a usage error rather
    # than a file nobody finds.
    return check_writable(path) if path else None


def _log_level_problem(text: str) -> str | None:
    try:
        logs.parse_level(text)
    except ValueError as error:
        return f"{error}, not {text!r}"
    return None


def _url_problem(url: str) -> str | None:
    if not url:
        return None
    try:
        check_url(url)
    except ValueError as error:
        return str(error)
    return None


def _webhook_urls_problem(urls: tuple[str, ...]) -> str | None:
    for url in urls:
        problem = _url_problem(url) if url else "must not be empty"
        if problem is not None:
            return problem
    return None


@dataclass(frozen=True, slots=True)
class StandaloneConfig:
    """What only the standalone server (``twistd webrtc-signal``) is told."""

    port: str = setting(
        "",
        "Where to listen, as a Twisted endpoint description. tcp:9080 is IPv4 only; tcp6:9080 "
        "(interface ::) takes IPv6 and, where the OS allows (Linux does by default), IPv4 too. "
        "The default is tcp6:9080 on such a host, else tcp:9080. More: "
        "tcp:9080:interface=127.0.0.1, ssl:9443:privateKey=key.pem:certKey=cert.pem or "
        "tls:/path/to/pem-directory:port=9443 for wss://.",
        short="p",
        shown_default="`tcp6:9080`",
        doc="Where to listen, as a [Twisted endpoint description]"
        "(https://docs.twisted.org/en/stable/core/howto/endpoints.html#servers). The default "
        "takes IPv6 and IPv4 on one socket where the OS allows it (Linux does by default), else "
        "it is `tcp:9080`. `tcp:PORT` is IPv4 only; `tcp6:PORT` is IPv6 and, where the OS "
        "allows, IPv4 too. E.g. `tcp:9080:interface=127.0.0.1`, or `ssl:...` / `tls:...` for "
        "`wss://` (below).",
    )
    log_format: str = setting(
        "text",
        "text (twistd's lines) or json (one object per line, every field, ISO 8601 UTC time: "
        "for Loki, ELK, journald). Written where twistd writes its log: stdout with -n, else "
        "its log file.",
        check=_log_format_problem,
        doc="`text` (twistd's lines) or `json`: one object per line with `time` (ISO 8601 UTC), "
        "`level`, `namespace`, `message` and every structured field, for Loki, ELK or journald. "
        "Either way a `token=` value is written `token=<redacted>`.",
    )
    log_level: str = setting(
        "info",
        "Lowest level logged: debug (adds a line per connection), info, warn, error or critical.",
        check=_log_level_problem,
        doc="Lowest level logged: `debug` adds a line per connection; `info` logs lobby life "
        "and refusals; then `warn`, `error`, `critical`.",
    )
    metrics: str = setting(
        "",
        "Serve Prometheus metrics at /metrics on this endpoint, e.g. "
        "tcp:9100:interface=127.0.0.1 (a port of its own, never the signaling port).",
        shown_default="off",
        doc="Serve Prometheus metrics at `/metrics` on an endpoint of their own, e.g. "
        "`tcp:9100:interface=127.0.0.1` (never the signaling port): peers, lobbies, "
        "connections, closes, relays, ICE candidate types and lobbies sealed without a relay "
        "candidate ([docs/deploy.md](docs/deploy.md#metrics)).",
    )
    port_file: str = setting(
        "",
        "Once listening, write one host:port line per listening port to this file: the "
        "signaling port, then the metrics and admin ports if on; removed on a clean exit. "
        "For a port of 0, which the kernel picks.",
        check=_port_file_problem,
        shown_default="none",
        doc="Once the server listens, write one `host:port` line per listening port to this "
        "file: the signaling port first, then the `--metrics` port, then the `--admin` port "
        "(an IPv6 host in brackets, `[::]:9080`). Written whole (a temporary file renamed "
        "over it) and removed on a clean exit. With `--port tcp:0` the kernel picks the "
        "port; a test, a supervisor or an orchestrator reads it here "
        "([docs/running.md](docs/running.md#knowing-the-port)).",
    )
    token_secret: str = setting(
        "",
        "Require ?token=<JWT> (HS256, signed with the secret in this file) on every "
        "connection; see webrtc-signal-token.",
        kind=Kind.SECRET_FILE,
        option="token-secret-file",
        shown_default="off",
        secret=True,
        doc="Require `?token=<JWT>` on every connection (HS256, `exp` required; `sub` becomes "
        'the identity; a `lobby` claim is the only lobby it may join, `""` = create only). '
        "Missing, bad or expired: HTTP 401 at the upgrade; the wrong lobby: 4000 `Not allowed "
        "in this lobby`. `GET /ice-servers` then needs the same token. Mint tokens with "
        "`webrtc-signal-token --secret-file PATH [--subject S] [--lobby NAME] [--ttl "
        "SECONDS]`.",
    )
    # A token is a key to a lobby: one valid for years is a key nobody can
    # take back. A day covers any matchmaking ticket.
    token_max_ttl: float = setting(
        86400.0,
        "Seconds ahead a token's exp may lie; a token valid for longer gets HTTP 401.",
        above=0,
        unit="seconds",
        doc="Seconds ahead a token's `exp` may lie (with 30 s of clock skew); a token valid "
        "for longer, with an `exp` that is not a number, or with `nbf`/`iat` in the future "
        "gets HTTP 401. A token with a `jti` claim opens one connection only "
        "(`webrtc-signal-token --single-use`), remembered per node, or in Redis with "
        "`--redis` ([docs/security.md](docs/security.md#tokens)).",
    )

    admin: str = setting(
        "",
        "Serve the admin API (lobby control over HTTP and JSON) on this endpoint, e.g. "
        "tcp:9101:interface=127.0.0.1 (a port of its own, never the signaling port); needs "
        "--admin-token-file.",
        shown_default="off",
        doc="Serve the admin API (list, reserve, seal and close lobbies, kick peers: JSON over "
        "HTTP, for a backend in any language) on an endpoint of its own, e.g. "
        "`tcp:9101:interface=127.0.0.1` (never the signaling port); needs "
        "`--admin-token-file` ([docs/admin-api.md](docs/admin-api.md)).",
    )
    admin_token: str = setting(
        "",
        "File holding the admin API's bearer token: every request needs "
        "Authorization: Bearer <token> (else 401).",
        kind=Kind.SECRET_FILE,
        option="admin-token-file",
        shown_default="none",
        secret=True,
        doc="File holding the admin API's bearer token (required with `--admin`): every "
        "request needs `Authorization: Bearer <token>`, compared in constant time; 401 "
        "otherwise.",
    )
    webhook_urls: tuple[str, ...] = setting(
        (),
        "POST every lobby event, signed, to this http:// or https:// URL; repeatable; needs "
        "--webhook-secret-file.",
        option="webhook",
        check=_webhook_urls_problem,
        shown_default="none",
        doc="POST every lobby event (created, joined, left, sealed, closed) as signed JSON to "
        "this `http://` or `https://` URL; repeatable; needs `--webhook-secret-file` "
        "([docs/embedding-hooks.md](docs/embedding-hooks.md#webhooks)).",
    )
    webhook_secret: str = setting(
        "",
        "File holding the secret the webhooks are signed with (HMAC-SHA256).",
        kind=Kind.SECRET_FILE,
        option="webhook-secret-file",
        shown_default="none",
        secret=True,
        doc="File holding the secret the webhooks are signed with (HMAC-SHA256 in "
        "`Webrtc-Signal-Signature`); required with `--webhook`.",
    )
    webhook_queue: int = setting(
        DEFAULT_QUEUE_LIMIT,
        "Webhook events held per URL (being delivered or waiting); past it, new ones are "
        "dropped and counted.",
        minimum=1,
        maximum=1_000_000,
        doc="Webhook events held per URL, being delivered or waiting; past it, new ones are "
        'dropped (`webrtc_signal_webhook_dropped_total{reason="queue_full"}`).',
    )
    auth_url: str = setting(
        "",
        "Ask this http:// or https:// URL about every WebSocket upgrade: 200 with an identity "
        "admits, 4xx refuses, anything else is 503.",
        check=_url_problem,
        shown_default="off",
        doc="POST every WebSocket upgrade (address, query, allowed headers) to this `http://` "
        'or `https://` URL: 200 `{"identity": ...}` admits, a 4xx refuses with that status, '
        "no answer or anything else refuses with 503. With `--token-secret-file` too, both "
        "must pass ([docs/embedding-hooks.md](docs/embedding-hooks.md#auth-callback)).",
    )
    auth_timeout: float = setting(
        DEFAULT_AUTH_TIMEOUT,
        "Seconds the auth callback has to answer; then the upgrade gets 503.",
        above=0,
        unit="seconds",
        doc="Seconds the auth callback has to answer; then the upgrade gets 503 (the whole "
        "opening handshake has 5 s, so longer waits no more than that).",
    )
    auth_concurrency: int = setting(
        DEFAULT_AUTH_CONCURRENCY,
        "Auth callback calls under way at once; an upgrade beyond them gets 503 at once.",
        minimum=1,
        maximum=100_000,
    )
    # Read first, before the other options: where the rest may be.
    config_file: str = setting(
        "",
        "Read options from this TOML file, keys named as the options (max-peers = 1024, "
        'turn = ["turn:a:3478"]); the command line and WEBRTC_SIGNAL_<NAME> variables win '
        "over it.",
        option="config",
        shown_default="none",
        sources=frozenset({Source.COMMAND_LINE, Source.ENVIRONMENT}),
        doc="Read options from this TOML file, keys named as the options (`max-peers = 1024`, "
        '`turn = ["turn:a:3478"]`, `no-demo = true`). Every option can also be set as '
        "`WEBRTC_SIGNAL_<NAME>` (`WEBRTC_SIGNAL_MAX_PEERS=1024`; repeatable ones "
        "comma-separated). The command line wins, then the environment, then the file "
        "([docs/running.md](docs/running.md#configuration-files-and-the-environment)).",
    )
    print_config: bool = setting(
        False,
        "Print the effective configuration as TOML, with where each value came from, and exit.",
        shown_default="off",
        sources=frozenset({Source.COMMAND_LINE}),
        doc="Print the effective configuration as TOML (what `--config` reads), each value "
        "followed by where it came from (command line, environment, file, default), secret "
        "files as their paths, and exit.",
    )

    def __post_init__(self) -> None:
        check_settings(self)


def split_description(description: str) -> tuple[list[str], dict[str, str]]:
    """An endpoint description's positional and keyword arguments, split the
    way Twisted's serverFromString splits them (``:`` between arguments, the
    first ``=`` of one names it, a backslash escapes the next character)."""
    args: list[str] = []
    kwargs: dict[str, str] = {}
    parts = [""]

    def end_argument() -> None:
        if len(parts) == 1:
            args.append(parts[0])
        else:
            kwargs[parts[0]] = parts[1]
        parts[:] = [""]

    characters = iter(description)
    for character in characters:
        if character == "\\":
            parts[-1] += next(characters, "")
        elif character == ":":
            end_argument()
        elif character == "=" and len(parts) == 1:
            parts.append("")
        else:
            parts[-1] += character
    end_argument()
    return args, kwargs


def port_text(description: str) -> str | None:
    """The port an endpoint description names, as written (None if none)."""
    args, kwargs = split_description(description)
    if args and args[0] == "haproxy":
        args = args[1:]
    kind = args[0] if args else ""
    port = kwargs.get("port")
    if port is None and kind in ("tcp", "tcp6", "ssl") and len(args) > 1:
        port = args[1]
    return port


def port_number(description: str) -> int | None:
    port = port_text(description)
    return int(port) if port is not None and re.fullmatch(r"\d+", port) else None


def check_port_number(description: str) -> None:
    """Twisted takes any integer as a port and fails only when it binds, with
    a traceback; say so now."""
    port = port_number(description)
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")


# Twisted listens with a backlog of 50: a burst of players connecting at once
# (a match starting, a server restart) then waits 1-2 s for retransmitted SYNs.
# Only the default port gets this; a custom --port sets its own with
# ":backlog=N" (the kernel caps it at net.core.somaxconn).
DEFAULT_BACKLOG = 1024


def with_default_backlog(description: str, default: str) -> str:
    if description == default and "backlog=" not in description:
        return f"{description}:backlog={DEFAULT_BACKLOG}"
    return description


def check_pem_directory(description: str) -> None:
    """Twisted's ``tls:`` endpoint reads its certificate directory lazily and
    listens even when it is missing, or holds a certificate without its
    private key, failing every handshake later; say so now."""
    args, _ = split_description(description)
    if args[0] != "tls" or len(args) < 2:
        return
    directory = Path(args[1])
    pems = sorted(directory.rglob("*.pem")) if directory.is_dir() else []
    if not pems:
        raise ValueError(f"{str(directory)!r} is not a directory holding .pem files")
    check_pem_pairs(pems)


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


def check_pem_pairs(pems: list[Path]) -> None:
    """A ``tls:`` directory serves the certificates whose private keys it
    holds, under their DNS names; other certificates are only chain. Refuse a
    directory from which no certificate could be served."""
    certificates, keys = _read_pems(pems)
    if not certificates:
        raise ValueError(f"no certificate in the .pem files of {str(pems[0].parent)!r}")
    served = [(path, cert) for path, cert in certificates if _key_bytes(cert.public_key()) in keys]
    if not served:
        path = certificates[0][0]
        raise ValueError(f"no private key for the certificate in {str(path)!r}")
    for path, cert in served:
        if not _dns_names(cert):
            # Twisted's tls: endpoint picks certificates by their DNS names only.
            raise ValueError(
                f"the certificate in {str(path)!r} names no DNS name (subjectAltName), "
                "which the tls: endpoint needs"
            )


def _read_pems(pems: list[Path]) -> tuple[list[tuple[Path, Any]], set[bytes]]:
    """The certificates in ``pems``, and the public keys of their private keys."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    certificates: list[tuple[Path, Any]] = []
    keys: set[bytes] = set()
    for pem in pems:
        for block in _PEM_BLOCK.finditer(pem.read_bytes()):
            kind, text = block.group(1), block.group(0)
            try:
                if kind == b"CERTIFICATE":
                    certificates.append((pem, x509.load_pem_x509_certificate(text)))
                elif kind.endswith(b"PRIVATE KEY"):
                    private_key = serialization.load_pem_private_key(text, None)
                    keys.add(_key_bytes(private_key.public_key()))
            except (ValueError, TypeError) as error:
                raise ValueError(f"{str(pem)!r} holds an unreadable PEM block: {error}") from None
    return certificates, keys


def _key_bytes(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _dns_names(certificate: Any) -> list[str]:
    from cryptography import x509

    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    found: list[str] = names.value.get_values_for_type(x509.DNSName)
    return found


class StartupFailed(SystemExit, Exception):
    """Ends twistd with one line and status 1, in the foreground or as a daemon.

    As a SystemExit, Python prints just its message, no traceback. As an
    Exception, twistd's daemon child reports it through its status pipe and
    removes the pidfile, so the command the user ran exits at once with the
    message; a bare SystemExit slips past that report, and the command waits
    forever for a child that is gone.

    twistd reports it as ``<type name>: <str>``: the type is named and placed
    so that that line is exactly the foreground's message."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"webrtc-signal: {problem}")
        self.problem = problem

    def __str__(self) -> str:
        return self.problem


# traceback.format_exception_only() names a builtins type without its module.
StartupFailed.__module__ = "builtins"
StartupFailed.__qualname__ = "webrtc-signal"


class MetricsSite(Site):
    """The metrics' site: no access-log line per scrape, no "Starting
    factory" lines."""

    noisy = False

    def log(self, request: object) -> None:
        pass
