"""``dcr-gateway run -c CONFIG``: serve."""

from __future__ import annotations

import argparse

from gateway import __version__
from gateway.audit.logging import configure_logging, log
from gateway.cli.common import EXIT_FAIL, EXIT_OK, Command, config_argument, load
from gateway.cli.loop import CHOICES, LoopUnavailable, new_loop


def arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument(
        "--event-loop",
        choices=CHOICES,
        default="asyncio",
        help="asyncio's own loop (default), uvloop (pip install 'dcr-gateway[uvloop]'), "
        "or auto: uvloop when it is installed",
    )


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from gateway.app import create_app
    from gateway.upstream.discovery import DiscoveryError

    configure_logging()
    loaded = load(args.config)
    if loaded is None:
        return EXIT_FAIL
    settings = loaded.settings
    configure_logging(settings.log_level)
    try:
        loop, loop_name = new_loop(getattr(args, "event_loop", "asyncio"))
    except LoopUnavailable as exc:
        log().error("startup_failed", reason=str(exc))
        return EXIT_FAIL
    app = create_app(settings, loaded.policies)
    log().info(
        "starting",
        listen=f"http://{settings.listen.host}:{settings.listen.port}",
        public_url=str(settings.public_url),
        upstream=str(settings.upstream.url),
        policy=loaded.policy.source,
        policy_revision=loaded.policy.revision,
        mode=loaded.policy.mode.value,
        version=__version__,
        event_loop=loop_name,
    )
    try:
        web.run_app(
            app,
            host=settings.listen.host,
            port=settings.listen.port,
            access_log=None,
            print=None,
            shutdown_timeout=10.0,
            loop=loop,
        )
    except (DiscoveryError, OSError) as exc:
        log().error("startup_failed", reason=str(exc))
        return EXIT_FAIL
    return EXIT_OK


COMMAND = Command("run", "serve: proxy to the upstream, guard registration", arguments, run)
