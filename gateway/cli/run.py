"""``dcr-gateway run -c CONFIG [--workers N]``: serve.

One worker (the default) serves in this process.  With several (``server.workers`` or
``--workers``), this process supervises that many worker processes sharing the port
(:mod:`gateway.server.supervisor`); each of them is ``run --worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from gateway import __version__
from gateway.audit.logging import configure_logging, log
from gateway.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Command, config_argument, load
from gateway.cli.loop import CHOICES, LoopUnavailable, new_loop
from gateway.config.settings import MAX_WORKERS, workers_problem


def arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help=f"worker processes sharing the port (1-{MAX_WORKERS}; overrides server.workers; "
        "more than 1 needs redis storage)",
    )
    # A process started by the supervisor: serve with SO_REUSEPORT, never supervise.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--event-loop",
        choices=CHOICES,
        default="asyncio",
        help="asyncio's own loop (default), uvloop (pip install 'dcr-gateway[uvloop]'), "
        "or auto: uvloop when it is installed",
    )


def run(args: argparse.Namespace) -> int:
    from gateway.app import create_app
    from gateway.server.serve import serve
    from gateway.server.supervisor import supervise
    from gateway.upstream.discovery import DiscoveryError

    configure_logging()
    loaded = load(args.config)
    if loaded is None:
        return EXIT_FAIL
    settings = loaded.settings
    if args.workers is not None and not args.worker:
        if not 1 <= args.workers <= MAX_WORKERS:
            log().error("bad_arguments", reason=f"--workers must be 1 to {MAX_WORKERS}")
            return EXIT_USAGE
        problem = workers_problem(args.workers, settings.storage)
        if problem is not None:
            log().error("bad_arguments", reason=f"--workers: {problem}")
            return EXIT_USAGE
        server = dataclasses.replace(settings.server, workers=args.workers)
        settings = dataclasses.replace(settings, server=server)
    configure_logging(settings.log_level)
    event_loop = getattr(args, "event_loop", "asyncio")
    workers = settings.server.workers
    if workers > 1 and not args.worker:
        log().info(
            "starting",
            listen=f"http://{settings.listen.host}:{settings.listen.port}",
            workers=workers,
            version=__version__,
        )
        return supervise(args.config, workers, settings.server.shutdown_timeout, event_loop)
    try:
        loop, loop_name = new_loop(event_loop)
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
        with asyncio.Runner(loop_factory=lambda: loop) as runner:
            runner.run(serve(app, settings, reuse_port=args.worker))
    except (DiscoveryError, OSError) as exc:
        log().error("startup_failed", reason=str(exc))
        return EXIT_FAIL
    return EXIT_OK


COMMAND = Command("run", "serve: proxy to the upstream, guard registration", arguments, run)
