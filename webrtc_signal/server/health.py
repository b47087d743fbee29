"""``GET /healthz``: whether this server takes new players, for load balancers
and container health checks.

200 with ``{"status": "ok", ...}`` while serving; 503 with ``"draining"``
while a stopping server lets its open lobbies finish, and with ``"stopping"``
once it closes everything. The body also counts peers and lobbies, so the
same request tells an operator how busy the server is.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..protocol.core import Signaling

HEALTH_PATH = "/healthz"


def health(signaling: Signaling[Any]) -> dict[str, str | int]:
    """The health check's JSON body, as a dictionary."""
    if not signaling.accepting:
        status = "stopping"
    elif signaling.draining:
        status = "draining"
    else:
        status = "ok"
    return {"status": status, "peers": len(signaling.peers), "lobbies": len(signaling.lobbies)}


def health_response(signaling: Signaling[Any]) -> bytes:
    """The whole HTTP response to ``GET /healthz``."""
    body = health(signaling)
    code = "200 OK" if body["status"] == "ok" else "503 Service Unavailable"
    payload = orjson.dumps(body) + b"\n"
    head = (
        f"HTTP/1.1 {code}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        # A cached answer would hide a drain from the load balancer.
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + payload
