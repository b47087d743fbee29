"""How ``webrtc-signal-client`` ends, as real processes against a real server:
stopped by a signal, at the end of its input, with its output closed early;
and how it trusts a wss:// server (``--cafile``, ``SSL_CERT_FILE``)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import endpoints

from webrtc_signal import events
from webrtc_signal.client import PeerDisconnected, SignalingClient
from webrtc_signal.client import cli as client_cli

from ..conftest import RunningServer, ServerMaker, _reactor
from ..support.certs import CertificateFiles, make_localhost_certificate
from ..support.processes import Spawned, run_main, spawn
from ..support.wsclient import with_timeout
from .test_client import Recorder, run_cli


def signal_is_handled_by_default(process: Spawned, number: int) -> bool:
    """Whether ``number`` is not ignored in the child: a process started in
    the background of a non-interactive shell inherits SIGINT ignored, and
    then Ctrl-C rightly does nothing to it. Twisted resets ignored signals
    in the children it spawns; this checks that it did."""
    status = Path(f"/proc/{process.transport.pid}/status")
    if not status.exists():
        return True  # no /proc: trust Twisted
    for line in status.read_text().splitlines():
        if line.startswith("SigIgn:"):
            return not (int(line.split()[1], 16) >> (number - 1)) & 1
    return True


Closes = dict[int, tuple[int | None, bool]]


def record_closes(server: RunningServer) -> Closes:
    """From now on, for each peer id whose connection ends, the close code
    the peer sent (1006 if it sent none) and whether it closed cleanly (it
    sent a close frame), as the server's public events tell them."""
    closes: Closes = {}

    def record(event: object) -> None:
        if isinstance(event, events.PeerDisconnected) and not event.by_server:
            closes[event.peer.peer_id] = (event.code, event.code != 1006)

    server.service.add_observer(record)
    return closes


async def cli_in_lobby(server: RunningServer, lobby: str, *argv: str) -> tuple[Spawned, int]:
    """A client CLI that joined ``lobby``, and its id."""
    cli = run_cli(server.url, "--lobby", lobby, *argv)
    found = await cli.wait_for_match(r"my id is (\d+)")
    await cli.wait_for("joined lobby")
    return cli, int(found.group(1))


async def host_of_a_lobby(server: RunningServer) -> tuple[SignalingClient, Recorder, str]:
    host = SignalingClient(server.url)
    events = Recorder(host)
    await with_timeout(host.connect(), 5)
    joined = await with_timeout(host.join(mesh=False), 5)
    return host, events, joined.lobby


async def left_cleanly(cli: Spawned, peer_id: int, closes: Closes, host_events: Recorder) -> None:
    """The CLI exited 0 after a closing handshake the server saw: 1000, clean."""
    assert await cli.finished(20) == 0, cli.output
    assert "1006" not in cli.output, cli.output
    assert "Traceback" not in cli.output, cli.output
    while await host_events.next() != PeerDisconnected(peer_id):
        pass
    assert closes[peer_id] == (1000, True), cli.output


# -- stopping it -----------------------------------------------------------------


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
@pytest_twisted.ensureDeferred
async def test_a_signal_closes_with_1000_and_exits_0(server: RunningServer, stop: str) -> None:
    closes = record_closes(server)
    host, host_events, lobby = await host_of_a_lobby(server)
    cli, peer_id = await cli_in_lobby(server, lobby)
    number = getattr(signal, stop)
    assert signal_is_handled_by_default(cli, number)
    cli.transport.signalProcess(stop.removeprefix("SIG"))
    await left_cleanly(cli, peer_id, closes, host_events)
    assert cli.output.splitlines()[-1] == "disconnected: 1000"
    await with_timeout(host.close(), 5)


@pytest_twisted.ensureDeferred
async def test_the_end_of_input_closes_with_1000_and_exits_0(server: RunningServer) -> None:
    closes = record_closes(server)
    host, host_events, lobby = await host_of_a_lobby(server)
    cli, peer_id = await cli_in_lobby(server, lobby)
    cli.transport.closeStdin()  # Ctrl-D
    await left_cleanly(cli, peer_id, closes, host_events)
    await with_timeout(host.close(), 5)


@pytest_twisted.ensureDeferred
async def test_output_closed_early_leaves_quietly(server: RunningServer) -> None:
    closes = record_closes(server)
    host, host_events, lobby = await host_of_a_lobby(server)
    cli, peer_id = await cli_in_lobby(server, lobby, "--no-commands")
    # As `webrtc-signal-client ... | head -3`: the reader of its output goes.
    cli.transport.closeChildFD(1)
    for n in range(3):  # events it has to print
        host.send_offer(peer_id, f"v=0 offer {n}")
    await left_cleanly(cli, peer_id, closes, host_events)
    assert "BrokenPipe" not in cli.output, cli.output
    await with_timeout(host.close(), 5)


