"""Instructions per request (valgrind's callgrind): the gateway against the minimal proxy.

Throughput and even CPU time move with whatever else runs on the machine; the number of
instructions a process executes to serve one request does not (within about 1%). This
script starts the bundled upstream, then the minimal aiohttp proxy
(``bench/minimal_proxy.py``) and the gateway (``dcr-gateway run``), each under
``valgrind --tool=callgrind --instr-atstart=no`` (start-up runs at native speed, nothing
is counted), and for each path:

1. turns instrumentation on and sends a warm-up of requests (connections, caches),
2. zeroes the counters, sends ``--requests`` requests with ``--concurrency`` keep-alive
   connections, dumps the counters,
3. reports instructions (``Ir``) per request and the gateway / minimal ratio.

The load generator (an aiohttp client in this process) is not measured. Under callgrind
Python runs some 50 times slower, so a path costs about a minute. Nothing here asserts
anything about speed.

    .venv/bin/python bench/callgrind_bench.py [--requests 2000] [--concurrency 8]
        [--path /__test/echo ...] [--registrations 300] [--uvloop] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from proxy_bench import (  # noqa: E402
    MINIMAL_PROXY,
    REGISTRATION_BODY,
    Proc,
    gateway_command,
    spawn,
    wait_http,
    write_gateway_config,
)

from tests.support.upstream import UpstreamServer, free_port  # noqa: E402

DEFAULT_PATHS = ("/__test/echo", "/.well-known/openid-configuration")
TARGETS = ("minimal", "gateway")
WARMUP = 200
#: Under callgrind a start takes far longer than natively.
START_TIMEOUT = 300.0


def valgrind(out_dir: Path, name: str) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_dir / name}.%p.out",
    ]


def control(pid: int, *args: str) -> None:
    subprocess.run(
        ["callgrind_control", *args, str(pid)], capture_output=True, timeout=120, check=True
    )


def dumped_instructions(out_dir: Path, name: str, pid: int, before: set[Path]) -> int:
    """``Ir`` of the dump just written for ``pid`` (the ``summary:`` or ``totals:`` line)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fresh = sorted(set(out_dir.glob(f"{name}.{pid}.out*")) - before)
        for path in fresh:
            text = path.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
        time.sleep(0.2)
    raise RuntimeError(f"no callgrind dump for {name} ({pid})")


async def load(url: str, count: int, concurrency: int, body: bytes | None = None) -> int:
    """``count`` requests (``POST`` with ``body``, else ``GET``); the number that failed."""
    failed = 0
    issued = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal failed, issued
            while issued < count:
                issued += 1
                if body is None:
                    async with session.get(url) as response:
                        await response.read()
                        failed += response.status != 200
                else:
                    async with session.post(
                        url, data=body, headers={"Content-Type": "application/json"}
                    ) as response:
                        await response.read()
                        failed += response.status != 201

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


def measure(
    proc: Proc, out_dir: Path, url: str, count: int, concurrency: int, body: bytes | None
) -> dict[str, Any]:
    pid = proc.process.pid
    asyncio.run(load(url, WARMUP, concurrency, body))
    control(pid, "--zero")
    failed = asyncio.run(load(url, count, concurrency, body))
    before = set(out_dir.glob(f"{proc.name}.{pid}.out*"))
    control(pid, "--dump")
    instructions = dumped_instructions(out_dir, proc.name, pid, before)
    return {"instructions": instructions, "per_request": instructions / count, "failed": failed}


