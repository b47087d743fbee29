"""twistd integration: ``twistd -n webrtc-signal [options]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from twisted.application.service import IService
from twisted.internet import endpoints
from twisted.internet.error import CannotListenError
from twisted.python import usage

from ..protocol.config import InvalidSetting, SignalingConfig
from .service import SignalingService

DEFAULTS = SignalingConfig()


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
    _Setting(
        "max-lobby-size",
        "max_lobby_size",
        _whole_number,
        "Most members in one lobby, host included; one more JOIN is closed (4000 "
        "Lobby is full). 0 = no limit.",
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
        # Token auth (issue 12): not a SignalingConfig field but hooks.
        [
            "token-secret-file",
            None,
            None,
            "Require ?token=<JWT> (HS256, signed with the secret in this file) on every "
            "connection; see webrtc-signal-token.",
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
            _check_pem_directory(self["port"])
            self["endpoint"] = endpoints.serverFromString(reactor, self["port"])
        # Parsers raise all kinds of errors; each one means a bad --port.
        except Exception as error:
            raise usage.UsageError(f"--port {self['port']!r} is not usable: {error}") from None


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

    def __init__(self, description: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.description = description

    def startService(self) -> None:
        try:
            super().startService()
        except CannotListenError as error:
            raise SystemExit(
                f"webrtc-signal: cannot listen on {self.description}: {error.socketError}"
            ) from None


def makeService(options: Options) -> IService:
    return _StandaloneService(
        options["port"], options["config"], options["endpoint"], hooks=options.get("hooks")
    )
