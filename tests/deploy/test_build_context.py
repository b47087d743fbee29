"""What ``docker build .`` sends: the build context, made from .dockerignore
as a Docker client makes it (docker-py's own tar of the context, no Docker
needed), stays small and still holds everything the Dockerfile copies; and
the Dockerfile's build stage, replayed on that context, makes a whole wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from ..support.processes import unmeasured_environment
from .test_deploy import ROOT, dockerfile_instructions

docker_build = pytest.importorskip(
    "docker.utils.build", reason="docker-py is missing: pip install -e '.[test]'"
)

# A checkout's own files weigh well under 1 MB; .venv/ and node_modules/
# alone weigh hundreds.
LIMIT = 5 * 1024 * 1024


def ignore_patterns() -> list[str]:
    """The patterns of .dockerignore, read as Docker's clients read them: one
    a line, surrounding blanks dropped, empty lines and # comments skipped."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The build context as the tar a Docker client uploads."""
    archive = docker_build.tar(
        str(ROOT), exclude=ignore_patterns(), dockerfile=("Dockerfile", None)
    )
    path = tmp_path_factory.mktemp("context") / "context.tar"
    with path.open("wb") as out:
        shutil.copyfileobj(archive, out)
    archive.close()
    yield path


def names_in(context: Path) -> set[str]:
    with tarfile.open(context) as tar:
        return {member.name for member in tar.getmembers()}


def test_the_build_context_stays_under_5_mb(context: Path) -> None:
    size = context.stat().st_size
    assert size < LIMIT, f"the build context is {size / 1e6:.1f} MB"


def test_the_build_context_leaves_out_environments_caches_and_tests(context: Path) -> None:
    names = names_in(context)
    for name in names:
        parts = PurePosixPath(name).parts
        assert not {".venv", "node_modules", ".git", "tests", "__pycache__"} & set(parts), name
        assert not name.endswith((".pyc", "dropin.cache")), name


def copied_sources() -> Iterator[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not
    ``--from`` another stage), in the order the Dockerfile has them."""
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, destination = rest.split()
        yield sources, destination


def test_everything_the_dockerfile_copies_is_in_the_context(context: Path) -> None:
    names = names_in(context)
    copied = [source for sources, _ in copied_sources() for source in sources]
    assert "webrtc_signal" in copied and "twisted" in copied
    for source in copied:
        assert source in names or any(name.startswith(f"{source}/") for name in names), source
    # Every file of the package is there, the demo's static files included.
    for path in (ROOT / "webrtc_signal").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert path.relative_to(ROOT).as_posix() in names, path


def test_the_build_stage_on_that_context_makes_a_whole_wheel(context: Path, tmp_path: Path) -> None:
    """The Dockerfile's first stage without Docker: its COPYs from the
    context into an empty directory, then its ``pip wheel``."""
    unpacked, work = tmp_path / "context", tmp_path / "src"
    with tarfile.open(context) as tar:
        tar.extractall(unpacked, filter="data")
    work.mkdir()
    for sources, destination in copied_sources():
        if destination.startswith("/"):  # the final stage's own paths, not the build's
            continue
        for source in sources:
            origin = unpacked / source
            target = work / destination
            if origin.is_dir():
                shutil.copytree(origin, target, dirs_exist_ok=True)
            elif destination.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)
            else:
                shutil.copy2(origin, target)
    built = subprocess.run(
        [
            sys.executable, "-m", "pip", "--disable-pip-version-check", "-q",
            "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "wheels"), str(work),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=unmeasured_environment(),
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "wheels").glob("webrtc_signal-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "twisted/plugins/webrtc_signal_plugin.py" in names
    assert "webrtc_signal/server/static/index.html" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), sorted(names)
