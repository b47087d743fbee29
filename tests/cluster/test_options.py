"""--redis, --node-id and the liveness options: checked before anything starts."""

from __future__ import annotations

import pytest
from twisted.python import usage

from webrtc_signal import SignalingConfig
from webrtc_signal.app import Options
from webrtc_signal.protocol.settings import InvalidSetting


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(["--port", "tcp:0:interface=127.0.0.1", *argv])
    return options


def test_redis_and_node_id_reach_the_config() -> None:
    config = parse("--redis", "redis://:pw@127.0.0.1:6390/2", "--node-id", "eu-1")["config"]
    assert (config.redis_url, config.node_id) == ("redis://:pw@127.0.0.1:6390/2", "eu-1")
    # The password stays out of logs.
    assert "pw" not in repr(config)


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--redis", "http://127.0.0.1"], "--redis must start with redis:// or rediss://"),
        (["--redis", "redis://127.0.0.1/x"], "--redis database must be a number"),
        (["--node-id", "a"], "--node-id needs --redis"),
        (["--redis", "redis://h", "--node-id", "a/b"], "--node-id must be printable"),
        (["--redis", "redis://h", "--cluster-expiry", "0.5"], "--cluster-expiry must be longer"),
        (["--cluster-period", "soon"], "--cluster-period must be a number of seconds"),
    ],
)
def test_bad_cluster_options_name_the_option(argv: list[str], problem: str) -> None:
    with pytest.raises(usage.UsageError) as raised:
        parse(*argv)
    assert str(raised.value).startswith(problem), str(raised.value)


def test_without_redis_nothing_of_the_cluster_is_loaded() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from webrtc_signal.service import SignalingService\n"
        "SignalingService()\n"
        "assert 'txredisapi' not in sys.modules\n"
        # Its settings are declared beside it; nothing else of it is loaded.
        "loaded = [m for m in sys.modules if m.startswith('webrtc_signal.cluster')]\n"
        "assert loaded == ['webrtc_signal.cluster', 'webrtc_signal.cluster.config'], loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_embedders_get_the_same_checks() -> None:
    with pytest.raises(InvalidSetting):
        SignalingConfig(redis_url="redis://h", cluster_period=0)
