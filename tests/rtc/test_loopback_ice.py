"""The tests' pinning of aiortc's ICE to 127.0.0.1 (tests/support/loopback_ice)
holds: the installed aioice still fits it, it is on in this process and in
child processes, and two ICE agents really connect over 127.0.0.1 alone."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import types

import pytest
import pytest_twisted

from ..support.loopback_ice import (
    ENABLE,
    LOOPBACK,
    ContractError,
    IceLog,
    contract_problems,
)
from ..support.loopback_ice.webrtc_signal_loopback_ice import patch
from ..support.wsclient import with_timeout

pytest.importorskip("aiortc", reason="aiortc is not installed: pip install 'webrtc-signal[rtc]'")

import aioice.ice as ice

from .test_rtc import aio


def test_the_installed_aioice_fits_the_pinning() -> None:
    # If this fails, aioice changed: the message says what the pinning relied on.
    assert contract_problems(ice) == []


def test_this_process_gathers_on_loopback_only() -> None:
    assert ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == [LOOPBACK]
    assert ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == []
    # aioice's own function, kept underneath, leaves loopback out.
    assert LOOPBACK not in ice.get_host_addresses.__wrapped__(True, True)


def test_an_aioice_that_no_longer_fits_is_refused_clearly() -> None:
    class Connection:
        async def gather_candidates(self) -> None:
            pass  # gathers some other way

    changed = types.ModuleType("aioice.ice")
    changed.Connection = Connection  # type: ignore[attr-defined]
    with pytest.raises(ContractError) as refused:
        patch(changed)
    message = str(refused.value)
    assert "aioice.ice.get_host_addresses is gone" in message
    assert "Connection.gather_candidates no longer looks up get_host_addresses" in message
    assert "Update tests/support/loopback_ice" in message


def addresses_in_a_child(environment: dict[str, str]) -> list[str]:
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, aioice.ice; print(json.dumps(aioice.ice.get_host_addresses(True, True)))",
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    addresses: list[str] = json.loads(shown.stdout)
    return addresses


def test_child_processes_are_pinned_through_their_environment() -> None:
    # The suite exports the variables (tests/support/loopback_ice/plugin.py).
    assert addresses_in_a_child(dict(os.environ)) == [LOOPBACK]
    # The switch is the variable: without it a child gathers as users do.
    unpinned = {name: value for name, value in os.environ.items() if name != ENABLE}
    assert LOOPBACK not in addresses_in_a_child(unpinned)


@pytest_twisted.ensureDeferred
async def test_two_ice_agents_connect_over_loopback_and_say_so(ice_log: IceLog) -> None:
    async def connect() -> None:
        controlling = ice.Connection(ice_controlling=True)
        controlled = ice.Connection(ice_controlling=False)
        try:
            for agent in (controlling, controlled):
                await agent.gather_candidates()
            for agent, other in ((controlling, controlled), (controlled, controlling)):
                for candidate in other.local_candidates:
                    await agent.add_remote_candidate(candidate)
                await agent.add_remote_candidate(None)
                agent.remote_username = other.local_username
                agent.remote_password = other.local_password
            await asyncio.gather(controlling.connect(), controlled.connect())
            await controlling.send(b"over loopback")
            assert await controlled.recv() == b"over loopback"
        finally:
            await controlling.close()
            await controlled.close()

    await with_timeout(aio(connect()), 20)
    nominated = ice_log.assert_loopback(at_least=2)
    assert {entry["pid"] for entry in nominated} == {os.getpid()}
    gathered = [entry for entry in ice_log.entries() if entry["event"] == "gathered"]
    assert [entry["address"][0] for entry in gathered] == [LOOPBACK, LOOPBACK]
