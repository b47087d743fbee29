"""What the server counts inline, as plain integers read at scrape time:
relayed messages and bytes, ICE candidate types, and connections refused at
the upgrade (no peer exists then, so no event tells of them).

The WebSocket adapter adds to them for every relayed message: a few list
additions and one search of the data for " typ ", so that counting costs the
relay path next to nothing. `webrtc_signal.server.metrics` turns them into
metric families when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..protocol.messages import MessageType

# The candidate_type label values, in the order of TrafficCounts.candidates.
# "unknown": a CANDIDATE message with no " typ " field the server knows (an
# end-of-candidates message, or data that is no candidate line).
CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay", "unknown")
# Read from the four characters after " typ ": enough to tell the four apart.
_CANDIDATE_INDEX = {"host": 0, "srfl": 1, "prfl": 2, "rela": 3}
_RELAY = 3
UNTYPED = 4
# Closed lobbies TrafficCounts.relay_lobbies may hold before it forgets them.
_RELAY_LOBBIES_SLACK = 1024
# A plain int: an Enum member's attribute lookup costs ten times as much.
CANDIDATE = int(MessageType.CANDIDATE)


class TrafficCounts:
    """``messages`` counts OFFER and ANSWER; CANDIDATE messages are counted
    by type only, and their number is the sum."""

    __slots__ = ("_lobbies", "bytes", "candidates", "messages", "refusals", "relay_lobbies")

    def __init__(self, lobbies: Mapping[str, object]) -> None:
        # The core's open lobbies, by name.
        self._lobbies = lobbies
        # By message type (index = MessageType): OFFER and ANSWER messages,
        # and the bytes sent of all three relayed types (the WebSocket
        # payload: the JSON or line-format message as relayed).
        self.messages = [0] * 8
        self.bytes = [0] * 8
        # By CANDIDATE_TYPES.
        self.candidates = [0] * len(CANDIDATE_TYPES)
        # Open lobbies in which a relay candidate was relayed (by name); the
        # metrics' observer takes a lobby out when it closes.
        self.relay_lobbies: set[str] = set()
        # Refusals at the upgrade: (HTTP status, reason) -> count.
        self.refusals: dict[tuple[int, str], int] = {}

    def relayed(self, kind: int, size: int, data: str, lobby: str | None) -> None:
        """A relayed message of ``kind`` went out: ``size`` bytes of payload
        to a member of ``lobby``."""
        self.bytes[kind] += size
        if kind != CANDIDATE:
            self.messages[kind] += 1
        elif " typ " in data:
            self.typed_candidate(data, lobby)
        else:
            self.candidates[UNTYPED] += 1

    def typed_candidate(self, data: str, lobby: str | None) -> None:
        """A relayed CANDIDATE whose ``data`` holds " typ ": its type is read
        from the four letters after it, wherever the client's format puts
        the candidate line (Godot's ``"\\n<mid>\\n<index>\\n<line>"``, a
        browser's JSON). A relay candidate marks ``lobby`` as having seen one."""
        index = _CANDIDATE_INDEX.get(data.partition(" typ ")[2][:4], UNTYPED)
        self.candidates[index] += 1
        if index == _RELAY and lobby is not None:
            relay_lobbies = self.relay_lobbies
            relay_lobbies.add(lobby)
            # The metrics' observer takes closed lobbies out; without one (an
            # engine without metrics), closed lobbies are dropped here.
            if len(relay_lobbies) > len(self._lobbies) + _RELAY_LOBBIES_SLACK:
                relay_lobbies.intersection_update(self._lobbies)

    def refused(self, status: int, reason: str) -> None:
        """A connection was refused at the upgrade with ``status`` and ``reason``."""
        key = (status, reason)
        self.refusals[key] = self.refusals.get(key, 0) + 1
