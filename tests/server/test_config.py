"""Settings: the dataclass embedders use and the twistd options on top of it."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.python import usage

from webrtc_signal import InvalidSetting, SignalingConfig
from webrtc_signal.app import Options
from webrtc_signal.server.config import MIN_MESSAGE_SIZE
from webrtc_signal.server.standalone import default_port_description

from ..support.certs import make_localhost_certificate


def test_defaults_are_the_references() -> None:
    config = SignalingConfig()
    assert (config.max_peers, config.max_lobbies) == (4096, 1024)
    assert (config.join_timeout, config.seal_timeout, config.ping_interval) == (1.0, 10.0, 10.0)
    assert config.max_message_size == 64 * 1024
    assert config.serve_demo is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_peers", 0),
        ("max_peers", -1),
        ("max_peers", 1.5),
        ("max_peers", True),
        ("max_lobbies", "10"),
        ("max_message_size", 0),
        ("max_message_size", 10),
        ("max_message_size", MIN_MESSAGE_SIZE - 1),
        ("join_timeout", 0),
        ("join_timeout", -0.1),
        ("seal_timeout", math.inf),
        ("seal_timeout", math.nan),
        ("ping_interval", -1),
        ("ping_interval", False),
        ("serve_demo", 1),
        ("serve_demo", "no"),
    ],
)
def test_invalid_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidSetting) as raised:
        SignalingConfig(**{field: value})
    assert raised.value.setting == field
    assert str(raised.value).startswith(field)


def test_the_smallest_message_size_allowed_holds_a_real_offer() -> None:
    assert MIN_MESSAGE_SIZE == 4096
    assert SignalingConfig(max_message_size=MIN_MESSAGE_SIZE).max_message_size == 4096


def test_ping_interval_zero_turns_keepalive_off() -> None:
    assert SignalingConfig(ping_interval=0).ping_interval == 0


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def test_options_defaults() -> None:
    options = parse()
    assert options["config"] == SignalingConfig()
    assert options["port"] == default_port_description(9080)


def test_every_option_reaches_the_config() -> None:
    options = parse(
        "--port", "tcp:0:interface=127.0.0.1",
        "--max-peers", "10",
        "--max-lobbies", "3",
        "--join-timeout", "0.5",
        "--seal-timeout", "2",
        "--ping-interval", "0",
        "--max-message-size", "5000",
        "--no-demo",
    )  # fmt: skip
    assert options["config"] == SignalingConfig(
        max_peers=10,
        max_lobbies=3,
        join_timeout=0.5,
        seal_timeout=2.0,
        ping_interval=0.0,
        max_message_size=5000,
        serve_demo=False,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-peers", "many"], "--max-peers must be a whole number, not 'many'"),
        (["--max-peers", "0"], "--max-peers must be a whole number of at least 1, not 0"),
        (["--max-lobbies", "2.5"], "--max-lobbies must be a whole number, not '2.5'"),
        (["--join-timeout", "soon"], "--join-timeout must be a number of seconds, not 'soon'"),
        (["--join-timeout", "0"], "--join-timeout must be a number of seconds more than 0"),
        (["--seal-timeout", "-3"], "--seal-timeout must be a number of seconds more than 0"),
        (["--ping-interval", "inf"], "--ping-interval must be a finite number of seconds"),
        (
            ["--max-message-size", "10"],
            "--max-message-size must be a whole number of at least 4096, not 10",
        ),
        (["--port", "nonsense:1"], "--port 'nonsense:1' is not usable: Unknown endpoint type"),
        (["--port", "tcp:notaport"], "--port 'tcp:notaport' is not usable"),
        (
            ["--port", "ssl:9443:privateKey=/no/such.pem"],
            "--port 'ssl:9443:privateKey=/no/such.pem'",
        ),
        (["--port", "tls:/no/such/dir:port=9443"], "is not a directory holding .pem files"),
        (["--port", "tcp:99999"], "--port 'tcp:99999' is not usable: port 99999 is out of range"),
        (["--port", "tcp6:65536"], "port 65536 is out of range (0-65535)"),
        (["--port", "ssl:port=70000:privateKey=k.pem"], "port 70000 is out of range"),
        (["--port", "tls:/tmp:port=99999"], "port 99999 is out of range"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError) as raised:
        parse(*argv)
    assert str(raised.value).startswith(message) or message in str(raised.value)


def test_a_tls_directory_with_a_certificate_and_its_key_is_accepted(tmp_path: Path) -> None:
    make_localhost_certificate(tmp_path)
    options = parse("--port", f"tls:{tmp_path}:port=0:interface=127.0.0.1")
    assert options["endpoint"] is not None


def test_a_tls_directory_without_the_key_is_refused_naming_the_file(tmp_path: Path) -> None:
    """Twisted's tls: endpoint would start, and then fail every handshake."""
    files = make_localhost_certificate(tmp_path)
    files.key.unlink()
    with pytest.raises(usage.UsageError) as raised:
        parse("--port", f"tls:{tmp_path}:port=0")
    assert str(raised.value).startswith(f"--port 'tls:{tmp_path}:port=0' is not usable")
    assert f"no private key for the certificate in {str(files.cert)!r}" in str(raised.value)


