"""The server's settings: what a connection may send and hold, who may
connect, and how the server stops. Declared once (see
`webrtc_signal.protocol.settings`); for every per-address and per-connection
limit, 0 turns it off (docs/security.md explains each).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol.access import check_origin_pattern, parse_networks
from ..protocol.settings import InvalidSetting, check_settings, setting

# The smallest --max-message-size accepted. A real browser's offer for a data
# channel alone is about 0.5-1 KB of SDP; with audio and video m-lines and a
# handful of candidates it is several KB. Below 4 KiB a server would close
# ordinary clients with 1009 in the middle of signaling, which no setting
# should do silently.
MIN_MESSAGE_SIZE = 4096


def _origins_problem(patterns: tuple[str, ...]) -> str | None:
    for pattern in patterns:
        try:
            check_origin_pattern(pattern)
        except ValueError as error:
            return str(error)
    return None


def _networks_problem(cidrs: tuple[str, ...]) -> str | None:
    try:
        parse_networks(cidrs)
    except ValueError as error:
        return str(error)
    return None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Per-connection and per-address limits, keepalive, and stopping."""

    ping_interval: float = setting(
        10.0,
        "Seconds between keepalive pings; a peer that has not answered the previous ping is "
        "dropped. 0 = off.",
        minimum=0,
        doc="Seconds between keepalive pings. A peer that has not answered the previous ping by "
        "the next one is dropped and leaves its lobby like any other. `0` turns pings off.",
        unit="seconds",
    )
    max_message_size: int = setting(
        64 * 1024,
        "Largest message in bytes; a larger one closes that connection with 1009.",
        minimum=MIN_MESSAGE_SIZE,
        doc="Largest message in bytes, at least 4096 (a browser's offer is 0.5-1 KB for a data "
        "channel, several KB with media). A larger message closes that connection with 1009; "
        "nobody else notices.",
    )
    serve_demo: bool = setting(
        True,
        "Do not serve the browser demo page at http://host:port/ (426 instead).",
        option="no-demo",
        inverted=True,
        shown_default="demo on",
        doc="Do not serve the browser demo; a plain HTTP GET then gets 426 Upgrade Required. "
        "Use it in production.",
    )
    max_send_buffer: int = setting(
        1024 * 1024,
        "Bytes of unsent output a connection may hold; past it, it is dropped.",
        minimum=0,
        doc="Bytes of unsent output one connection may hold; past it the connection is dropped "
        "(no close frame could get through) and leaves its lobby. A client that stops reading "
        "cannot make the server hold what its lobby sends.",
    )
    max_peers_per_address: int = setting(
        256,
        "Connections one address may hold; more get HTTP 429.",
        minimum=0,
        doc="Connections from one address; more get HTTP 429 at the upgrade. One address could "
        "otherwise take every slot.",
    )
    # Counted from the TCP accept: a client that never finishes its upgrade
    # holds a socket and a parser all the same.
    max_handshakes_per_address: int = setting(
        16,
        "Connections from one address that have not finished their upgrade; one more is "
        "closed at once, before any read.",
        minimum=0,
        doc="Connections from one address that have not finished their WebSocket upgrade; one "
        "more is closed at once, before anything is read from it. Counted from the TCP accept, "
        "so unfinished handshakes from one address cannot starve everyone else.",
    )
    handshake_timeout: float = setting(
        2.0,
        "Seconds a connection has to complete its upgrade; then it is dropped. 0 = no limit.",
        minimum=0,
        doc="Seconds a connection has from its TCP accept to complete its WebSocket upgrade; "
        "then it is dropped. `0` = no limit.",
        unit="seconds",
    )
    max_message_rate: float = setting(
        50.0,
        "Messages per second per connection (token bucket); past it, 4000.",
        minimum=0,
        doc="Messages per second per connection (token bucket); past it, 4000 `Too many messages`.",
    )
    max_message_burst: int = setting(
        200,
        "Messages a connection may send at once above the message rate.",
        minimum=0,
        doc="Messages a connection may send at once above the rate: a peer of a 16-peer mesh "
        "negotiating with everyone at once sends about 195.",
    )
    max_byte_rate: int = setting(
        65536,
        "Bytes per second per connection (token bucket); past it, 4000.",
        minimum=0,
        doc="Bytes of messages per second per connection (token bucket, like the message "
        "rate); past it, 4000 `Too many messages`.",
    )
    max_byte_burst: int = setting(
        1024 * 1024,
        "Bytes a connection may send at once above the byte rate (at least the largest "
        "message size).",
        minimum=0,
        doc="Bytes a connection may send at once above the byte rate, at least "
        "`--max-message-size`: a peer of a 16-peer mesh negotiating with everyone at once "
        "(offers of about 4 KB) sends about 130 KB, an eighth of it.",
    )
    max_list_rate: float = setting(
        5.0,
        "GET /lobbies requests per second per address, after a burst of 20; past it, 429. "
        "0 = no limit.",
        minimum=0,
        doc="`GET /lobbies` requests per second from one address (token bucket, burst 20); past "
        "it, HTTP 429. A page costs little, but a client polling in a tight loop should not "
        "take the server's time from the players.",
    )
    allowed_origins: tuple[str, ...] = setting(
        (),
        "Browser origin allowed to connect, exact (https://game.example.com) or a subdomain "
        "wildcard (https://*.example.com); repeatable. Other origins get HTTP 403; clients "
        "sending no Origin (native games) are always allowed.",
        option="allowed-origin",
        shown_default="any",
        check=_origins_problem,
        doc="Browser origin allowed to connect, exact or `https://*.example.com`; repeatable. "
        "Other origins get HTTP 403; a client sending no Origin (native Godot, Python) is "
        "always allowed: this protects browsers only.",
    )
    trust_forwarded_for: tuple[str, ...] = setting(
        (),
        "Proxy address or CIDR network whose X-Forwarded-For header names the real client "
        "(for per-address limits and logs); repeatable.",
        shown_default="none",
        check=_networks_problem,
        doc="Proxy address or CIDR whose `X-Forwarded-For` names the real client, so limits "
        "and logs see players, not the proxy; repeatable. For the PROXY protocol use `--port "
        "haproxy:tcp:9080`.",
    )
    drain_timeout: float = setting(
        0.0,
        "On SIGTERM, seconds to let open lobbies finish (no new connections or lobbies "
        "meanwhile) before closing the rest with 1001; a second SIGTERM ends the wait. 0 = "
        "stop at once.",
        minimum=0,
        doc="Seconds a SIGTERM lets open lobbies finish before the server stops: meanwhile new "
        "connections get HTTP 503, `/healthz` says `draining`, a request for a new lobby is "
        "closed with 1001 `Server shutting down`, and joins, relays and seals in open lobbies "
        "go on; then the rest is closed with 1001. A second SIGTERM ends the wait. `0` stops "
        "at once.",
        unit="seconds",
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if self.max_message_rate and self.max_message_burst < 1:
            raise InvalidSetting(
                "max_message_burst", "must be at least 1 while the message rate limit is on"
            )
        if self.max_byte_rate and self.max_byte_burst < self.max_message_size:
            raise InvalidSetting(
                "max_byte_burst",
                f"must be at least --max-message-size ({self.max_message_size}) while the byte "
                "rate limit is on: a message that size could never be sent",
            )
