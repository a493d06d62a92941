"""``dcr-gateway registry-key``: a new key for sealing registration access tokens at rest.

Put it in the environment variable ``registry.key_env`` names.  To rotate, put the new key
first and keep the old one after a comma (``NEW,OLD``) until the lifecycle job has run once
(it re-seals every token with the first key), then drop the old one.
"""

from __future__ import annotations

import argparse

from gateway.cli.common import EXIT_OK, Command
from gateway.registry.sealing import new_key


def _arguments(parser: argparse.ArgumentParser) -> None:
    return None


def registry_key(args: argparse.Namespace) -> int:
    print(new_key())
    return EXIT_OK


COMMAND = Command(
    "registry-key",
    "print a new key for sealing registration access tokens (registry.key_env)",
    _arguments,
    registry_key,
)