# -- what it trusts ---------------------------------------------------------------


async def wss_server(make_server: ServerMaker, directory: Path) -> tuple[str, CertificateFiles]:
    files = make_localhost_certificate(directory)
    description = f"ssl:0:interface=127.0.0.1:privateKey={files.key}:certKey={files.cert}"
    server = await make_server(
        endpoint=endpoints.serverFromString(_reactor(), description), scheme="wss", host="localhost"
    )
    return server.url, files


@pytest_twisted.ensureDeferred
async def test_cafile_trusts_a_self_signed_certificate(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    url, files = await wss_server(make_server, tmp_path)
    untrusted = run_cli(url, "--no-commands")
    trusted = run_cli(url, "--cafile", str(files.cert))
    by_ip = run_cli(url.replace("localhost", "127.0.0.1"), "--cafile", str(files.cert))
    for cli in (trusted, by_ip):
        await cli.wait_for("joined lobby")
        cli.transport.write(b"quit\n")
        assert await cli.finished(20) == 0, cli.output
    assert await untrusted.finished(20) == 3, untrusted.output
    assert untrusted.output == (
        f"could not connect to {url}: certificate verify failed: certificate for localhost, "
        "127.0.0.1 is self-signed and not trusted; --cafile PATH trusts a self-signed one "
        "or a private CA\n"
    )


@pytest_twisted.ensureDeferred
async def test_ssl_cert_file_replaces_the_trusted_certificates(
    make_server: ServerMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, files = await wss_server(make_server, tmp_path)
    # The command line, without --cafile: OpenSSL's default paths, which
    # SSL_CERT_FILE replaces.
    cli = spawn(
        [sys.executable, "-m", "webrtc_signal.client.cli", url],
        env={"PYTHONUNBUFFERED": "1", "SSL_CERT_FILE": str(files.cert)},
    )
    await cli.wait_for("joined lobby")
    cli.transport.write(b"quit\n")
    assert await cli.finished(20) == 0, cli.output
    # The library: without tls=, Twisted's platformTrust(), which reads it too.
    monkeypatch.setenv("SSL_CERT_FILE", str(files.cert))
    client = SignalingClient(url)
    await with_timeout(client.connect(), 5)
    assert (await with_timeout(client.join(), 5)).peer_id == 1
    await with_timeout(client.close(), 5)


def test_a_bad_cafile_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.pem"
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    cert = make_localhost_certificate(tmp_path / "pems").cert
    cases = [
        (["wss://localhost:1", "--cafile", str(missing)], f"cannot read '{missing}'"),
        (["wss://localhost:1", "--cafile", str(not_pem)], f"no PEM certificate in '{not_pem}'"),
        (["ws://localhost:1", "--cafile", str(cert)], "only for wss:// URLs"),
    ]
    refused_as_usage_errors(
        [(argv, f"argument --cafile: {problem}") for argv, problem in cases], capsys
    )


def refused_as_usage_errors(
    cases: list[tuple[list[str], str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command line of ``cases`` given to the client command, and the
    first to the peer command too (it takes the same options:
    add_lobby_arguments): exit status 2, ``error: <problem>``, no traceback."""
    runs = [(run_main(client_cli.main, argv, capsys), problem) for argv, problem in cases]
    runs.append((run_main(rtc_main(), cases[0][0], capsys), cases[0][1]))
    for ran, problem in runs:
        assert ran.returncode == 2, ran
        assert f"error: {problem}" in ran.stderr, ran
        assert "Traceback" not in ran.stderr, ran


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    expected = metadata.version("webrtc-signal")
    client = run_main(client_cli.main, ["--version"], capsys)
    assert (client.returncode, client.stdout) == (0, f"webrtc-signal-client {expected}\n")
    peer = run_main(rtc_main(), ["--version"], capsys)
    assert (peer.returncode, peer.stdout) == (0, f"webrtc-signal-peer {expected}\n")


def rtc_main() -> Callable[[list[str]], object]:
    """The peer command's main(), when aiortc is installed."""
    pytest.importorskip("aiortc", reason="aiortc is not installed: pip install '.[rtc]'")
    from webrtc_signal.rtc import cli as rtc_cli

    return rtc_cli.main
