"""A real Godot 3 engine quick-matches: Debian's headless ``godot3-server``
runs a tiny GDScript project, written here into a temporary directory, whose
`WebSocketClient` speaks the Godot 3 line protocol to a /match/<pool> URL
and sends ``J: `` with no lobby name, as the unchanged demo client does when
its Room field is empty. Two engines are matched into one lobby, sealed when
it fills, and closed with 1000 ``Seal complete`` at the seal timeout.

Skipped without godot3-server (``make godot`` installs it as root); CI sets
WEBRTC_SIGNAL_REQUIRE_GODOT=1, which makes that a failure.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from webrtc_signal import SignalingConfig

from ..conftest import ServerMaker
from ..support.processes import Spawned, require_program, spawn

# The engine quits on its own after this many seconds, whatever happens.
GIVE_UP_AFTER = 60
WAIT = 45.0

PROJECT = """config_version=4

[application]
run/main_scene="res://main.tscn"
"""
SCENE = """[gd_scene load_steps=2 format=2]

[ext_resource path="res://main.gd" type="Script" id=1]

[node name="Main" type="Node"]
script = ExtResource( 1 )
"""
# The line protocol as Godot 3's demo client speaks it: "J: <lobby>\n" to
# join ("" asks the server for a lobby), then the server's I:, N:, J: and S:
# lines. Each line received is printed with its newline as "|".
CLIENT = """extends Node

var client = WebSocketClient.new()
var sealed = false

func _ready():
	client.connect("connection_established", self, "_connected")
	client.connect("connection_error", self, "_failed")
	client.connect("connection_closed", self, "_closed")
	client.connect("server_close_request", self, "_close_request")
	client.connect("data_received", self, "_received")
	var error = client.connect_to_url(OS.get_environment("MATCH_URL"))
	if error != OK:
		print("GODOT FAILED connect_to_url ", error)
		get_tree().quit(2)
		return
	var give_up = float(OS.get_environment("GIVE_UP_AFTER"))
	get_tree().create_timer(give_up).connect("timeout", self, "_give_up")

func _process(_delta):
	client.poll()

func _connected(_protocol):
	print("GODOT OPEN")
	var peer = client.get_peer(1)
	peer.set_write_mode(WebSocketPeer.WRITE_MODE_TEXT)
	peer.put_packet("J: \\n".to_utf8())

func _received():
	var text = client.get_peer(1).get_packet().get_string_from_utf8()
	print("GODOT GOT ", text.replace("\\n", "|"))
	if text.begins_with("S: "):
		sealed = true

func _close_request(code, reason):
	print("GODOT CLOSE ", code, " ", reason)

func _closed(was_clean):
	print("GODOT CLOSED ", was_clean)
	get_tree().quit(0 if sealed else 1)

func _failed():
	print("GODOT FAILED to connect")
	get_tree().quit(2)

func _give_up():
	print("GODOT GAVE UP")
	get_tree().quit(3)
"""


def write_project(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "project.godot").write_text(PROJECT)
    (directory / "main.tscn").write_text(SCENE)
    (directory / "main.gd").write_text(CLIENT)
    return directory


async def printed(engine: Spawned, pattern: str) -> re.Match[str]:
    """The first match of ``pattern`` in what ``engine`` printed, waiting for
    it a bounded while (the whole output is searched: a line may arrive in
    pieces)."""
    for _ in range(int(WAIT / 0.05)):
        found = re.search(pattern, engine.output)
        if found is not None:
            return found
        if engine.ended.called:
            break
        await deferLater(reactor, 0.05)
    raise AssertionError(f"no {pattern!r} from godot3-server; it printed:\n{engine.output}")


@pytest_twisted.ensureDeferred
async def test_two_godot_3_engines_are_matched_into_one_lobby_and_sealed(
    make_server: ServerMaker, tmp_path: Path
) -> None:
    godot = require_program(
        "godot3-server",
        "make godot, or apt-get install godot3-server",
        "WEBRTC_SIGNAL_REQUIRE_GODOT",
        "the Godot 3 engine test",
    )
    server = await make_server(SignalingConfig(seal_timeout=5.0))
    project = write_project(tmp_path / "project")
    environment = {
        "MATCH_URL": f"{server.url}/match/godot3?size=2",
        "GIVE_UP_AFTER": str(GIVE_UP_AFTER),
        # Godot writes its settings and logs below the home directory.
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "home" / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "home" / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "home" / "cache"),
    }
    engines: list[Spawned] = []
    try:
        first = spawn([godot, "--path", str(project)], env=environment)
        engines.append(first)
        # One after the other: the first creates the lobby, the second is matched into it.
        await printed(first, r"GODOT GOT J: ([A-Za-z0-9]{16})\|")
        second = spawn([godot, "--path", str(project)], env=environment)
        engines.append(second)
        for engine in engines:
            await printed(engine, r"GODOT GOT S: \|")
        lobby = (await printed(first, r"GODOT GOT J: ([A-Za-z0-9]{16})\|")).group(1)
        assert (await printed(second, r"GODOT GOT J: ([A-Za-z0-9]{16})\|")).group(1) == lobby
        assert "GODOT GOT I: 1|" in first.output
        second_id = (await printed(second, r"GODOT GOT I: (\d+)\|")).group(1)
        assert int(second_id) > 1
        # Each is told of the other before the seal.
        assert f"GODOT GOT N: {second_id}|" in first.output
        assert "GODOT GOT N: 1|" in second.output
        info = server.service.lobby(lobby)
        assert info is not None and info.sealed and info.pool == "godot3"
        assert [member.framing for member in info.members] == ["lines", "lines"]
        server.clock.advance(5.0)
        for engine in engines:
            await printed(engine, r"GODOT CLOSE 1000 Seal complete")
            assert await engine.finished(WAIT) == 0, engine.output
    finally:
        for engine in engines:
            if not engine.ended.called:
                engine.transport.signalProcess("KILL")
