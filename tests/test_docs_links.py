"""Every relative link and every repository path in README.md and docs/*.md
leads somewhere: a link's file exists (and its #anchor is a heading there),
and each path of this repository the text names in backticks or in a code
block exists (a glob matches something). Moved or renamed files otherwise
leave the documentation pointing at nothing, as it did at
``tests/test_embedding.py`` and ``webrtc_signal/static/``.

A path is a word that starts with one of the repository's own top-level
directories (``webrtc_signal/``, ``tests/``, ``docs/``...) or is one of its
top-level files: strict enough that commands, URLs, user files (``key.pem``)
and module names in a table (``tap.py``) are not taken for paths.

And docs/client.md's option tables name every option of the two client
commands, as their ``--help`` lists them.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the target has no spaces.
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# What may stick to a path in prose or a command: quotes, brackets, punctuation
# (a leading dot is part of the name: .ci/run, .dockerignore).
_OPENING = "\"'([{<"
_CLOSING = "\"')]}>,;:.!?"


@dataclass(frozen=True)
class Mention:
    document: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


@cache
def ignored_names() -> tuple[str, ...]:
    """Top-level names .gitignore leaves out (.venv/, node_modules/,
    test-artifacts/...): made by tools, not part of the repository."""
    patterns = []
    for line in (ROOT / ".gitignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "/" not in line.rstrip("/"):
            patterns.append(line.rstrip("/"))
    return (".git", *patterns)


@cache
def top_level() -> tuple[frozenset[str], frozenset[str]]:
    """The repository's own top-level directories and files."""
    directories, files = set(), set()
    for entry in ROOT.iterdir():
        if any(fnmatch.fnmatch(entry.name, pattern) for pattern in ignored_names()):
            continue
        (directories if entry.is_dir() else files).add(entry.name)
    return frozenset(directories), frozenset(files)


def repository_path(word: str) -> str | None:
    """``word`` as a path of this repository, or None if it does not name one."""
    word = word.lstrip(_OPENING).rstrip(_CLOSING).split("::", 1)[0]  # pytest's file::test
    directories, files = top_level()
    head = word.split("/", 1)[0]
    if head in directories and "/" in word:
        return word
    if word in files:
        return word
    return None


def exists(path: str) -> bool:
    if any(character in path for character in "*?["):
        return any(ROOT.glob(path))
    return (ROOT / path).exists()


def lines_of(document: Path) -> Iterator[tuple[int, str, bool]]:
    """Each line with its number and whether it is inside a fenced code block."""
    fence: str | None = None
    for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
        opening = _FENCE.match(line)
        if fence is None and opening is not None:
            fence = opening.group(1)
            continue
        if fence is not None and line.strip().startswith(fence) and not line.strip(fence[0]):
            fence = None
            continue
        yield number, line, fence is not None


def path_mentions(document: Path) -> Iterator[Mention]:
    for number, line, in_code in lines_of(document):
        spans = [line] if in_code else [match.group(2) for match in _INLINE_CODE.finditer(line)]
        for span in spans:
            for word in re.split(r"[\s=]+", span):
                path = repository_path(word)
                if path is not None:
                    yield Mention(document, number, path)


def link_mentions(document: Path) -> Iterator[Mention]:
    for number, line, in_code in lines_of(document):
        if in_code:
            continue
        prose = _INLINE_CODE.sub("", line)
        targets = [match.group(1) for match in _LINK.finditer(prose)]
        reference = _REFERENCE.match(prose)
        if reference is not None:
            targets.append(reference.group(1))
        for target in targets:
            if not _SCHEME.match(target) and not target.startswith("//"):
                yield Mention(document, number, target)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation
    dropped (letters, digits, _ and - kept), spaces as hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    kept = "".join(
        character
        for character in text.strip().lower()
        if character in " -_" or unicodedata.category(character)[0] in "LN"
    )
    return kept.replace(" ", "-")


