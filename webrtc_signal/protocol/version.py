"""The package's version, the one place it is written: setup.cfg reads it
from here (``version = attr:``, without importing the package) for the
metadata. It sits in the lowest layer so that every layer may name it.

A literal rather than ``importlib.metadata.version()``: looking the installed
metadata up costs some 25 ms of imports in every process that starts a
server or a command, and an editable install's metadata goes stale when this
line changes without a reinstall, where the literal cannot."""

VERSION = "0.1.0"
