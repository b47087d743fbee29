"""Settings declared once: each field of a layer's settings class says its
type, default, range, command-line name and help, and everything else (the
validation, the twistd options, the environment variables, the config file,
the README's options table) is read from that declaration.

A layer declares its settings as a frozen dataclass whose fields are made
with `setting`; `check_settings` validates an instance against the
declarations and raises `InvalidSetting` naming the field. Pure Python: the
twistd options are built from `Spec` by the composition root.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import MISSING, Field, dataclass, field, fields
from enum import Enum
from typing import Any

# Where a field's `Spec` sits in its dataclass field's metadata.
SPEC = "webrtc_signal.setting"


class Kind(Enum):
    """How a setting's value is written: on the command line, in the
    environment (text) and in a TOML file (native values)."""

    WHOLE = "whole number"
    NUMBER = "number"
    TEXT = "text"
    # A command-line flag; the field holds ``not flag`` when `Spec.inverted`.
    FLAG = "flag"
    # Repeatable on the command line, comma-separated in the environment.
    LIST = "list"
    # The option names a file; the field holds the file's text, stripped.
    SECRET_FILE = "secret file"


class Source(Enum):
    """Where a setting's value is read from, highest precedence first."""

    COMMAND_LINE = "command line"
    ENVIRONMENT = "environment"
    FILE = "file"
    DEFAULT = "default"


# Where a setting may be given unless its declaration says otherwise.
EVERY_SOURCE = frozenset(Source)


class InvalidSetting(ValueError):
    """A setting's value is out of range; ``setting`` names the field."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Spec:
    """One setting's declaration (see `setting`)."""

    kind: Kind
    help: str
    # The lowest and highest values allowed (numbers only); None = unbounded.
    minimum: float | None = None
    maximum: float | None = None
    # A bound the value must be above (timeouts that cannot be 0).
    above: float | None = None
    # The command-line name without "--"; "" = the field's name with dashes.
    option: str = ""
    short: str | None = None
    # The README's "meaning" column, Markdown; "" = `help`.
    doc: str = ""
    # What the README and --help show as the default when it is not the
    # value itself (None defaults, or words like "random").
    shown_default: str = ""
    # A FLAG that turns the field off (--no-demo sets serve_demo False).
    inverted: bool = False
    # Further checks of the value: the problem as text, or None.
    check: Callable[[Any], str | None] | None = None
    # Kept out of logs and printed configurations (shown as "<secret>").
    secret: bool = False
    # What a number counts ("seconds"), for messages.
    unit: str = ""
    # Where it may be given: an option that says where the others are read
    # (--config) cannot be in a file, an action (--print-config) is a
    # command-line option only.
    sources: frozenset[Source] = EVERY_SOURCE

    @property
    def meaning(self) -> str:
        return self.doc or self.help


def setting(
    default: Any,
    help: str,
    *,
    kind: Kind | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    option: str = "",
    short: str | None = None,
    doc: str = "",
    shown_default: str = "",
    inverted: bool = False,
    check: Callable[[Any], str | None] | None = None,
    secret: bool = False,
    unit: str = "",
    sources: frozenset[Source] = EVERY_SOURCE,
) -> Any:
    """A dataclass field declaring a setting; its kind follows the default's
    type unless given."""
    if kind is None:
        kind = _kind_of(default)
    spec = Spec(
        kind,
        help,
        minimum,
        maximum,
        above,
        option,
        short,
        doc,
        shown_default,
        inverted,
        check,
        secret,
        unit,
        sources,
    )
    return field(default=default, metadata={SPEC: spec}, repr=not secret)


def _kind_of(default: object) -> Kind:
    if type(default) is bool:
        return Kind.FLAG
    if type(default) is int:
        return Kind.WHOLE
    if type(default) is float:
        return Kind.NUMBER
    if type(default) is tuple:
        return Kind.LIST
    return Kind.TEXT


@dataclass(frozen=True, slots=True)
class Declared:
    """A declared setting of a settings class: its field's name, default and spec."""

    name: str
    default: Any
    spec: Spec

    @property
    def option(self) -> str:
        return self.spec.option or self.name.replace("_", "-")


def declared(cls: type) -> Iterator[Declared]:
    """The declared settings of a settings dataclass, in declaration order."""
    for item in fields(cls):
        spec = item.metadata.get(SPEC)
        if spec is not None:
            yield Declared(item.name, _default(item), spec)


def _default(item: Field[Any]) -> Any:
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    raise TypeError(f"setting {item.name} has no default")


