"""The code stays easy to change: in the server and the cluster, no class over
250 lines and no function over a cyclomatic complexity of 10 (radon's "B");
anywhere in the package, no function over 15. (h11's worst function is 16,
wsproto's 19.)"""

from __future__ import annotations

import ast
from pathlib import Path

from radon.complexity import cc_visit

import webrtc_signal

PACKAGE = Path(webrtc_signal.__file__).parent
STRICT = ("server", "cluster")
MOST_LINES_PER_CLASS = 250


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _strict(path: Path) -> bool:
    return path.relative_to(PACKAGE).parts[0] in STRICT


def test_no_function_is_too_complex() -> None:
    found = []
    for path in _sources():
        limit = 10 if _strict(path) else 15
        for block in cc_visit(path.read_text()):
            if block.complexity > limit:
                where = path.relative_to(PACKAGE.parent)
                found.append(f"{where}:{block.lineno} {block.fullname}: {block.complexity}")
    assert not found, "over the limit:\n" + "\n".join(found)


def test_no_class_of_the_server_or_the_cluster_is_too_long() -> None:
    found = []
    for path in filter(_strict, _sources()):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MOST_LINES_PER_CLASS:
                    found.append(f"{path.relative_to(PACKAGE.parent)} {node.name}: {size} lines")
    assert not found, "\n".join(found)
