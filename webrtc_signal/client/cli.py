"""``webrtc-signal-client``: a command-line signaling client for people who run
a server. It connects, creates or joins a lobby, prints every event as it
happens, seals on request, and exits with a status that says how it ended.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.internet import defer, ssl, task
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorFDSet,
    IReadDescriptor,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from ..protocol.version import VERSION
from .signaling import (
    AnswerReceived,
    CandidateReceived,
    Disconnected,
    Event,
    IdAssigned,
    LobbyJoined,
    LobbySealed,
    OfferReceived,
    PeerConnected,
    PeerDisconnected,
    ProtocolError,
    SignalingClient,
    SignalingClosed,
)
from .tls import CertificateRefused, client_tls

# Exit statuses, by how the connection ended.
EXIT_OK = 0  # closed normally: 1000 (e.g. "Seal complete"), or by the user
EXIT_USAGE = 2  # bad command line (argparse's own status)
EXIT_UNREACHABLE = 3  # could not connect, or the WebSocket handshake failed
EXIT_UNTRUSTED = EXIT_UNREACHABLE  # the server's TLS certificate was refused: no connection
EXIT_REFUSED = 4  # the server closed us with a 4000-4999 code (the reason says why)
EXIT_GOING_AWAY = 5  # 1001: the server is shutting down
EXIT_BROKEN = 6  # anything else: 1006 (no closing handshake), 1002, 1007, 1009...
EXIT_INTERRUPTED = 130  # Ctrl-C while starting, before there was anything to close

# How long a stop (Ctrl-C, SIGTERM) waits for the closing handshake at most;
# Autobahn bounds each of its two steps to a second already.
CLOSE_WAIT = 3.0

EPILOG = f"""\
commands on standard input: "seal" seals the lobby, "quit" (or the end of input,
Ctrl-D) closes the connection.

exit status: {EXIT_OK} closed normally (1000) or by you (quit, end of input, Ctrl-C,
SIGTERM, or standard output closed, as by | head); {EXIT_UNREACHABLE} could not connect,
or the server's TLS certificate is not trusted (nothing was sent);
{EXIT_REFUSED} the server closed the connection with 4000-4999 (a protocol error; the
reason is printed); {EXIT_GOING_AWAY} the server is going away (1001); {EXIT_BROKEN} any other close
(1006 lost, 1002/1007/1009 framing); {EXIT_USAGE} bad command line.
"""


def exit_status(disconnected: Disconnected, by_user: bool) -> int:
    if by_user or disconnected.code == 1000:
        return EXIT_OK
    if 4000 <= disconnected.code <= 4999:
        return EXIT_REFUSED
    if disconnected.code == 1001:
        return EXIT_GOING_AWAY
    return EXIT_BROKEN


def describe(event: Event) -> str:
    """One readable line for an event."""
    match event:
        case IdAssigned(peer_id, mesh):
            role = " (host)" if peer_id == 1 else ""
            return f"my id is {peer_id}{role}, {'mesh' if mesh else 'client-server'} lobby"
        case LobbyJoined(lobby):
            return f"joined lobby {lobby}"
        case PeerConnected(peer_id):
            return f"peer {peer_id} connected"
        case PeerDisconnected(peer_id):
            return f"peer {peer_id} disconnected"
        case OfferReceived(peer_id, sdp):
            return f"offer from {peer_id} ({len(sdp)} characters)"
        case AnswerReceived(peer_id, sdp):
            return f"answer from {peer_id} ({len(sdp)} characters)"
        case CandidateReceived(peer_id, mid, index, sdp):
            return f"candidate from {peer_id}: mid {mid}, index {index}: {sdp}"
        case LobbySealed():
            return "lobby sealed"
        case Disconnected(code, reason, _):
            return f"disconnected: {code} {reason}".rstrip()
        case ProtocolError(problem, message):
            return f"protocol error: {problem}: {message[:120]!r}"
    return repr(event)


class Output:
    """Lines to a stream (standard output). Once its reader is gone (a
    closed pipe, as with ``| head``), it writes nothing more and calls
    ``on_gone`` once, so the program can leave quietly, as Unix tools do,
    instead of failing on every later line."""

    def __init__(self, stream: TextIO, on_gone: Callable[[], object] = lambda: None) -> None:
        self.stream = stream
        self.on_gone = on_gone
        self.gone = False

    def say(self, text: str) -> None:
        if self.gone:
            return
        try:
            print(text, file=self.stream, flush=True)
        except BrokenPipeError:
            self.gone = True
            _discard_output(self.stream)
            self.on_gone()


def _discard_output(stream: TextIO) -> None:
    """Point the stream's descriptor at /dev/null: what is left in its buffer
    then goes nowhere at exit, instead of failing once more there."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@implementer(IReadDescriptor)
