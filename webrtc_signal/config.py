"""`SignalingConfig`: every layer's settings behind one flat, public name.

Each layer declares its own settings (`CoreConfig` for the lobby rules,
`ServerConfig` for connections, `IceConfig` for ``/ice-servers``,
`ClusterConfig` for Redis). An embedder writes them all as keywords of one
object, ``SignalingConfig(max_peers=512, seal_timeout=30.0)``, reads them back
as attributes, and the service hands each layer its own part
(``config.core``, ``config.server``, ``config.ice``, ``config.cluster``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .cluster.config import ClusterConfig
from .protocol.config import CoreConfig
from .protocol.ice import IceConfig
from .protocol.settings import Declared, declared
from .server.config import ServerConfig

# The layers, in the order the options are listed.
LAYERS: tuple[tuple[str, type[Any]], ...] = (
    ("core", CoreConfig),
    ("server", ServerConfig),
    ("ice", IceConfig),
    ("cluster", ClusterConfig),
)
_LAYER_OF = {item.name: layer for layer, cls in LAYERS for item in declared(cls)}


def settings() -> Iterator[tuple[str, Declared]]:
    """Every setting of `SignalingConfig`: its layer's name and declaration."""
    for layer, cls in LAYERS:
        for item in declared(cls):
            yield layer, item


class SignalingConfig:
    """The settings of a signaling server, validated: an invalid value
    raises `InvalidSetting` (a ``ValueError``) naming the setting, so both the
    command line and an embedding program get a clear message instead of a
    misbehaving server. Immutable; `replace` makes a changed copy."""

    __slots__ = ("cluster", "core", "ice", "server")

    core: CoreConfig
    server: ServerConfig
    ice: IceConfig
    cluster: ClusterConfig

    def __init__(self, **values: Any) -> None:
        by_layer: dict[str, dict[str, Any]] = {layer: {} for layer, _ in LAYERS}
        for name, value in values.items():
            layer = _LAYER_OF.get(name)
            if layer is None:
                raise TypeError(f"SignalingConfig got an unexpected setting {name!r}")
            by_layer[layer][name] = value
        for layer, cls in LAYERS:
            object.__setattr__(self, layer, cls(**by_layer[layer]))

    def __getattr__(self, name: str) -> Any:
        layer = _LAYER_OF.get(name)
        if layer is None:
            raise AttributeError(f"SignalingConfig has no setting {name!r}")
        return getattr(getattr(self, layer), name)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("SignalingConfig is immutable; use replace()")

    def replace(self, **changes: Any) -> SignalingConfig:
        """A copy with ``changes`` applied (and validated)."""
        return SignalingConfig(**{**self.values(), **changes})

    def values(self) -> dict[str, Any]:
        """Every setting by name."""
        return {item.name: getattr(self, item.name) for _, item in settings()}

    def _layers(self) -> tuple[object, ...]:
        return tuple(getattr(self, layer) for layer, _ in LAYERS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SignalingConfig):
            return NotImplemented
        return self._layers() == other._layers()

    def __hash__(self) -> int:
        return hash(self._layers())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{item.name}={getattr(self, item.name)!r}"
            for _, item in settings()
            if not item.spec.secret and getattr(self, item.name) != item.default
        )
        return f"SignalingConfig({shown})"
