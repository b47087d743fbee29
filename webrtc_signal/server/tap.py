"""twistd integration: ``twistd -n webrtc-signal [options]``."""

from __future__ import annotations

import re
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NoReturn, cast

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, IServiceCollection
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import ILogObserver, Logger
from twisted.python import usage
from twisted.python.components import Componentized
from twisted.web.resource import Resource
from twisted.web.server import Site

from .. import __version__
from ..protocol.config import InvalidSetting, SignalingConfig
from . import logs
from .fdlimit import FD_MARGIN, connection_budget, raise_open_file_limit
from .port_file import PortFile, PortFileError, check_writable
from .service import SignalingService

_log = Logger(namespace="webrtc_signal")

DEFAULTS = SignalingConfig()
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


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("must be a whole number") from None


def _rate(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("must be a number per second") from None


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("must be a number of seconds") from None


@dataclass(frozen=True)
class _Setting:
    """One command-line option that maps onto a `SignalingConfig` field."""

    option: str
    field: str
    parse: Callable[[str], Any]
    help: str


_SETTINGS = [
    _Setting("max-peers", "max_peers", _whole_number, "Most connections at once; more are closed."),
    _Setting(
        "max-lobbies",
        "max_lobbies",
        _whole_number,
        "Most open lobbies; creating more is refused.",
    ),
    _Setting(
        "join-timeout",
        "join_timeout",
        _seconds,
        "Seconds a connection may stay without joining a lobby.",
    ),
    _Setting(
        "seal-timeout",
        "seal_timeout",
        _seconds,
        "Seconds between a seal and closing the lobby's connections.",
    ),
    _Setting(
        "ping-interval",
        "ping_interval",
        _seconds,
        "Seconds between keepalive pings; a peer that has not answered the "
        "previous ping is dropped. 0 = off.",
    ),
    _Setting(
        "max-message-size",
        "max_message_size",
        _whole_number,
        "Largest message in bytes; a larger one closes that connection with 1009.",
    ),
    _Setting(
        "turn-ttl",
        "turn_ttl",
        _whole_number,
        "Seconds a TURN credential from /ice-servers stays valid.",
    ),
    # -- issue 11: limits against abuse (docs/security.md); 0 turns each off.
    _Setting(
        "max-send-buffer",
        "max_send_buffer",
        _whole_number,
        "Bytes of unsent output a connection may hold; past it, it is dropped.",
    ),
    _Setting(
        "max-peers-per-address",
        "max_peers_per_address",
        _whole_number,
        "Connections one address may hold; more get HTTP 429.",
    ),
    _Setting(
        "max-lobbies-per-address",
        "max_lobbies_per_address",
        _whole_number,
        "Open lobbies one address may have created; more are refused (4000).",
    ),
    _Setting(
        "max-lobby-rate",
        "max_lobby_rate",
        _rate,
        "Lobbies one address may create per second, after a burst of 10.",
    ),
    _Setting(
        "max-message-rate",
        "max_message_rate",
        _rate,
        "Messages per second per connection (token bucket); past it, 4000.",
    ),
    _Setting(
        "max-message-burst",
        "max_message_burst",
        _whole_number,
        "Messages a connection may send at once above --max-message-rate.",
    ),
    _Setting(
        "max-lobby-age",
        "max_lobby_age",
        _seconds,
        "Seconds an unsealed lobby may stay open; then it is closed (4000). 0 = no limit.",
    ),
    # -- draining restarts (issue 13) --
    _Setting(
        "drain-timeout",
        "drain_timeout",
        _seconds,
        "On SIGTERM, seconds to let open lobbies finish (no new connections or "
        "lobbies meanwhile) before closing the rest with 1001; a second SIGTERM "
        "ends the wait. 0 = stop at once.",
    ),
    # -- game-server integration (issue 12) --
    _Setting(
        "max-lobby-size",
        "max_lobby_size",
        _whole_number,
        "Most members in one lobby, host included; one more JOIN is closed (4000 "
        "Lobby is full). 0 = no limit.",
    ),
]
_OPTION_FOR_FIELD = {setting.field: setting.option for setting in _SETTINGS}
# Options that are repeatable or read from a file, so not in _SETTINGS.
_OPTION_FOR_FIELD.update(
    stun_urls="stun",
    turn_urls="turn",
    turn_secret="turn-secret-file",
    allowed_origins="allowed-origin",
    trust_forwarded_for="trust-forwarded-for",
    redis_url="redis",
    node_id="node-id",
    cluster_period="cluster-period",
    cluster_expiry="cluster-expiry",
)


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "WebRTC signaling server for games, wire-compatible with Godot's "
        "webrtc_signaling demo (ws://host:9080 by default)."
    )
    optFlags: ClassVar[list[list[Any]]] = [
        ["no-demo", None, "Do not serve the browser demo page at http://host:port/ (426 instead)."],
    ]
    optParameters: ClassVar[list[list[Any]]] = [
        [
            "port",
            "p",
            default_port_description(),
            "Where to listen, as a Twisted endpoint description. tcp:9080 is IPv4 "
            "only; tcp6:9080 (interface ::) takes IPv6 and, where the OS allows "
            "(Linux does by default), IPv4 too. The default is tcp6:9080 on such "
            "a host, else tcp:9080. More: tcp:9080:interface=127.0.0.1, "
            "ssl:9443:privateKey=key.pem:certKey=cert.pem or "
            "tls:/path/to/pem-directory:port=9443 for wss://.",
        ],
        *[[s.option, None, str(getattr(DEFAULTS, s.field)), s.help] for s in _SETTINGS],
        [
            "turn-secret-file",
            None,
            None,
            "File holding the secret shared with the TURN server (coturn's "
            "static-auth-secret); needed with --turn.",
        ],
        # -- logs (issue 13): twistd's output, not SignalingConfig fields --
        [
            "log-format",
            None,
            "text",
            "text (twistd's lines) or json (one object per line, every field, ISO 8601 UTC "
            "time: for Loki, ELK, journald). Written where twistd logs: stdout with -n, "
            "else --logfile.",
        ],
        [
            "log-level",
            None,
            "info",
            "Lowest level logged: debug (adds a line per connection), info, warn, error "
            "or critical.",
        ],
        # A cluster node (issue 15, docs/cluster.md).
        [
            "redis",
            None,
            None,
            "Make this process a node of a cluster sharing lobbies through Redis: "
            "redis://[:password@]host[:port][/db], or rediss:// for TLS.",
        ],
        [
            "node-id",
            None,
            None,
            "This node's name in the cluster (default: random); a node restarted "
            "under the same name replaces the old one at once.",
        ],
        [
            "cluster-period",
            None,
            str(DEFAULTS.cluster_period),
            "Seconds between refreshes of this node's liveness key in Redis.",
        ],
        [
            "cluster-expiry",
            None,
            str(DEFAULTS.cluster_expiry),
            "Seconds without a refresh after which the other nodes drop this one.",
        ],
        # Prometheus metrics (issue 13): a port of their own, off by default.
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics at /metrics on this endpoint, e.g. "
            "tcp:9100:interface=127.0.0.1 (a port of its own, never the signaling port).",
        ],
        [
            "port-file",
            None,
            None,
            "Once listening, write one host:port line per listening port to this file "
            "(the signaling port first, then the --metrics one); removed on a clean "
            "exit. For --port tcp:0, whose port the kernel picks.",
        ],
        # Token auth (issue 12): not a SignalingConfig field but hooks.
        [
            "token-secret-file",
            None,
            None,
            "Require ?token=<JWT> (HS256, signed with the secret in this file) on every "
            "connection; see webrtc-signal-token.",
        ],
    ]

    def opt_version(self) -> NoReturn:
        """Print the version of webrtc-signal and exit."""
        print(f"webrtc-signal {__version__}")
        sys.exit(0)

    # -- ICE servers handed out at GET /ice-servers (issue 14) -----------------

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["stun"] = []
        self["turn"] = []
        self["allowed-origin"] = []
        self["trust-forwarded-for"] = []

    def opt_stun(self, url: str) -> None:
        """A STUN server for clients, e.g. stun:stun.example.org:3478 (repeatable)."""
        self["stun"].append(url)

    def opt_turn(self, url: str) -> None:
        """A TURN server for clients, e.g. turn:turn.example.org:3478 (repeatable; needs --turn-secret-file)."""  # noqa: E501
        self["turn"].append(url)

    def _ice_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"stun_urls": self["stun"], "turn_urls": self["turn"]}
        path = self["turn-secret-file"]
        if path is not None:
            try:
                secret = Path(path).read_bytes().decode("utf-8").strip()
            except OSError as error:
                raise usage.UsageError(
                    f"--turn-secret-file {path!r} cannot be read: {error.strerror}"
                ) from None
            except UnicodeDecodeError:
                raise usage.UsageError(f"--turn-secret-file {path!r} is not UTF-8 text") from None
            if not secret:
                raise usage.UsageError(f"--turn-secret-file {path!r} is empty")
            values["turn_secret"] = secret
        return values

    # -- issue 11: repeatable access options (docs/security.md) ----------------

    # Help texts are set below: usage prints a docstring's indentation as is.
    def opt_allowed_origin(self, pattern: str) -> None:
        self["allowed-origin"].append(pattern)

    opt_allowed_origin.__doc__ = (
        "Browser origin allowed to connect, exact (https://game.example.com) or a "
        "subdomain wildcard (https://*.example.com); repeatable. Other origins get "
        "HTTP 403; clients sending no Origin (native games) are always allowed."
    )

    def opt_trust_forwarded_for(self, cidr: str) -> None:
        self["trust-forwarded-for"].append(cidr)

    opt_trust_forwarded_for.__doc__ = (
        "Proxy address or CIDR network whose X-Forwarded-For header names the real "
        "client (for per-address limits and logs); repeatable."
    )

    def postOptions(self) -> None:
        values: dict[str, Any] = {
            "serve_demo": not self["no-demo"],
            "allowed_origins": tuple(self["allowed-origin"]),
            "trust_forwarded_for": tuple(self["trust-forwarded-for"]),
            **self._ice_values(),
            **self._cluster_values(),
        }
        for setting in _SETTINGS:
            try:
                values[setting.field] = setting.parse(self[setting.option])
            except ValueError as error:
                raise usage.UsageError(
                    f"--{setting.option} {error}, not {self[setting.option]!r}"
                ) from None
        try:
            self["config"] = SignalingConfig(**values)
        except InvalidSetting as error:
            raise usage.UsageError(
                f"--{_OPTION_FOR_FIELD[error.setting]} {error.problem}"
            ) from None
        self._check_logging()
        self["hooks"] = None
        if self["token-secret-file"] is not None:
            from .tokens import TokenAuth, read_secret

            try:
                self["hooks"] = TokenAuth(read_secret(self["token-secret-file"]))
            except ValueError as error:
                raise usage.UsageError(f"--token-secret-file {error}") from None
        # twistd has installed the reactor (default, or --reactor) by now.
        from twisted.internet import reactor

        try:
            _check_port_number(self["port"])
            _check_pem_directory(self["port"])
            self["endpoint"] = endpoints.serverFromString(
                reactor, _with_default_backlog(self["port"], self.defaults["port"])
            )
        # Parsers raise all kinds of errors; each one means a bad --port.
        except Exception as error:
            raise usage.UsageError(f"--port {self['port']!r} is not usable: {error}") from None
        self["metrics_endpoint"] = self._metrics_endpoint(reactor)
        if self["port-file"] is not None and (problem := check_writable(self["port-file"])):
            raise usage.UsageError(f"--port-file {problem}")

    def _metrics_endpoint(self, reactor: Any) -> IStreamServerEndpoint | None:
        description = self["metrics"]
        if description is None:
            return None
        try:
            _check_port_number(description)
            endpoint = endpoints.serverFromString(reactor, description)
        except Exception as error:
            raise usage.UsageError(f"--metrics {description!r} is not usable: {error}") from None
        port = _port_number(description)
        if port is not None and port != 0 and port == _port_number(self["port"]):
            # Players must never reach the metrics, nor the metrics take their port.
            raise usage.UsageError(
                f"--metrics {description!r} is the signaling port (--port {self['port']!r}); "
                "give the metrics a port of their own"
            )
        return cast(IStreamServerEndpoint, endpoint)

    def _cluster_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self["redis"] is not None:
            try:
                import txredisapi  # noqa: F401
            except ImportError:
                raise usage.UsageError(
                    "--redis needs txredisapi: pip install 'webrtc-signal[cluster]'"
                ) from None
            values["redis_url"] = self["redis"]
        elif self["node-id"] is not None:
            raise usage.UsageError("--node-id needs --redis")
        if self["node-id"] is not None:
            values["node_id"] = self["node-id"]
        for option in ("cluster-period", "cluster-expiry"):
            try:
                values[option.replace("-", "_")] = _seconds(self[option])
            except ValueError as error:
                raise usage.UsageError(f"--{option} {error}, not {self[option]!r}") from None
        return values

    def _check_logging(self) -> None:
        for option, parse in (("log-format", logs.parse_format), ("log-level", logs.parse_level)):
            try:
                self[option.replace("-", "_")] = parse(self[option])
            except ValueError as error:
                raise usage.UsageError(f"--{option} {error}, not {self[option]!r}") from None
        if self["log_format"] == "json" and self.parent is not None and self.parent.get("syslog"):
            raise usage.UsageError(
                "--log-format json writes lines to stdout or twistd's --logfile, not to --syslog"
            )


