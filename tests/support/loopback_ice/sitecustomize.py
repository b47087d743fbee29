"""Run by Python at start-up in the tests' child processes (their PYTHONPATH
starts with this directory): with WEBRTC_SIGNAL_TEST_LOOPBACK_ICE=1, aioice
is pinned to 127.0.0.1 when the process imports it (see
webrtc_signal_loopback_ice). Then the sitecustomize this one shadows, if the
interpreter has one (Debian's does), runs as it would have."""

import importlib.machinery
import importlib.util
import os
import sys

if os.environ.get("WEBRTC_SIGNAL_TEST_LOOPBACK_ICE") == "1":
    import webrtc_signal_loopback_ice

    webrtc_signal_loopback_ice.install()


def _run_the_shadowed_one() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None and spec.origin != __file__:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_run_the_shadowed_one()
