"""WebRTC peers on top of the signaling client (layer 2).

    pip install 'webrtc-signal[rtc]'      # aiortc

An `RtcPeer` joins a lobby and keeps a WebRTC connection with a data channel
to every peer the server tells it about: everyone in a mesh lobby, the host
only in a client-server one. It follows the Godot 4 client's conventions, so
it can share a lobby with Godot games and the browser demo:

- of two peers, the one with the larger id makes the offer (the host, id 1,
  never does);
- candidates travel as ``"\\n<mid>\\n<index>\\n<sdp>"``; aiortc puts its own
  candidates in the offer or answer, and takes trickled ones from others;
- losing signaling before the seal ends the session; after the seal the
  connections carry on without the server.

Messages go over one negotiated, ordered data channel per peer, labelled
``chat`` with id 64, as in the browser demo (Godot's own channels are 1-3).

ICE servers: by default (``ice_servers=None``) the peer asks the signaling
server's ``GET /ice-servers`` when it joins, so it relays through the TURN
server the deployment configured; a failure to fetch is logged and kept in
`RtcPeer.ice_problem`, and the peer carries on without ICE servers. A list
(URL strings, ``{"urls": ..., "username": ..., "credential": ...}`` dicts or
``RTCIceServer``) is used as given; ``[]`` means none. aiortc uses one STUN
and one TURN server of them (the first it can parse), and
``ice_transport_policy="relay"`` makes it use relay candidates only.

aiortc runs on asyncio, so Twisted must run on the asyncio reactor, on the
same loop. `run` sets that up for a program; an application that manages its
own loop installs ``twisted.internet.asyncioreactor`` with that loop before
anything imports ``twisted.internet.reactor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.rtcicetransport import parse_stun_turn_uri
from aiortc.sdp import candidate_from_sdp
from twisted.internet import defer
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from ..client.signaling import (
    AnswerReceived,
    CandidateReceived,
    Disconnected,
    Event,
    Joined,
    OfferReceived,
    PeerConnected,
    PeerDisconnected,
    SignalingClient,
)
from ..client.tls import creator_for

CHAT_CHANNEL_LABEL = "chat"
CHAT_CHANNEL_ID = 64

_log = Logger(namespace="webrtc_signal.rtc")

MessageHandler = Callable[[int, "str | bytes"], object]
PeerHandler = Callable[[int], object]
IceServerSpec = str | Mapping[str, Any] | RTCIceServer

# Seconds to wait for the signaling server's /ice-servers.
ICE_FETCH_TIMEOUT = 5.0


def asyncio_reactor() -> Any:
    """The running Twisted reactor, which must be the asyncio one."""
    from twisted.internet import reactor
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    if not isinstance(reactor, AsyncioSelectorReactor):
        raise RuntimeError(
            "webrtc_signal.rtc needs Twisted on the asyncio reactor: call "
            "twisted.internet.asyncioreactor.install() before anything imports "
            "twisted.internet.reactor (webrtc_signal.rtc.run does it for you)"
        )
    return reactor


def run(main: Callable[[], Awaitable[int | None]]) -> int:
    """Run ``main()`` with Twisted on the asyncio reactor; returns its result
    (an exit status, 0 for ``None``)."""
    from twisted.internet import asyncioreactor
    from twisted.internet.error import ReactorAlreadyInstalledError, ReactorNotRunning

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        asyncioreactor.install(loop)
    except ReactorAlreadyInstalledError:
        asyncio_reactor()  # fine if it is the asyncio one; explains if not
    reactor = asyncio_reactor()
    outcome: list[Any] = []

    def stop(_: object) -> None:
        # Already stopping (a signal) when main() ended in a shutdown trigger.
        with contextlib.suppress(ReactorNotRunning):
            reactor.stop()

    def start() -> None:
        finished = defer.Deferred.fromFuture(asyncio.ensure_future(main()))
        finished.addBoth(outcome.append)
        finished.addBoth(stop)

    reactor.callWhenRunning(start)
    reactor.run()
    result = outcome[0] if outcome else None
    if isinstance(result, Failure):
        result.raiseException()
    return int(result or 0)


@dataclass(eq=False)
class _Link:
    """One peer: its connection, its channel, and its WebRTC steps in order."""

    peer_id: int
    connection: RTCPeerConnection
    channel: RTCDataChannel
    steps: asyncio.Lock = field(default_factory=asyncio.Lock)


class RtcPeer:
    """A lobby member with a WebRTC data channel to every peer it is told about.

    Over wss:// it checks the server's certificate as `SignalingClient`
    does, for the signaling connection and for ``GET /ice-servers`` alike:
    ``tls`` (e.g. ``client_tls(host, trusted=...)``) wins, ``insecure=True``
    checks nothing, and a refused certificate fails `join` with
    `CertificateRefused`.
    """

    def __init__(
        self,
        url: str,
        *,
        ice_servers: Iterable[IceServerSpec] | None = None,
        tls: IOpenSSLClientConnectionCreator | None = None,
        on_message: MessageHandler | None = None,
        on_peer_open: PeerHandler | None = None,
        on_peer_closed: PeerHandler | None = None,
        ice_transport_policy: str = "all",
        insecure: bool = False,
    ) -> None:
        self.signaling = SignalingClient(url, tls=tls, insecure=insecure, reactor=asyncio_reactor())
        self.signaling.add_listener(self._on_signaling)
        parts = urlsplit(url)
        # /ice-servers is fetched from the same host, trusted the same way.
        self._tls = creator_for(parts.hostname or "", parts.scheme == "wss", tls, insecure)
        # None: fetch them from the signaling server when joining.
        self._fetch_ice = ice_servers is None
        self.ice_servers: list[RTCIceServer] = _usable(ice_servers or [])
        # Why the ICE servers could not be fetched, if they could not.
        self.ice_problem: str | None = None
        self.ice_transport_policy = RTCIceTransportPolicy(ice_transport_policy)
        self.on_message = on_message
        self.on_peer_open = on_peer_open
        self.on_peer_closed = on_peer_closed
        self._links: dict[int, _Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    # -- what a program does -----------------------------------------------------

    async def join(self, lobby: str = "", mesh: bool = True) -> Joined:
        """Connect to the server and create (``lobby=""``) or join a lobby,
        having fetched the ICE servers first if none were given."""
        if self._fetch_ice:
            await self.fetch_ice_servers()
        await defer.Deferred.asFuture(self.signaling.connect(), asyncio.get_running_loop())
        joining = self.signaling.join(lobby, mesh)
        return await joining.asFuture(asyncio.get_running_loop())

    async def fetch_ice_servers(self) -> list[RTCIceServer]:
        """Ask the signaling server's ``GET /ice-servers`` (the same host,
        port and ``?token=``) and use its answer. A failure is logged and kept
        in `ice_problem`; the peer then goes on without ICE servers."""
        url = ice_servers_url(self.signaling.url)
        try:
            answer = await defer.Deferred.asFuture(
                _get_json(url, self._tls), asyncio.get_running_loop()
            )
            entries = answer["iceServers"]
            if not isinstance(entries, list):
                raise ValueError("iceServers is not a list")
            servers = _usable(entries)
        except Exception as error:
            cause = _cause(error)
            reason = str(cause) or type(cause).__name__
            shown = _without_query(url)
            self.ice_problem = f"could not fetch ICE servers from {shown}: {reason}"
            _log.warn(
                "could not fetch ICE servers from {url}: {reason}; going on without",
                url=shown,
                reason=reason,
            )
            servers = []
        else:
            self.ice_problem = None
        self.ice_servers = servers
        return servers

    @property
    def peer_id(self) -> int:
        return self.signaling.peer_id

    @property
    def lobby(self) -> str:
        return self.signaling.lobby

    @property
    def open_peers(self) -> set[int]:
        """The peers whose data channel is open now."""
        return {i for i, link in self._links.items() if link.channel.readyState == "open"}

    def send(self, peer_id: int, data: str | bytes) -> None:
        link = self._links.get(peer_id)
        if link is None or link.channel.readyState != "open":
            raise KeyError(f"no open data channel to peer {peer_id}")
        link.channel.send(data)

    def broadcast(self, data: str | bytes) -> set[int]:
        """Send to every peer with an open channel; returns who that was."""
        reached = self.open_peers
        for peer_id in reached:
            self._links[peer_id].channel.send(data)
        return reached

    def seal(self) -> None:
        self.signaling.seal()

    async def wait_for_open(self, peers: Iterable[int], timeout: float = 30.0) -> None:
        """Wait until the channels to exactly ``peers`` are open."""
        wanted = set(peers)

        async def until_open() -> None:
            while self.open_peers != wanted:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(until_open(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"peer {self.peer_id}: channels open to {sorted(self.open_peers)}, "
                f"not {sorted(wanted)}, after {timeout} s"
            ) from None

    async def close(self) -> None:
        """Leave: close the signaling connection and every WebRTC connection."""
        if self.signaling.ended is None:
            await self.signaling.close().asFuture(asyncio.get_running_loop())
        await self._close_links()

    # -- signaling events ----------------------------------------------------------

    def _on_signaling(self, event: Event) -> None:
        match event:
            case PeerConnected(peer_id):
                self._connect_to(peer_id)
            case PeerDisconnected(peer_id):
                self._spawn(self._close_link(peer_id))
            case OfferReceived(peer_id, sdp):
                self._step(peer_id, self._answer, sdp)
            case AnswerReceived(peer_id, sdp):
                self._step(peer_id, self._take_answer, sdp)
            case CandidateReceived(peer_id, mid, index, sdp):
                self._step(peer_id, self._take_candidate, mid, index, sdp)
            case Disconnected():
                # Godot's rule: signaling lost before the seal ends the session.
                if not self.signaling.sealed:
                    self._spawn(self._close_links())

    def _connect_to(self, peer_id: int) -> None:
        # Always a list: given None, aiortc would use a public STUN server.
        configuration = RTCConfiguration(
            iceServers=list(self.ice_servers), iceTransportPolicy=self.ice_transport_policy
        )
        connection = RTCPeerConnection(configuration)
        channel = connection.createDataChannel(
            CHAT_CHANNEL_LABEL, negotiated=True, id=CHAT_CHANNEL_ID, ordered=True
        )
        link = _Link(peer_id, connection, channel)
        self._links[peer_id] = link

        @channel.on("open")
        def opened() -> None:
            self._changed.set()
            if self.on_peer_open is not None:
                self.on_peer_open(peer_id)

        @channel.on("message")
        def received(data: str | bytes) -> None:
            if self.on_message is not None:
                self.on_message(peer_id, data)

        @channel.on("close")
        def closed() -> None:
            self._changed.set()
            if self.on_peer_closed is not None:
                self.on_peer_closed(peer_id)

        if peer_id < self.peer_id:
            self._step(peer_id, self._offer)

    # -- WebRTC steps, one peer's in order ------------------------------------------

    async def _offer(self, link: _Link) -> None:
        await link.connection.setLocalDescription(await link.connection.createOffer())
        self.signaling.send_offer(link.peer_id, link.connection.localDescription.sdp)

    async def _answer(self, link: _Link, sdp: str) -> None:
        await link.connection.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await link.connection.setLocalDescription(await link.connection.createAnswer())
        self.signaling.send_answer(link.peer_id, link.connection.localDescription.sdp)

    async def _take_answer(self, link: _Link, sdp: str) -> None:
        await link.connection.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def _take_candidate(self, link: _Link, mid: str, index: int, sdp: str) -> None:
        candidate = candidate_from_sdp(sdp.removeprefix("candidate:"))
        candidate.sdpMid = mid
        candidate.sdpMLineIndex = index
        await link.connection.addIceCandidate(candidate)

    def _step(self, peer_id: int, step: Callable[..., Awaitable[None]], *args: Any) -> None:
        link = self._links.get(peer_id)
        if link is None:
            return  # as the Godot client: nothing from peers it was not told about

        async def in_order() -> None:
            async with link.steps:
                if self._links.get(peer_id) is link:
                    await step(link, *args)

        self._spawn(in_order())

    async def _close_link(self, peer_id: int) -> None:
        link = self._links.pop(peer_id, None)
        if link is not None:
            await link.connection.close()
            self._changed.set()

    async def _close_links(self) -> None:
        for peer_id in list(self._links):
            await self._close_link(peer_id)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.failure("a WebRTC step failed", Failure(task.exception()))


# -- ICE servers -------------------------------------------------------------------


def ice_servers_url(signaling_url: str) -> str:
    """The ``/ice-servers`` URL beside a signaling URL: ws -> http, wss ->
    https, same host and port, only the ``token`` of the query kept."""
    parts = urlsplit(signaling_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    token = parse_qs(parts.query).get("token")
    query = urlencode({"token": token[0]}) if token else ""
    return urlunsplit((scheme, parts.netloc, "/ice-servers", query, ""))


def _cause(error: Exception) -> BaseException:
    """What ended a request: the agent wraps it (a refused certificate, say)
    in a list of failures, whose text says nothing readable."""
    wrapped = ResponseNeverReceived | RequestTransmissionFailed | ResponseFailed
    if isinstance(error, wrapped) and error.reasons:
        first: BaseException = error.reasons[0].value
        return first
    return error


def _without_query(url: str) -> str:
    # Messages and logs name the server, never the token.
    return urlunsplit(urlsplit(url)._replace(query=""))


def _usable(specs: Iterable[IceServerSpec]) -> list[RTCIceServer]:
    """``RTCIceServer``s from strings, dicts or ``RTCIceServer``s, without
    the URLs aiortc cannot parse (it would refuse the whole configuration)."""
    servers = []
    for spec in specs:
        if isinstance(spec, str):
            server = RTCIceServer(urls=spec)
        elif isinstance(spec, RTCIceServer):
            server = spec
        elif isinstance(spec, Mapping) and "urls" in spec:
            server = RTCIceServer(
                urls=spec["urls"], username=spec.get("username"), credential=spec.get("credential")
            )
        else:
            raise ValueError(f"not an ICE server: {spec!r}")
        urls = [server.urls] if isinstance(server.urls, str) else list(server.urls)
        kept = []
        for url in urls:
            try:
                parse_stun_turn_uri(url)
            except ValueError:
                _log.warn("ICE server URL {url} is not usable with aiortc; skipped", url=url)
            else:
                kept.append(url)
        if kept:
            servers.append(RTCIceServer(kept, server.username, server.credential))
    return servers


@implementer(IPolicyForHTTPS)
class _SameTLS:
    """https:// with the TLS settings given for the signaling connection."""

    def __init__(self, creator: IOpenSSLClientConnectionCreator) -> None:
        self.creator = creator

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        return self.creator