def run_callgrind(
    paths: list[str],
    *,
    requests: int = 2000,
    concurrency: int = 8,
    registrations: int = 300,
    uvloop: bool = False,
    targets: tuple[str, ...] = TARGETS,
    keep: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """path -> target -> ``instructions``, ``per_request``, ``failed`` (``/reg`` last)."""
    results: dict[str, dict[str, Any]] = {}
    upstream = UpstreamServer()
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="dcr-callgrind-") as tmp:
        workdir = Path(tmp)
        try:
            gateway_port, minimal_port = free_port(), free_port()
            gateway_url = f"http://127.0.0.1:{gateway_port}"
            minimal_url = f"http://127.0.0.1:{minimal_port}"
            upstream.start(issuer=gateway_url, test_endpoints=True)
            config = write_gateway_config(workdir, gateway_port, upstream.url)
            event_loop = "uvloop" if uvloop else "asyncio"
            minimal_argv = [sys.executable, str(MINIMAL_PROXY), "--port", str(minimal_port)]
            minimal_argv += ["--upstream", upstream.url]
            if uvloop:
                minimal_argv.append("--uvloop")
            gateway = spawn(
                "gateway",
                [
                    *valgrind(workdir, "gateway"),
                    *gateway_command(),
                    *("run", "-c", str(config), "--event-loop", event_loop),
                ],
                workdir,
            )
            minimal = spawn("minimal", [*valgrind(workdir, "minimal"), *minimal_argv], workdir)
            procs += [gateway, minimal]
            wait_http(gateway_url + "/-/healthz", gateway, START_TIMEOUT)
            wait_http(minimal_url + paths[0], minimal, START_TIMEOUT)
            for proc in procs:
                control(proc.process.pid, "--instr=on")
            bases = {
                name: target
                for name, target in (
                    ("minimal", (minimal, minimal_url)),
                    ("gateway", (gateway, gateway_url)),
                )
                if name in targets
            }
            cases: list[tuple[str, bytes | None]] = [(path, None) for path in paths]
            if registrations:
                cases.append(("/reg", REGISTRATION_BODY))
            for path, body in cases:
                count = requests if body is None else registrations
                results[path] = {}
                for target, (proc, base) in bases.items():
                    result = measure(proc, workdir, base + path, count, concurrency, body)
                    results[path][target] = result
                    print(
                        f"  callgrind {path} {target:8s} {result['per_request']:>12,.0f} "
                        f"instructions/request ({count} requests, {result['failed']} failed)",
                        flush=True,
                    )
        finally:
            for proc in procs:
                proc.stop()
            upstream.stop()
            if keep:
                keep.mkdir(parents=True, exist_ok=True)
                for dump in workdir.glob("*.out*"):
                    shutil.copy(dump, keep / dump.name)
    return results


def report(results: dict[str, dict[str, Any]], concurrency: int, uvloop: bool) -> None:
    print(
        f"\ncallgrind (instructions per request, {concurrency} keep-alive connections"
        f"{', uvloop' if uvloop else ', asyncio event loop'}; repeatable within about 1%)"
    )
    print(f"{'path':40s} {'minimal':>12s} {'gateway':>12s} {'gateway/minimal':>16s}")
    for path, by_target in results.items():
        m, g = (by_target[t]["per_request"] if t in by_target else float("nan") for t in TARGETS)
        print(f"{path:40s} {m:12,.0f} {g:12,.0f} {g / m:16.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--registrations", type=int, default=300, help="0: skip POST /reg")
    parser.add_argument("--path", action="append")
    parser.add_argument(
        "--uvloop", action="store_true", help="run both proxies on uvloop (if installed)"
    )
    parser.add_argument(
        "--target", action="append", choices=TARGETS, help="default: both (repeatable)"
    )
    parser.add_argument("--keep", type=Path, help="copy the callgrind dumps to this folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    paths = args.path or list(DEFAULT_PATHS)
    if not (0 < args.requests <= 100_000 and 0 < args.concurrency <= 256):
        parser.error("--requests 1..100000, --concurrency 1..256")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        parser.error("valgrind (with callgrind_control) is not installed")
    results = run_callgrind(
        paths,
        requests=args.requests,
        concurrency=args.concurrency,
        registrations=args.registrations,
        uvloop=args.uvloop,
        targets=tuple(args.target or TARGETS),
        keep=args.keep,
    )
    report(results, args.concurrency, args.uvloop)
    if args.json:
        args.json.write_text(json.dumps({"uvloop": args.uvloop, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
