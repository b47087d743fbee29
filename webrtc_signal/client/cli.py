"""``webrtc-signal-client``: a command-line signaling client for people who run
a server. It connects, creates or joins a lobby, prints every event as it
happens, seals on request, and exits with a status that says how it ended.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

from twisted.internet import defer, task
from twisted.protocols.basic import LineReceiver

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

# Exit statuses, by how the connection ended.
EXIT_OK = 0  # closed normally: 1000 (e.g. "Seal complete"), or by the user
EXIT_USAGE = 2  # bad command line (argparse's own status)
EXIT_UNREACHABLE = 3  # could not connect, or the WebSocket handshake failed
EXIT_REFUSED = 4  # the server closed us with a 4000-4999 code (the reason says why)
EXIT_GOING_AWAY = 5  # 1001: the server is shutting down
EXIT_BROKEN = 6  # anything else: 1006 (no closing handshake), 1002, 1007, 1009...

EPILOG = f"""\
commands on standard input: "seal" seals the lobby, "quit" closes the connection.

exit status: {EXIT_OK} closed normally (1000) or by you; {EXIT_UNREACHABLE} could not connect;
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


class _Commands(LineReceiver):
    delimiter = b"\n"

    def __init__(self, client: SignalingClient, session: _Session) -> None:
        self.client = client
        self.session = session

    def lineReceived(self, line: bytes) -> None:
        command = line.decode(errors="replace").strip().lower()
        if command == "seal":
            self.session.seal()
        elif command in ("quit", "exit"):
            self.session.quit()
        elif command:
            self.session.say(f'unknown command {command!r}: "seal" or "quit"')


class _Session:
    def __init__(self, client: SignalingClient, out: TextIO) -> None:
        self.client = client
        self.out = out
        self.by_user = False

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def seal(self) -> None:
        try:
            self.client.seal()
        except RuntimeError:
            self.say("not connected")

    def quit(self) -> None:
        self.by_user = True
        self.client.close()


async def run(arguments: argparse.Namespace, reactor: Any, out: TextIO = sys.stdout) -> int:
    client = SignalingClient(
        arguments.url, reactor=reactor, connect_timeout=arguments.timeout, token=arguments.token
    )
    session = _Session(client, out)
    try:
        await client.connect()
    except SignalingClosed as refused:
        session.say(f"could not open a WebSocket to {arguments.url}: {refused}")
        return EXIT_UNREACHABLE
    except Exception as error:  # any connection failure: refused, DNS, TLS, timeout
        session.say(f"could not connect to {arguments.url}: {error}")
        return EXIT_UNREACHABLE
    session.say(f"connected to {arguments.url}")
    client.add_listener(lambda event: session.say(describe(event)))
    if arguments.commands:
        from twisted.internet import stdio

        stdio.StandardIO(_Commands(client, session), reactor=reactor)
    try:
        await client.join(arguments.lobby, mesh=not arguments.client_server)
    except SignalingClosed as refused:
        return exit_status(refused.disconnected, by_user=False)
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
        help="do not read seal/quit commands from standard input",
    )
    return parse


def add_lobby_arguments(parse: argparse.ArgumentParser) -> None:
    """The server and lobby arguments both command-line tools take."""
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


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not a ws:// or wss:// URL: {text!r}")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r}") from None
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    arguments = parser().parse_args(argv)

    async def go(reactor: Any) -> None:
        # react() ends the process with the code of a SystemExit.
        raise SystemExit(await run(arguments, reactor))

    task.react(lambda reactor: defer.ensureDeferred(go(reactor)))


if __name__ == "__main__":
    main()
