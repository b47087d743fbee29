"""Configuration from a file and the environment, through ``twistd
webrtc-signal`` as a user runs it: --print-config's TOML with each value's
source, a server configured by nothing but its environment and a file, and
every mistake as one line on stderr with exit status 1."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import pytest_twisted

from ..support.http import http_get
from ..support.processes import spawn
from ..support.twistd import parse_as_twistd
from ..support.wsclient import connect

TWISTD = str(Path(sys.executable).parent / "twistd")
LOOPBACK = ("--port", "tcp:0:interface=127.0.0.1")
JOIN, ID = 0, 1
# "key = value  # source" as --print-config writes each line.
SOURCE = re.compile(r"^(?P<key>[a-z0-9-]+) = .*  # (?P<source>[^#]+)$")


def twistd(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``twistd -n webrtc-signal ARGV`` to its end, with ``env`` added to
    this environment (whose WEBRTC_SIGNAL_* options are left out)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WEBRTC_SIGNAL_")}
    return subprocess.run(
        [TWISTD, "-n", "--pidfile=", "webrtc-signal", *argv],
        env={**environment, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def sources(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        match = SOURCE.match(line)
        if match is not None:
            found[match["key"]] = match["source"]
    return found


def test_print_config_shows_the_precedence_and_each_source(tmp_path: Path) -> None:
    secret = tmp_path / "turn-secret"
    secret.write_text("a-turn-secret\n")
    config = tmp_path / "webrtc-signal.toml"
    config.write_text(
        "max-peers = 100\n"
        "max-lobbies = 10\n"
        "seal-timeout = 30\n"
        'turn = ["turn:turn.example:3478", "turns:turn.example:5349"]\n'
        f'turn-secret-file = "{secret}"\n'
        "no-demo = true\n"
    )
    done = twistd(
        *LOOPBACK, "--config", str(config), "--max-peers", "300", "--print-config",
        env={"WEBRTC_SIGNAL_MAX_PEERS": "200", "WEBRTC_SIGNAL_MAX_LOBBIES": "20",
             "WEBRTC_SIGNAL_ALLOWED_ORIGIN": "https://a.example,https://b.example"},
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    values = tomllib.loads(done.stdout)
    assert values["max-peers"] == 300
    assert values["max-lobbies"] == 20
    assert values["seal-timeout"] == 30.0
    assert values["join-timeout"] == 1.0
    assert values["allowed-origin"] == ["https://a.example", "https://b.example"]
    assert values["turn"] == ["turn:turn.example:3478", "turns:turn.example:5349"]
    assert values["turn-secret-file"] == str(secret)
    assert values["no-demo"] is True
    assert "a-turn-secret" not in done.stdout
    by_key = sources(done.stdout)
    assert set(by_key) == set(values)
    assert by_key["max-peers"] == "command line"
    assert by_key["port"] == "command line"
    assert by_key["max-lobbies"] == "environment: WEBRTC_SIGNAL_MAX_LOBBIES"
    assert by_key["allowed-origin"] == "environment: WEBRTC_SIGNAL_ALLOWED_ORIGIN"
    for key in ("seal-timeout", "turn", "turn-secret-file", "no-demo"):
        assert by_key[key] == f"file: {config}"
    assert by_key["join-timeout"] == "default"
    # What it printed is a configuration file that makes the same server.
    printed = tmp_path / "printed.toml"
    printed.write_text(done.stdout)
    again = twistd("--config", str(printed), "--print-config")
    assert again.returncode == 0, again.stderr
    assert tomllib.loads(again.stdout) == values
    assert set(sources(again.stdout).values()) == {f"file: {printed}"}


@pytest_twisted.ensureDeferred
async def test_a_server_configured_by_its_environment_and_a_file(tmp_path: Path) -> None:
    config = tmp_path / "webrtc-signal.toml"
    config.write_text('port = "tcp:9080"\nno-demo = true\nmax-lobby-size = 5\n')
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WEBRTC_SIGNAL_")}
    process = spawn(
        [TWISTD, "-n", "--pidfile=", "webrtc-signal"],
        env={
            **environment,
            "WEBRTC_SIGNAL_CONFIG": str(config),
            # The environment wins over the file.
            "WEBRTC_SIGNAL_PORT": "tcp:0:interface=127.0.0.1",
            "WEBRTC_SIGNAL_MAX_LOBBY_SIZE": "1",
        },
        inherit_env=False,
    )
    try:
        listening = await process.wait_for_match(
            r"webrtc-signal \S+ listening on 127\.0\.0\.1 port (\d+)"
        )
        port = int(listening.group(1))
        # no-demo from the file: a plain GET gets 426, not the demo.
        status, _, _ = await http_get(port, "/")
        assert status == 426
        host = await connect(f"ws://127.0.0.1:{port}")
        host.send(JOIN, 0, "")
        await host.expect(ID, 1, "true")
        lobby = (await host.expect(JOIN, 0))["data"]
        guest = await connect(f"ws://127.0.0.1:{port}")
        guest.send(JOIN, 0, lobby)
        assert await guest.wait_closed() == (4000, "Lobby is full")
    finally:
        if not process.ended.called:
            process.transport.signalProcess(signal.SIGTERM)
    assert await process.finished(15) == f"signal {signal.SIGTERM}", process.output


@pytest.mark.parametrize(
    ("argv", "env", "file", "line"),
    [
        ([], {}, "max-peer = 5\n", "unknown key max-peer in {config} (did you mean max-peers?)"),
        ([], {}, 'max-peers = "1024"\n', "max-peers in {config}: not an integer"),
        ([], {}, "max-peers = 0\n",
         "max-peers in {config}: must be a whole number of at least 1, not 0"),
        ([], {}, "seal-timeout = [1]\n", "seal-timeout in {config}: not a number"),
        ([], {}, "max-peers =\n",
         "{config} is not valid TOML: Invalid value (at line 1, column 12)"),
        ([], {"WEBRTC_SIGNAL_MAX_PEER": "5"}, None,
         "unknown variable WEBRTC_SIGNAL_MAX_PEER (did you mean WEBRTC_SIGNAL_MAX_PEERS?)"),
        ([], {"WEBRTC_SIGNAL_MAX_PEERS": "lots"}, None,
         "WEBRTC_SIGNAL_MAX_PEERS in the environment: must be a whole number, not 'lots'"),
        ([], {"WEBRTC_SIGNAL_CONFIG": "/nonexistent/webrtc-signal.toml"}, None,
         "WEBRTC_SIGNAL_CONFIG in the environment: '/nonexistent/webrtc-signal.toml' cannot be "
         "read: No such file or directory"),
        (["--admin", "tcp:0:interface=127.0.0.1"], {}, None, "--admin needs --admin-token-file"),
        (["--admin-token-file", "{token}"], {}, None, "--admin-token-file needs --admin"),
        (["--admin", "tcp:0:interface=127.0.0.1", "--admin-token-file", "/nonexistent/token"],
         {}, None,
         "--admin-token-file '/nonexistent/token' cannot be read: No such file or directory"),
        (["--admin", "tcp:0:interface=127.0.0.1"],
         {"WEBRTC_SIGNAL_ADMIN_TOKEN_FILE": "{empty}"}, None,
         "WEBRTC_SIGNAL_ADMIN_TOKEN_FILE in the environment: '{empty}' is empty"),
        (["--port", "tcp:9080", "--admin", "tcp:9080:interface=127.0.0.1",
          "--admin-token-file", "{token}"], {}, None,
         "--admin 'tcp:9080:interface=127.0.0.1' is the signaling port (--port 'tcp:9080'); "
         "give the admin API a port of its own"),
        (["--metrics", "tcp:9100", "--admin", "tcp:9100", "--admin-token-file", "{token}"],
         {}, None,
         "--admin 'tcp:9100' is the metrics port (--metrics 'tcp:9100'); give the admin API a "
         "port of its own"),
        (["--admin", "9101", "--admin-token-file", "{token}"], {}, None,
         "--admin '9101' is not usable: Unknown endpoint type: '9101' (try --admin tcp:9101)"),
        (["--webhook", "http://127.0.0.1:1/hook"], {}, None,
         "--webhook needs --webhook-secret-file"),
        (["--webhook-secret-file", "{token}"], {}, None, "--webhook-secret-file needs --webhook"),
        (["--webhook", "ftp://example.com/hook", "--webhook-secret-file", "{token}"], {}, None,
         "--webhook 'ftp://example.com/hook' is not an http:// or https:// URL"),
        ([], {}, 'webhook = ["http://127.0.0.1:1/hook"]\nwebhook-secret-file = "{token}"\n'
         "webhook-queue = 0\n",
         "webhook-queue in {config}: must be a whole number from 1 to 1000000, not 0"),
        (["--auth-url", "example.com/auth"], {}, None,
         "--auth-url 'example.com/auth' is not an http:// or https:// URL"),
        ([], {"WEBRTC_SIGNAL_AUTH_TIMEOUT": "0"}, None,
         "WEBRTC_SIGNAL_AUTH_TIMEOUT in the environment: must be a number of seconds more than "
         "0, not 0.0"),
        ([], {"WEBRTC_SIGNAL_PRINT_CONFIG": "true"}, None,
         "WEBRTC_SIGNAL_PRINT_CONFIG in the environment: it can only be given as --print-config"),
    ],
)  # fmt: skip
def test_every_mistake_is_one_line_on_stderr(
    tmp_path: Path, argv: list[str], env: dict[str, str], file: str | None, line: str
) -> None:
    token = tmp_path / "token"
    token.write_text("a-secret-long-enough-for-anything-0123456789\n")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    config = tmp_path / "webrtc-signal.toml"
    names = {"token": str(token), "empty": str(empty), "config": str(config)}
    if file is not None:
        config.write_text(file.format(**names))
        argv = [*argv, "--config", str(config)]
    # Parsed as twistd parses it (the real command: the tests around this one).
    done = parse_as_twistd(
        [*LOOPBACK, *(part.format(**names) for part in argv)],
        env={key: value.format(**names) for key, value in env.items()},
    )
    assert done == (1, f"webrtc-signal: {line.format(**names)}\n")


def test_our_test_switches_and_the_clients_url_are_not_options() -> None:
    done = twistd(
        *LOOPBACK,
        "--print-config",
        env={"WEBRTC_SIGNAL_URL": "ws://localhost:9080", "WEBRTC_SIGNAL_REQUIRE_BROWSER": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "ws://localhost:9080" not in done.stdout


# -- the documentation's configuration ------------------------------------------------------

ROOT = Path(__file__).parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEPLOYMENT = [ROOT / "Dockerfile", *sorted((ROOT / "deploy").iterdir())]
VARIABLE = re.compile(r"\bWEBRTC_SIGNAL_[A-Z0-9_]*[A-Z0-9]\b")


def toml_blocks() -> list[tuple[str, str]]:
    """Each ```toml block of the documentation: (where, its text)."""
    blocks = []
    for document in DOCUMENTS:
        lines = document.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip() == "```toml":
                end = lines.index("```", number + 1)
                blocks.append((f"{document.name}:{number + 1}", "\n".join(lines[number + 1 : end])))
    return blocks


