"""Options from the command line, the environment and a TOML file, parsed
in-process: precedence, where each value came from, every kind read from
text and from TOML, the TOML --print-config writes, and each mistake as one
line naming where it was made."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.python import usage

from webrtc_signal.app import Options, options
from webrtc_signal.protocol.settings import Kind, Source, parse_native
from webrtc_signal.server.option_sources import (
    MAX_FILE_BYTES,
    Given,
    configuration_text,
    environment_name,
    from_environment,
    ours,
    resolve,
    toml_string,
    toml_value,
)

LOOPBACK = ["--port", "tcp:0:interface=127.0.0.1"]
ITEMS = [item for _, item in options()]
BY_OPTION = {item.option: item for item in ITEMS}


def parse(*argv: str, environ: dict[str, str] | None = None, config: str | None = None) -> Options:
    parsed = Options(environ=environ or {})
    parsed.parseOptions([*LOOPBACK, *(["--config", config] if config else []), *argv])
    return parsed


def problem(*argv: str, environ: dict[str, str] | None = None, config: str | None = None) -> str:
    with pytest.raises(usage.UsageError) as raised:
        parse(*argv, environ=environ, config=config)
    return str(raised.value)


def write(tmp_path: Path, text: str, name: str = "signal.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# -- precedence ----------------------------------------------------------------------------


def test_the_command_line_wins_then_the_environment_then_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "max-peers = 100\nmax-lobbies = 10\nseal-timeout = 30\nping-interval = 5.5\n",
    )
    parsed = parse(
        "--max-peers",
        "300",
        environ={"WEBRTC_SIGNAL_MAX_PEERS": "200", "WEBRTC_SIGNAL_MAX_LOBBIES": "20"},
        config=path,
    )
    config = parsed["config"]
    assert (config.max_peers, config.max_lobbies, config.seal_timeout) == (300, 20, 30.0)
    assert (config.ping_interval, config.join_timeout) == (5.5, 1.0)
    assert parsed.given["max-peers"] == Given(300, Source.COMMAND_LINE)
    assert parsed.given["max-lobbies"] == Given(20, Source.ENVIRONMENT, "WEBRTC_SIGNAL_MAX_LOBBIES")
    assert parsed.given["seal-timeout"] == Given(30.0, Source.FILE, path)
    assert parsed.given["join-timeout"] == Given(1.0, Source.DEFAULT)


def test_the_file_can_be_named_in_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "max-peers = 7\n")
    parsed = parse(environ={"WEBRTC_SIGNAL_CONFIG": path})
    assert parsed["config"].max_peers == 7
    assert parsed.given["config"] == Given(path, Source.ENVIRONMENT, "WEBRTC_SIGNAL_CONFIG")


def test_the_command_lines_file_wins_over_the_environments(tmp_path: Path) -> None:
    chosen = write(tmp_path, "max-peers = 7\n", "chosen.toml")
    other = write(tmp_path, "max-peers = 8\n", "other.toml")
    assert parse(environ={"WEBRTC_SIGNAL_CONFIG": other}, config=chosen)["config"].max_peers == 7


def test_a_list_from_a_higher_source_replaces_the_lower_ones(tmp_path: Path) -> None:
    path = write(tmp_path, 'stun = ["stun:file:3478"]\nturn = ["turn:file:3478"]\n')
    secret = write(tmp_path, "turn-secret\n", "secret")
    parsed = parse(
        "--stun",
        "stun:cli:3478",
        "--turn-secret-file",
        secret,
        environ={"WEBRTC_SIGNAL_STUN": "stun:env:3478", "WEBRTC_SIGNAL_TURN": "turn:a, turn:b"},
        config=path,
    )
    assert parsed["config"].stun_urls == ("stun:cli:3478",)
    assert parsed["config"].turn_urls == ("turn:a", "turn:b")


@pytest.mark.parametrize(
    ("environ", "text", "serve_demo"),
    [
        ({}, "no-demo = true\n", False),
        ({}, "no-demo = false\n", True),
        ({"WEBRTC_SIGNAL_NO_DEMO": "true"}, "", False),
        ({"WEBRTC_SIGNAL_NO_DEMO": "0"}, "no-demo = true\n", True),
        ({"WEBRTC_SIGNAL_NO_DEMO": ""}, "no-demo = true\n", True),
    ],
)
def test_the_inverted_no_demo_flag_works_from_the_environment_and_the_file(
    tmp_path: Path, environ: dict[str, str], text: str, serve_demo: bool
) -> None:
    path = write(tmp_path, text)
    assert parse(environ=environ, config=path)["config"].serve_demo is serve_demo


def test_no_demo_on_the_command_line_wins_over_a_false_below(tmp_path: Path) -> None:
    path = write(tmp_path, "no-demo = false\n")
    parsed = parse("--no-demo", environ={"WEBRTC_SIGNAL_NO_DEMO": "no"}, config=path)
    assert parsed["config"].serve_demo is False


def test_secret_files_are_paths_in_every_source(tmp_path: Path) -> None:
    token_secret = write(tmp_path, "  a-token-secret-of-thirty-two-bytes!\n", "token")
    turn_secret = write(tmp_path, "turn-secret\n", "turn")
    path = write(tmp_path, f'turn-secret-file = "{turn_secret}"\nturn = ["turn:a"]\n')
    parsed = parse(environ={"WEBRTC_SIGNAL_TOKEN_SECRET_FILE": token_secret}, config=path)
    assert parsed["standalone"].token_secret == "a-token-secret-of-thirty-two-bytes!"
    assert parsed["config"].turn_secret == "turn-secret"
    assert parsed.given["turn-secret-file"].value == turn_secret


def test_our_variables_that_are_not_options_are_left_alone() -> None:
    environ = {
        "WEBRTC_SIGNAL_URL": "ws://localhost:9080",
        "WEBRTC_SIGNAL_REQUIRE_BROWSER": "1",
        "WEBRTC_SIGNAL_TEST_LOOPBACK_ICE": "1",
        "WEBRTC_SIGNALING": "x",
        "HOME": "/root",
    }
    assert parse(environ=environ)["config"].max_peers == 4096
    assert [name for name in environ if ours(name)] == []


def test_every_option_has_a_variable_named_after_it() -> None:
    assert environment_name("max-peers") == "WEBRTC_SIGNAL_MAX_PEERS"
    assert environment_name("turn-secret-file") == "WEBRTC_SIGNAL_TURN_SECRET_FILE"
    names = [environment_name(item.option) for item in ITEMS]
    assert len(set(names)) == len(names)
    assert all(ours(name) for name in names)


def test_a_variable_set_empty_is_given(tmp_path: Path) -> None:
    path = write(tmp_path, 'allowed-origin = ["https://game.example"]\nlog-level = "debug"\n')
    parsed = parse(
        environ={"WEBRTC_SIGNAL_ALLOWED_ORIGIN": "", "WEBRTC_SIGNAL_LOG_LEVEL": "warn"},
        config=path,
    )
    assert parsed["config"].allowed_origins == ()
    assert parsed["standalone"].log_level == "warn"


# -- mistakes: one line naming where ------------------------------------------------------


def test_the_documented_bad_value_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'max-peers = "1024"\n')
    assert problem(config=path) == f"max-peers in {path}: not an integer"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("max-peers = 1.5\n", "max-peers in {path}: not an integer"),
        ("max-peers = true\n", "max-peers in {path}: not an integer"),
        ('seal-timeout = "10"\n', "seal-timeout in {path}: not a number"),
        ('no-demo = "yes"\n', "no-demo in {path}: not true or false"),
        ('turn = "turn:a:3478"\n', "turn in {path}: not an array of strings"),
        ("turn = [1, 2]\n", "turn in {path}: not an array of strings"),
        ("log-level = 3\n", "log-level in {path}: not a string"),
        ("[server]\nmax-peers = 3\n", "unknown key server in {path}"),
        ("max-peers = 0\n", "max-peers in {path}: must be a whole number of at least 1, not 0"),
        ("seal-timeout = -1\n", "seal-timeout in {path}: must be a number of seconds more "
         "than 0, not -1.0"),
        ('log-level = "loud"\n', "log-level in {path}: must be one of"),
        ("max-peer = 3\n", "unknown key max-peer in {path} (did you mean max-peers?)"),
        ("max_peers = 3\n", "unknown key max_peers in {path} (did you mean max-peers?)"),
        ("frobnicate = 3\n", "unknown key frobnicate in {path}"),
        ('config = "other.toml"\n', "config in {path}: it can only be given as --config or "
         "WEBRTC_SIGNAL_CONFIG"),
        ("print-config = true\n", "print-config in {path}: it can only be given as "
         "--print-config"),
        ("max-peers = \n", "{path} is not valid TOML: Invalid value (at line 1, column 13)"),
        ('metrics = "tcp:9100x"\n', "metrics in {path}: 'tcp:9100x' is not usable"),
        ('turn-secret-file = "/nonexistent/secret"\n', "turn-secret-file in {path}: "
         "'/nonexistent/secret' cannot be read: No such file or directory"),
    ],
)  # fmt: skip
def test_a_mistake_in_the_file_names_the_key_and_the_file(
    tmp_path: Path, text: str, line: str
) -> None:
    path = write(tmp_path, text)
    assert problem(config=path).startswith(line.format(path=path))


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        (
            {"WEBRTC_SIGNAL_MAX_PEERS": "many"},
            "WEBRTC_SIGNAL_MAX_PEERS in the environment: must be a whole number, not 'many'",
        ),
        (
            {"WEBRTC_SIGNAL_MAX_PEERS": "0"},
            "WEBRTC_SIGNAL_MAX_PEERS in the environment: must be a whole number of at least 1, "
            "not 0",
        ),
        (
            {"WEBRTC_SIGNAL_NO_DEMO": "maybe"},
            "WEBRTC_SIGNAL_NO_DEMO in the environment: must be true or false, not 'maybe'",
        ),
        (
            {"WEBRTC_SIGNAL_MAX_PEER": "5"},
            "unknown variable WEBRTC_SIGNAL_MAX_PEER (did you mean WEBRTC_SIGNAL_MAX_PEERS?)",
        ),
        (
            {"WEBRTC_SIGNAL_SEAL_TIMOUT": "5"},
            "unknown variable WEBRTC_SIGNAL_SEAL_TIMOUT (did you mean WEBRTC_SIGNAL_SEAL_TIMEOUT?)",
        ),
        (
            {"WEBRTC_SIGNAL_FROBNICATE": "5"},
            "unknown variable WEBRTC_SIGNAL_FROBNICATE (options are set as "
            "WEBRTC_SIGNAL_<OPTION>, e.g. WEBRTC_SIGNAL_MAX_PEERS)",
        ),
        (
            {"WEBRTC_SIGNAL_PRINT_CONFIG": "1"},
            "WEBRTC_SIGNAL_PRINT_CONFIG in the environment: it can only be given as --print-config",
        ),
        (
            {"WEBRTC_SIGNAL_CONFIG": "/nonexistent.toml"},
            "WEBRTC_SIGNAL_CONFIG in the environment: '/nonexistent.toml' cannot be read: "
            "No such file or directory",
        ),
        (
            {"WEBRTC_SIGNAL_PORT": "9999"},
            "WEBRTC_SIGNAL_PORT in the environment: '9999' is not usable: Unknown endpoint type",
        ),
        (
            {"WEBRTC_SIGNAL_ADMIN_TOKEN_FILE": "/nonexistent/token"},
            "WEBRTC_SIGNAL_ADMIN_TOKEN_FILE in the environment: '/nonexistent/token' cannot be "
            "read: No such file or directory",
        ),
        (
            {"WEBRTC_SIGNAL_MAX_PEERS": "\udcff"},
            "WEBRTC_SIGNAL_MAX_PEERS in the environment: not UTF-8 text",
        ),
    ],
)
def test_a_mistake_in_the_environment_names_the_variable(
    environ: dict[str, str], line: str
) -> None:
    # The port from the environment: the command line's would win over it.
    with pytest.raises(usage.UsageError) as raised:
        Options(environ=environ).parseOptions([])
    assert str(raised.value).startswith(line), str(raised.value)


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (None, "--config '{path}' cannot be read: No such file or directory"),
        (b"\xff\xfe", "--config '{path}' is not UTF-8 text"),
        (b"#" * (MAX_FILE_BYTES + 1), f"--config '{{path}}' is over {MAX_FILE_BYTES} bytes"),
    ],
)
def test_a_file_that_cannot_be_read_is_named(
    tmp_path: Path, content: bytes | None, line: str
) -> None:
    path = tmp_path / "signal.toml"
    if content is not None:
        path.write_bytes(content)
    assert problem(config=str(path)) == line.format(path=path)


def test_the_command_line_keeps_its_own_messages() -> None:
    assert problem("--max-peers", "many") == "--max-peers must be a whole number, not 'many'"
    assert problem("--max-peers", "0") == "--max-peers must be a whole number of at least 1, not 0"


# -- reading kinds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("max-peers", 5, 5),
        ("seal-timeout", 5, 5.0),
        ("seal-timeout", 0.25, 0.25),
        ("no-demo", True, True),
        ("turn", ["turn:a", "turn:b"], ("turn:a", "turn:b")),
        ("turn", [], ()),
        ("log-level", "debug", "debug"),
        ("turn-secret-file", "/etc/secret", "/etc/secret"),
    ],
)
def test_toml_values_are_read_as_their_kind(option: str, value: Any, expected: Any) -> None:
    read = parse_native(BY_OPTION[option].spec, value)
    assert read == expected and type(read) is type(expected)


# -- --print-config ----------------------------------------------------------------------


def printed(*argv: str, environ: dict[str, str] | None = None, config: str | None = None) -> None:
    """Parse with --print-config, which prints (to capsys) and exits 0."""
    with pytest.raises(SystemExit) as exited:
        parse("--print-config", *argv, environ=environ, config=config)
    assert exited.value.code == 0


def test_print_config_writes_toml_that_config_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = write(tmp_path, "a-token-secret-of-thirty-two-bytes!\n", "token")
    path = write(tmp_path, 'max-peers = 100\nturn = ["turn:a:3478"]\nno-demo = true\n')
    turn_secret = write(tmp_path, "turn-secret\n", "turn")
    environ = {
        "WEBRTC_SIGNAL_MAX_LOBBIES": "20",
        "WEBRTC_SIGNAL_TURN_SECRET_FILE": turn_secret,
        "WEBRTC_SIGNAL_REDIS": "redis://:hunter2@127.0.0.1:6379/0",
    }
    printed("--token-secret-file", token, "--seal-timeout", "3", environ=environ, config=path)
    text = capsys.readouterr().out
    assert "hunter2" not in text and "thirty-two" not in text and "turn-secret\n" not in text
    values = tomllib.loads(text)
    assert values["max-peers"] == 100
    assert values["max-lobbies"] == 20
    assert values["seal-timeout"] == 3.0
    assert values["token-secret-file"] == token
    assert values["turn-secret-file"] == turn_secret
    assert values["turn"] == ["turn:a:3478"]
    assert values["no-demo"] is True
    assert values["redis"] == "<secret>"
    assert values["port"] == "tcp:0:interface=127.0.0.1"
    assert "config" not in values and "print-config" not in values
    # Every option a file may hold, and nothing else.
    assert set(values) == {item.option for item in ITEMS if Source.FILE in item.spec.sources}
    # Read back (the Redis URL aside), it makes the same configuration.
    del values["redis"]
    again = tmp_path / "again.toml"
    again.write_text("".join(f"{key} = {toml_value(value)}\n" for key, value in values.items()))
    assert parse(config=str(again))["config"] == parse(
        "--token-secret-file", token, "--seal-timeout", "3",
        environ={k: v for k, v in environ.items() if k != "WEBRTC_SIGNAL_REDIS"}, config=path,
    )["config"]  # fmt: skip


def test_print_config_says_where_each_value_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "max-peers = 100\nmax-lobbies = 10\n")
    printed("--max-lobbies", "5", environ={"WEBRTC_SIGNAL_MAX_PEERS": "200"}, config=path)
    lines = capsys.readouterr().out.splitlines()
    assert "max-peers = 200  # environment: WEBRTC_SIGNAL_MAX_PEERS" in lines
    assert "max-lobbies = 5  # command line" in lines
    assert "join-timeout = 1.0  # default" in lines
    assert f"# Read {path} (command line)." in lines


def test_print_config_shows_the_default_port_it_would_listen_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        Options(environ={}).parseOptions(["--print-config"])
    values = tomllib.loads(capsys.readouterr().out)
    assert values["port"] in ("tcp6:9080", "tcp:9080")


def test_configuration_text_hides_secrets_that_are_not_files() -> None:
    resolved = resolve(ITEMS, {"redis": Given("redis://:pw@h", Source.COMMAND_LINE)})
    text = configuration_text(ITEMS, resolved)
    assert 'redis = "<secret>"  # command line' in text.splitlines()
    assert "pw" not in text


# -- the TOML emitter ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-12, "-12"),
        (1.0, "1.0"),
        (1e-05, "1e-05"),
        (1e16, "1e+16"),
        ("", '""'),
        ('a "quoted" \\ path', '"a \\"quoted\\" \\\\ path"'),
        ("tab\there\nnl\x7f", '"tab\\u0009here\\u000anl\\u007f"'),
        ("Grüße ✓", '"Grüße ✓"'),
        ((), "[]"),
        (("a", "b"), '["a", "b"]'),
    ],
)
def test_toml_values_are_written_as_toml(value: object, text: str) -> None:
    assert toml_value(value) == text
    assert tomllib.loads(f"v = {text}")["v"] == (list(value) if type(value) is tuple else value)


def test_other_values_are_refused() -> None:
    with pytest.raises(TypeError):
        toml_value(None)
    with pytest.raises(TypeError):
        toml_value({"a": 1})


# Any text a setting can hold: what UTF-8 can encode (no lone surrogates).
TEXT = st.text(st.characters(codec="utf-8"))


@given(
    st.one_of(
        TEXT,
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.lists(TEXT, max_size=5).map(tuple),
    )
)
def test_any_value_of_a_setting_reads_back_the_same(value: object) -> None:
    read = tomllib.loads(f"v = {toml_value(value)}")["v"]
    expected = list(value) if type(value) is tuple else value
    assert read == expected
    if type(value) is float:
        assert math.copysign(1.0, read) == math.copysign(1.0, value)


@given(TEXT)
def test_any_text_is_one_basic_string(text: str) -> None:
    assert tomllib.loads(f"v = {toml_string(text)}\n")["v"] == text


def test_every_kind_of_setting_can_be_printed() -> None:
    for item in ITEMS:
        default: Any = not item.default if item.spec.inverted else item.default
        assert tomllib.loads(f"v = {toml_value(default)}")["v"] == (
            list(default) if item.spec.kind is Kind.LIST else default
        )


def test_from_environment_reads_only_ours() -> None:
    found = from_environment(ITEMS, {"WEBRTC_SIGNAL_MAX_PEERS": "3", "PATH": "/bin"})
    assert found == {"max-peers": Given(3, Source.ENVIRONMENT, "WEBRTC_SIGNAL_MAX_PEERS")}
