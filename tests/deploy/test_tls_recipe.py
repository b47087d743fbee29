"""The local test certificate recipe of docs/running.md, run as written: its
``mkdir`` and ``openssl`` lines make a certificate, the server serves
``wss://`` with it through ``ssl:`` and ``tls:``, and the documented client
command trusts it with ``--cafile``."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted

from ..support.processes import spawn

ROOT = Path(__file__).parents[2]
RUNNING = ROOT / "docs" / "running.md"
BIN = Path(sys.executable).parent


def recipe() -> list[list[str]]:
    """The commands of the shell block that makes the certificate."""
    blocks = re.findall(r"```sh\n(.*?)```", RUNNING.read_text(), re.S)
    (block,) = [block for block in blocks if "openssl req" in block]
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_recipe_is_found() -> None:
    commands = [words[0] for words in recipe()]
    assert commands == ["mkdir", "openssl", "twistd"]


@pytest.mark.parametrize("kind", ["ssl", "tls"])
@pytest_twisted.ensureDeferred
async def test_the_documented_certificate_serves_wss(kind: str, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    *making, serving = recipe()
    for words in making:
        done = subprocess.run(words, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    # The documented --port, on a free port of 127.0.0.1 instead of 9443.
    documented = serving[serving.index("--port") + 1]
    assert documented.startswith("ssl:9443:")
    port = (
        documented.replace("ssl:9443:", "ssl:0:interface=127.0.0.1:")
        if kind == "ssl"
        else "tls:pems:port=0:interface=127.0.0.1"
    )
    server = spawn(
        [str(BIN / "twistd"), "-n", "--pidfile=", "webrtc-signal", "--port", port],
        path=str(tmp_path),
    )
    client = None
    try:
        listening = await server.wait_for_match(r"listening on 127\.0\.0\.1 port (\d+)")
        url = f"wss://localhost:{listening.group(1)}"
        client = spawn(
            [str(BIN / "webrtc-signal-client"), url, "--cafile", "pems/cert.pem", "--no-commands"],
            path=str(tmp_path),
        )
        await client.wait_for("joined lobby", timeout=30)
        client.transport.signalProcess("TERM")
        assert await client.finished(15) == 0, client.output
    finally:
        for process in (client, server):
            if process is not None and not process.ended.called:
                process.transport.signalProcess("TERM")
    await server.finished(15)
