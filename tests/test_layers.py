"""The package's layers, checked: the pure protocol imports neither Twisted
nor Autobahn (nor any other layer of ours), and the public names stay where
the README says they are."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import webrtc_signal

PACKAGE = Path(webrtc_signal.__file__).parent
FOREIGN_TO_THE_CORE = ("twisted", "autobahn", "txaio", "zope")
OUR_OUTER_LAYERS = ("webrtc_signal.server", "webrtc_signal.client", "webrtc_signal.rtc")


def _imports(path: Path) -> list[str]:
    """Absolute module names a file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


def test_the_protocol_package_imports_no_io_library_and_no_outer_layer() -> None:
    offenders = []
    for path in sorted((PACKAGE / "protocol").rglob("*.py")):
        for name in _imports(path):
            if name.split(".")[0] in FOREIGN_TO_THE_CORE or name.startswith(OUR_OUTER_LAYERS):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_importing_the_package_and_its_protocol_loads_no_twisted() -> None:
    code = (
        "import sys, pkgutil, importlib, webrtc_signal, webrtc_signal.protocol as p\n"
        "for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('twisted', 'autobahn'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_are_curated_and_importable() -> None:
    for name in webrtc_signal.__all__:
        assert getattr(webrtc_signal, name) is not None, name
    from webrtc_signal import SignalingConfig, SignalingService  # noqa: F401
    from webrtc_signal.client import SignalingClient  # noqa: F401
    from webrtc_signal.rtc import RtcPeer, run  # noqa: F401


def test_every_module_outside_the_composition_root_is_in_a_subpackage() -> None:
    top_level = sorted(p.name for p in PACKAGE.glob("*.py"))
    # events.py is public surface (`webrtc_signal.events` is a documented
    # name); config.py, service.py and app.py put the layers together.
    assert top_level == ["__init__.py", "app.py", "config.py", "events.py", "service.py"]


# The layers, bottom up: a module may import its own layer and the ones below.
LAYERS = {
    "protocol": 0,
    "server": 1,
    "client": 1,
    "cluster": 2,
    "rtc": 2,
    # The composition root and the public names.
    "": 3,
}


def _layer(module: str) -> int:
    parts = module.split(".")
    if parts[0] != "webrtc_signal":
        return -1
    if len(parts) > 2 and parts[1] in LAYERS:
        return LAYERS[parts[1]]
    if len(parts) == 2 and parts[1] in LAYERS:  # a subpackage's __init__
        return LAYERS[parts[1]]
    return LAYERS[""]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    """Our modules and the modules of ours each imports (type-only imports
    included: a circle of types is still a circle)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for imported in _imports(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                found.add(imported)
        graph[name] = found
    return graph


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{module} imports {imported}"
        for module, imports in _graph().items()
        for imported in imports
        if _layer(imported) > _layer(module)
        # A subpackage's own modules may be imported by its __init__.
        and not imported.startswith(module + ".")
    ]
    assert not upward, "\n".join(upward)


def test_the_server_never_imports_the_cluster() -> None:
    crossing = [
        f"{module} imports {imported}"
        for module, imports in _graph().items()
        if module.startswith(("webrtc_signal.server", "webrtc_signal.protocol"))
        for imported in imports
        if imported.startswith("webrtc_signal.cluster")
    ]
    assert not crossing, "\n".join(crossing)


def test_there_is_no_circle_of_imports() -> None:
    graph = _graph()
    # Package __init__ modules that only re-export their children are not
    # edges of a circle: importing the child never runs the parent's code again.
    for name in list(graph):
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    visiting: list[str] = []
    done: set[str] = set()
    circles: list[str] = []

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            circles.append(" -> ".join([*visiting[visiting.index(module) :], module]))
            return
        visiting.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert not circles, "\n".join(circles)
