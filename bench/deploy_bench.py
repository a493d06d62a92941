"""Deployment shapes, measured: nginx in front (only registration to the gateway) against
the gateway taking all traffic, and 2 worker processes against 1.

Starts, as subprocesses on free loopback ports (all stopped in ``finally``):

* the bundled test authorization server (``tests/upstream``, node-oidc-provider);
* a ``redis-server`` (several workers need shared storage; both worker counts use it, so
  the comparison is fair);
* gateways (``dcr-gateway run``, the shipped policy with its limits out of reach:
  ``bench/bench_policy.py``) with ``server.workers`` 1 and 2;
* nginx (the OS package) running the shipped recipe ``deploy/nginx/dcr-gateway.conf``.
  Without nginx the mixed-traffic part says so and is skipped.

1. **Mixed traffic**: ``wrk`` with a Lua script sending 95 % pass-through GETs
   (``/__test/echo``) and 5 % registrations (``POST /reg``), against: the upstream
   directly (the bound), the gateway taking everything, and nginx sending only the
   registrations (and discovery) to the gateway. Ratios: nginx/gateway, nginx/direct.
2. **Workers**: ``wrk`` GETs of ``/__test/echo`` and, separately, registrations, through
   the gateway with 1 and with 2 workers. Ratio 2/1.

Rounds are interleaved and only ratios of the same run should be compared; on a machine
shared with other work, figures move from run to run. Nothing here asserts anything.

    .venv/bin/python bench/deploy_bench.py [--duration 5] [--rounds 3] [--connections 32]
                                           [--part mixed|workers|all] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from proxy_bench import (  # noqa: E402
    REGISTRATION_BODY,
    Proc,
    _ms,
    busy_cpu_seconds,
    ensure_wrk,
    gateway_command,
    print_table,
    ratio,
    spawn,
    wait_http,
    write_gateway_config,
)

from tests.support.nginx import Nginx, nginx_binary, render_recipe  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402
from tests.support.upstream import UpstreamServer, free_port  # noqa: E402

#: One registration in twenty requests.
MIXED_LUA = """
local n = 0
local body = %s
request = function()
  n = n + 1
  if n %% 20 == 0 then
    return wrk.format("POST", "/reg", {["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("GET", "/__test/echo")
end
"""
REGISTER_LUA = """
wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/json"
"""


def lua_string(data: bytes) -> str:
    return json.dumps(data.decode())  # a JSON string is a valid Lua string literal here


def run_wrk_script(
    wrk: str, url: str, script: Path | None, connections: int, duration: float
) -> dict[str, Any]:
    argv = [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    before = busy_cpu_seconds()
    out = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=duration + 30, check=False
    ).stdout
    after = busy_cpu_seconds()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise RuntimeError(f"could not read wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    return {
        "rps": float(rps.group(1)),
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "p50_ms": _ms(p50.group(1)) if p50 else float("nan"),
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
        "busy_cores": (after - before) / duration if before is not None and after else None,
    }


def start_gateway(
    workdir: Path, name: str, upstream: str, storage: str, workers: int, public: str | None
) -> tuple[Proc, str]:
    port = free_port()
    folder = workdir / name
    folder.mkdir()
    config = write_gateway_config(folder, port, upstream)
    extra = f"storage: {json.dumps(storage)}\nserver: {{workers: {workers}}}\n"
    if public is not None:
        extra += f"public_url: {public}\ntrusted_proxies: [127.0.0.1/32]\n"
        text = config.read_text().replace(f"public_url: http://127.0.0.1:{port}\n", "")
        config.write_text(text)
    config.write_text(config.read_text() + extra)
    proc = spawn(name, [*gateway_command(), "run", "-c", str(config)], folder)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/-/readyz", proc)
    return proc, url


def median_rps(rounds: list[dict[str, Any]]) -> float:
    return statistics.median(r["rps"] for r in rounds)


def rows_for(results: dict[str, list[dict[str, Any]]]) -> list[list[str]]:
    rows = []
    for target, rounds in results.items():
        rows.append(
            [
                target,
                f"{median_rps(rounds):.0f}",
                " ".join(f"{r['rps']:.0f}" for r in rounds),
                f"{statistics.median(r['p50_ms'] for r in rounds):.1f}",
                f"{statistics.median(r['p99_ms'] for r in rounds):.1f}",
                str(sum(r["errors"] for r in rounds)),
            ]
        )
    return rows


HEADER = ["target", "req/s (median)", "rounds", "p50 ms", "p99 ms", "non-2xx"]


def measure(
    wrk: str,
    targets: dict[str, str],
    script: Path | None,
    args: argparse.Namespace,
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for url in targets.values():  # warm-up
        run_wrk_script(wrk, url, script, args.connections, 1.0)
    for _ in range(args.rounds):
        for name, url in targets.items():
            results[name].append(run_wrk_script(wrk, url, script, args.connections, args.duration))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--part", choices=("mixed", "workers", "all"), default="all")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    wrk = ensure_wrk()
    if wrk is None:
        print("wrk is not installed (apt-get install wrk): this benchmark needs it")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="dcr-deploy-bench-"))
    procs: list[Proc] = []
    nginx: Nginx | None = None
    redis = RedisServer(workdir / "redis")
    upstream = UpstreamServer()
    summary: dict[str, Any] = {"args": vars(args) | {"json": str(args.json)}}
    try:
        upstream.start()
        redis.start()
        mixed_lua = workdir / "mixed.lua"
        mixed_lua.write_text(MIXED_LUA % lua_string(REGISTRATION_BODY))
        register_lua = workdir / "register.lua"
        register_lua.write_text(REGISTER_LUA % lua_string(REGISTRATION_BODY))
        print(
            f"cores: {len(os.sched_getaffinity(0))}; other programs' load on this machine "
            "moves these figures: compare ratios of one run only"
        )

        if args.part in ("mixed", "all"):
            if nginx_binary() is None:
                print(
                    "\nnginx is not available (apt-get install nginx): mixed-traffic "
                    "benchmark skipped"
                )
            else:
                nginx_port = free_port()
                public = f"http://127.0.0.1:{nginx_port}"
                gw, gw_url = start_gateway(
                    workdir, "mixed-gateway", upstream.url, redis.url, 1, public
                )
                procs.append(gw)
                site = render_recipe(
                    listen_port=nginx_port,
                    gateway_port=int(gw_url.rsplit(":", 1)[1]),
                    upstream_port=upstream.port,
                    client_endpoints=False,
                )
                nginx = Nginx(workdir / "nginx", site).start(nginx_port)
                targets = {"direct": upstream.url, "gateway": gw_url, "nginx": nginx.url}
                mixed = measure(wrk, targets, mixed_lua, args)
                print_table(
                    "Mixed traffic: 95 % GET /__test/echo, 5 % POST /reg "
                    f"(wrk -c{args.connections}, {args.duration:g}s x {args.rounds})",
                    HEADER,
                    rows_for(mixed),
                )
                rps = {name: median_rps(rounds) for name, rounds in mixed.items()}
                ratios = {
                    "nginx/gateway": ratio(rps["nginx"], rps["gateway"]),
                    "nginx/direct": ratio(rps["nginx"], rps["direct"]),
                    "gateway/direct": ratio(rps["gateway"], rps["direct"]),
                }
                for name, value in ratios.items():
                    print(f"  {name}: {value:.2f}")
                summary["mixed"] = {"rounds": mixed, "ratios": ratios}

        if args.part in ("workers", "all"):
            one, one_url = start_gateway(workdir, "workers-1", upstream.url, redis.url, 1, None)
            procs.append(one)
            two, two_url = start_gateway(workdir, "workers-2", upstream.url, redis.url, 2, None)
            procs.append(two)
            targets = {"1 worker": one_url, "2 workers": two_url}
            get = measure(wrk, {k: v + "/__test/echo" for k, v in targets.items()}, None, args)
            print_table(
                f"Workers: GET /__test/echo (wrk -c{args.connections})", HEADER, rows_for(get)
            )
            reg = measure(wrk, {k: v + "/reg" for k, v in targets.items()}, register_lua, args)
            print_table(f"Workers: POST /reg (wrk -c{args.connections})", HEADER, rows_for(reg))
            ratios = {
                "GET 2/1": ratio(median_rps(get["2 workers"]), median_rps(get["1 worker"])),
                "POST /reg 2/1": ratio(median_rps(reg["2 workers"]), median_rps(reg["1 worker"])),
            }
            for name, value in ratios.items():
                print(f"  {name}: {value:.2f}")
            summary["workers"] = {"get": get, "registration": reg, "ratios": ratios}
    finally:
        if nginx is not None:
            nginx.stop()
        for proc in procs:
            proc.stop()
        redis.stop()
        upstream.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
