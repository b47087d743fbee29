"""Where each option of ``twistd webrtc-signal`` comes from.

Containers and service managers configure a program with its environment
and with files, not with a long command line. Every option can be given in
three places, read in this order of precedence:

1. the command line (``--max-peers 1024``);
2. the environment: ``WEBRTC_SIGNAL_<NAME>``, the option's name in upper
   case with dashes as underscores (``WEBRTC_SIGNAL_MAX_PEERS=1024``; a
   repeatable option's values comma-separated, a flag ``true`` or ``false``);
3. a TOML file named by ``--config`` (or ``WEBRTC_SIGNAL_CONFIG``), whose
   keys are the option names (``max-peers = 1024``, ``turn = ["turn:a:3478"]``,
   ``no-demo = true``);

and otherwise the option's default. Each value remembers where it came from
(`Given`), so that a bad one is named where the user wrote it
(``max-peers in /etc/webrtc-signal.toml: not an integer``) and
``--print-config`` can say where each came from. A key or a variable of ours
that names no option is a usage error, with the option it was likely meant
to be: a typo must not silently leave a setting at its default.

Secret files (``--turn-secret-file`` and the like) are paths everywhere;
the secrets themselves are read from those files, never from the
environment or the configuration file, and never printed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.python.usage import UsageError

from ..protocol.settings import Declared, Kind, Source, parse_native, parse_text
from .usage import near_miss

ENVIRONMENT_PREFIX = "WEBRTC_SIGNAL_"
# Variables with our prefix that are not options of the server: the Python
# clients' server URL, and the test suite's switches (which its server
# processes inherit).
NOT_OPTIONS = frozenset({"WEBRTC_SIGNAL_URL"})
NOT_OPTION_PREFIXES = ("WEBRTC_SIGNAL_TEST_", "WEBRTC_SIGNAL_REQUIRE_")
# Bytes of a configuration file read at most: a real one is a few KiB; this
# keeps a wrong path (a log, a device) from being read without end.
MAX_FILE_BYTES = 1024 * 1024
# Bytes of a secret file read at most (a secret is tens of bytes).
MAX_SECRET_BYTES = 64 * 1024
# How --print-config shows a secret that is not a file (a Redis URL with its
# password).
HIDDEN = "<secret>"


@dataclass(frozen=True, slots=True)
class Given:
    """An option's value and where it came from.

    ``value`` is the option's as the user wrote it, parsed: a flag's truth
    (``no-demo``: True turns the demo off), a repeatable option's tuple, a
    secret file's path. ``where`` is the variable (environment) or the
    file's path (file); "" otherwise."""

    value: Any
    source: Source
    where: str = ""

    def problem(self, option: str, problem: str) -> str:
        """One line naming where the bad value was written, and what is wrong."""
        if self.source is Source.ENVIRONMENT:
            return f"{self.where} in the environment: {problem}"
        if self.source is Source.FILE:
            return f"{option} in {self.where}: {problem}"
        return f"--{option} {problem}"

    @property
    def origin(self) -> str:
        """Where it came from, as --print-config says it."""
        if self.where:
            return f"{self.source.value}: {self.where}"
        return self.source.value


def environment_name(option: str) -> str:
    """``WEBRTC_SIGNAL_MAX_PEERS`` for ``max-peers``."""
    return ENVIRONMENT_PREFIX + option.upper().replace("-", "_")


def ours(variable: str) -> bool:
    """Whether an environment variable is one of the options'."""
    return (
        variable.startswith(ENVIRONMENT_PREFIX)
        and variable not in NOT_OPTIONS
        and not variable.startswith(NOT_OPTION_PREFIXES)
    )


def default_given(item: Declared) -> Given:
    value = not item.default if item.spec.inverted else item.default
    return Given(value, Source.DEFAULT)


def resolve(items: Iterable[Declared], *layers: Mapping[str, Given]) -> dict[str, Given]:
    """Each option's value from the first of ``layers`` (highest precedence
    first) that has it, else its default; by option name."""
    resolved = {}
    for item in items:
        found = [layer[item.option] for layer in layers if item.option in layer]
        resolved[item.option] = found[0] if found else default_given(item)
    return resolved


def _not_here(item: Declared, here: Source) -> str:
    where = [f"--{item.option}"]
    if Source.ENVIRONMENT in item.spec.sources and here is not Source.ENVIRONMENT:
        where.append(environment_name(item.option))
    return f"it can only be given as {' or '.join(where)}"


# -- the environment ------------------------------------------------------------------


def from_environment(items: Iterable[Declared], environ: Mapping[str, str]) -> dict[str, Given]:
    """The options set by ``WEBRTC_SIGNAL_*`` variables of ``environ``;
    `UsageError` for a variable that names no option or holds a bad value.
    A variable set to "" is given (an empty text, list, or a false flag)."""
    by_variable = {environment_name(item.option): item for item in items}
    found: dict[str, Given] = {}
    for variable in sorted(filter(ours, environ)):
        item = by_variable.get(variable)
        if item is None:
            raise UsageError(_unknown_variable(variable, by_variable.values()))
        given = Given(None, Source.ENVIRONMENT, variable)
        if Source.ENVIRONMENT not in item.spec.sources:
            raise UsageError(given.problem(item.option, _not_here(item, Source.ENVIRONMENT)))
        value = _from_text(item, environ[variable], given)
        found[item.option] = Given(value, Source.ENVIRONMENT, variable)
    return found


