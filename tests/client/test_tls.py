"""The clients check a wss:// server's certificate, its chain and the host
name or IP address dialled, and fail closed with one line that says why:
`SignalingClient` (a `CertificateRefused`) and ``webrtc-signal-client`` (exit
status 3, no traceback). Real certificates made by each test, a real server
on loopback; a refused client must never reach the server as a peer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography import x509
from twisted.internet import endpoints, ssl
from twisted.logger import formatEvent

from webrtc_signal import SignalingConfig, events
from webrtc_signal.client import CertificateRefused, Disconnected, SignalingClient, client_tls
from webrtc_signal.client.cli import unreachable

from ..conftest import RunningServer, ServerMaker, _reactor
from ..support.certs import (
    CertificateFiles,
    make_certificate,
    make_certificate_authority,
)
from ..support.processes import Spawned
from ..support.wsclient import with_timeout
from .test_cli_lifecycle import refused_as_usage_errors
from .test_client import LogCapture, Recorder, run_cli, run_cli_module

WAIT = 30.0


@dataclass
class TlsServer:
    """A signaling server behind a certificate the test made, and every
    event it reported."""

    server: RunningServer
    files: CertificateFiles
    port: int
    seen: list[object] = field(default_factory=list)

    def url(self, host: str) -> str:
        shown = f"[{host}]" if ":" in host else host
        return f"wss://{shown}:{self.port}"

    def peers_seen(self) -> int:
        return sum(isinstance(event, events.PeerConnected) for event in self.seen)


async def tls_server(
    make_server: ServerMaker,
    files: CertificateFiles,
    interface: str = "127.0.0.1",
    config: SignalingConfig | None = None,
) -> TlsServer:
    pem = files.cert_pem + files.key.read_bytes()
    options = ssl.PrivateCertificate.loadPEM(pem).options()
    endpoint = endpoints.SSL4ServerEndpoint(_reactor(), 0, options, interface=interface)
    server = await make_server(config, endpoint=endpoint, scheme="wss")
    running = TlsServer(server, files, server.service.port.getHost().port)
    server.service.add_observer(running.seen.append)
    return running


async def only_the_control_got_in(running: TlsServer) -> None:
    """The refused client never became a peer: a client that checks nothing
    connects and joins after it, and it is the only peer the server saw."""
    control = SignalingClient(running.url("localhost"), insecure=True)
    await with_timeout(control.connect(), 10)
    await with_timeout(control.join(), 10)  # answered: the server has seen it connect
    assert running.peers_seen() == 1, running.seen
    await with_timeout(control.close(), 10)


# -- what is refused, and the line that says why --------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A server certificate (``make_certificate`` arguments; ``issuer`` names
    a CA the test makes), the host the client dials, what it trusts
    ("itself": the server's certificate; "ca", "other-ca"; "system": the
    default), and the line and kind of the refusal."""

    certificate: dict[str, Any]
    dialled: str
    trust: str
    line: str
    kind: str


NAME, NO_SAN = CertificateRefused.NAME, CertificateRefused.NO_SUBJECT_ALT_NAME
EXPIRED, UNTRUSTED = CertificateRefused.EXPIRED, CertificateRefused.UNTRUSTED
LONG_NAME = "a" * 120 + ".example"

