"""The private parts of Autobahn and Twisted the fast path relies on (see
`webrtc_signal.server._internals`) exist in the installed versions. On a
version that lacks one, this fails naming it, before anything else misbehaves."""

from __future__ import annotations

import inspect
import pprint
from typing import Any

import autobahn
import pytest
import pytest_twisted
from autobahn.twisted import websocket as autobahn_twisted
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet import abstract, tcp
from twisted.protocols.tls import TLSMemoryBIOProtocol

import twisted
from webrtc_signal.server import _internals

from ..conftest import RunningServer

VERSIONS = f"autobahn {autobahn.__version__}, Twisted {twisted.__version__}"


def missing(owner: object, names: tuple[str, ...] | list[str]) -> list[str]:
    return [name for name in names if not hasattr(owner, name)]


def test_autobahn_protocol_has_the_methods_and_constants_we_use() -> None:
    absent = missing(WebSocketServerProtocol, _internals.AUTOBAHN_CLASS_ATTRIBUTES)
    assert not absent, f"{VERSIONS}: WebSocketServerProtocol lacks {absent}"


def test_autobahn_factory_has_the_attributes_we_use() -> None:
    factory = WebSocketServerFactory()
    absent = missing(factory, _internals.AUTOBAHN_FACTORY_ATTRIBUTES)
    assert not absent, f"{VERSIONS}: WebSocketServerFactory lacks {absent}"


def test_autobahn_modules_have_the_names_we_make_lazy() -> None:
    for module, names in _internals.AUTOBAHN_MODULE_ATTRIBUTES.items():
        absent = missing(module, names)
        assert not absent, f"{VERSIONS}: {module.__name__} lacks {absent}"


@pytest_twisted.ensureDeferred
async def test_an_open_autobahn_connection_has_the_attributes_we_read(
    server: RunningServer,
) -> None:
    await server.create()
    (connection,) = server.engine.connections
    absent = missing(connection, _internals.AUTOBAHN_INSTANCE_ATTRIBUTES)
    assert not absent, f"{VERSIONS}: an open WebSocketServerProtocol lacks {absent}"
    assert _internals.parser_idle(connection)
    assert isinstance(connection.transport, tcp.Connection)
    absent = missing(connection.transport, _internals.TWISTED_TCP_ATTRIBUTES)
    assert not absent, f"{VERSIONS}: twisted.internet.tcp.Connection lacks {absent}"


def test_twisted_buffers_are_where_we_read_them() -> None:
    # Instance attributes, set up by the classes' own code.
    kept = inspect.getsource(abstract.FileDescriptor)
    for name in ("dataBuffer", "offset", "_tempDataLen"):
        assert f"self.{name}" in kept, f"{VERSIONS}: FileDescriptor no longer keeps {name}"
    source = inspect.getsource(TLSMemoryBIOProtocol)
    assert f"self.{_internals.TWISTED_TLS_SEND_BUFFER}" in source, (
        f"{VERSIONS}: TLSMemoryBIOProtocol no longer keeps {_internals.TWISTED_TLS_SEND_BUFFER}"
    )


@pytest.mark.parametrize("module", [autobahn_protocol, autobahn_twisted])
def test_lazy_formatting_is_scoped_to_our_calls(module: Any) -> None:
    before = {name: getattr(module, name) for name in ("hltype", "hlval")}
    with _internals.lazy_debug_formatting():
        assert module.hltype is not before["hltype"]
    assert {name: getattr(module, name) for name in before} == before


def test_lazy_formatting_gives_the_same_text_when_read() -> None:
    value = {"b": [1, 2, 3], "a": "x" * 90}
    with _internals.lazy_debug_formatting():
        lazy = autobahn_protocol.pformat(value)
    assert str(lazy) == pprint.pformat(value)
    assert f"{lazy}" == pprint.pformat(value)


@pytest_twisted.ensureDeferred
async def test_importing_and_serving_leave_autobahn_s_pformat_alone(
    server: RunningServer,
) -> None:
    """A game server that embeds us and uses Autobahn elsewhere must not
    inherit our shortcuts: after import, and with connections coming and
    going, Autobahn's module names are its own."""
    import webrtc_signal
    import webrtc_signal.server.websocket  # noqa: F401

    host, lobby = await server.create()
    guest, _ = await server.join(lobby)
    guest.dropConnection(abort=True)
    assert autobahn_protocol.pformat is pprint.pformat
    from autobahn import util

    assert autobahn_protocol.hltype is util.hltype
    assert autobahn_twisted.hlval is util.hlval