def test_the_documented_configuration_files_hold_options_only() -> None:
    from webrtc_signal.app import options
    from webrtc_signal.server.option_sources import from_file

    items = [item for _, item in options()]
    blocks = toml_blocks()
    assert blocks
    for where, text in blocks:
        # Every key an option, every value of its kind (or a UsageError).
        assert from_file(items, tomllib.loads(text), where), where


def test_every_variable_named_in_the_docs_and_deploy_files_is_an_option_or_not_ours() -> None:
    from webrtc_signal.app import options
    from webrtc_signal.server.option_sources import environment_name, ours

    known = {environment_name(item.option) for _, item in options()}
    named = set()
    for path in [*DOCUMENTS, *DEPLOYMENT]:
        text = path.read_text()
        # A misspelt one shown with the error it gets is named on purpose.
        shown = set(re.findall(r"unknown variable (\w+)", text))
        named |= {(path.name, name) for name in VARIABLE.findall(text) if name not in shown}
    assert {name for _, name in named} & known
    wrong = [(where, name) for where, name in named if ours(name) and name not in known]
    assert wrong == []


def documented_environment_mistakes() -> list[tuple[dict[str, str], list[str], str]]:
    """docs/running.md's ``$ WEBRTC_SIGNAL_X=... twistd ...`` lines followed by
    the line they print: (the variables, twistd's arguments, the line)."""
    from ..test_docs_links import lines_of

    lines = [line for _, line, code in lines_of(ROOT / "docs" / "running.md") if code]
    found = []
    for command, printed in itertools.pairwise(lines):
        if command.startswith("$ WEBRTC_SIGNAL_") and printed.startswith("webrtc-signal: "):
            words = command[2:].split()
            variables = dict(word.split("=", 1) for word in words if "=" in word)
            argv = words[words.index("webrtc-signal") + 1 :]
            found.append((variables, argv, printed))
    return found


def test_the_documented_environment_mistakes_are_what_twistd_prints() -> None:
    """The first through the real command, the others parsed as twistd
    parses them (one Python start-up, not one each)."""
    mistakes = documented_environment_mistakes()
    assert len(mistakes) >= 2
    (variables, argv, printed), *others = mistakes
    done = twistd(*LOOPBACK, *argv, env=variables)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", printed + "\n")
    for variables, argv, printed in others:
        assert parse_as_twistd([*LOOPBACK, *argv], env=variables) == (1, printed + "\n")