class InputLines:
    """Reads lines from standard input for the reactor, and reports its end.

    Twisted's StandardIO would also make standard output non-blocking, and
    ``print`` to a full non-blocking pipe fails: this reads only, and leaves
    standard output alone."""

    def __init__(
        self,
        reactor: IReactorFDSet,
        on_line: Callable[[str], object],
        on_end: Callable[[], object],
        fd: int = 0,
    ) -> None:
        self.reactor = reactor
        self.on_line = on_line
        self.on_end = on_end
        self.fd = fd
        self.pending = b""
        reactor.addReader(self)

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "stdin"

    def doRead(self) -> Failure | None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            if self.pending:
                self.on_line(self.pending.decode(errors="replace"))
                self.pending = b""
            # The reactor stops reading and calls connectionLost.
            return Failure(ConnectionDone())
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            self.on_line(line.decode(errors="replace"))
        return None

    def connectionLost(self, reason: Failure) -> None:
        self.on_end()


class _Session:
    def __init__(self, client: SignalingClient, out: TextIO) -> None:
        self.client = client
        self.output = Output(out, on_gone=self.quit)
        self.by_user = False

    def say(self, text: str) -> None:
        self.output.say(text)

    def command(self, line: str) -> None:
        command = line.strip().lower()
        if command == "seal":
            self.seal()
        elif command in ("quit", "exit"):
            self.quit()
        elif command:
            self.say(f'unknown command {command!r}: "seal" or "quit"')

    def seal(self) -> None:
        if not self.client.seal():
            self.say("not connected")

    def quit(self) -> defer.Deferred[Disconnected]:
        """Leave: close with 1000 and wait, boundedly, for the handshake."""
        self.by_user = True
        return self.client.close()

    def stop(self, reactor: Any) -> defer.Deferred[None]:
        """The reactor is stopping (Ctrl-C, SIGTERM): leave cleanly first."""
        second_signal_ends_at_once()
        return within(self.quit(), CLOSE_WAIT, reactor)


def second_signal_ends_at_once() -> None:
    """While a stop waits for the server, a second Ctrl-C (or SIGTERM) ends
    the process at once, by the signal's default action, as a user who
    presses it again expects. (Twisted's handler would try to stop the
    stopping reactor again, and fail with a traceback.)"""
    for number in (signal.SIGINT, signal.SIGTERM):
        # An ignored signal (a background job's SIGINT) stays ignored.
        if signal.getsignal(number) not in (signal.SIG_IGN, signal.SIG_DFL):
            signal.signal(number, signal.SIG_DFL)


def within(waited: defer.Deferred[Any], seconds: float, reactor: Any) -> defer.Deferred[None]:
    """Fires (with None, never an error) when ``waited`` does or after
    ``seconds``, whichever is first; ``waited`` itself is left alone."""
    done: defer.Deferred[None] = defer.Deferred()

    def finish() -> None:
        if not done.called:
            done.callback(None)

    timer = reactor.callLater(seconds, finish)

    def arrived(result: object) -> object:
        if timer.active():
            timer.cancel()
        finish()
        return result

    waited.addBoth(arrived)
    return done


def tls_options(arguments: argparse.Namespace) -> IOpenSSLClientConnectionCreator | None:
    """What a wss:// connection trusts: the certificates of ``--cafile``, or
    (``None``: the clients' default) the system's, which ``SSL_CERT_FILE``
    replaces. Either way the chain and the name are checked, unless
    ``--insecure`` (given to the clients as ``insecure=``)."""
    if arguments.cafile is None:
        return None
    host = urlsplit(arguments.url).hostname or ""
    return client_tls(host, trusted=arguments.cafile)


def insecure_warning(arguments: argparse.Namespace) -> str | None:
    """The line ``--insecure`` earns, for standard error; ``None`` without it."""
    if not arguments.insecure:
        return None
    return (
        "warning: --insecure: the server's TLS certificate is not checked; anyone on the "
        "path can read and change this connection"
    )


def unreachable(url: str, error: BaseException) -> str:
    """Why connecting failed, in a line."""
    if isinstance(error, CertificateRefused):
        # Its text names the certificate and what is wrong with it.
        hint = ""
        if error.kind == CertificateRefused.UNTRUSTED:
            hint = "; --cafile PATH trusts a self-signed one or a private CA"
        return f"could not connect to {url}: {error}{hint}"
    if isinstance(error, SignalingClosed):  # TCP worked, the WebSocket handshake did not
        return f"could not open a WebSocket to {url}: {error}"
    return f"could not connect to {url}: {error}"


