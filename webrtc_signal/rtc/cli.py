"""``webrtc-signal-peer``: a WebRTC peer on the command line. It creates or
joins a lobby, opens a data channel to every peer it is told about, sends
each line you type (or ``--send``) to every peer, and prints what arrives.

Needs the ``rtc`` extra: ``pip install 'webrtc-signal[rtc]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from twisted.internet import defer

from ..client.cli import (
    CLOSE_WAIT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    InputLines,
    Output,
    _seconds,
    add_lobby_arguments,
    check_arguments,
    exit_status,
    insecure_warning,
    second_signal_ends_at_once,
    tls_options,
    unreachable,
)
from ..client.signaling import (
    Disconnected,
    LobbySealed,
    PeerConnected,
    PeerDisconnected,
    SignalingClosed,
    with_token,
)

if TYPE_CHECKING:
    from .peer import RtcPeer


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="webrtc-signal-peer",
        description="Join or create a lobby as a WebRTC peer: send lines to every peer "
        "over data channels and print what arrives.",
        epilog="Type lines to send them to every connected peer; end with Ctrl-D or Ctrl-C "
        "(or SIGTERM; standard output closing, as by | head, also leaves). "
        "Exit statuses are those of webrtc-signal-client.",
    )
    add_lobby_arguments(parse)
    parse.add_argument(
        "--send", action="append", default=[], metavar="TEXT",
        help="send TEXT to each peer as its channel opens (may be repeated)",
    )  # fmt: skip
    parse.add_argument(
        "--ice", action="append", metavar="URL",
        help="an ICE server, e.g. stun:stun.example.org:3478 (may be repeated); "
        "by default the server's /ice-servers are used",
    )  # fmt: skip
    parse.add_argument(
        "--exit-after", type=_seconds, metavar="SECONDS", help="leave after this many seconds"
    )
    parse.add_argument(
        "--no-input",
        dest="input",
        action="store_false",
        help="do not read lines to send from standard input (end of input would leave)",
    )
    return parse


async def session(arguments: argparse.Namespace) -> int:
    from .peer import RtcPeer, asyncio_reactor

    reactor = asyncio_reactor()
    loop = asyncio.get_running_loop()
    leave = asyncio.Event()  # set when the user is done
    lost = asyncio.Event()  # set when signaling ends before the seal
    # This coroutine's task: a stop waits for it to end, its result (the
    # exit status) recorded first.
    this_session = asyncio.current_task()
    output = Output(sys.stdout, on_gone=leave.set)
    say = output.say

    def opened(peer_id: int) -> None:
        say(f"channel to {peer_id} open")
        for text in arguments.send:
            peer.send(peer_id, text)

    peer = RtcPeer(
        with_token(arguments.url, arguments.token),
        ice_servers=arguments.ice,
        tls=tls_options(arguments),
        insecure=arguments.insecure,
        on_message=lambda sender, data: say(f"{sender}: {data!s}"),
        on_peer_open=opened,
        on_peer_closed=lambda peer_id: say(f"channel to {peer_id} closed"),
    )

    def signaling_event(event: object) -> None:
        match event:
            case PeerConnected(peer_id):
                say(f"peer {peer_id} in the lobby")
            case PeerDisconnected(peer_id):
                say(f"peer {peer_id} left the lobby")
            case LobbySealed():
                say("lobby sealed: connections stay up without the server")
            case Disconnected(code, reason, _) if peer.lobby and not leave.is_set():
                # Not when leaving: that end is ours, and no news; nor before
                # joining: the line that says why joining failed tells it.
                say(f"signaling closed: {code} {reason}".rstrip())

    def stopping() -> defer.Deferred[None] | None:
        # The reactor is stopping (Ctrl-C, SIGTERM): leave cleanly first,
        # for a bounded time, then let it stop.
        if this_session is None or this_session.done():
            return None  # the session is over: this is run() stopping the reactor
        second_signal_ends_at_once()
        leave.set()
        peer.signaling.close()  # also ends a join still under way
        waiting = asyncio.ensure_future(asyncio.wait_for(asyncio.shield(this_session), CLOSE_WAIT))
        left = defer.Deferred.fromFuture(waiting)
        return left.addBoth(lambda _: None)  # or out of time: stop all the same

    peer.signaling.add_listener(signaling_event)
    reactor.addSystemEventTrigger("before", "shutdown", stopping)
    return await _take_part(arguments, peer, loop, leave, lost, say)


async def _take_part(
    arguments: argparse.Namespace,
    peer: RtcPeer,
    loop: asyncio.AbstractEventLoop,
    leave: asyncio.Event,
    lost: asyncio.Event,
    say: Callable[[str], None],
) -> int:
    failed = await _connect_and_join(arguments, peer, loop, leave, say)
    if failed is not None:
        return failed
    if arguments.seal_after is not None:
        loop.call_later(arguments.seal_after, peer.seal)
    if arguments.exit_after is not None:
        loop.call_later(arguments.exit_after, leave.set)
    if arguments.input:
        _send_typed_lines(peer, leave, say)
    peer.signaling.closed.addCallback(lambda _: None if peer.signaling.sealed else lost.set())
    waits = [asyncio.ensure_future(leave.wait()), asyncio.ensure_future(lost.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()
    await peer.close()
    if lost.is_set() and not leave.is_set() and peer.signaling.ended is not None:
        return exit_status(peer.signaling.ended, by_user=False)
    return EXIT_OK


async def _connect_and_join(
    arguments: argparse.Namespace,
    peer: RtcPeer,
    loop: asyncio.AbstractEventLoop,
    leave: asyncio.Event,
    say: Callable[[str], None],
) -> int | None:
    """Connect and join; the exit status if that ended the program, else None."""
    try:
        # Connecting apart from joining: a failure here (refused, DNS, TLS,
        # timeout, no WebSocket) is "could not connect", exit 3.
        await defer.Deferred.asFuture(peer.signaling.connect(), loop)
    except Exception as error:
        if leave.is_set():  # stopped while connecting
            return EXIT_OK
        say(unreachable(arguments.url, error))
        return EXIT_UNREACHABLE
    try:
        joined = await peer.join(arguments.lobby, mesh=not arguments.client_server)
    except SignalingClosed as refused:
        if leave.is_set():  # stopped while joining
            await peer.close()
            return EXIT_OK
        say(f"refused: {refused}")
        return exit_status(refused.disconnected, by_user=False)
    if peer.ice_problem is not None:
        say(f"{peer.ice_problem}; going on without ICE servers")
    else:
        say("ICE servers: " + (" ".join(_ice_urls(peer)) or "none"))
    mode = "mesh" if joined.mesh else "client-server"
    say(f"joined {mode} lobby {joined.lobby} as peer {joined.peer_id}")
    return None


def _ice_urls(peer: RtcPeer) -> list[str]:
    urls: list[str] = []
    for server in peer.ice_servers:
        urls += [server.urls] if isinstance(server.urls, str) else server.urls
    return urls


def _send_typed_lines(peer: RtcPeer, leave: asyncio.Event, say: Callable[[str], None]) -> None:
    """Send each line of standard input to every peer; end of input leaves."""
    from .peer import asyncio_reactor

    def line(text: str) -> None:
        if text and not peer.broadcast(text):
            say("(no open channel yet)")

    InputLines(asyncio_reactor(), line, leave.set)


def main(argv: Sequence[str] | None = None) -> None:
    parse = parser()
    arguments = parse.parse_args(argv)
    check_arguments(parse, arguments)
    warning = insecure_warning(arguments)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
    try:
        try:
            from . import peer as rtc
        except ImportError as missing:
            sys.exit(
                f"webrtc-signal-peer needs aiortc: pip install 'webrtc-signal[rtc]' ({missing})"
            )
        status = rtc.run(lambda: session(arguments))
    except KeyboardInterrupt:
        # Ctrl-C while aiortc loads, before the reactor took over SIGINT.
        status = EXIT_INTERRUPTED
    sys.exit(status)


if __name__ == "__main__":
    main()
