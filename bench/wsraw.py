"""A minimal blocking WebSocket client on plain sockets, for the abuse
benchmark and the soak: it must send what no library would (endless headers,
ping bursts, fragment piles) and stop reading at will."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
from typing import Any


def frame(payload: bytes, opcode: int = 1, fin: bool = True) -> bytes:
    """A masked client frame."""
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    mask = os.urandom(4)
    if not size:
        return head + mask
    key = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )
    return head + mask + masked


def upgrade_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class RefusedUpgrade(ConnectionError):
    """The server answered the upgrade with another status than 101."""

    @property
    def status(self) -> str:
        parts = str(self).split(" ", 2)
        return parts[1] if len(parts) > 1 else str(self)


class Client:
    """One upgraded connection; `source` is the local address to connect
    from (any of 127.0.0.0/8), standing for another player's address."""

    def __init__(
        self,
        port: int,
        rcvbuf: int | None = None,
        timeout: float = 10,
        source: str | None = None,
    ) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        try:
            self._open(port)
        except BaseException:
            self.sock.close()
            raise

    def _open(self, port: int) -> None:
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(upgrade_request(port))
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status = head.split(b"\r\n")[0].decode(errors="replace")
        if status.split(" ")[1:2] != ["101"]:
            raise RefusedUpgrade(status)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buffer += data

    def send(self, type_: int, id_: int = 0, data: str = "") -> None:
        self.sock.sendall(frame(json.dumps({"type": type_, "id": id_, "data": data}).encode()))

    def frame(self) -> tuple[int, bytes]:
        while True:
            if len(self.buffer) >= 2:
                size = self.buffer[1] & 0x7F
                at = 2
                if size == 126 and len(self.buffer) >= 4:
                    size, at = struct.unpack("!H", self.buffer[2:4])[0], 4
                elif size == 127 and len(self.buffer) >= 10:
                    size, at = struct.unpack("!Q", self.buffer[2:10])[0], 10
                if (size < 126 or at > 2) and len(self.buffer) >= at + size:
                    opcode = self.buffer[0] & 0x0F
                    payload = self.buffer[at : at + size]
                    self.buffer = self.buffer[at + size :]
                    return opcode, payload
            self._fill()

    def message(self) -> Any:
        while True:
            opcode, payload = self.frame()
            if opcode == 1:
                return json.loads(payload)
            if opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode(errors="replace")
                raise ConnectionError(f"closed {code} {reason}".rstrip())
            if opcode == 9:
                self.sock.sendall(frame(payload, opcode=10))

    def expect(self, type_: int) -> Any:
        while (message := self.message())["type"] != type_:
            pass
        return message

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def lobby_pair(port: int, source: str | None = None) -> tuple[Client, Client, int, str]:
    """A host and a guest in a new lobby: host, guest, the guest's id, the lobby."""
    host = Client(port, source=source)
    host.send(0, 0, "")
    lobby = host.expect(0)["data"]
    guest = Client(port, source=source)
    guest.send(0, 0, lobby)
    guest.expect(0)
    guest_id = host.expect(2)["id"]
    return host, guest, guest_id, lobby
