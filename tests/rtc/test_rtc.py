"""WebRTC peers (layer 2, aiortc) through a real server: a full mesh of real
data channels, a client-server lobby, and channels that outlive signaling.

The suite runs Twisted on the asyncio reactor (setup.cfg), which aiortc
needs; these tests drive asyncio coroutines from Twisted-driven tests through
Deferred.fromFuture.

Every peer's ICE is pinned to 127.0.0.1 (tests/support/loopback_ice), in
this process and in the webrtc-signal-peer processes; each test that
connects peers asserts that every nominated pair was on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import signal
from collections import defaultdict
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from webrtc_signal import SignalingConfig
from webrtc_signal.client import PeerConnected, PeerDisconnected, SignalingClient

from ..conftest import RunningServer, ServerMaker
from ..support.loopback_ice import IceLog
from ..support.processes import Spawned
from ..support.wsclient import with_timeout

pytest.importorskip("aiortc", reason="aiortc is not installed: pip install 'webrtc-signal[rtc]'")

from webrtc_signal.rtc import RtcPeer

WAIT = 30.0


def aio(work: Coroutine[Any, Any, Any]) -> defer.Deferred[Any]:
    """An asyncio coroutine, run on the shared loop, as a Deferred."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(work))


class Inbox:
    """Every message each peer received, by receiver and sender."""

    def __init__(self) -> None:
        self.messages: dict[int, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.changed = asyncio.Event()

    def handler(self, receiver: list[int]):  # type: ignore[no-untyped-def]
        def received(sender: int, data: str | bytes) -> None:
            self.messages[receiver[0]][sender].append(str(data))
            self.changed.set()

        return received

    async def wait_for(self, receiver: int, sender: int, text: str) -> None:
        async def arrived() -> None:
            while text not in self.messages[receiver][sender]:
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(arrived(), WAIT)
        except TimeoutError:
            raise AssertionError(
                f"peer {receiver} never got {text!r} from {sender}; it got "
                f"{dict(self.messages[receiver])}"
            ) from None


async def lobby_of(server: RunningServer, inbox: Inbox, size: int, mesh: bool) -> list[RtcPeer]:
    peers = []
    for _ in range(size):
        me: list[int] = [0]
        peer = RtcPeer(server.url, on_message=inbox.handler(me))
        joined = await peer.join(peers[0].lobby if peers else "", mesh=mesh)
        me[0] = joined.peer_id
        peers.append(peer)
    return peers


@pytest_twisted.ensureDeferred
async def test_three_peers_form_a_full_mesh_and_all_hear_each_other(
    server: RunningServer, ice_log: IceLog
) -> None:
    inbox = Inbox()

    async def scenario() -> None:
        peers = await lobby_of(server, inbox, 3, mesh=True)
        ids = [peer.peer_id for peer in peers]
        assert ids[0] == 1
        try:
            for peer in peers:
                await peer.wait_for_open(set(ids) - {peer.peer_id}, WAIT)
            for peer in peers:
                assert peer.broadcast(f"hello from {peer.peer_id} ✓") == set(ids) - {peer.peer_id}
            for receiver in ids:
                for sender in set(ids) - {receiver}:
                    await inbox.wait_for(receiver, sender, f"hello from {sender} ✓")
        finally:
            for peer in peers:
                await peer.close()

    await with_timeout(aio(scenario()), 90)
    ice_log.assert_loopback(at_least=6)  # three links, both ends


@pytest_twisted.ensureDeferred
async def test_client_server_non_hosts_reach_only_the_host(
    server: RunningServer, ice_log: IceLog
) -> None:
    inbox = Inbox()

    async def scenario() -> None:
        host, a, b = await lobby_of(server, inbox, 3, mesh=False)
        try:
            await host.wait_for_open({a.peer_id, b.peer_id}, WAIT)
            await a.wait_for_open({1}, WAIT)
            await b.wait_for_open({1}, WAIT)
            assert a.broadcast("from a") == {1}
            host.send(b.peer_id, "from the host to b")
            await inbox.wait_for(1, a.peer_id, "from a")
            await inbox.wait_for(b.peer_id, 1, "from the host to b")
            with pytest.raises(KeyError):
                a.send(b.peer_id, "a cannot reach b")
            assert inbox.messages[b.peer_id].get(a.peer_id, []) == []
        finally:
            for peer in (host, a, b):
                await peer.close()

    await with_timeout(aio(scenario()), 90)
    ice_log.assert_loopback(at_least=4)  # the host's two links, both ends


@pytest_twisted.ensureDeferred
async def test_channels_keep_working_after_the_seal_closes_signaling(
    make_server: ServerMaker, ice_log: IceLog
) -> None:
    server = await make_server(SignalingConfig(seal_timeout=5))
    inbox = Inbox()

    async def mesh_up() -> list[RtcPeer]:
        peers = await lobby_of(server, inbox, 3, mesh=True)
        ids = {peer.peer_id for peer in peers}
        for peer in peers:
            await peer.wait_for_open(ids - {peer.peer_id}, WAIT)
        peers[0].seal()
        return peers

    peers = await with_timeout(aio(mesh_up()), 90)
    try:
        while not all(peer.signaling.sealed for peer in peers):
            await with_timeout(aio(asyncio.sleep(0.05)), 5)
        server.clock.advance(5)  # the server closes every signaling socket
        for peer in peers:
            ended = await with_timeout(peer.signaling.closed, 10)
            assert (ended.code, ended.reason) == (1000, "Seal complete")
        assert server.engine.connections == {}

        async def after_the_seal() -> None:
            ids = [peer.peer_id for peer in peers]
            for peer in peers:
                assert peer.open_peers == set(ids) - {peer.peer_id}
                peer.broadcast(f"after the seal, from {peer.peer_id}")
            for receiver in ids:
                for sender in set(ids) - {receiver}:
                    await inbox.wait_for(receiver, sender, f"after the seal, from {sender}")

        await with_timeout(aio(after_the_seal()), 60)
    finally:
        for peer in peers:
            await with_timeout(aio(peer.close()), 20)
    ice_log.assert_loopback(at_least=6)


@pytest_twisted.ensureDeferred
async def test_losing_signaling_before_the_seal_ends_the_session(
    server: RunningServer, ice_log: IceLog
) -> None:
    inbox = Inbox()

    async def scenario() -> None:
        host, guest = await lobby_of(server, inbox, 2, mesh=True)
        await guest.wait_for_open({1}, WAIT)
        await host.close()  # the host leaves: the server closes the guest
        await guest.wait_for_open(set(), WAIT)
        assert (guest.signaling.ended.code, guest.signaling.ended.reason) == (
            4000,
            "Room host has disconnected",
        )

    await with_timeout(aio(scenario()), 90)
    ice_log.assert_loopback(at_least=2)


# -- the webrtc-signal-peer command ---------------------------------------------


@pytest_twisted.ensureDeferred
async def test_peer_command_line_tools_chat_through_a_lobby(
    server: RunningServer, ice_log: IceLog
) -> None:
    from ..client.test_client import run_cli_module

    host = run_cli_module(
        "webrtc_signal.rtc.cli", server.url, "--send", "hello from the host",
        "--exit-after", "20", "--no-input",
    )  # fmt: skip
    await host.wait_for("joined mesh lobby")
    lobby = next(line.split()[3] for line in host.output.splitlines() if line.startswith("joined"))
    guest = run_cli_module(
        "webrtc_signal.rtc.cli", server.url, "--lobby", lobby, "--send", "hello from a guest",
        "--exit-after", "20", "--no-input",
    )  # fmt: skip
    pids = {host.transport.pid, guest.transport.pid}  # gone once they end
    await guest.wait_for("1: hello from the host")
    await host.wait_for(": hello from a guest")
    # Stop each (SIGTERM, as a service manager would; Ctrl-C does the same),
    # the guest first: the host leaving first would close the guest's
    # signaling before the seal, a session end of its own (status 4).
    for process in (guest, host):
        process.transport.signalProcess("TERM")
        assert await process.finished(20) == 0, process.output
        # Leaving is no news: no "signaling closed" line, least of all a 1006.
        assert "signaling closed" not in process.output, process.output
    assert "peer" in host.output and "left the lobby" in host.output
    # Recorded by the two processes (the suite's environment pins them).
    nominated = ice_log.assert_loopback(at_least=2)
    assert {entry["pid"] for entry in nominated} == pids


@pytest_twisted.ensureDeferred
async def test_peer_command_line_tool_leaves_cleanly_however_stopped(
    server: RunningServer,
) -> None:
    from ..client.test_cli_lifecycle import record_closes, signal_is_handled_by_default
    from ..client.test_client import Recorder, run_cli_module

    closes = record_closes(server)
    # The host is a plain signaling client: the peers' WebRTC offers to it
    # go unanswered, and in a client-server lobby they never meet each other.
    host = SignalingClient(server.url)
    host_events = Recorder(host)
    await with_timeout(host.connect(), 5)
    lobby = (await with_timeout(host.join(mesh=False), 5)).lobby

    def peer() -> Spawned:
        return run_cli_module("webrtc_signal.rtc.cli", server.url, "--lobby", lobby)

    by_int, by_term, by_eof, by_pipe = peer(), peer(), peer(), peer()
    # As `webrtc-signal-peer ... | head -0`: its first line finds no reader.
    by_pipe.transport.closeChildFD(1)
    for process in (by_int, by_term, by_eof):
        await process.wait_for("joined client-server lobby", timeout=WAIT)
    assert signal_is_handled_by_default(by_int, signal.SIGINT)
    by_int.transport.signalProcess("INT")
    by_term.transport.signalProcess("TERM")
    by_eof.transport.closeStdin()  # Ctrl-D
    for process in (by_int, by_term, by_eof, by_pipe):
        assert await process.finished(WAIT) == 0, process.output
        for unwanted in ("1006", "signaling closed", "Traceback", "BrokenPipe"):
            assert unwanted not in process.output, process.output
    # The server saw each leave with a closing handshake: 1000, clean.
    joined: set[int] = set()
    left: set[int] = set()
    while len(left) < 4:
        event = await host_events.next()
        if isinstance(event, PeerConnected):
            joined.add(event.peer_id)
        elif isinstance(event, PeerDisconnected):
            left.add(event.peer_id)
    assert joined == left
    assert {closes[peer_id] for peer_id in left} == {(1000, True)}, closes
    await with_timeout(host.close(), 5)


@pytest_twisted.ensureDeferred
async def test_peer_command_line_tool_trust_and_refusal(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    from ..client.test_cli_lifecycle import wss_server
    from ..client.test_client import run_cli_module

    url, files = await wss_server(make_server, tmp_path)

    def peer(*argv: str) -> Spawned:
        return run_cli_module("webrtc_signal.rtc.cli", url, "--no-input", *argv)

    trusted = peer("--cafile", str(files.cert), "--exit-after", "0")
    untrusted = peer()
    refused = peer("--cafile", str(files.cert), "--lobby", "NoSuchLobby00000")
    assert await trusted.finished(WAIT) == 0, trusted.output
    assert "\njoined mesh lobby " in "\n" + trusted.output, trusted.output
    assert await untrusted.finished(WAIT) == 3, untrusted.output
    assert untrusted.output == (
        f"could not connect to {url}: certificate verify failed: certificate for localhost, "
        "127.0.0.1 is self-signed and not trusted; --cafile PATH trusts a self-signed one "
        "or a private CA\n"
    )
    assert await refused.finished(WAIT) == 4, refused.output
    assert refused.output == "refused: 4000 Lobby does not exists\n"
