"""Several hooks objects that must all agree: e.g. token auth and the auth
callback, ``hooks=RequireAll(TokenAuth(secret), AuthCallback(url))``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred

from ..protocol.hooks import ConnectionRequest, PeerInfo, Refused
from ..protocol.reasons import CloseReason


class JointIdentity(str):
    """The identities several hooks gave one connection.

    As a string it is the *last* hook's identity that is not None (with
    ``RequireAll(TokenAuth(...), AuthCallback(...))``, the auth callback's
    ``identity``): that is what the admin API, the webhooks and the logs
    show. ``identities`` holds every hook's answer, in the hooks' order;
    ``subject``, ``lobby`` and ``pool`` are read from the last identity
    that has each (None when none has)."""

    identities: tuple[object, ...]
    subject: str | None
    lobby: str | None
    pool: str | None

    def __new__(cls, identities: tuple[object, ...]) -> JointIdentity:
        present = [identity for identity in identities if identity is not None]
        text = str(present[-1]) if present else ""
        joint = super().__new__(cls, text)
        joint.identities = identities
        joint.subject = _last_attribute(present, "subject")
        joint.lobby = _last_attribute(present, "lobby")
        joint.pool = _last_attribute(present, "pool")
        return joint


def _last_attribute(identities: list[object], name: str) -> Any:
    for identity in reversed(identities):
        value = getattr(identity, name, None)
        if value is not None:
            return value
    return None


class RequireAll:
    """Hooks that pass only when every one of ``hooks`` passes.

    ``authenticate`` asks them one after the other, in the order given, and
    stops at the first refusal (put the cheap local check first: token auth
    refuses a bad token before the backend is called). The peer's identity
    is a `JointIdentity`. ``authorize_join`` asks each hook that has one,
    showing it the identity its own ``authenticate`` gave, so each holds the
    peer to its own lobby claim. ``authenticate_ice`` (for ``GET
    /ice-servers``) requires every hook that has one.
    """

    # Set only when some hook has one: without it, the service leaves
    # /ice-servers as it would be without these hooks.
    authenticate_ice: Callable[[Mapping[str, list[str]]], object]

    def __init__(self, *hooks: object) -> None:
        if not hooks:
            raise ValueError("RequireAll needs at least one hooks object")
        self.hooks = hooks
        checks = [getattr(h, "authenticate_ice", None) for h in hooks]
        ice_checks = [check for check in checks if check is not None]
        if ice_checks:

            def authenticate_ice(query: Mapping[str, list[str]]) -> object:
                identity: object = None
                for check in ice_checks:
                    identity = check(query)
                return identity

            self.authenticate_ice = authenticate_ice

    def authenticate(self, request: ConnectionRequest) -> Deferred[JointIdentity]:
        return Deferred.fromCoroutine(self._authenticate(request))

    async def _authenticate(self, request: ConnectionRequest) -> JointIdentity:
        identities: list[object] = []
        for hooks in self.hooks:
            method = getattr(hooks, "authenticate", None)
            if method is None:
                identities.append(None)
                continue
            # Awaited: cancelling this call (the client went away) cancels
            # the hook's own Deferred too.
            identities.append(await maybeDeferred(method, request))
        return JointIdentity(tuple(identities))

    def authorize_join(self, peer: PeerInfo, lobby: str, create: bool) -> None:
        identity = peer.identity
        if not isinstance(identity, JointIdentity) or len(identity.identities) != len(self.hooks):
            # Not from our authenticate: no claims to read. Fail closed.
            raise Refused(CloseReason.NOT_ALLOWED.text)
        for hooks, own in zip(self.hooks, identity.identities, strict=True):
            method = getattr(hooks, "authorize_join", None)
            if method is not None:
                method(replace(peer, identity=own), lobby, create)