async def run(arguments: argparse.Namespace, reactor: Any, out: TextIO = sys.stdout) -> int:
    client = SignalingClient(
        arguments.url,
        tls=tls_options(arguments),
        reactor=reactor,
        connect_timeout=arguments.timeout,
        token=arguments.token,
        insecure=arguments.insecure,
    )
    session = _Session(client, out)
    reactor.addSystemEventTrigger("before", "shutdown", session.stop, reactor)
    try:
        await client.connect()
    except SignalingClosed as refused:
        if session.by_user:
            return EXIT_OK
        session.say(unreachable(arguments.url, refused))
        return EXIT_UNREACHABLE
    except CertificateRefused as refused:
        session.say(unreachable(arguments.url, refused))
        return EXIT_UNTRUSTED
    except Exception as error:  # any other connection failure: refused, DNS, TLS, timeout
        session.say(unreachable(arguments.url, error))
        return EXIT_UNREACHABLE
    session.say(f"connected to {arguments.url}")
    client.add_listener(lambda event: session.say(describe(event)))
    if arguments.commands:
        InputLines(reactor, session.command, session.quit)
    try:
        await client.join(arguments.lobby, mesh=not arguments.client_server)
    except SignalingClosed as refused:
        return exit_status(refused.disconnected, by_user=session.by_user)
    if arguments.seal_after is not None:
        reactor.callLater(arguments.seal_after, session.seal)
    disconnected = await client.closed
    return exit_status(disconnected, session.by_user)


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="webrtc-signal-client",
        description="Connect to a signaling server, create or join a lobby, and print "
        "every event as it happens.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_lobby_arguments(parse)
    parse.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="connect timeout (default 10)",
    )
    parse.add_argument(
        "--no-commands",
        dest="commands",
        action="store_false",
        help="do not read seal/quit commands from standard input (nor leave at its end)",
    )
    return parse


def version() -> str:
    """This package's version."""
    return VERSION


def add_lobby_arguments(parse: argparse.ArgumentParser) -> None:
    """The arguments both command-line tools take: server, lobby, trust, version."""
    parse.add_argument(
        "url", type=_url, help="the server, e.g. ws://localhost:9080 or wss://example.org"
    )
    parse.add_argument("--lobby", default="", help="lobby to join (default: create a new one)")
    parse.add_argument("--token", help="token for a server with token auth (sent as ?token=)")
    parse.add_argument(
        "--client-server",
        action="store_true",
        help="create a client-server lobby instead of a mesh (only when creating)",
    )
    parse.add_argument(
        "--seal-after",
        type=_seconds,
        metavar="SECONDS",
        help="seal the lobby this long after joining",
    )
    trust = parse.add_mutually_exclusive_group()
    trust.add_argument(
        "--cafile",
        type=_certificates,
        metavar="PATH",
        help="trust the certificates in this PEM file for wss:// (e.g. a self-signed one) "
        "instead of the system's",
    )
    trust.add_argument(
        "--insecure",
        action="store_true",
        help="do not check the wss:// server's certificate at all (a warning says so): "
        "anyone on the path can read and change the connection",
    )
    parse.add_argument("--version", action="version", version=f"%(prog)s {version()}")


def check_arguments(parse: argparse.ArgumentParser, arguments: argparse.Namespace) -> None:
    """What no single argument's type can check; a usage error if wrong."""
    secure = urlsplit(arguments.url).scheme == "wss"
    if arguments.cafile is not None and not secure:
        parse.error("argument --cafile: only for wss:// URLs")
    if arguments.insecure and not secure:
        parse.error("argument --insecure: only for wss:// URLs")


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not a ws:// or wss:// URL: {text!r}")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None
    return text


def _certificates(path: str) -> list[ssl.Certificate]:
    try:
        pem = Path(path).read_bytes()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {path!r}: {error.strerror}") from None
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise argparse.ArgumentTypeError(f"no PEM certificate in {path!r}") from None
    return [ssl.Certificate.loadPEM(c.public_bytes(Encoding.PEM)) for c in certificates]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parse = parser()
    arguments = parse.parse_args(argv)
    check_arguments(parse, arguments)
    warning = insecure_warning(arguments)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)

    async def go(reactor: Any) -> None:
        # react() ends the process with the code of a SystemExit.
        raise SystemExit(await run(arguments, reactor))

    try:
        task.react(lambda reactor: defer.ensureDeferred(go(reactor)))
    except KeyboardInterrupt:
        # Ctrl-C before the reactor took over SIGINT (it then leaves cleanly).
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