def check_settings(instance: object) -> None:
    """Validate every declared field of ``instance`` (lists are stored as
    tuples); raises `InvalidSetting` for the first one out of range."""
    for item in declared(type(instance)):
        value = getattr(instance, item.name)
        if item.spec.kind is Kind.LIST and isinstance(value, list):
            value = tuple(value)
            object.__setattr__(instance, item.name, value)
        problem = value_problem(item.spec, value)
        if problem is not None:
            raise InvalidSetting(item.name, problem)


def value_problem(spec: Spec, value: object) -> str | None:
    """Why ``value`` is not allowed for ``spec`` (None if it is)."""
    problem = _type_problem(spec, value)
    if problem is None and spec.kind in (Kind.WHOLE, Kind.NUMBER):
        problem = _range_problem(spec, value)  # type: ignore[arg-type]
    if problem is None and spec.check is not None:
        problem = spec.check(value)
    return problem


def _type_problem(spec: Spec, value: object) -> str | None:
    kind = spec.kind
    if kind is Kind.WHOLE:
        return None if type(value) is int else f"must be a whole number, not {value!r}"
    if kind is Kind.NUMBER:
        if type(value) in (int, float) and math.isfinite(value):  # type: ignore[arg-type]
            return None
        return f"must be a finite {_counted(spec)}, not {value!r}"
    if kind is Kind.FLAG:
        return None if type(value) is bool else f"must be True or False, not {value!r}"
    if kind is Kind.LIST:
        if type(value) is tuple and all(type(item) is str for item in value):
            return None
        return f"must be a tuple of strings, not {value!r}"
    return None if type(value) is str else "must be a string"


def _range_problem(spec: Spec, value: float) -> str | None:
    low, high, above = spec.minimum, spec.maximum, spec.above
    if (
        (low is None or value >= low)
        and (high is None or value <= high)
        and (above is None or value > above)
    ):
        return None
    return f"must be {range_text(spec)}, not {value!r}"


def range_text(spec: Spec) -> str:
    """The allowed values in words, e.g. "a whole number from 1 to 86400"
    or "a number of at least 0"."""
    kind = f"a {_counted(spec)}"
    if spec.above is not None:
        return f"{kind} more than {_number_text(spec.above)}"
    low, high = spec.minimum, spec.maximum
    if low is not None and high is not None:
        return f"{kind} from {_number_text(low)} to {_number_text(high)}"
    if low is not None:
        return (
            f"{kind} >= {_number_text(low)}"
            if spec.unit
            else f"{kind} of at least {_number_text(low)}"
        )
    if high is not None:
        return f"{kind} <= {_number_text(high)}"
    return kind


def _counted(spec: Spec) -> str:
    """ "whole number", "number of seconds"..."""
    noun = "whole number" if spec.kind is Kind.WHOLE else "number"
    return f"{noun} of {spec.unit}" if spec.unit else noun


def _number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


# The TOML types each kind takes, and the problem with a value of another.
_NATIVE: dict[Kind, tuple[tuple[type, ...], str]] = {
    Kind.WHOLE: ((int,), "not an integer"),
    Kind.NUMBER: ((int, float), "not a number"),
    Kind.FLAG: ((bool,), "not true or false"),
    Kind.LIST: ((list,), "not an array of strings"),
    Kind.TEXT: ((str,), "not a string"),
    Kind.SECRET_FILE: ((str,), "not a string"),
}


def parse_native(spec: Spec, value: Any) -> Any:
    """A value from a TOML file, where numbers, booleans and arrays have types
    of their own: the value as the command line would give it (a flag's
    truth, a LIST's tuple, a SECRET_FILE's path). Raises `ValueError` naming
    the TOML type expected ("not an integer"); ranges are checked with the
    rest of the settings."""
    types, problem = _NATIVE[spec.kind]
    # type(), not isinstance(): a TOML true is no integer here.
    if type(value) not in types:
        raise ValueError(problem)
    if spec.kind is Kind.LIST:
        if not all(type(item) is str for item in value):
            raise ValueError(problem)
        return tuple(value)
    if spec.kind is Kind.NUMBER:
        return float(value)
    return value


def parse_text(spec: Spec, text: str) -> Any:
    """A value from text (the command line, the environment); raises
    `ValueError` saying what was expected. LIST values come one at a time
    on the command line: this reads a comma-separated list."""
    kind = spec.kind
    if kind is Kind.WHOLE:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"must be a {_counted(spec)}") from None
    if kind is Kind.NUMBER:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"must be a {_counted(spec)}") from None
    if kind is Kind.FLAG:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError("must be true or false")
    if kind is Kind.LIST:
        return tuple(item.strip() for item in text.split(",") if item.strip())
    return text