REFUSALS = {
    "no subjectAltName": Refusal(
        {"names": None},
        "localhost",
        "itself",
        "certificate has no subjectAltName (its common name, localhost, is not read), "
        "so it matches no host",
        NO_SAN,
    ),
    "another name than the one dialled": Refusal(
        {"names": ["localhost"]},
        "127.0.0.1",
        "itself",
        "certificate for localhost does not match 127.0.0.1",
        NAME,
    ),
    "another address than the one dialled": Refusal(
        {"names": ["127.0.0.2"]},
        "127.0.0.1",
        "itself",
        "certificate for 127.0.0.2 does not match 127.0.0.1",
        NAME,
    ),
    "many names, none dialled (the line stays short)": Refusal(
        {"names": [f"host{n}.example" for n in range(10)]},
        "localhost",
        "itself",
        "certificate for host0.example, host1.example, host2.example, host3.example "
        "and 6 more does not match localhost",
        NAME,
    ),
    "names a terminal must not print": Refusal(
        {"names": [LONG_NAME, "evil\x1b[31m.example"]},
        "localhost",
        "itself",
        f"certificate for {LONG_NAME[:77]}..., evil?[31m.example does not match localhost",
        NAME,
    ),
    "expired": Refusal(
        {"valid_days": (-10, -1)},
        "localhost",
        "itself",
        "certificate for localhost, 127.0.0.1 expired on {expiry}",
        EXPIRED,
    ),
    "not yet valid": Refusal(
        {"valid_days": (1, 2)},
        "localhost",
        "itself",
        "certificate for localhost, 127.0.0.1 is not valid until {start}",
        EXPIRED,
    ),
    "issued by an expired CA": Refusal(
        {"issuer": "expired-ca"},
        "localhost",
        "expired-ca",
        "issuer's certificate CN=expired test CA expired on {issuer_expiry}",
        EXPIRED,
    ),
    "issued by an unknown CA": Refusal(
        {"issuer": "ca"},
        "localhost",
        "other-ca",
        "certificate verify failed: certificate for localhost, 127.0.0.1 is issued by "
        "CN=webrtc-signal test CA, which is not trusted",
        UNTRUSTED,
    ),
    "self-signed, not trusted": Refusal(
        {},
        "localhost",
        "system",
        "certificate verify failed: certificate for localhost, 127.0.0.1 is self-signed "
        "and not trusted",
        UNTRUSTED,
    ),
}


@dataclass
class Setup:
    running: TlsServer
    url: str
    trusted: CertificateFiles | None  # None: the system's trust
    line: str


