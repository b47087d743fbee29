"""The package as it is published: ``python -m build`` makes an sdist and a
wheel (the wheel from the sdist) that ``twine check`` accepts, with the
README as the long description, valid classifiers, project URLs and the
``cluster`` and ``rtc`` extras; the wheel installed into a fresh venv runs.
The build is the session's one (tests/support/wheel.py), shared with
tests/server/test_twistd.py. Publishing is a maintainer's step
(docs/development.md)."""

from __future__ import annotations

import configparser
import email.parser
import os
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from pathlib import Path

import pytest

from webrtc_signal.protocol.version import VERSION

from .support.processes import unmeasured_environment
from .support.wheel import Distributions

ROOT = Path(__file__).resolve().parent.parent
SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def run_in(venv: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command of the fresh venv, outside the checkout, without its paths."""
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")},
    )


def test_twine_accepts_the_sdist_and_the_wheel(distributions: Distributions) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict",
         str(distributions.sdist), str(distributions.wheel)],
        capture_output=True, text=True, timeout=120,
        env={**unmeasured_environment(), "NO_COLOR": "1"},
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2, checked.stdout
    assert "WARNING" not in checked.stdout + checked.stderr


def test_the_long_description_is_the_readme(distributions: Distributions) -> None:
    metadata = wheel_metadata(distributions.wheel)
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload().strip() == (ROOT / "README.md").read_text().strip()
    assert metadata["Name"] == "webrtc-signal"
    assert SETUP["metadata"]["version"] == "attr: webrtc_signal.protocol.version.VERSION"
    assert metadata["Version"] == VERSION
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["License"] == "MIT"


def test_classifiers_are_pypis_own(distributions: Distributions) -> None:
    """PyPI refuses an upload with an unknown classifier."""
    trove_classifiers = pytest.importorskip("trove_classifiers")
    classifiers = wheel_metadata(distributions.wheel).get_all("Classifier") or []
    assert {
        "Framework :: Twisted",
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3.11",
        "Topic :: Games/Entertainment",
    } <= set(classifiers)
    assert [c for c in classifiers if c not in trove_classifiers.classifiers] == []


def test_project_urls_are_named_https_links(distributions: Distributions) -> None:
    urls = wheel_metadata(distributions.wheel).get_all("Project-URL") or []
    assert urls
    for entry in urls:
        label, _, url = entry.partition(", ")
        assert label and url.startswith("https://"), entry


def test_the_extras_bring_redis_and_webrtc(distributions: Distributions) -> None:
    metadata = wheel_metadata(distributions.wheel)
    assert {"cluster", "rtc"} <= set(metadata.get_all("Provides-Extra") or [])
    requires = metadata.get_all("Requires-Dist") or []
    assert any(r.startswith("txredisapi") and 'extra == "cluster"' in r for r in requires)
    assert any(r.startswith("aiortc") and 'extra == "rtc"' in r for r in requires)
    # Serving needs neither.
    plain = [r for r in requires if "extra ==" not in r]
    assert not any(r.startswith(("txredisapi", "aiortc")) for r in plain), plain


def test_the_wheel_holds_the_plugin_and_the_demo_but_no_twisted_package(
    distributions: Distributions,
) -> None:
    with zipfile.ZipFile(distributions.wheel) as archive:
        names = set(archive.namelist())
    assert "twisted/plugins/webrtc_signal_plugin.py" in names
    # Either would hide Twisted's own packages.
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    assert {
        "webrtc_signal/py.typed",
        "webrtc_signal/server/static/index.html",
        "webrtc_signal/server/port_file.py",
    } <= names
    assert not any(name.startswith("tests/") for name in names)


def test_the_sdist_is_the_source_tree(distributions: Distributions) -> None:
    with tarfile.open(distributions.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {
        "README.md", "LICENSE", "setup.cfg", "pyproject.toml", "MANIFEST.in", "Makefile",
        "twisted/plugins/webrtc_signal_plugin.py", "webrtc_signal/server/static/demo.js",
        "tests/conftest.py", "tests/support/wheel.py", "docs/running.md",
    } <= names  # fmt: skip
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert "twisted/__init__.py" not in names


def test_the_installed_wheel_answers_version_and_help(fresh_venv: Path, tmp_path: Path) -> None:
    version = run_in(fresh_venv, "twistd", "webrtc-signal", "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stdout + version.stderr
    assert version.stdout == f"webrtc-signal {VERSION}\n"
    # --version ends before twistd would write a pidfile.
    assert list(tmp_path.iterdir()) == []
    client = run_in(fresh_venv, "webrtc-signal-client", "--help", cwd=tmp_path)
    assert client.returncode == 0, client.stdout + client.stderr
    assert client.stdout.startswith("usage: webrtc-signal-client")
    token = run_in(fresh_venv, "webrtc-signal-token", "--help", cwd=tmp_path)
    assert token.returncode == 0, token.stdout + token.stderr
    assert token.stdout.startswith("usage: webrtc-signal-token")
