"""``dcr-gateway hash-token``: the SHA-256 a policy lists for an initial access token.

The token is read from standard input (without echo on a terminal), never from the
command line, where it would stay in the shell's history and the process list.
``--generate`` makes a new token (256 random bits) and prints it with its hash: give the
token to the client's operator, put the hash in the policy.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from gateway.cli.common import EXIT_OK, EXIT_USAGE, Command
from gateway.tokens.secrets import digest, new_token


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--generate", action="store_true", help="make a new token and print it with its hash"
    )


def hash_token(args: argparse.Namespace) -> int:
    if args.generate:
        token = new_token()
        print(f"token:  {token}")
        print(f"sha256: {digest(token).hex()}")
        return EXIT_OK
    if sys.stdin.isatty():
        token = getpass.getpass("token: ")
    else:
        token = sys.stdin.readline().rstrip("\r\n")
    if not token.strip():
        print("error: no token on standard input", file=sys.stderr)
        return EXIT_USAGE
    print(digest(token).hex())
    return EXIT_OK


COMMAND = Command(
    "hash-token",
    "print the SHA-256 of an initial access token (read from stdin)",
    _arguments,
    hash_token,
)
