"""Pins aioice (aiortc's ICE agent) to 127.0.0.1, for the tests only.

The suite talks to loopback addresses only. aioice gathers a host candidate
on every address of every interface except loopback
(``aioice.ice.get_host_addresses`` skips 127.0.0.1 and ::1), so two aiortc
peers on one machine would pair on its eth0 address. Here that function is
replaced by one that returns ``["127.0.0.1"]``: `Connection.gather_candidates`
looks it up by name each time it gathers, so every host candidate, and every
socket aioice binds for one, is on 127.0.0.1. The product code is untouched:
real users keep their real interfaces.

Each ICE agent also records the candidates it gathered, the remote
candidates it was given (it sends checks to each), and the pairs it
nominated, as JSON lines in the file named by
``WEBRTC_SIGNAL_TEST_ICE_LOG``, the tests' proof that every pair was on
127.0.0.1, from whichever process ran aiortc.

This file is imported under two names: as ``webrtc_signal_loopback_ice`` by
the ``sitecustomize`` beside it, in child processes whose PYTHONPATH starts
with this directory, and as part of ``tests.support.loopback_ice`` in the
test process. Installing is idempotent across both.
"""

from __future__ import annotations

# Only os and sys at start: every child process the suite starts (some 200 a
# run) imports this module, most never import aioice, and importlib.abc,
# importlib.metadata and inspect together cost each of them about 70 ms.
# What the patching needs is imported when aioice.ice is.
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import importlib.machinery
    import types
    from collections.abc import Sequence

ENABLE = "WEBRTC_SIGNAL_TEST_LOOPBACK_ICE"  # "1": pin every aioice in this process
LOG = "WEBRTC_SIGNAL_TEST_ICE_LOG"  # where agents record what they gathered and nominated
LOOPBACK = "127.0.0.1"
_MARK = "_webrtc_signal_loopback_only"


class ContractError(RuntimeError):
    """The installed aioice no longer works the way the pinning relies on."""


def loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """Stands in for aioice.ice.get_host_addresses: loopback IPv4 only."""
    return [LOOPBACK] if use_ipv4 else []


def contract_problems(ice: types.ModuleType) -> list[str]:
    """What, in this aioice.ice, the pinning cannot rely on (nothing if all is
    well). Looks beneath the pinning's own wrappers if it is in place."""
    import inspect

    problems = []
    original = getattr(ice, "get_host_addresses", None)
    if callable(original):
        original = inspect.unwrap(original)
    if not callable(original):
        problems.append("aioice.ice.get_host_addresses is gone")
    elif list(inspect.signature(original).parameters) != ["use_ipv4", "use_ipv6"]:
        problems.append(
            f"aioice.ice.get_host_addresses takes {inspect.signature(original)}, "
            "not (use_ipv4, use_ipv6)"
        )
    connection = getattr(ice, "Connection", None)
    gather = getattr(connection, "gather_candidates", None)
    if gather is not None:
        gather = inspect.unwrap(gather)
    if gather is None or "get_host_addresses" not in gather.__code__.co_names:
        problems.append(
            "Connection.gather_candidates no longer looks up get_host_addresses, "
            "so replacing it would not change the candidates"
        )
    connect = getattr(connection, "connect", None)
    if connect is None or not inspect.iscoroutinefunction(inspect.unwrap(connect)):
        problems.append("Connection.connect is not a coroutine function any more")
    pair = getattr(ice, "CandidatePair", None)
    for name in ("local_addr", "remote_addr", "local_candidate"):
        if not isinstance(getattr(pair, name, None), property):
            problems.append(f"CandidatePair.{name} is gone")
    init = getattr(pair, "__init__", None)
    if "remote_candidate" not in getattr(getattr(init, "__code__", None), "co_names", ()):
        problems.append("CandidatePair no longer sets remote_candidate")
    return problems


def patch(ice: types.ModuleType) -> None:
    """Pin this aioice.ice module (once) or say clearly why it cannot be."""
    if getattr(getattr(ice, "get_host_addresses", None), _MARK, False):
        return
    import functools
    import importlib.metadata

    problems = contract_problems(ice)
    if problems:
        try:
            version = importlib.metadata.version("aioice")
        except importlib.metadata.PackageNotFoundError:
            version = "(version unknown)"
        raise ContractError(
            f"the tests pin aiortc's ICE to {LOOPBACK} by replacing "
            f"aioice.ice.get_host_addresses, but the installed aioice {version} "
            f"does not fit: {'; '.join(problems)}. Update tests/support/loopback_ice."
        )
    original = ice.get_host_addresses

    @functools.wraps(original)
    def pinned(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return loopback_host_addresses(use_ipv4, use_ipv6)

    setattr(pinned, _MARK, True)  # pinned.__wrapped__ is aioice's own
    ice.get_host_addresses = pinned
    connection = ice.Connection
    gather = connection.gather_candidates
    connect = connection.connect

    @functools.wraps(gather)
    async def gather_candidates(self: Any) -> None:
        await gather(self)
        for candidate in self.local_candidates:
            record(
                event="gathered",
                type=candidate.type,
                address=[candidate.host, candidate.port],
            )

    @functools.wraps(connect)
    async def connect_and_record(self: Any) -> None:
        try:
            await connect(self)
        finally:
            # Where it sent checks, connected or not: every remote candidate.
            for candidate in self.remote_candidates:
                address = [candidate.host, candidate.port]
                record(event="remote", type=candidate.type, address=address)
        nominated = getattr(self, "_nominated", None)
        if not isinstance(nominated, dict) or not nominated:
            record(event="error", problem="cannot see the nominated pair (Connection._nominated)")
            return
        for pair in nominated.values():
            record(
                event="nominated",
                local=list(pair.local_addr),
                remote=list(pair.remote_addr),
                types=[pair.local_candidate.type, pair.remote_candidate.type],
            )

    connection.gather_candidates = gather_candidates
    connection.connect = connect_and_record


def record(**entry: Any) -> None:
    path = os.environ.get(LOG)
    if not path:
        return
    import json

    line = json.dumps({"pid": os.getpid(), **entry}) + "\n"
    # One short append per line: lines from several processes do not mix.
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


# Duck-typed finder and loader (the import system asks for the methods only):
# subclassing importlib.abc's would import it at start.
class _PatchAfterLoading:
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)
        patch(module)


class _PinOnImport:
    """Patches aioice.ice when it is first imported: importing aiortc up front
    in every child process would cost a fifth of a second each."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "aioice.ice":
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchAfterLoading(spec.loader)
        return spec


def install() -> None:
    """Pin aioice in this process: now if it is loaded, else when it is."""
    loaded = sys.modules.get("aioice.ice")
    if loaded is not None:
        patch(loaded)
    elif not any(getattr(finder, _MARK, False) for finder in sys.meta_path):
        # Marked rather than checked by class: this module may be loaded
        # under both its names in one process.
        finder = _PinOnImport()
        setattr(finder, _MARK, True)
        sys.meta_path.insert(0, finder)
