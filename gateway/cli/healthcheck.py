"""``dcr-gateway healthcheck -c CONFIG [--ready]``: is the gateway on this host serving?

For container health checks (the ``Dockerfile``'s ``HEALTHCHECK``): the port comes from the
config (``${ENV}`` substitution included), not from a number written into the image, so
changing ``listen.port`` cannot make a healthy container look dead.  Only the settings are
read, not the policy: a policy file edited on disk must not fail the check of a gateway
still serving the policy it started with.

``GET /-/healthz`` on the public listener (a wildcard ``listen.host`` is reached on
loopback); ``--ready`` asks ``/-/readyz`` instead (upstream and storage reachable), on
the admin listener when ``admin.serve_health`` puts it there.  Exit 0 when the answer is
200, 1 otherwise, 2 when the config cannot say where the gateway listens.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

from gateway.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Command, config_argument
from gateway.config.settings import Listen, Settings, read_settings
from gateway.config.yamlsource import Problem, load_file

#: A wildcard bind address is checked where every such listener answers: loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument(
        "--ready", action="store_true", help="check readiness (/-/readyz) instead of liveness"
    )
    parser.add_argument(
        "--timeout", type=float, default=2.0, help="seconds to wait for the answer (default 2)"
    )


def health_url(settings: Settings, *, ready: bool = False) -> str:
    """Where this host's gateway answers its health endpoint."""
    listen: Listen = settings.listen
    if ready and settings.admin.serve_health and settings.admin.listen is not None:
        listen = settings.admin.listen
    host = _WILDCARDS.get(listen.host, listen.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{listen.port}/-/{'readyz' if ready else 'healthz'}"


def healthcheck(args: argparse.Namespace) -> int:
    problems: list[Problem] = []
    document = load_file(args.config, problems)
    if document.data is None:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    # Problems elsewhere in the config (a secret not in this shell's environment) do not
    # hide where the gateway listens.
    settings = read_settings(document, args.config.parent, problems)
    url = health_url(settings, ready=args.ready)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return EXIT_FAIL
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


COMMAND = Command(
    "healthcheck",
    "exit 0 when the gateway configured by CONFIG answers its health endpoint",
    arguments,
    healthcheck,
)
