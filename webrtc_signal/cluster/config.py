"""A cluster node's settings (docs/cluster.md). Without a Redis URL the
process is a single node and nothing of the cluster is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from ..protocol.settings import InvalidSetting, check_settings, setting


def parse_redis_url(url: str) -> dict[str, Any]:
    """``redis://[:password@]host[:port][/db]`` or ``rediss://`` (TLS). Errors
    never repeat the URL: it may hold a password."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("must start with redis:// or rediss://")
    if not parts.hostname:
        raise ValueError("names no host")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("has a bad port") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"database must be a number, not {path!r}")
    return {
        "host": parts.hostname,
        "port": port,
        "db": int(path) if path else 0,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password is not None else None,
        "tls": parts.scheme == "rediss",
    }


def _redis_url_problem(url: str) -> str | None:
    if not url:
        return None
    try:
        parse_redis_url(url)
    except ValueError as error:
        return str(error)
    return None


def _node_id_problem(node_id: str) -> str | None:
    if "/" in node_id or not node_id.isprintable():
        return f"must be printable text without '/', not {node_id!r}"
    return None


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Where the cluster's Redis is, and how this node shows it is alive."""

    # Kept out of repr: it may hold a password.
    redis_url: str = setting(
        "",
        "Make this process a node of a cluster sharing lobbies through Redis: "
        "redis://[:password@]host[:port][/db], or rediss:// for TLS.",
        option="redis",
        shown_default="off",
        check=_redis_url_problem,
        secret=True,
        doc="Make this process a node of a cluster sharing lobbies through Redis: "
        "`redis://[:password@]host[:port][/db]`, or `rediss://` for TLS "
        "([docs/cluster.md](docs/cluster.md)). Needs `pip install 'webrtc-signal[cluster]'`.",
    )
    node_id: str = setting(
        "",
        "This node's name in the cluster (default: random); a node restarted under the same "
        "name replaces the old one at once.",
        shown_default="random",
        check=_node_id_problem,
        doc="This node's name in the cluster (no `/`); a node restarted under the same name "
        "replaces the old one at once.",
    )
    cluster_period: float = setting(
        1.0,
        "Seconds between refreshes of this node's liveness key in Redis.",
        above=0,
        unit="seconds",
    )
    cluster_expiry: float = setting(
        3.0,
        "Seconds without a refresh after which the other nodes drop this one.",
        above=0,
        doc="Seconds without a refresh after which the other nodes drop this node's players.",
        unit="seconds",
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if self.cluster_expiry <= self.cluster_period:
            raise InvalidSetting(
                "cluster_expiry", "must be longer than the refresh period (cluster_period)"
            )
