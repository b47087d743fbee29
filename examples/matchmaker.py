"""A small Twisted game server with a matchmaking queue and signaling, token auth on both.

Run it:  python examples/matchmaker.py SECRET_FILE [port] [players]   (defaults: 8080, 2)
(``port`` is a number or an endpoint description, e.g. tcp:8080:interface=127.0.0.1)

    /queue        POST with "Authorization: Bearer <token>": waits (long-poll) until
                  <players> players are queued, then answers each of them with JSON
                  {"lobby": NAME, "token": TOKEN, "signal": "/signal"}: a lobby reserved
                  for them, and a token for it (the player's own, bound to that lobby).
    /signal       the signaling endpoint; every connection needs ?token=<token>.
    /ice-servers  the STUN/TURN servers for the players' WebRTC connections (none
                  here), with the same ?token=; where clients such as
                  webrtc-signal-peer look for them, beside the signaling URL.

Players get their first token from the game's login (here, make one with
``webrtc-signal-token --secret-file SECRET_FILE --subject alice``), queue with
it, then connect to ws://host:port/signal?token=<the token /queue gave> and
JOIN the lobby it named: the first to join hosts it (id 1), the others join
it. The server logs each lobby's life from the signaling service's events,
and the site's access log, through webrtc-signal's log observer so that no
token shows in it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from webrtc_signal import Refused, SignalingConfig, SignalingService, TokenAuth
from webrtc_signal.events import Event, LobbyClosed, PeerJoined, PeerLeft
from webrtc_signal.server.tokens import read_secret

log = Logger(namespace="matchmaker")

# Seconds the reserved lobby waits for its first player, and the lobby token lives.
LOBBY_TTL = 60.0


class Waiting:
    """A queued player's pending request."""

    def __init__(self, request: Request, player: str) -> None:
        self.request = request
        self.player = player
        self.gone = False


class Matchmaker(Resource):
    """POST /queue: groups players by arrival, ``players`` per match."""

    isLeaf = True

    def __init__(self, signaling: SignalingService, auth: TokenAuth, players: int) -> None:
        super().__init__()
        self.signaling = signaling
        self.auth = auth
        self.players = players
        self.queue: list[Waiting] = []

    def render_POST(self, request: Request) -> bytes | int:
        header = request.getHeader("authorization") or ""
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                raise Refused("Missing token", status=401)
            identity = self.auth.verify(token.strip())
        except Refused as refused:
            return answer(request, refused.status, {"error": refused.reason})
        waiting = Waiting(request, identity.subject or "anonymous")
        # A player who gives up (closes the request) leaves the queue.
        request.notifyFinish().addErrback(lambda _: self._gave_up(waiting))
        self.queue.append(waiting)
        log.info("{player} queued ({count} waiting)", player=waiting.player, count=len(self.queue))
        self._match()
        return NOT_DONE_YET

    def _gave_up(self, waiting: Waiting) -> None:
        waiting.gone = True
        if waiting in self.queue:
            self.queue.remove(waiting)

    def _match(self) -> None:
        while len(self.queue) >= self.players:
            group, self.queue = self.queue[: self.players], self.queue[self.players :]
            try:
                lobby = self.signaling.reserve_lobby(mesh=True, ttl=LOBBY_TTL)
            except Refused as refused:  # the server's lobby limit
                for waiting in group:
                    finish(waiting, 503, {"error": refused.reason})
                continue
            log.info(
                "match: {players} in lobby {lobby}",
                players=[waiting.player for waiting in group],
                lobby=lobby,
            )
            for waiting in group:
                # The player's own token, but good for this lobby only.
                token = self.auth.mint(subject=waiting.player, lobby=lobby, ttl=LOBBY_TTL)
                finish(waiting, 200, {"lobby": lobby, "token": token, "signal": "/signal"})


def answer(request: Request, status: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(status)
    request.setHeader("content-type", "application/json")
    request.setHeader("cache-control", "no-store")
    return json.dumps(body).encode()


def finish(waiting: Waiting, status: int, body: dict[str, Any]) -> None:
    if not waiting.gone:
        waiting.request.write(answer(waiting.request, status, body))
        waiting.request.finish()


def log_lobby_events(event: Event) -> None:
    """What the game server keeps an eye on: who joins and leaves its matches."""
    match event:
        case PeerJoined(lobby, peer, members):
            log.info(
                "lobby {lobby}: {player} joined as {role} ({members} in)",
                lobby=lobby,
                player=peer.identity,
                role="host" if peer.lobby_id == 1 else f"peer {peer.lobby_id}",
                members=members,
            )
        case PeerLeft(lobby, peer, reason):
            log.info(
                "lobby {lobby}: {player} left ({reason})",
                lobby=lobby,
                player=peer.identity,
                reason=reason or "closed",
            )
        case LobbyClosed(lobby, reason):
            log.info("lobby {lobby} closed: {reason}", lobby=lobby, reason=reason)


def make_game_server(
    endpoint: IStreamServerEndpoint, secret: bytes, players: int = 2, **signaling: Any
) -> MultiService:
    """The game's service tree: one site with /queue and /signal."""
    if players < 1:
        raise ValueError(f"players must be at least 1, not {players}")
    game = MultiService()
    auth = TokenAuth(secret)
    service = SignalingService(SignalingConfig(max_lobby_size=players), hooks=auth, **signaling)
    service.add_observer(log_lobby_events)
    service.setServiceParent(game)

    root = Resource()
    root.putChild(b"queue", Matchmaker(service, auth, players))
    root.putChild(b"signal", service.resource())
    root.putChild(b"ice-servers", service.ice_servers_resource())
    StreamServerEndpointService(endpoint, Site(root)).setServiceParent(game)
    return game


def main(argv: list[str]) -> None:
    from twisted.internet import endpoints, reactor
    from twisted.logger import globalLogBeginner

    from webrtc_signal.server.logs import file_observer

    if len(argv) < 2:
        sys.exit(f"usage: {argv[0]} SECRET_FILE [port] [players]")
    try:
        secret = read_secret(argv[1])
        port = argv[2] if len(argv) > 2 else "8080"
        endpoint = endpoints.serverFromString(reactor, f"tcp:{port}" if port.isdigit() else port)
        players = int(argv[3]) if len(argv) > 3 else 2
    except ValueError as error:
        sys.exit(f"{argv[0]}: {error}")
    # twistd's text lines, with every ?token= value in them (the site's
    # access log has them) written as token=<redacted>.
    globalLogBeginner.beginLoggingTo([file_observer(sys.stdout, "text")])
    game = make_game_server(endpoint, secret, players)
    game.startService()
    reactor.addSystemEventTrigger("before", "shutdown", game.stopService)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)
