"""twistd integration: ``twistd -n webrtc-signal [options]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from twisted.application.service import IService
from twisted.internet import endpoints
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python import usage

from ..protocol.config import InvalidSetting, SignalingConfig
from .fdlimit import FD_MARGIN, connection_budget, raise_open_file_limit
from .service import SignalingService

_log = Logger(namespace="webrtc_signal")

DEFAULTS = SignalingConfig()


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
    _Setting(
        "max-peers", "max_peers", _whole_number, "Most connections at once; more are closed (4000)."
    ),
    _Setting(
        "max-lobbies",
        "max_lobbies",
        _whole_number,
        "Most open lobbies; creating more is refused (4000).",
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
]
_OPTION_FOR_FIELD = {setting.field: setting.option for setting in _SETTINGS}
_OPTION_FOR_FIELD.update(
    allowed_origins="allowed-origin", trust_forwarded_for="trust-forwarded-for"
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
            "tcp:9080",
            "Where to listen, as a Twisted endpoint description: tcp:9080, "
            "tcp:9080:interface=127.0.0.1, ssl:9443:privateKey=key.pem:certKey=cert.pem "
            "or tls:/path/to/pem-directory:port=9443 for wss://.",
        ],
        *[[s.option, None, str(getattr(DEFAULTS, s.field)), s.help] for s in _SETTINGS],
    ]

    # -- issue 11: repeatable access options (docs/security.md) ----------------

    def __init__(self) -> None:
        super().__init__()
        self["allowed-origin"] = []
        self["trust-forwarded-for"] = []

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
        # twistd has installed the reactor (default, or --reactor) by now.
        from twisted.internet import reactor

        try:
            _check_pem_directory(self["port"])
            self["endpoint"] = endpoints.serverFromString(
                reactor, _with_default_backlog(self["port"], self.defaults["port"])
            )
        # Parsers raise all kinds of errors; each one means a bad --port.
        except Exception as error:
            raise usage.UsageError(f"--port {self['port']!r} is not usable: {error}") from None


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
    listens even when it is missing, failing every handshake later; say so now."""
    kind, _, rest = description.partition(":")
    if kind != "tls":
        return
    directory = Path(rest.split(":", 1)[0])
    if not directory.is_dir() or not any(directory.rglob("*.pem")):
        raise ValueError(f"{str(directory)!r} is not a directory holding .pem files")


class _StandaloneService(SignalingService):
    """Under twistd, a port that cannot be opened ends the program with one
    clear line instead of a traceback."""

    def __init__(self, description: str, *args: Any) -> None:
        super().__init__(*args)
        self.description = description

    def startService(self) -> None:
        self._fit_open_file_limit()
        try:
            super().startService()
        except CannotListenError as error:
            raise SystemExit(
                f"webrtc-signal: cannot listen on {self.description}: {error.socketError}"
            ) from None

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


def makeService(options: Options) -> IService:
    return _StandaloneService(options["port"], options["config"], options["endpoint"])