def _split_description(description: str) -> tuple[list[str], dict[str, str]]:
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


def _port_text(description: str) -> str | None:
    """The port an endpoint description names, as written (None if none)."""
    args, kwargs = _split_description(description)
    if args and args[0] == "haproxy":
        args = args[1:]
    kind = args[0] if args else ""
    port = kwargs.get("port")
    if port is None and kind in ("tcp", "tcp6", "ssl") and len(args) > 1:
        port = args[1]
    return port


def _port_number(description: str) -> int | None:
    port = _port_text(description)
    return int(port) if port is not None and re.fullmatch(r"\d+", port) else None


def _check_port_number(description: str) -> None:
    """Twisted takes any integer as a port and fails only when it binds, with
    a traceback; say so now."""
    port = _port_number(description)
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")


# Twisted listens with a backlog of 50: a burst of players connecting at once
# (a match starting, a server restart) then waits 1-2 s for retransmitted SYNs.
# Only the default port gets this; a custom --port sets its own with
# ":backlog=N" (the kernel caps it at net.core.somaxconn).
DEFAULT_BACKLOG = 1024


def _with_default_backlog(description: str, default: str) -> str:
    if description == default and "backlog=" not in description:
        return f"{description}:backlog={DEFAULT_BACKLOG}"
    return description


