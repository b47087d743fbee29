"""Server settings: one validated dataclass shared by twistd options and embedders."""

import math
from dataclasses import dataclass


class InvalidSetting(ValueError):
    """A setting's value is out of range; ``setting`` names the field."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem


@dataclass(frozen=True, slots=True)
class SignalingConfig:
    """Limits and timers of a signaling server. Invalid values raise
    `InvalidSetting` (a ``ValueError``) naming the setting, so both the command line and an
    embedding program get a clear message instead of a misbehaving server."""

    max_peers: int = 4096
    max_lobbies: int = 1024
    join_timeout: float = 1.0
    seal_timeout: float = 10.0
    # 0 turns keepalive pings off.
    ping_interval: float = 10.0
    max_message_size: int = 64 * 1024
    # Answer plain HTTP GETs (no WebSocket upgrade) with the browser demo;
    # off, they get 426 Upgrade Required. Not a rule of the core.
    serve_demo: bool = True
    # Game-server integration (issue 12): most members in one lobby, host
    # included; 0 = no limit, as the reference. Each newcomer costs a
    # PEER_CONNECT to and from every member, so a lobby's setup traffic grows
    # with the square of its size.
    max_lobby_size: int = 0

    def __post_init__(self) -> None:
        if type(self.serve_demo) is not bool:
            raise InvalidSetting("serve_demo", f"must be True or False, not {self.serve_demo!r}")
        for name in ("max_peers", "max_lobbies", "max_message_size"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise InvalidSetting(name, f"must be a whole number of at least 1, not {value!r}")
        for name in ("join_timeout", "seal_timeout", "ping_interval"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
                raise InvalidSetting(
                    name, f"must be a finite number of seconds >= 0, not {value!r}"
                )
            if value == 0 and name != "ping_interval":
                raise InvalidSetting(name, "must be more than 0 seconds")
        if type(self.max_lobby_size) is not int or self.max_lobby_size < 0:
            raise InvalidSetting(
                "max_lobby_size",
                f"must be a whole number >= 0 (0 = no limit), not {self.max_lobby_size!r}",
            )
