"""Usage errors of ``twistd webrtc-signal`` as one line on stderr.

twistd answers any usage error of a plugin by printing its own help (some 95
lines, on stdout) and then the problem. A user who mistyped one option needs
only the problem: `OneLineUsageOptions` makes the plugin's errors one line on
stderr, ``webrtc-signal: <the option and what is wrong with it>``, with exit
status 1, plus a hint for the usual slips (a near miss of an option name, a
bare port number where an endpoint description goes, one of twistd's own
options after the plugin's name). ``--help`` still prints everything.

twistd's own options, before the plugin's name, stay twistd's business: only
errors of the plugin's options come here.
"""

from __future__ import annotations

import difflib
import getopt
import re
import sys
from collections.abc import Sequence

from twisted.python import usage

COMMAND = "webrtc-signal"
# Options whose value is a Twisted endpoint description, where a bare port
# number is the usual slip.
ENDPOINT_OPTIONS = ("port", "metrics", "admin")
# The least similarity (difflib's ratio) for "did you mean": catches a
# missing or extra letter or two, not an unrelated word.
NEAR_MISS_CUTOFF = 0.6

_NO_SUCH_OPTION = re.compile(r"^No such option '(?P<name>.+)'$")


class OneLineUsageOptions(usage.Options):
    """`usage.Options` whose errors say what is wrong in one line.

    Parsed on its own (tests, embedding), a bad command line raises
    `usage.UsageError` with that line, as any `usage.Options` does. As the
    options of a twistd plugin (twistd sets ``parent``), it prints the line on
    stderr and exits with status 1 instead of letting twistd print its help."""

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        try:
            super().parseOptions(options)  # type: ignore[no-untyped-call]
        except usage.UsageError as error:
            problem = describe(self, error)
            if self.parent is None:
                raise usage.UsageError(problem) from None
            sys.exit(f"{COMMAND}: {problem}")

    def parseArgs(self, *arguments: str) -> None:
        if arguments:
            raise usage.UsageError(unexpected_argument(arguments[0]))


def describe(options: usage.Options, error: usage.UsageError) -> str:
    """One line naming the option and what is wrong with it, and a hint."""
    cause = error.__context__
    if isinstance(cause, getopt.GetoptError):
        return _getopt_problem(options, cause)
    message = str(error)
    unknown = _NO_SUCH_OPTION.match(message)
    if unknown is not None:
        name = unknown["name"]
        return unknown_option(options, f"--{name}" if len(name) > 1 else f"-{name}")
    for option in ENDPOINT_OPTIONS:
        if message.startswith(f"--{option} "):
            hint = bare_port_hint(option, options.get(option))
            if hint:
                return f"{message} ({hint})"
    return message


def _getopt_problem(options: usage.Options, error: getopt.GetoptError) -> str:
    flag = f"--{error.opt}" if error.msg.startswith("option --") else f"-{error.opt}"
    if error.msg.endswith(("not recognized", "not a unique prefix")):
        return unknown_option(options, flag)
    if error.msg.endswith("requires argument"):
        return f"{flag} needs a value"
    if error.msg.endswith("must not have an argument"):
        return f"{flag} takes no value"
    return error.msg


def unknown_option(options: usage.Options, flag: str) -> str:
    """``unknown option --max-peer (did you mean --max-peers?)``, or why the
    option is not ours: it is one of twistd's, which go before the plugin's
    name."""
    name = flag.lstrip("-")
    parent = options.parent
    if parent is not None and _has_option(parent, name) and not _has_option(options, name):
        return f"unknown option {flag} (an option of twistd's: put it before {COMMAND})"
    if len(name) > 1:
        ours = _long_names(options)
        # An abbreviation that fits several options: pick among those first.
        extending = [candidate for candidate in ours if candidate.startswith(name)]
        near = near_miss(name, extending or ours)
        if near is not None:
            return f"unknown option {flag} (did you mean --{near}?)"
    return f"unknown option {flag}"


def near_miss(name: str, candidates: Sequence[str]) -> str | None:
    """The candidate ``name`` is most likely a slip for, if any is close."""
    near = difflib.get_close_matches(name, candidates, n=1, cutoff=NEAR_MISS_CUTOFF)
    return near[0] if near else None


def bare_port_hint(option: str, value: object) -> str | None:
    """``try --port tcp:9999`` for ``--port 9999``: an endpoint description
    names its kind first."""
    if isinstance(value, str) and value.isdigit() and int(value) <= 65535:
        return f"try --{option} tcp:{int(value)}"
    return None


def unexpected_argument(argument: str) -> str:
    problem = f"unexpected argument {argument!r}"
    if argument.isdigit():
        hint = bare_port_hint("port", argument)
        if hint:
            return f"{problem} ({hint})"
    return f"{problem}: every setting is an option (see --help)"


def _long_names(options: usage.Options) -> list[str]:
    return [name.rstrip("=") for name in options.longOpt]


def _has_option(options: usage.Options, name: str) -> bool:
    if len(name) == 1:
        return name in options.shortOpt.replace(":", "")
    return name in _long_names(options)
