"""The package's version. setup.cfg is the one place it is written; the
installed package's metadata carries it here (an editable install included).
It sits in the lowest layer so that every layer may name it."""

from importlib import metadata

try:
    VERSION = metadata.version("webrtc-signal")
except metadata.PackageNotFoundError:  # a checkout on sys.path, never installed
    VERSION = "0+unknown"
