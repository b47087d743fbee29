"""``webrtc-signal-token``: print a token that a server started with
``--token-secret-file`` accepts. For operators and tests; a game backend mints
its own with any JWT library (HS256, ``exp`` required; ``sub``, ``lobby``,
``pool``, ``jti``)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from .tokens import (
    DEFAULT_MAX_TTL,
    DEFAULT_TTL,
    RECOMMENDED_SECRET_BYTES,
    make_token,
    read_secret,
)


def _ttl(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, not {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="webrtc-signal-token",
        description="Print a token for a webrtc-signal server started with "
        "--token-secret-file. Clients put it in the URL: ws://host:9080/?token=TOKEN",
    )
    parse.add_argument(
        "--secret-file",
        required=True,
        metavar="PATH",
        help="the file the server reads its secret from",
    )
    parse.add_argument(
        "--subject", metavar="S", help="the sub claim: who the token is for (the peer's identity)"
    )
    parse.add_argument(
        "--lobby",
        metavar="NAME",
        help='the only lobby the token may join; "" = it may only create one (default: any)',
    )
    parse.add_argument(
        "--pool",
        metavar="POOL",
        help="the only quick-match pool the token may be matched in (/match/POOL); "
        "it may then join no lobby by name (default: any)",
    )
    parse.add_argument(
        "--ttl",
        type=_ttl,
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help=f"seconds until the token expires (default {DEFAULT_TTL:g}; a server refuses "
        f"tokens valid for longer than its --token-max-ttl, default {DEFAULT_MAX_TTL:g})",
    )
    parse.add_argument(
        "--single-use",
        action="store_true",
        help="add a random jti claim: the server admits the token for one connection only",
    )
    return parse


def main(argv: Sequence[str] | None = None) -> None:
    parse = parser()
    arguments = parse.parse_args(argv)
    try:
        secret = read_secret(arguments.secret_file)
    except ValueError as error:
        parse.error(f"--secret-file: {error}")
    if len(secret) < RECOMMENDED_SECRET_BYTES:
        print(
            f"webrtc-signal-token: note: the secret is {len(secret)} bytes long; "
            f"{RECOMMENDED_SECRET_BYTES} or more are recommended",
            file=sys.stderr,
        )
    if arguments.ttl > DEFAULT_MAX_TTL:
        print(
            f"webrtc-signal-token: note: a --ttl over {DEFAULT_MAX_TTL:g} is refused by a "
            "server with the default --token-max-ttl",
            file=sys.stderr,
        )
    token = make_token(
        secret,
        arguments.subject,
        arguments.lobby,
        arguments.ttl,
        single_use=arguments.single_use,
        pool=arguments.pool,
    )
    print(token)


if __name__ == "__main__":
    main()
