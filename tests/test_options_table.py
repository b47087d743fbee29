"""The README's options table is made from the options' declarations: each
option's name, default and meaning are written once, where its layer
declares it (`webrtc_signal.protocol.settings`), and the README must show
exactly that. On a mismatch the message is the table to paste."""

from __future__ import annotations

from pathlib import Path

from webrtc_signal.app import default_text, options
from webrtc_signal.protocol.settings import Kind

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| option | default | meaning |"


def expected_table() -> list[str]:
    rows = [HEADER, "|---|---|---|"]
    for _, item in options():
        name = f"`--{item.option}`"
        if item.spec.short:
            name += f", `-{item.spec.short}`"
        shown = default_text(item)
        if not item.spec.shown_default and item.spec.kind is not Kind.FLAG:
            shown = f"`{shown}`"
        rows.append(f"| {name} | {shown} | {item.spec.meaning} |")
    return rows


def readme_table() -> list[str]:
    lines = README.read_text().splitlines()
    start = lines.index(HEADER)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines[start:end]


def test_the_readme_table_is_the_declared_options() -> None:
    expected = expected_table()
    assert readme_table() == expected, "README.md's options table should be:\n" + "\n".join(
        expected
    )


def test_every_option_has_help_and_a_meaning() -> None:
    for _, item in options():
        assert item.spec.help.strip(), item.name
        assert "|" not in item.spec.help, item.name