def _unknown_variable(variable: str, items: Iterable[Declared]) -> str:
    # Compared as option names: every variable shares the long prefix.
    name = variable.removeprefix(ENVIRONMENT_PREFIX).lower().replace("_", "-")
    near = near_miss(name, [item.option for item in items])
    if near is not None:
        return f"unknown variable {variable} (did you mean {environment_name(near)}?)"
    form = f"{ENVIRONMENT_PREFIX}<OPTION>, e.g. {environment_name('max-peers')}"
    return f"unknown variable {variable} (options are set as {form})"


def _from_text(item: Declared, text: str, given: Given) -> Any:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(given.problem(item.option, "not UTF-8 text")) from None
    try:
        return parse_text(item.spec, text)
    except ValueError as error:
        raise UsageError(given.problem(item.option, f"{error}, not {text!r}")) from None


# -- the configuration file ------------------------------------------------------------


def read_file(config: Given) -> dict[str, Any]:
    """The TOML table of the file ``config`` (the --config option's value)
    names; `UsageError` naming the option if it cannot be read or parsed."""
    path = str(config.value)
    data = _read_bounded(config, "config", MAX_FILE_BYTES)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(config.problem("config", f"{path!r} is not UTF-8 text")) from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path} is not valid TOML: {error}") from None


def from_file(items: Iterable[Declared], table: Mapping[str, Any], path: str) -> dict[str, Given]:
    """The options set by the keys of ``table``, read from the file at
    ``path``; `UsageError` for a key that names no option or a bad value."""
    by_option = {item.option: item for item in items}
    found: dict[str, Given] = {}
    for key, raw in table.items():
        item = by_option.get(key)
        if item is None:
            near = near_miss(key, list(by_option))
            hint = f" (did you mean {near}?)" if near is not None else ""
            raise UsageError(f"unknown key {key} in {path}{hint}")
        given = Given(None, Source.FILE, path)
        if Source.FILE not in item.spec.sources:
            raise UsageError(given.problem(key, _not_here(item, Source.FILE)))
        try:
            value = parse_native(item.spec, raw)
        except ValueError as error:
            raise UsageError(given.problem(key, str(error))) from None
        found[key] = Given(value, Source.FILE, path)
    return found


# -- from values to settings --------------------------------------------------------------


def setting_value(item: Declared, given: Given) -> Any:
    """What the settings class holds for ``given``: an inverted flag turned
    over, a secret file's text in place of its path."""
    if item.spec.inverted:
        return not given.value
    if item.spec.kind is Kind.SECRET_FILE and given.value:
        return read_secret_file(item.option, given)
    return given.value


def read_secret_file(option: str, given: Given) -> str:
    """The text of the secret file ``given`` names, stripped; `UsageError`
    naming the option where it was given."""
    path = str(given.value)
    data = _read_bounded(given, option, MAX_SECRET_BYTES)
    try:
        secret = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError(given.problem(option, f"{path!r} is not UTF-8 text")) from None
    if not secret:
        raise UsageError(given.problem(option, f"{path!r} is empty"))
    return secret


def _read_bounded(given: Given, option: str, limit: int) -> bytes:
    path = str(given.value)
    try:
        with Path(path).open("rb") as file:
            data = file.read(limit + 1)
    except OSError as error:
        problem = f"{path!r} cannot be read: {error.strerror}"
        raise UsageError(given.problem(option, problem)) from None
    if len(data) > limit:
        raise UsageError(given.problem(option, f"{path!r} is over {limit} bytes"))
    return data


# -- --print-config ---------------------------------------------------------------------


def configuration_text(
    items: Iterable[Declared], resolved: Mapping[str, Given], header: Iterable[str] = ()
) -> str:
    """The options of ``items`` that a file may hold, as TOML that --config
    reads back, each line followed by where its value came from. Secret
    files are their paths; other secrets (a Redis URL) are `HIDDEN`."""
    lines = [f"# {line}" if line else "#" for line in header]
    for item in items:
        if Source.FILE not in item.spec.sources:
            continue
        given = resolved[item.option]
        value = given.value
        if item.spec.secret and item.spec.kind is not Kind.SECRET_FILE and value:
            value = HIDDEN
        lines.append(f"{item.option} = {toml_value(value)}  # {given.origin}")
    return "\n".join(lines) + "\n"


def toml_value(value: object) -> str:
    """``value`` (text, a whole or finite number, a truth, or a list or
    tuple of texts) as a TOML value."""
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        # repr() of a finite float is a valid TOML float ("1.0", "1e-05").
        return repr(value)
    if type(value) is str:
        return toml_string(value)
    if type(value) in (list, tuple):
        return "[" + ", ".join(toml_value(part) for part in value) + "]"  # type: ignore[attr-defined]
    raise TypeError(f"no TOML value for {value!r}")


def toml_string(text: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, and every
    control character, which TOML forbids raw."""
    escaped = []
    for character in text:
        if character in '"\\':
            escaped.append("\\" + character)
        elif character < " " or character == "\x7f":
            escaped.append(f"\\u{ord(character):04x}")
        else:
            escaped.append(character)
    return '"' + "".join(escaped) + '"'