def _check_pem_directory(description: str) -> None:
    """Twisted's ``tls:`` endpoint reads its certificate directory lazily and
    listens even when it is missing, or holds a certificate without its
    private key, failing every handshake later; say so now."""
    args, _ = _split_description(description)
    if args[0] != "tls" or len(args) < 2:
        return
    directory = Path(args[1])
    pems = sorted(directory.rglob("*.pem")) if directory.is_dir() else []
    if not pems:
        raise ValueError(f"{str(directory)!r} is not a directory holding .pem files")
    _check_pem_pairs(pems)


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


def _check_pem_pairs(pems: list[Path]) -> None:
    """A ``tls:`` directory serves the certificates whose private keys it
    holds, under their DNS names; other certificates are only chain. Refuse a
    directory from which no certificate could be served."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    def key_bytes(public_key: Any) -> bytes:
        return bytes(
            public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    certificates: list[tuple[Path, x509.Certificate]] = []
    keys: set[bytes] = set()
    for pem in pems:
        for block in _PEM_BLOCK.finditer(pem.read_bytes()):
            try:
                if block.group(1) == b"CERTIFICATE":
                    certificates.append((pem, x509.load_pem_x509_certificate(block.group(0))))
                elif block.group(1).endswith(b"PRIVATE KEY"):
                    private_key = serialization.load_pem_private_key(block.group(0), None)
                    keys.add(key_bytes(private_key.public_key()))
            except (ValueError, TypeError) as error:
                raise ValueError(f"{str(pem)!r} holds an unreadable PEM block: {error}") from None
    if not certificates:
        raise ValueError(f"no certificate in the .pem files of {str(pems[0].parent)!r}")
    served = [(path, cert) for path, cert in certificates if key_bytes(cert.public_key()) in keys]
    if not served:
        path = certificates[0][0]
        raise ValueError(f"no private key for the certificate in {str(path)!r}")
    for path, cert in served:
        try:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            names = None
        if names is None or not names.value.get_values_for_type(x509.DNSName):
            # Twisted's tls: endpoint picks certificates by their DNS names only.
            raise ValueError(
                f"the certificate in {str(path)!r} names no DNS name (subjectAltName), "
                "which the tls: endpoint needs"
            )


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


class _StandaloneService(SignalingService):
    """Under twistd, a port that cannot be opened ends the program with one
    clear line instead of a traceback (see `StartupFailed`). twistd opens the
    port in privilegedStartService, before it drops root for --uid/--gid.
    The service also brings the log observer (``--log-format``,
    ``--log-level``), makes a second SIGTERM end a drain, and serves the
    metrics (``--metrics``) on a port of their own."""

    def __init__(
        self,
        description: str,
        *args: Any,
        log_observer: ILogObserver | None = None,
        metrics: tuple[str, IStreamServerEndpoint] | None = None,
        port_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.port_file = PortFile(port_file) if port_file is not None else None
        self.description = description
        self.log_observer = log_observer
        self._signals_before: dict[int, Any] = {}
        # A child service, started and stopped by this one rather than by a
        # MultiService: it must stay up through a drain, so that the drain
        # itself can be watched, and stop only once the clients are gone.
        self.metrics_service: StreamServerEndpointService | None = None
        self.metrics_description = ""
        if metrics is not None:
            self.metrics_description, endpoint = metrics
            root = Resource()
            root.putChild(b"metrics", self.metrics_resource())
            site = MetricsSite(root)  # type: ignore[no-untyped-call]
            self.metrics_service = StreamServerEndpointService(endpoint, site)
            # A port that cannot be opened raises from privilegedStartService,
            # as twisted.application.strports.service arranges it too.
            self.metrics_service._raiseSynchronously = True

    def setServiceParent(self, parent: IServiceCollection) -> None:
        # twistd adds the plugin's service to a fresh Application, then starts
        # logging with the application's ILogObserver component if it has one
        # (its own --logger still comes first): the supported place for ours.
        if (
            self.log_observer is not None
            and isinstance(parent, Componentized)
            and parent.getComponent(ILogObserver, None) is None  # type: ignore[no-untyped-call]
        ):
            parent.setComponent(ILogObserver, self.log_observer)  # type: ignore[no-untyped-call]
        super().setServiceParent(parent)  # type: ignore[no-untyped-call]

    def privilegedStartService(self) -> None:
        # Before listening, and while still root under --uid, which may raise
        # the hard limit too.
        self._fit_open_file_limit()
        try:
            super().privilegedStartService()
        except CannotListenError as error:
            raise StartupFailed(
                f"cannot listen on {self.description}: {error.socketError}"
            ) from None
        self._start_metrics()

    def startService(self) -> None:
        super().startService()
        self._start_metrics()
        if self.port_file is not None:
            metrics = self.metrics_service._waitingForPort if self.metrics_service else None
            try:
                self.port_file.start([self.listening, *([metrics] if metrics else [])])
            except PortFileError as error:
                raise StartupFailed(str(error)) from None

    def _start_metrics(self) -> None:
        child = self.metrics_service
        if child is None or child.running:
            return
        try:
            child.privilegedStartService()
        except CannotListenError as error:
            raise StartupFailed(
                f"cannot listen on {self.metrics_description} (--metrics): {error.socketError}"
            ) from None
        child.startService()
        waiting = child._waitingForPort
        if waiting is not None:
            waiting.addCallback(self._metrics_listening)

    def _metrics_listening(self, port: IListeningPort) -> IListeningPort:
        address = port.getHost()
        _log.info(
            "serving metrics at /metrics on {host} port {port}",
            host=getattr(address, "host", str(address)),
            port=getattr(address, "port", None),
        )
        return port

    def _fit_open_file_limit(self) -> None:
        """Make room for --max-peers connections, or say why there is none,
        and refuse (503) what does not fit rather than fail at accept()."""
        max_peers = self.factory.config.max_peers
        needed = max_peers + FD_MARGIN
        soft, hard = raise_open_file_limit(needed)
        if soft < needed:
            _log.warn(
                "the open-file limit is {soft} (hard limit {hard}), below the {needed} "
                "that --max-peers {max_peers} needs: connections beyond {budget} get "
                "HTTP 503; raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower "
                "--max-peers",
                soft=soft,
                hard=hard,
                needed=needed,
                max_peers=max_peers,
                budget=connection_budget(soft),
            )
        self.factory.max_connections = connection_budget(soft)

    def stopService(self) -> Deferred[None]:
        stopping = super().stopService()
        if self.drain is not None:
            # The reactor's handlers would only try to stop it again: while
            # the drain lasts, SIGTERM and SIGINT end it instead.
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._signals_before[signum] = signal.signal(signum, self._end_drain_on_signal)
            self.drain.ended.addBoth(self._restore_signals)
        child = self.metrics_service
        if child is not None and child.running:
            stopping.addCallback(lambda _: child.stopService())
        if self.port_file is not None:
            stopping.addBoth(_after, self.port_file.remove)
        return stopping

    def _end_drain_on_signal(self, signum: int, frame: object) -> None:
        from twisted.internet import reactor

        _log.info("received signal {signal} while draining: ending the drain", signal=signum)
        # Out of the signal handler, into the reactor's loop.
        reactor.callFromThread(self.end_drain)  # type: ignore[attr-defined]

    def _restore_signals(self, result: object) -> object:
        while self._signals_before:
            signum, handler = self._signals_before.popitem()
            signal.signal(signum, handler)
        return result


def makeService(options: Options) -> IService:
    parent = options.parent
    logs.set_level(options["log_level"])
    observer = logs.make_observer(
        options["log_format"], options["log_level"], dict(parent) if parent is not None else None
    )
    return _StandaloneService(
        options["port"],
        options["config"],
        options["endpoint"],
        log_observer=observer,
        hooks=options.get("hooks"),
        metrics=(
            (options["metrics"], options["metrics_endpoint"])
            if options.get("metrics_endpoint") is not None
            else None
        ),
        port_file=options.get("port-file"),
    )


def _after(result: object, action: Callable[[], None]) -> object:
    action()
    return result
