"""What rate limits cost a registration: no limits, limits in ``memory://``, limits in Redis.

Starts, as subprocesses on free loopback ports: the bundled test authorization server, a
``redis-server``, and three gateways with the shipped default policy (its limits raised out
of reach, ``bench/bench_policy.py``):

* ``none``: the policy without ``rate_limits`` (the baseline);
* ``memory``: the shipped rules, ``storage: memory://``;
* ``redis``: the shipped rules, ``storage: redis://`` on the local Redis.

Then, interleaved, registration latency (sequential, one keep-alive connection) and
throughput (``--concurrency`` workers), and Redis's own count of commands per registration
(``INFO commandstats``): the rate limits of all rules together are one ``EVALSHA``.
Nothing here is a pass/fail test: it prints numbers and ratios measured in one run.

    .venv/bin/python bench/limits_bench.py [--rounds 5] [--total 600] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for entry in (str(REPO), str(BENCH_DIR)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from bench_policy import write_bench_policy  # noqa: E402
from proxy_bench import (  # noqa: E402
    Proc,
    gateway_command,
    percentile,
    registration_latency,
    registration_throughput,
    spawn,
    wait_http,
)

from tests.support.redis import RedisServer  # noqa: E402
from tests.support.upstream import UpstreamServer, free_port  # noqa: E402

TARGETS = ("none", "memory", "redis")


def write_config(workdir: Path, name: str, port: int, upstream: str, storage: str) -> Path:
    policy = write_bench_policy(workdir, rate_limits=name != "none")
    config = workdir / f"gateway-{name}.yaml"
    config.write_text(
        "\n".join(
            [
                f"listen: {{host: 127.0.0.1, port: {port}}}",
                f"public_url: http://127.0.0.1:{port}",
                f"upstream: {{url: {json.dumps(upstream)}}}",
                f"policy_file: {json.dumps(str(policy))}",
                f"storage: {json.dumps(storage)}",
                f"audit: {{sink: {json.dumps(str(workdir / f'audit-{name}.jsonl'))}}}",
                "log_level: warning",
                "",
            ]
        )
    )
    return config


def command_counts(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description="rate-limit cost: none, memory, redis")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--total", type=int, default=600, help="registrations per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=200, help="for latency, per target")
    args = parser.parse_args()

    upstream = UpstreamServer()
    procs: dict[str, Proc] = {}
    with tempfile.TemporaryDirectory(prefix="dcr-limits-bench-") as tmp:
        workdir = Path(tmp)
        redis_server = RedisServer(workdir).start()
        try:
            ports = {name: free_port() for name in TARGETS}
            upstream.start(issuer=f"http://127.0.0.1:{ports['none']}", test_endpoints=True)
            storages = {"none": "memory://", "memory": "memory://", "redis": redis_server.url}
            for name in TARGETS:
                config = write_config(workdir, name, ports[name], upstream.url, storages[name])
                procs[name] = spawn(name, [*gateway_command(), "run", "-c", str(config)], workdir)
            bases = {name: f"http://127.0.0.1:{ports[name]}" for name in TARGETS}
            for name in TARGETS:
                wait_http(bases[name] + "/-/readyz", procs[name])
            client = redis.Redis.from_url(redis_server.url)

            async def run() -> dict[str, dict[str, list[float]]]:
                out: dict[str, dict[str, list[float]]] = {
                    t: {"rps": [], "latency": [], "failures": []} for t in TARGETS
                }
                for name in TARGETS:  # warm-up
                    await registration_latency(bases[name] + "/reg", 30, 20)
                for name in TARGETS:
                    samples, failures = await registration_latency(
                        bases[name] + "/reg", args.sequential, 60
                    )
                    out[name]["latency"].extend(samples)
                    out[name]["failures"].append(failures)
                for round_no in range(args.rounds):
                    for name in TARGETS:
                        result = await registration_throughput(
                            bases[name] + "/reg", args.total, args.concurrency, 60
                        )
                        out[name]["rps"].append(result["rps"])
                        out[name]["failures"].append(result["failures"])
                        print(
                            f"  round {round_no + 1} {name:6s} {result['rps']:7.1f} reg/s "
                            f"(failures {result['failures']})",
                            flush=True,
                        )
                return out

            before = command_counts(client)
            started = time.monotonic()
            results = asyncio.run(run())
            after = command_counts(client)
            elapsed = time.monotonic() - started
        finally:
            for proc in procs.values():
                proc.stop()
            upstream.stop()
            redis_server.stop()

    redis_registrations = args.sequential + 30 + args.rounds * args.total
    print(
        f"\nRegistrations (POST /reg), {args.rounds} throughput rounds of {args.total}, "
        f"concurrency {args.concurrency}; {elapsed:.0f} s"
    )
    print(f"{'target':8s} {'reg/s (median)':>15s} {'p50 ms':>8s} {'p99 ms':>8s} {'failures':>9s}")
    medians = {}
    for name in TARGETS:
        rps = statistics.median(results[name]["rps"])
        medians[name] = rps
        latency = results[name]["latency"]
        print(
            f"{name:8s} {rps:15.1f} {percentile(latency, 50) * 1000:8.2f} "
            f"{percentile(latency, 99) * 1000:8.2f} {sum(results[name]['failures']):9d}"
        )
    print(
        f"\nratios: memory/none {medians['memory'] / medians['none']:.2f}, "
        f"redis/none {medians['redis'] / medians['none']:.2f}, "
        f"redis/memory {medians['redis'] / medians['memory']:.2f}"
    )
    per = {
        name: (after.get(name, 0) - before.get(name, 0)) / redis_registrations
        for name in sorted(set(after) | set(before))
        if after.get(name, 0) - before.get(name, 0) > 0 and name not in ("info",)
    }
    scripted = {"get", "incr", "expire", "decr"}
    trips = ", ".join(f"{n} {c:.2f}" for n, c in per.items() if n not in scripted and c >= 0.01)
    inside = ", ".join(f"{n} {c:.2f}" for n, c in per.items() if n in scripted)
    print(f"Redis round trips per registration (redis target): {trips}")
    print(f"  run inside those scripts (no round trip of their own): {inside}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
