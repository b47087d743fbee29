"""wss:// through Twisted's ssl: and tls: server endpoints, with a certificate
the test makes."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl as stdlib_ssl
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, endpoints, reactor, ssl, threads
from twisted.web.resource import Resource
from twisted.web.server import Site

from webrtc_signal import SignalingService

from ..conftest import ServerMaker
from ..support.certs import make_localhost_certificate
from ..support.wsclient import with_timeout
from ..support.wsframes import frame

JOIN, ID, PEER_CONNECT, OFFER = 0, 1, 2, 4


def endpoint_description(kind: str, directory: Path) -> str:
    files = make_localhost_certificate(directory)
    if kind == "ssl":
        return f"ssl:0:interface=127.0.0.1:privateKey={files.key}:certKey={files.cert}"
    return f"tls:{directory}:port=0:interface=127.0.0.1"


@pytest.mark.parametrize("kind", ["ssl", "tls"])
@pytest_twisted.ensureDeferred
async def test_wss_lobby_round_trip(make_server: ServerMaker, tmp_path: Path, kind: str) -> None:
    description = endpoint_description(kind, tmp_path / "pems")
    endpoint = endpoints.serverFromString(reactor, description)
    server = await make_server(endpoint=endpoint, scheme="wss", host="localhost")
    trust = ssl.Certificate.loadPEM((tmp_path / "pems" / "cert.pem").read_bytes())
    tls = ssl.optionsForClientTLS("localhost", trustRoot=trust)

    host = await server.connect(tls=tls)
    host.send(JOIN, 0, "")
    await host.expect(ID, 1, "true")
    lobby = (await host.expect(JOIN, 0))["data"]
    guest = await server.connect(tls=tls)
    guest.send(JOIN, 0, lobby)
    guest_id = (await guest.expect(ID))["id"]
    await guest.expect(PEER_CONNECT, 1)
    await guest.expect(JOIN, 0, lobby)
    await host.expect(PEER_CONNECT, guest_id)
    guest.send(OFFER, 1, "v=0 over TLS ✓")
    await host.expect(OFFER, guest_id, "v=0 over TLS ✓")
    host.send(OFFER, guest_id, "back")
    await guest.expect(OFFER, 1, "back")


@pytest_twisted.ensureDeferred
async def test_an_untrusted_client_does_not_get_in(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    endpoint = endpoints.serverFromString(reactor, endpoint_description("ssl", tmp_path))
    server = await make_server(endpoint=endpoint, scheme="wss", host="localhost")
    other = make_localhost_certificate(tmp_path / "other")
    tls = ssl.optionsForClientTLS("localhost", trustRoot=ssl.Certificate.loadPEM(other.cert_pem))
    with pytest.raises(ConnectionError, match="certificate verify failed"):
        await server.connect(tls=tls)


def alpn_client_joins(port: int, cafile: Path, path: str = "/") -> tuple[str | None, list[dict]]:
    """What a browser does, on a plain blocking socket (run it in a thread):
    TLS offering ALPN h2 and http/1.1, the WebSocket upgrade, a JOIN that
    creates a lobby. Returns the protocol ALPN selected and the first two
    messages the server sent."""
    context = stdlib_ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        selected = tls.selected_alpn_protocol()
        key = base64.b64encode(os.urandom(16)).decode()
        tls.sendall(
            f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = tls.recv(4096)
            assert chunk, f"closed during the handshake: {received!r}"
            received += chunk
        head, _, received = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        tls.sendall(frame(json.dumps({"type": JOIN, "id": 0, "data": ""}).encode()))
        messages: list[dict] = []
        while len(messages) < 2:
            # Server frames are unmasked and, here, short text frames.
            while len(received) < 2 or len(received) < 2 + (received[1] & 0x7F):
                chunk = tls.recv(4096)
                assert chunk, f"closed after {messages}"
                received += chunk
            assert received[0] == 0x81 and received[1] < 126, received
            size = received[1]
            messages.append(json.loads(received[2 : 2 + size]))
            received = received[2 + size :]
        return selected, messages


def assert_alpn_client_joined(result: tuple[str | None, list[dict]]) -> None:
    selected, (welcome, joined) = result
    assert selected == "http/1.1"
    assert welcome == {"type": ID, "id": 1, "data": "true"}
    assert joined["type"] == JOIN and len(joined["data"]) > 0


@pytest.mark.parametrize("kind", ["ssl", "tls"])
@pytest_twisted.ensureDeferred
async def test_a_client_offering_alpn_gets_http_1_1_and_joins(
    make_server: ServerMaker, tmp_path: Path, kind: str
) -> None:
    """Browsers offer ALPN (h2, http/1.1); Twisted aborts the handshake of
    such a client unless the server names a protocol in common."""
    description = endpoint_description(kind, tmp_path / "pems")
    endpoint = endpoints.serverFromString(reactor, description)
    server = await make_server(endpoint=endpoint, scheme="wss", host="localhost")
    port = server.service.port.getHost().port
    result = await with_timeout(
        threads.deferToThread(alpn_client_joins, port, tmp_path / "pems" / "cert.pem"), 10
    )
    assert_alpn_client_joined(result)


@pytest_twisted.ensureDeferred
async def test_embedded_in_a_tls_site_a_client_offering_alpn_joins(tmp_path: Path) -> None:
    """Mounted on a twisted.web Site, the Site answers ALPN (it offers h2
    only when the h2 package is installed, and a browser's WebSocket
    connection offers http/1.1 alone), and the signaling resource works."""
    description = endpoint_description("ssl", tmp_path / "pems")
    signaling = SignalingService()
    root = Resource()
    root.putChild(b"signal", signaling.resource())
    signaling.startService()
    listening = await with_timeout(
        endpoints.serverFromString(reactor, description).listen(Site(root)), 5
    )
    try:
        result = await with_timeout(
            threads.deferToThread(
                alpn_client_joins,
                listening.getHost().port,
                tmp_path / "pems" / "cert.pem",
                "/signal",
            ),
            10,
        )
        assert_alpn_client_joined(result)
    finally:
        await with_timeout(defer.maybeDeferred(listening.stopListening), 5)
        await with_timeout(signaling.stopService(), 5)
