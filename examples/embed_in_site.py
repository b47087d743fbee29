"""A game server that already runs twisted.web, with signaling mounted at /signal.

Run it:  python examples/embed_in_site.py [port]     (default 8080)
Then:    http://localhost:8080/ is the game's own page,
         ws://localhost:8080/signal is the signaling endpoint for Godot clients.

Everything shares the game's reactor and service tree: stopping the tree
(Ctrl-C) closes the signaling clients with 1001 and cancels their timers.
"""

from __future__ import annotations

import sys

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from webrtc_signal import SignalingConfig, SignalingService

GAME_PAGE = b"<!doctype html><title>My game</title><h1>My game</h1>"


class GamePage(Resource):
    """Stands for whatever the game already serves."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return GAME_PAGE


def make_game_server(endpoint: IStreamServerEndpoint) -> MultiService:
    """The game's service tree: its web site, with signaling beside its pages."""
    game = MultiService()

    # The game's own settings object; no command line involved.
    signaling = SignalingService(SignalingConfig(max_peers=512, seal_timeout=30.0))
    signaling.setServiceParent(game)

    root = Resource()
    root.putChild(b"", GamePage())
    root.putChild(b"signal", signaling.resource())
    StreamServerEndpointService(endpoint, Site(root)).setServiceParent(game)
    return game


def main(argv: list[str]) -> None:
    from twisted.internet import endpoints, reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    port = int(argv[1]) if len(argv) > 1 else 8080
    game = make_game_server(endpoints.TCP4ServerEndpoint(reactor, port))
    game.startService()
    reactor.addSystemEventTrigger("before", "shutdown", game.stopService)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)