@cache
def anchors(document: Path) -> frozenset[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line, in_code in lines_of(document):
        heading = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading is None or in_code:
            continue
        base = slug(heading.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def link_problem(mention: Mention) -> str | None:
    target, _, anchor = mention.text.partition("#")
    file = (mention.document.parent / target).resolve() if target else mention.document
    if not file.exists():
        return f"links to {target}, which does not exist"
    if not file.is_relative_to(ROOT):
        return f"links to {target}, outside the repository"
    if anchor and file.suffix == ".md" and anchor not in anchors(file):
        return f"links to #{anchor}, which is no heading of {file.relative_to(ROOT)}"
    return None


def test_every_relative_link_leads_somewhere() -> None:
    mentions = [mention for document in DOCUMENTS for mention in link_mentions(document)]
    problems = [
        f"{mention.where}: {problem}"
        for mention in mentions
        if (problem := link_problem(mention)) is not None
    ]
    assert problems == []
    assert len(mentions) > 30  # the links were found


def test_every_repository_path_named_exists() -> None:
    mentions = [mention for document in DOCUMENTS for mention in path_mentions(document)]
    problems = [
        f"{mention.where}: {mention.text} does not exist"
        for mention in mentions
        if not exists(mention.text)
    ]
    assert problems == []
    assert len({mention.text for mention in mentions}) > 30  # the paths were found


@pytest.mark.parametrize(
    ("word", "path"),
    [
        ("webrtc_signal/app.py", "webrtc_signal/app.py"),
        ("(tests/test_embedding.py", "tests/test_embedding.py"),
        ("tests/cluster/test_cluster.py::test_token", "tests/cluster/test_cluster.py"),
        ("webrtc_signal/static/.", "webrtc_signal/static/"),
        ("setup.cfg", "setup.cfg"),
        (".ci/run", ".ci/run"),
        ("'.dockerignore',", ".dockerignore"),
        ("Dockerfile", "Dockerfile"),
        ("tap.py", None),
        ("key.pem", None),
        ("/etc/webrtc-signal/pems", None),
        ("networking/webrtc_signaling", None),
        ("http://localhost:9080/", None),
        (".venv/bin/twistd", None),
        ("test-artifacts/e2e/", None),
    ],
)
def test_what_counts_as_a_repository_path(word: str, path: str | None) -> None:
    assert repository_path(word) == path


def test_a_missing_path_and_a_broken_link_are_caught(tmp_path: Path) -> None:
    assert not exists("tests/test_embedding.py") and exists("tests/e2e/*.mjs")
    document = ROOT / "docs" / "running.md"
    assert link_problem(Mention(document, 1, "embedding.md#on-a-port-of-its-own")) is None
    assert link_problem(Mention(document, 1, "nowhere.md")) is not None
    assert link_problem(Mention(document, 1, "embedding.md#no-such-heading")) is not None
    assert link_problem(Mention(document, 1, "#logs")) is None


def test_anchors_are_githubs() -> None:
    assert slug("wss:// (TLS)") == "wss-tls"
    assert slug("Players behind strict NATs (STUN/TURN)") == "players-behind-strict-nats-stunturn"
    assert slug("Walkthrough: `examples/matchmaker.py`") == "walkthrough-examplesmatchmakerpy"
    assert slug("Layer 2: WebRTC peers") == "layer-2-webrtc-peers"


@pytest.mark.parametrize("command", ["webrtc-signal-client", "webrtc-signal-peer"])
def test_the_client_commands_tables_name_every_option(command: str) -> None:
    """docs/client.md's table for each command (its own rows, or the rows it
    shares with webrtc-signal-client) names every option --help lists: the
    table once lacked --token."""
    shown = subprocess.run(
        [str(Path(sys.executable).parent / command), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    options = set(re.findall(r"^\s+(--[\w-]+)", shown.stdout, re.M)) - {"--help"}
    text = (ROOT / "docs" / "client.md").read_text()
    section = text.split(f"### `{command}`", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    rows = "\n".join(line for line in section.splitlines() if line.startswith("| `"))
    documented = set(re.findall(r"`(--[\w-]+)", rows))
    assert options - documented == set()
    assert documented - options == set()
