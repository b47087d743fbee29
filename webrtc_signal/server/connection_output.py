"""What a WebSocket connection sends: the engine's `ConnectionHandle` side of
`SignalingServerProtocol`.

Messages are encoded into one unfragmented frame each, queued, and written
in one piece per batch of input (`flush`), straight to the socket when
Twisted holds nothing for it. A connection whose unsent output passes the
send-buffer limit is dropped.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..protocol.access import normalize_address
from ..protocol.codec import Codec
from ..protocol.messages import RELAY_TYPES, AnyMessage
from ..protocol.reasons import Reason
from ..protocol.state import Peer
from . import _internals as internals
from .admission import Admission
from .engine import Engine
from .frames import text_frame
from .logs import QuietLogger

# Not `log`: that attribute is Autobahn's own, filtered logger.
_log = QuietLogger(namespace="webrtc_signal")


class EngineFactory(Protocol):
    """What a connection needs of its factory."""

    engine: Engine[Any]
    admission: Admission


class ConnectionOutput(internals.LeanServerProtocol):
    factory: EngineFactory
    # Class attributes stand for the usual values: an idle connection's
    # instance dictionary holds only what differs.
    # Picked by the first text message; nothing is sent before that.
    codec: Codec | None = None
    signaling_peer: Peer[Any] | None = None

    def __init__(self) -> None:
        super().__init__()
        # Frames waiting for the end of the current batch of input (see flush).
        self.outgoing: list[bytes] = []

    # -- output: the engine's ConnectionHandle ----------------------------------------

    def send_message(self, message: AnyMessage) -> None:
        # A peer whose closing handshake has begun (it sent a close frame, or
        # overflowed) stays in its lobby until its socket is gone; what is
        # sent to it meanwhile is dropped, as Autobahn would refuse it.
        codec = self.codec  # set by the first message, before any reply
        if codec is not None and internals.is_open(self):
            # One unfragmented frame per message, built here: Autobahn's
            # sendMessage adds checks and bookkeeping this server never needs.
            payload = codec.encode(message)
            self.queue(text_frame(payload))
            if message.type in RELAY_TYPES:
                peer = self.signaling_peer
                lobby = peer.lobby if peer is not None else None
                self.factory.engine.traffic.relayed(
                    message.type,
                    len(payload),
                    message.data,  # type: ignore[union-attr]  # relays are Messages
                    lobby.name if lobby is not None else None,
                )

    def queue(self, frame: bytes) -> None:
        """Add ``frame`` to what the next `flush` writes."""
        if not self.outgoing:
            self.factory.engine.unflushed.append(self)
        self.outgoing.append(frame)

    def flush(self) -> None:
        """Write the frames queued since the last flush, in one piece."""
        outgoing = self.outgoing
        if outgoing:
            data = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
            outgoing.clear()
            if not internals.write_now(self.transport, data):
                self.check_send_buffer()

    def close_for(self, reason: Reason) -> None:
        # sendClose() refuses 1001 (going away), which shutdown needs; the frame
        # method takes any code and still runs the closing handshake.
        self.sendCloseFrame(code=reason.code, reasonUtf8=reason.text.encode(), isReply=False)

    def drop(self) -> None:
        self.dropConnection(abort=True)

    def ping(self, payload: bytes) -> None:
        self.sendPing(payload)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        # Everything Autobahn writes itself (handshake, pings, pongs, close
        # frames) goes out after the messages queued before it, and like them
        # straight to the socket when it can; Autobahn's own version of this
        # adds only statistics and a debug line formatted for nobody.
        if self.outgoing:
            self.flush()
        if sync or chopsize or internals.has_queued_sends(self):
            super().sendData(data, sync, chopsize)
        elif not internals.write_now(self.transport, data):
            self.check_send_buffer()

    def check_send_buffer(self) -> None:
        """Drop the connection at once when its unsent output passes
        ``max_send_buffer``: a client that stops reading would otherwise make
        the server hold everything its lobby sends it. No close frame: it
        could not get through. The peer leaves its lobby as if it had gone."""
        limit = self.factory.engine.config.max_send_buffer
        if not limit or internals.is_closed(self):
            return
        unsent = internals.unsent_bytes(self.transport)
        if unsent <= limit:
            return
        peer = self.signaling_peer
        _log.warn(
            "peer {peer_id} (lobby {lobby}, {address}) is not reading: {unsent} bytes "
            "unsent, over the limit of {limit}; dropping it",
            peer_id=peer.peer_id if peer else 0,
            lobby=lobby_of(peer),
            address=address_of(peer),
            unsent=unsent,
            limit=limit,
        )
        self.discarding = True
        self.dropConnection(abort=True)


def peer_host(transport: object) -> str:
    """The IP address at the other end of ``transport`` ("" if none)."""
    if transport is None:
        return ""
    return str(getattr(transport.getPeer(), "host", ""))  # type: ignore[attr-defined]


def lobby_of(peer: Peer[Any] | None) -> str:
    return peer.lobby.name if peer is not None and peer.lobby is not None else "-"


def address_of(peer: Peer[Any] | None) -> str:
    if peer is None or peer.handle.transport is None:
        return ""
    address = peer.handle.transport.getPeer()
    host = getattr(address, "host", None)
    if peer.address and host is not None and normalize_address(host) != peer.address:
        # Behind a trusted proxy: its port says nothing about the client.
        return peer.address
    port = getattr(address, "port", None)
    return f"{host}:{port}" if host is not None else str(address)
