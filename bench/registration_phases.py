"""Where a registration's time goes inside the gateway: wall time per stage.

Starts the bundled upstream and a gateway whose registration stages are wrapped with
``time.perf_counter`` (the gateway runs this same script with ``--serve``), sends
sequential registrations as ``proxy_bench.py`` does, and prints each stage's mean time
per registration, nested stages indented under the stage that calls them.  Each wrapper
adds well under a microsecond.

The figures are the time the stage took *inside a request*, with everything else a
request runs in between; they are several times what the same function takes in a tight
loop (where its code and data stay in the CPU's caches), and they are what the latency
of a registration is made of.  Nothing here asserts anything.

    .venv/bin/python bench/registration_phases.py [--registrations 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import collections
import functools
import inspect
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for entry in (str(REPO), str(BENCH_DIR)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

#: (stage, depth, "module:attribute" of a function or "module:Class.method").
STAGES: tuple[tuple[str, int, str], ...] = (
    ("registration handler (all of it)", 0, "gateway.app:handle_registration"),
    ("read and parse the body", 1, "gateway.registration.register:read_metadata"),
    ("audit: note the request", 1, "gateway.audit.events:AuditRecord.note_request"),
    ("audit: keep the metadata for replay", 1, "gateway.audit.events:AuditRecord.note_submitted"),
    ("policy decision", 1, "gateway.registration.register:judge_request"),
    ("rate limits", 1, "gateway.ratelimit.limiter:RateLimiter.acquire"),
    ("quotas", 1, "gateway.registration.register:reserve_registration_quota"),
    ("serialize the judged metadata", 1, "gateway.registration.register:serialize"),
    (
        "upstream exchange (incl. the upstream's time)",
        1,
        "gateway.registration.register:forward_json",
    ),
    ("read the answer", 2, "gateway.registration.forward:read_guarded"),
    ("parse the answer", 2, "gateway.registration.forward:parse_answer"),
    ("publish registration_client_uri", 2, "gateway.registration.forward:publish_client_uri"),
    ("tracked metadata", 1, "gateway.registry.records:ClientRecords.put"),
    ("registry entry", 1, "gateway.registration.register:record_client"),
    ("seal the registration access token", 2, "gateway.registry.sealing:Sealer.seal"),
    ("write the entry", 2, "gateway.registry.store:Registry.add"),
    ("audit event", 0, "gateway.audit.sink:AuditLog.write"),
    ("render it (structlog, JSON)", 1, "gateway.audit.sink:AuditLog.emit"),
    ("write(2)", 2, "gateway.audit.sink:AppendFile.write"),
    ("count it (metrics)", 1, "gateway.metrics.collect:Metrics.observe"),
)


def _timed(function: Callable[..., Any], cell: list[float]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                cell[0] += 1
                cell[1] += time.perf_counter() - started

        return timed_async

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            cell[0] += 1
            cell[1] += time.perf_counter() - started

    return timed


def serve(config: str, out: Path) -> None:
    """Run the gateway with every stage wrapped; write the totals when it exits."""
    import importlib

    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for name, _, target in STAGES:
        module_name, _, attribute = target.partition(":")
        owner: Any = importlib.import_module(module_name)
        *path, last = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, last, _timed(getattr(owner, last), totals[name]))

    def dump() -> None:
        out.write_text(json.dumps({name: totals[name] for name, _, _ in STAGES}))

    atexit.register(dump)  # the gateway's own SIGTERM handling shuts it down cleanly
    from gateway.cli import main

    sys.argv = ["dcr-gateway", "run", "-c", config]
    main()


def drive(count: int, json_path: Path | None) -> None:
    from proxy_bench import registration_latency, spawn, wait_http, write_gateway_config

    from tests.support.upstream import UpstreamServer, free_port

    work = Path(tempfile.mkdtemp(prefix="dcr-phases-"))
    port = free_port()
    upstream = UpstreamServer()
    upstream.start(issuer=f"http://127.0.0.1:{port}", test_endpoints=True)
    try:
        config = write_gateway_config(work, port, upstream.url)
        totals_path = work / "phases.json"
        argv = [sys.executable, __file__, "--serve", str(config), "--out", str(totals_path)]
        gateway = spawn("gateway", argv, work)
        try:
            wait_http(f"http://127.0.0.1:{port}/-/healthz", gateway)
            url = f"http://127.0.0.1:{port}/reg"
            asyncio.run(registration_latency(url, 200, 60))  # warm-up
            samples, failures = asyncio.run(registration_latency(url, count, 300))
        finally:
            gateway.process.send_signal(signal.SIGTERM)
            gateway.process.wait(30)
    finally:
        upstream.stop()
    raw = json.loads(totals_path.read_text())
    samples.sort()
    p50 = samples[len(samples) // 2] * 1e6
    print(f"{len(samples)} sequential registrations ({failures} failed), client p50 {p50:.0f} us")
    print("(warm-up included in the stage totals; means per call)")
    print(f"{'stage':56s} {'calls':>6s} {'mean us':>9s}")
    rows = []
    for name, depth, _ in STAGES:
        calls, seconds = raw[name]
        mean = seconds / calls * 1e6 if calls else 0.0
        rows.append({"stage": name, "depth": depth, "calls": calls, "mean_us": round(mean, 1)})
        print(f"{'  ' * depth + name:56s} {calls:6d} {mean:9.1f}")
    if json_path is not None:
        json_path.write_text(json.dumps({"p50_us": p50, "stages": rows}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.out)
    else:
        drive(args.registrations, args.json)


if __name__ == "__main__":
    main()
