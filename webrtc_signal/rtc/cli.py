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

from ..client.cli import EXIT_OK, EXIT_UNREACHABLE, _seconds, add_lobby_arguments, exit_status
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
        epilog="Type lines to send them to every connected peer; end with Ctrl-D or Ctrl-C. "
        "Exit statuses are those of webrtc-signal-client.",
    )
    add_lobby_arguments(parse)
    parse.add_argument(
        "--send", action="append", default=[], metavar="TEXT",
        help="send TEXT to each peer as its channel opens (may be repeated)",
    )  # fmt: skip
    parse.add_argument(
        "--ice", action="append", default=[], metavar="URL",
        help="an ICE server, e.g. stun:stun.l.google.com:19302 (none by default)",
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
    def say(text: str) -> None:
        print(text, flush=True)

    def opened(peer_id: int) -> None:
        say(f"channel to {peer_id} open")
        for text in arguments.send:
            peer.send(peer_id, text)

    from .peer import RtcPeer

    peer = RtcPeer(
        with_token(arguments.url, arguments.token),
        ice_servers=arguments.ice,
        on_message=lambda sender, data: say(f"{sender}: {data}"),
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
            case Disconnected(code, reason, _):
                say(f"signaling closed: {code} {reason}".rstrip())

    peer.signaling.add_listener(signaling_event)
    try:
        joined = await peer.join(arguments.lobby, mesh=not arguments.client_server)
    except SignalingClosed as refused:
        say(f"refused: {refused}")
        return exit_status(refused.disconnected, by_user=False)
    except Exception as error:  # refused, DNS, TLS, timeout
        say(f"could not connect to {arguments.url}: {error}")
        return EXIT_UNREACHABLE
    mode = "mesh" if joined.mesh else "client-server"
    say(f"joined {mode} lobby {joined.lobby} as peer {joined.peer_id}")

    loop = asyncio.get_running_loop()
    leave = asyncio.Event()  # set when the user is done
    lost = asyncio.Event()  # set when signaling ends before the seal
    if arguments.seal_after is not None:
        loop.call_later(arguments.seal_after, peer.seal)
    if arguments.exit_after is not None:
        loop.call_later(arguments.exit_after, leave.set)
    if arguments.input:
        _send_typed_lines(loop, peer, leave, say)
    peer.signaling.closed.addCallback(lambda _: None if peer.signaling.sealed else lost.set())
    waits = [asyncio.ensure_future(leave.wait()), asyncio.ensure_future(lost.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()
    await peer.close()
    if lost.is_set() and not leave.is_set() and peer.signaling.ended is not None:
        return exit_status(peer.signaling.ended, by_user=False)
    return EXIT_OK


def _send_typed_lines(
    loop: asyncio.AbstractEventLoop, peer: RtcPeer, leave: asyncio.Event, say: Callable[[str], None]
) -> None:
    """Send each line of standard input to every peer; end of input leaves."""

    def readable() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin.fileno())
            leave.set()
            return
        text = line.rstrip("\n")
        if text and not peer.broadcast(text):
            say("(no open channel yet)")

    loop.add_reader(sys.stdin.fileno(), readable)


def main(argv: Sequence[str] | None = None) -> None:
    arguments = parser().parse_args(argv)
    try:
        from . import peer as rtc
    except ImportError as missing:
        sys.exit(f"webrtc-signal-peer needs aiortc: pip install 'webrtc-signal[rtc]' ({missing})")
    sys.exit(rtc.run(lambda: session(arguments)))


if __name__ == "__main__":
    main()
