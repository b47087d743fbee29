"""The package as a user gets it, built once per test session: an sdist and a
wheel (``python -m build``, the wheel made from the sdist), and a fresh
virtual environment with the wheel and its dependencies installed, nothing
else, not editable.

Building and installing take a while (some seconds), so when the
session holds a test that needs them, `start` begins the work in a thread
before the first test, and the first test that needs it waits for it
(`ready`). With several pytest-xdist workers, each starts it but one builds,
under a lock in a directory they share, and the others take its result.
The build runs on a copy of the checkout's files (those git tracks or would
track), so it never rewrites the checkout's own ``*.egg-info`` while other
tests' processes read the version from it.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .processes import unmeasured_environment

ROOT = Path(__file__).resolve().parents[2]
# Fixtures that need the build; a session with none of them never starts it.
FIXTURES = {"distributions", "fresh_venv"}
# Generous: two cores shared with the rest of the suite and other users.
TIMEOUT = 600.0


@dataclass(frozen=True)
class Distributions:
    sdist: Path
    wheel: Path
    venv: Path  # a fresh venv holding the wheel and its dependencies


_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="wheel")
_building: concurrent.futures.Future[Distributions] | None = None


def start(work: Path) -> None:
    """Begin building into ``work`` (once per process), or taking what
    another process built there."""
    global _building
    if _building is None:
        _building = _pool.submit(_build_once, work)


def ready(work: Path) -> Distributions:
    """The built distributions and venv, waiting for them if need be."""
    start(work)
    assert _building is not None
    return _building.result(timeout=TIMEOUT)


def _build_once(work: Path) -> Distributions:
    work.mkdir(parents=True, exist_ok=True)
    built = work / "built.json"
    with (work / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if built.exists():
            return Distributions(**{k: Path(v) for k, v in json.loads(built.read_text()).items()})
        distributions = _build(work)
        built.write_text(json.dumps({k: str(v) for k, v in asdict(distributions).items()}))
        return distributions


def _run(argv: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, env=unmeasured_environment()
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )


def _source_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return [name for name in listed.stdout.decode().split("\0") if name]


def _build(work: Path) -> Distributions:
    source = work / "source"
    for name in _source_files():
        if (ROOT / name).is_file():  # a deleted file git still lists is not copied
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = work / "dist"
    # Without isolation: the venv has the build requirements (the test extra
    # lists them), and a fresh isolated environment costs seconds per build.
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)])
    (sdist,) = dist.glob("webrtc[-_]signal-*.tar.gz")
    (wheel,) = dist.glob("webrtc_signal-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # --no-compile: compiling every installed module (Twisted's thousand among
    # them) ahead costs more than the rest of the install; the commands the
    # tests run from the venv compile only what they import.
    _run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-compile", str(wheel)])
    return Distributions(sdist, wheel, venv)
