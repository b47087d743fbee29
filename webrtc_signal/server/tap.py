"""twistd integration: ``twistd -n webrtc-signal [options]``."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from twisted.application.service import IService, IServiceCollection
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import ILogObserver, Logger
from twisted.python import usage
from twisted.python.components import Componentized

from ..protocol.config import InvalidSetting, SignalingConfig
from . import logs
from .service import SignalingService

DEFAULTS = SignalingConfig()
_log = Logger(namespace="webrtc_signal")


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("must be a whole number") from None


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
    # -- draining restarts (issue 13) --
    _Setting(
        "drain-timeout",
        "drain_timeout",
        _seconds,
        "On SIGTERM, seconds to let open lobbies finish (no new connections or "
        "lobbies meanwhile) before closing the rest with 1001; a second SIGTERM "
        "ends the wait. 0 = stop at once.",
    ),
]
_OPTION_FOR_FIELD = {setting.field: setting.option for setting in _SETTINGS}


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
    ]

    def postOptions(self) -> None:
        values: dict[str, Any] = {"serve_demo": not self["no-demo"]}
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
        # twistd has installed the reactor (default, or --reactor) by now.
        from twisted.internet import reactor

        try:
            _check_pem_directory(self["port"])
            self["endpoint"] = endpoints.serverFromString(reactor, self["port"])
        # Parsers raise all kinds of errors; each one means a bad --port.
        except Exception as error:
            raise usage.UsageError(f"--port {self['port']!r} is not usable: {error}") from None

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
    clear line instead of a traceback. The service also brings the log
    observer (``--log-format``, ``--log-level``) and makes a second SIGTERM
    end a drain."""

    def __init__(
        self, description: str, *args: Any, log_observer: ILogObserver | None = None
    ) -> None:
        super().__init__(*args)
        self.description = description
        self.log_observer = log_observer
        self._signals_before: dict[int, Any] = {}

    def setServiceParent(self, parent: IServiceCollection) -> None:
        # twistd adds the plugin's service to a fresh Application, then starts
        # logging with the application's ILogObserver component if it has one
        # (its own --logger still comes first): the supported place for ours.
        if (
            self.log_observer is not None
            and isinstance(parent, Componentized)
            and parent.getComponent(ILogObserver, None) is None
        ):
            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)

    def startService(self) -> None:
        try:
            super().startService()
        except CannotListenError as error:
            raise SystemExit(
                f"webrtc-signal: cannot listen on {self.description}: {error.socketError}"
            ) from None

    def stopService(self) -> Deferred[None]:
        stopping = super().stopService()
        if self.drain is not None:
            # The reactor's handlers would only try to stop it again: while
            # the drain lasts, SIGTERM and SIGINT end it instead.
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._signals_before[signum] = signal.signal(signum, self._end_drain_on_signal)
            self.drain.ended.addBoth(self._restore_signals)
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
        options["port"], options["config"], options["endpoint"], log_observer=observer
    )
