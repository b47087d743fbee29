"""``--turn`` without ``--token-secret-file`` hands TURN credentials to
whoever asks ``/ice-servers``: a real twistd server says so in one warning
line at start, and how to close it; with token auth it says nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted

from webrtc_signal.app import OPEN_TURN_WARNING

from ..support.http import http_get
from ..support.processes import spawn
from .test_usage import TWISTD

TURN = "turn:127.0.0.1:3478"


def secret(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text("a-secret-of-at-least-thirty-two-bytes-long\n")
    return str(path)


@pytest.mark.parametrize(
    ("token_auth", "origins"),
    [(False, []), (False, ["--allowed-origin", "https://game.example.com"]), (True, [])],
    ids=["open", "allowed-origin", "token auth"],
)
@pytest_twisted.ensureDeferred
async def test_open_turn_credentials_are_warned_about_at_start(
    tmp_path: Path, token_auth: bool, origins: list[str]
) -> None:
    argv = [
        TWISTD, "-n", "--pidfile=", "webrtc-signal", "--port", "tcp:0:interface=127.0.0.1",
        "--turn", TURN, "--turn-secret-file", secret(tmp_path, "turn"),
        *origins,
    ]  # fmt: skip
    if token_auth:
        argv += ["--token-secret-file", secret(tmp_path, "token")]
    process = spawn(argv, path=str(tmp_path))
    try:
        listening = await process.wait_for_match(r"listening on 127\.0\.0\.1 port (\d+)")
        port = int(listening.group(1))
        # What the warning is about: credentials for anyone (any origin
        # included), or for a token only.
        status, _, body = await http_get(
            port, "/ice-servers", "Origin: https://evil.example.com\r\n"
        )
        assert status == (401 if token_auth else 200), body
    finally:
        process.transport.signalProcess("TERM")
    await process.finished(15)
    warnings = [line for line in process.output.splitlines() if OPEN_TURN_WARNING in line]
    if token_auth:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert "[webrtc_signal#warn]" in warnings[0]


def test_the_warning_says_who_gets_what_and_how_to_close_it() -> None:
    assert "anyone who can reach this port gets TURN credentials" in OPEN_TURN_WARNING
    assert "--token-secret-file" in OPEN_TURN_WARNING
    # The truth about the origin allow-list: /ice-servers does not check it.
    assert "--allowed-origin does not close it" in OPEN_TURN_WARNING
