"""The core's part of a draining restart: no new lobbies, the open ones carry on."""

from __future__ import annotations

import pytest

from webrtc_signal import CloseReason

from .test_core import ANSWER, ID, JOIN, OFFER, PEER_CONNECT, SEAL, Harness


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_draining_refuses_a_new_lobby_with_1001(h: Harness) -> None:
    waiting = h.connect("waiting")
    assert h.core.drain() == []
    assert h.core.draining
    h.send_join(waiting, "")
    assert h.closed == {"waiting": CloseReason.SHUTDOWN}
    assert h.core.lobbies == {}
    assert h.take("waiting") == []


def test_draining_lets_open_lobbies_join_relay_and_seal(h: Harness) -> None:
    host, name = h.create()
    guest, guest_id = h.join("guest", name)
    h.take("host")
    h.take("guest")
    h.apply(h.core.drain())
    # A peer that was connected before the drain may still join an open lobby.
    late, late_id = h.join("late", name)
    assert h.take("late")[-1] == (JOIN, 0, name)
    assert (PEER_CONNECT, late_id, "") in h.take("host")
    h.send(guest, OFFER, 1, "offer")
    h.send(host, ANSWER, guest_id, "answer")
    assert (OFFER, guest_id, "offer") in h.take("host")
    assert (ANSWER, 1, "answer") in h.take("guest")
    h.send(host, SEAL)
    assert h.take("guest")[-1] == (SEAL, 0, "")
    (deadline,) = h.timers
    h.fire(deadline)
    assert h.closed == {
        "host": CloseReason.SEAL_COMPLETE,
        "guest": CloseReason.SEAL_COMPLETE,
        "late": CloseReason.SEAL_COMPLETE,
    }
    assert h.core.lobbies == {}


def test_a_drain_does_not_stop_the_core_accepting_connections(h: Harness) -> None:
    # Refusing newcomers is HTTP's business (503 at the upgrade, in the
    # adapter); one whose upgrade was under way as the drain began is a
    # peer like any other.
    h.apply(h.core.drain())
    peer = h.connect("straggler")
    assert peer.peer_id != 0 and "straggler" not in h.closed
    assert ID not in {type_ for type_, _, _ in h.take("straggler")}