async def _get_json_async(url: str, tls: IOpenSSLClientConnectionCreator | None) -> Any:
    from twisted.internet import reactor

    agent = Agent(reactor, _SameTLS(tls)) if tls is not None else Agent(reactor)
    request = agent.request(b"GET", url.encode("ascii"))
    request.addTimeout(ICE_FETCH_TIMEOUT, reactor)
    try:
        response = await request
    except defer.TimeoutError:
        raise TimeoutError(f"no answer within {ICE_FETCH_TIMEOUT:g} s") from None
    body = await _body(response)
    if response.code != 200:
        detail = body.decode("utf-8", "replace").strip()[:200]
        raise ValueError(f"HTTP {response.code} {detail}".rstrip())
    try:
        return json.loads(body)
    except ValueError:
        raise ValueError("the answer is not JSON") from None


class _Collect(Protocol):
    """Gathers a response body (readBody warns on the asyncio reactor's transports)."""

    def __init__(self, done: defer.Deferred[bytes]) -> None:
        self.done = done
        self.parts: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.parts.append(data)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


def _body(response: Any) -> defer.Deferred[bytes]:
    done: defer.Deferred[bytes] = defer.Deferred()
    response.deliverBody(_Collect(done))
    return done


def _get_json(url: str, tls: IOpenSSLClientConnectionCreator | None) -> defer.Deferred[Any]:
    return defer.ensureDeferred(_get_json_async(url, tls))