def _when(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%d %H:%M UTC"))


async def set_up(make_server: ServerMaker, directory: Path, refusal: Refusal) -> Setup:
    authorities = {
        "ca": make_certificate_authority(directory / "ca"),
        "other-ca": make_certificate_authority(directory / "other-ca", "other test CA"),
        "expired-ca": make_certificate_authority(
            directory / "expired-ca", "expired test CA", valid_days=(-10, -1)
        ),
    }
    arguments = dict(refusal.certificate)
    if "issuer" in arguments:
        arguments["issuer"] = authorities[arguments["issuer"]]
    files = make_certificate(directory / "server", **arguments)
    running = await tls_server(make_server, files)
    trusted = {
        "itself": files,
        "system": None,
        **{name: authority.files for name, authority in authorities.items()},
    }[refusal.trust]
    cert = x509.load_pem_x509_certificate(files.cert_pem)
    issuer = authorities["expired-ca"].certificate
    line = refusal.line.format(
        expiry=_when(cert.not_valid_after_utc),
        start=_when(cert.not_valid_before_utc),
        issuer_expiry=_when(issuer.not_valid_after_utc),
    )
    return Setup(running, running.url(refusal.dialled), trusted, line)


def command_line_says(setup: Setup, refusal: Refusal) -> str:
    """What ``webrtc-signal-client`` prints for this refusal, in full."""
    expected = f"could not connect to {setup.url}: {setup.line}"
    if refusal.kind == UNTRUSTED:
        expected += "; --cafile PATH trusts a self-signed one or a private CA"
    return expected + "\n"


@pytest.mark.parametrize("case", REFUSALS)
@pytest_twisted.ensureDeferred
async def test_signaling_client_refuses_and_says_why(
    make_server: ServerMaker, tmp_path: Path, case: str
) -> None:
    refusal = REFUSALS[case]
    setup = await set_up(make_server, tmp_path, refusal)
    tls = None
    if setup.trusted is not None:
        host = refusal.dialled
        tls = client_tls(host, trusted=[ssl.Certificate.loadPEM(setup.trusted.cert_pem)])
    client = SignalingClient(setup.url, tls=tls)
    recorder = Recorder(client)
    with LogCapture() as log, pytest.raises(CertificateRefused) as refused:
        await with_timeout(client.connect(), WAIT)
    assert str(refused.value) == setup.line
    assert refused.value.kind == refusal.kind
    # The command line's one line for it (the process is run for one
    # refusal of each kind below).
    assert unreachable(setup.url, refused.value) + "\n" == command_line_says(setup, refusal)
    ended = Disconnected(1006, f"could not connect: {setup.line}", False)
    assert client.ended == ended
    assert await recorder.next() == ended
    assert not client.is_open
    assert client.send_offer(1, "never sent") is False
    assert log.problems == []  # nothing logged as a failure: no traceback anywhere
    await only_the_control_got_in(setup.running)


# One refusal of each kind: the line itself is checked for every refusal above.
ONE_OF_EACH_KIND = [
    "no subjectAltName",
    "names a terminal must not print",
    "issued by an expired CA",
    "self-signed, not trusted",
]


@pytest.mark.parametrize("case", ONE_OF_EACH_KIND)
@pytest_twisted.ensureDeferred
async def test_the_command_line_refuses_in_one_line_with_status_3(
    make_server: ServerMaker, tmp_path: Path, case: str
) -> None:
    refusal = REFUSALS[case]
    setup = await set_up(make_server, tmp_path, refusal)
    trust = [] if setup.trusted is None else ["--cafile", str(setup.trusted.cert)]
    cli = run_cli(setup.url, "--no-commands", *trust)
    assert await cli.finished(WAIT) == 3, cli.output
    assert cli.output == command_line_says(setup, refusal)  # one line: no traceback
    await only_the_control_got_in(setup.running)


def test_one_refusal_of_each_kind_is_run_as_a_command() -> None:
    assert {REFUSALS[case].kind for case in ONE_OF_EACH_KIND} == {
        refusal.kind for refusal in REFUSALS.values()
    }


@pytest_twisted.ensureDeferred
async def test_the_peer_command_line_refuses_in_one_line_with_status_3(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    pytest.importorskip("aiortc", reason="aiortc is not installed: pip install '.[rtc]'")
    refusal = REFUSALS["another name than the one dialled"]
    setup = await set_up(make_server, tmp_path, refusal)
    assert setup.trusted is not None
    peer = run_cli_module(
        "webrtc_signal.rtc.cli", setup.url, "--no-input", "--cafile", str(setup.trusted.cert)
    )
    assert await peer.finished(WAIT) == 3, peer.output
    assert peer.output == f"could not connect to {setup.url}: {setup.line}\n"
    await only_the_control_got_in(setup.running)


# -- what is trusted ----------------------------------------------------------------------


async def joins_and_quits(cli: Spawned) -> None:
    await cli.wait_for("joined lobby", WAIT)
    cli.transport.write(b"quit\n")
    assert await cli.finished(WAIT) == 0, cli.output
    assert "Traceback" not in cli.output, cli.output


@pytest_twisted.ensureDeferred
async def test_cafile_trusts_a_private_ca_by_name_and_by_address(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    authority = make_certificate_authority(tmp_path / "ca")
    running = await tls_server(make_server, make_certificate(tmp_path / "server", issuer=authority))
    for host in ("localhost", "127.0.0.1"):
        cli = run_cli(running.url(host), "--cafile", str(authority.files.cert))
        await joins_and_quits(cli)
        client = SignalingClient(
            running.url(host),
            tls=client_tls(host, trusted=[ssl.Certificate.loadPEM(authority.files.cert_pem)]),
        )
        await with_timeout(client.connect(), WAIT)
        assert (await with_timeout(client.join(), WAIT)).peer_id == 1
        await with_timeout(client.close(), WAIT)
    assert running.peers_seen() == 4


@pytest_twisted.ensureDeferred
async def test_ipv6_addresses_are_checked_too(make_server: ServerMaker, tmp_path: Path) -> None:
    for_ipv6 = make_certificate(tmp_path / "v6", names=["::1"])
    running = await tls_server(make_server, for_ipv6, interface="::1")
    trusted = [ssl.Certificate.loadPEM(for_ipv6.cert_pem)]
    client = SignalingClient(running.url("::1"), tls=client_tls("::1", trusted=trusted))
    await with_timeout(client.connect(), WAIT)
    await with_timeout(client.close(), WAIT)

    for_ipv4 = make_certificate(tmp_path / "v4")  # localhost and 127.0.0.1
    running = await tls_server(make_server, for_ipv4, interface="::1")
    trusted = [ssl.Certificate.loadPEM(for_ipv4.cert_pem)]
    refused = SignalingClient(running.url("::1"), tls=client_tls("::1", trusted=trusted))
    with pytest.raises(CertificateRefused, match=r"^certificate for localhost, 127\.0\.0\.1 "):
        await with_timeout(refused.connect(), WAIT)
    assert str(refused.ended and refused.ended.reason).endswith("does not match ::1")


# -- --insecure and insecure=True ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_insecure_checks_nothing_and_says_so(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    # Everything wrong at once: no name, expired, self-signed and not trusted.
    files = make_certificate(tmp_path, names=None, valid_days=(-10, -1))
    running = await tls_server(make_server, files)
    url = running.url("127.0.0.1")

    cli = run_cli(url, "--insecure")
    await joins_and_quits(cli)
    warning = (
        "warning: --insecure: the server's TLS certificate is not checked; anyone on the "
        "path can read and change this connection"
    )
    # On standard error, apart from the lines of standard output.
    assert cli.output.splitlines().count(warning) == 1, cli.output

    client = SignalingClient(url, insecure=True)
    with LogCapture() as log:
        await with_timeout(client.connect(), WAIT)
    warnings = [formatEvent(event) for event in log.events if "insecure" in formatEvent(event)]
    assert warnings == [
        f"not checking the TLS certificate of {url} (insecure): anyone on the path can "
        "read and change this connection"
    ]
    await with_timeout(client.join(), WAIT)
    await with_timeout(client.close(), WAIT)
    assert running.peers_seen() == 2


@pytest_twisted.ensureDeferred
async def test_tls_options_given_win_over_insecure(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    running = await tls_server(make_server, make_certificate(tmp_path / "server"))
    other = make_certificate(tmp_path / "other")
    tls = client_tls("localhost", trusted=[ssl.Certificate.loadPEM(other.cert_pem)])
    client = SignalingClient(running.url("localhost"), tls=tls, insecure=True)
    with pytest.raises(CertificateRefused, match="is self-signed and not trusted"):
        await with_timeout(client.connect(), WAIT)
    await only_the_control_got_in(running)


@pytest_twisted.ensureDeferred
async def test_twisted_options_given_as_tls_are_refused_clearly_too(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    """Twisted's own optionsForClientTLS, given as ``tls=``, do their own
    check; what they refuse still fails connect() with a CertificateRefused
    (saying less), not with a 1006."""
    files = make_certificate(tmp_path / "server", names=["localhost"])
    running = await tls_server(make_server, files)
    trusted = ssl.Certificate.loadPEM(files.cert_pem)
    by_address = SignalingClient(
        running.url("127.0.0.1"), tls=ssl.optionsForClientTLS("127.0.0.1", trustRoot=trusted)
    )
    with pytest.raises(CertificateRefused) as mismatch:
        await with_timeout(by_address.connect(), WAIT)
    assert (str(mismatch.value), mismatch.value.kind) == (
        "certificate does not match 127.0.0.1",
        NAME,
    )
    other = ssl.Certificate.loadPEM(make_certificate(tmp_path / "other").cert_pem)
    untrusted = SignalingClient(
        running.url("localhost"), tls=ssl.optionsForClientTLS("localhost", trustRoot=other)
    )
    with pytest.raises(CertificateRefused) as chain:
        await with_timeout(untrusted.connect(), WAIT)
    assert (str(chain.value), chain.value.kind) == ("certificate verify failed", UNTRUSTED)
    await only_the_control_got_in(running)


def test_insecure_and_cafile_are_usage_errors_where_they_make_no_sense(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = make_certificate(tmp_path).cert
    cases = [
        (["ws://localhost:1", "--insecure"], "argument --insecure: only for wss:// URLs"),
        (
            ["wss://localhost:1", "--insecure", "--cafile", str(cert)],
            "argument --cafile: not allowed with argument --insecure",
        ),
    ]
    refused_as_usage_errors(cases, capsys)


def test_client_tls_refuses_contradictions() -> None:
    with pytest.raises(ValueError, match="give no trusted= with it"):
        client_tls("localhost", trusted=[], insecure=True)
    with pytest.raises(ValueError, match="at least one certificate"):
        client_tls("localhost", trusted=[])