def test_a_tls_directory_with_someone_elses_key_is_refused(tmp_path: Path) -> None:
    files = make_localhost_certificate(tmp_path / "mine")
    other = make_localhost_certificate(tmp_path / "other")
    files.key.write_bytes(other.key.read_bytes())
    with pytest.raises(usage.UsageError, match="no private key for the certificate in"):
        parse("--port", f"tls:{tmp_path / 'mine'}:port=0")


def test_a_tls_certificate_without_a_dns_name_is_refused(tmp_path: Path) -> None:
    """The tls: endpoint picks certificates by DNS name: one with none is never served."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "both.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(usage.UsageError, match="names no DNS name"):
        parse("--port", f"tls:{tmp_path}:port=0")


# -- ICE servers -----------------------------------------------------------------


def test_ice_options_fill_the_config(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    options = parse(
        "--stun", "stun:stun.example.org:3478",
        "--stun", "stun:[::1]",
        "--turn", "turn:turn.example.org:3478?transport=udp",
        "--turn", "turns:turn.example.org:5349?transport=tcp",
        "--turn-secret-file", str(secret),
        "--turn-ttl", "600",
    )  # fmt: skip
    config = options["config"]
    assert config.stun_urls == ("stun:stun.example.org:3478", "stun:[::1]")
    assert config.turn_urls == (
        "turn:turn.example.org:3478?transport=udp",
        "turns:turn.example.org:5349?transport=tcp",
    )
    assert config.turn_secret == "s3cret"  # without the file's newline
    assert config.turn_ttl == 600
    assert "s3cret" not in repr(config)


def test_ice_defaults() -> None:
    config = parse()["config"]
    assert (config.stun_urls, config.turn_urls, config.turn_secret) == ((), (), "")
    assert config.turn_ttl == 3600


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--turn", "turn:turn.example.org"], "--turn-secret-file is needed"),
        (["--turn", "turn://x", "--turn-secret-file", "{secret}"], "--turn must be a turn:"),
        (["--turn", "turn:x?transport=sctp", "--turn-secret-file", "{secret}"], "--turn "),
        (["--stun", "turn:x"], "--stun must be a stun:"),
        (["--stun", "stun:x?transport=udp"], "--stun 'stun:x?transport=udp'"),
        (["--turn-secret-file", "{missing}"], "--turn-secret-file '"),
        (["--turn-secret-file", "{empty}"], "is empty"),
        (["--turn-secret-file", "{directory}"], "cannot be read"),
        (["--turn-ttl", "0"], "--turn-ttl must be a whole number of seconds from 1"),
        (["--turn-ttl", "86401"], "--turn-ttl must"),
        (["--turn-ttl", "soon"], "--turn-ttl must be a whole number of seconds, not 'soon'"),
    ],
)
def test_bad_ice_options_are_usage_errors(argv: list[str], message: str, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret")
    (tmp_path / "empty").write_text(" \n")
    files = {
        "secret": tmp_path / "secret",
        "empty": tmp_path / "empty",
        "missing": tmp_path / "missing",
        "directory": tmp_path,
    }
    argv = [arg.format(**files) for arg in argv]
    with pytest.raises(usage.UsageError) as raised:
        parse(*argv)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stun_urls", "stun:x"),
        ("stun_urls", ("turn:x",)),
        ("turn_urls", ("turn:x",)),  # no secret
        ("turn_secret", b"bytes"),
        ("turn_ttl", 0),
        ("turn_ttl", 3600.0),
    ],
)
def test_invalid_ice_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidSetting) as raised:
        SignalingConfig(**{field: value})
    assert raised.value.setting in (field, "turn_secret")


def test_url_lists_become_tuples() -> None:
    config = SignalingConfig(stun_urls=["stun:x"])
    assert config.stun_urls == ("stun:x",)
    hash(config)
