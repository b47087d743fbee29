"""An RtcPeer checks a wss:// server's certificate as SignalingClient does,
for its signaling connection and for ``GET /ice-servers`` alike; and
``webrtc-signal-peer --insecure`` checks nothing, saying so."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import ssl

from webrtc_signal import SignalingConfig
from webrtc_signal.client import CertificateRefused, client_tls

from ..client.test_client import run_cli_module
from ..client.test_tls import only_the_control_got_in, tls_server
from ..conftest import ServerMaker
from ..support.certs import make_certificate
from ..support.wsclient import with_timeout

pytest.importorskip("aiortc", reason="aiortc is not installed: pip install 'webrtc-signal[rtc]'")

from webrtc_signal.rtc import RtcPeer

from .test_rtc import aio

WAIT = 30.0
# A STUN server in /ice-servers: a peer that has it fetched them.
CONFIG = SignalingConfig(stun_urls=("stun:127.0.0.1:3478",))


@pytest_twisted.ensureDeferred
async def test_a_refused_certificate_fails_the_join_and_the_ice_fetch(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    files = make_certificate(tmp_path, names=["localhost"])
    running = await tls_server(make_server, files, config=CONFIG)
    url = running.url("127.0.0.1")
    trusted = [ssl.Certificate.loadPEM(files.cert_pem)]
    cases = [
        # The system's trust, by default.
        (RtcPeer(url), "certificate verify failed: certificate for localhost is self-signed"),
        # Trusted, but for another name than the one dialled.
        (
            RtcPeer(url, tls=client_tls("127.0.0.1", trusted=trusted)),
            "certificate for localhost does not match 127.0.0.1",
        ),
    ]
    for peer, problem in cases:
        with pytest.raises(CertificateRefused) as refused:
            await with_timeout(aio(peer.join()), WAIT)
        assert str(refused.value).startswith(problem)
        assert peer.ice_servers == []
        assert peer.ice_problem == (
            f"could not fetch ICE servers from https://127.0.0.1:{running.port}/ice-servers: "
            f"{refused.value}"
        )
        await with_timeout(aio(peer.close()), WAIT)
    await only_the_control_got_in(running)


@pytest_twisted.ensureDeferred
async def test_trusted_or_insecure_the_peer_joins_and_fetches_its_ice_servers(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    trusted_files = make_certificate(tmp_path / "good")
    running = await tls_server(make_server, trusted_files, config=CONFIG)
    tls = client_tls("localhost", trusted=[ssl.Certificate.loadPEM(trusted_files.cert_pem)])
    trusted = RtcPeer(running.url("localhost"), tls=tls)

    # Everything wrong: no subjectAltName, expired, self-signed.
    bad_files = make_certificate(tmp_path / "bad", names=None, valid_days=(-10, -1))
    bad = await tls_server(make_server, bad_files, config=CONFIG)
    insecure = RtcPeer(bad.url("127.0.0.1"), insecure=True)
    for peer in (trusted, insecure):
        joined = await with_timeout(aio(peer.join()), WAIT)
        assert joined.peer_id == 1
        assert peer.ice_problem is None
        assert [server.urls for server in peer.ice_servers] == [["stun:127.0.0.1:3478"]]
        await with_timeout(aio(peer.close()), WAIT)


@pytest_twisted.ensureDeferred
async def test_the_peer_command_line_with_insecure_warns_and_joins(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    files = make_certificate(tmp_path, names=None, valid_days=(-10, -1))
    running = await tls_server(make_server, files, config=CONFIG)
    peer = run_cli_module(
        "webrtc_signal.rtc.cli",
        running.url("127.0.0.1"),
        "--insecure",
        "--no-input",
        "--exit-after",
        "0",
    )
    assert await peer.finished(WAIT) == 0, peer.output
    lines = peer.output.splitlines()
    warning = (
        "warning: --insecure: the server's TLS certificate is not checked; anyone on the "
        "path can read and change this connection"
    )
    assert lines.count(warning) == 1, peer.output
    assert "ICE servers: stun:127.0.0.1:3478" in lines, peer.output
    assert any(line.startswith("joined mesh lobby ") for line in lines), peer.output
    assert "Traceback" not in peer.output
    assert running.peers_seen() == 1
