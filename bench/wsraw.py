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


class Client:
    def __init__(self, port: int, rcvbuf: int | None = None, timeout: float = 10) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.split(b"\r\n")[0].decode())

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
                raise ConnectionError(f"closed {payload[:2].hex()} {payload[2:]!r}")
            if opcode == 9:
                self.sock.sendall(frame(payload, opcode=10))

    def expect(self, type_: int) -> Any:
        while (message := self.message())["type"] != type_:
            pass
        return message

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def lobby_pair(port: int) -> tuple[Client, Client, int, str]:
    """A host and a guest in a new lobby: host, guest, the guest's id, the lobby."""
    host = Client(port)
    host.send(0, 0, "")
    lobby = host.expect(0)["data"]
    guest = Client(port)
    guest.send(0, 0, lobby)
    guest.expect(0)
    guest_id = host.expect(2)["id"]
    return host, guest, guest_id, lobby
