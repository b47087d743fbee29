"""wss:// through Twisted's ssl: and tls: server endpoints, with a certificate
the test makes."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import endpoints, reactor, ssl

from ..conftest import ServerMaker
from ..support.certs import make_localhost_certificate

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
