"""Pass-through throughput and registration latency: the gateway against its baselines.

Starts, as subprocesses on free loopback ports:

* the bundled test authorization server (``tests/upstream``, node-oidc-provider, with its
  ``/__test/`` endpoints on),
* the gateway (``dcr-gateway run -c <temporary config>``, the shipped default policy with
  its rate limits out of reach: ``bench/bench_policy.py``),
* the minimal aiohttp reverse proxy of ``bench/minimal_proxy.py``,

then measures, in one run and interleaved, so that only ratios are compared:

1. small GETs (``wrk``, or a bounded aiohttp client when ``wrk`` is missing) of
   ``/__test/echo`` against the upstream directly, the minimal proxy and the gateway;
2. registration latency: sequential ``POST /reg`` of a realistic MCP-client body, p50/p99;
3. registration throughput with some concurrency.

Everything it starts is stopped in ``finally``; every load loop is bounded in count and
time. Nothing here is a pass/fail test: it prints numbers and ratios.

    .venv/bin/python bench/proxy_bench.py [--duration 4] [--connections 32] [--rounds 5]
                                          [--path /__test/echo ...] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench_policy import write_bench_policy  # noqa: E402

from tests.support.upstream import UpstreamServer, free_port  # noqa: E402

MINIMAL_PROXY = BENCH_DIR / "minimal_proxy.py"

#: What an MCP client (here: a native app with a loopback callback) sends to register.
REGISTRATION_BODY = json.dumps(
    {
        "client_name": "bench",
        "redirect_uris": ["http://127.0.0.1:43210/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid offline_access",
        "application_type": "native",
    }
).encode()

TARGETS = ("direct", "minimal", "gateway")
#: The cheapest answer the upstream has (served before the provider: the proxies' own cost
#: dominates), and a real endpoint every MCP client fetches whose answer does not depend
#: on the request headers (the echo grows with the gateway's forwarding headers).
DEFAULT_PATHS = ("/__test/echo", "/.well-known/openid-configuration")
START_TIMEOUT = 30.0
#: Above this many cores busy with unrelated work during the GET rounds, say so.
OTHER_LOAD_WARNING = 0.2
STOP_TIMEOUT = 5.0


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


def spawn(name: str, argv: list[str], workdir: Path) -> Proc:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
    return Proc(name, process, log_path)


def wait_http(url: str, proc: Proc, timeout: float = START_TIMEOUT) -> None:
    """Until ``url`` answers 200, or fail with the process's output."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited ({proc.process.returncode}):\n{proc.output()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"status {response.status}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(
        f"{proc.name} not ready at {url} after {timeout:.0f}s ({last}):\n{proc.output()}"
    )


def gateway_command() -> list[str]:
    """``python -m gateway`` of this interpreter, run from the repository's root, so the
    ``gateway`` package is this checkout's (not whatever ``dcr-gateway`` is installed)."""
    return [sys.executable, "-m", "gateway"]


def write_gateway_config(workdir: Path, port: int, upstream: str) -> Path:
    config = workdir / "gateway.yaml"
    config.write_text(
        "\n".join(
            [
                f"listen: {{host: 127.0.0.1, port: {port}}}",
                f"public_url: http://127.0.0.1:{port}",
                f"upstream: {{url: {json.dumps(upstream)}}}",
                f"policy_file: {json.dumps(str(write_bench_policy(workdir)))}",
                f"audit: {{sink: {json.dumps(str(workdir / 'audit.jsonl'))}}}",
                "log_level: warning",
                "",
            ]
        )
    )
    return config


# --------------------------------------------------------------------------- CPU time


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used (Linux ``/proc``), else ``None``.

    CPU time per request is steadier than requests/s on a shared machine: it does not
    count the time a process waits for a core."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


def busy_cpu_seconds() -> float | None:
    """CPU seconds all cores have spent busy (not idle, not waiting for I/O) since boot."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0]
        values = [int(v) for v in first.split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(values) - values[3] - values[4]) / _TICK


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (wrk)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# --------------------------------------------------------------------------- load: GET


def ensure_wrk() -> str | None:
    """The ``wrk`` binary; installed with apt-get when absent and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    print("wrk not found: apt-get install -y wrk ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in ([apt, "install", "-y", "wrk"], [apt, "update"], [apt, "install", "-y", "wrk"]):
        try:
            subprocess.run(argv, env=env, capture_output=True, timeout=180, check=False)
        except subprocess.TimeoutExpired:
            return None
        if shutil.which("wrk"):
            return shutil.which("wrk")
    return None


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(wrk: str, url: str, connections: int, threads: int, duration: float) -> dict[str, Any]:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency", url]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + 30, check=False
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if rps is None:
        raise RuntimeError(f"could not read wrk output:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "requests": int(total.group(1)) if total else None,
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
        "p50_ms": _ms(p50.group(1)) if p50 else float("nan"),
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
    }


async def _python_load(url: str, connections: int, duration: float) -> dict[str, Any]:
    """A bounded aiohttp load generator: ``connections`` workers for ``duration`` seconds
    (and at most 1,000,000 requests). Far slower than wrk; it shares the cores too."""
    cap = 1_000_000
    done = errors = 0
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline and done + errors < cap:
                t0 = time.perf_counter()
                try:
                    async with session.get(url) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                if ok:
                    done += 1
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(worker() for _ in range(connections))), duration + 30
        )
        elapsed = time.perf_counter() - started
    return {
        "rps": done / elapsed,
        "requests": done + errors,
        "errors": errors,
        "socket_errors": "",
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def run_load(
    loadgen: str | None, url: str, args: argparse.Namespace, duration: float
) -> dict[str, Any]:
    if loadgen:
        return run_wrk(loadgen, url, args.connections, args.threads, duration)
    return asyncio.run(_python_load(url, args.connections, duration))


# --------------------------------------------------------------------------- load: registration


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def _register_once(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.post(
        url, data=REGISTRATION_BODY, headers={"Content-Type": "application/json"}
    ) as response:
        await response.read()
        return response.status == 201


async def registration_latency(url: str, count: int, time_limit: float) -> tuple[list[float], int]:
    """``count`` sequential registrations on one keep-alive connection (bounded in time)."""
    samples: list[float] = []
    failures = 0
    deadline = time.perf_counter() + time_limit
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(count):
            if time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            ok = await _register_once(session, url)
            samples.append(time.perf_counter() - t0)
            failures += not ok
    return samples, failures


async def registration_throughput(
    url: str, total: int, concurrency: int, time_limit: float
) -> dict[str, Any]:
    """``total`` registrations by ``concurrency`` workers (bounded in time)."""
    issued = ok = 0
    deadline = time.perf_counter() + time_limit
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal issued, ok
            while issued < total and time.perf_counter() < deadline:
                issued += 1
                success = await _register_once(session, url)  # not `ok += await`: lost updates
                ok += success

        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(worker() for _ in range(concurrency))), time_limit + 30
        )
        elapsed = time.perf_counter() - started
    return {"rps": issued / elapsed, "requests": issued, "failures": issued - ok}


# --------------------------------------------------------------------------- report


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


@dataclass
class Results:
    meta: dict[str, Any] = field(default_factory=dict)
    #: path -> target -> one result per round
    get_rounds: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    reg_latency: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in TARGETS})
    reg_failures: dict[str, int] = field(default_factory=lambda: {t: 0 for t in TARGETS})
    reg_throughput: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {t: [] for t in TARGETS}
    )


def _median_or_none(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def summarize_get(by_target: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    get = {}
    for target in TARGETS:
        rounds = by_target[target]
        get[target] = {
            "rps_median": statistics.median(r["rps"] for r in rounds),
            "rps_rounds": [round(r["rps"], 1) for r in rounds],
            "p50_ms_median": statistics.median(r["p50_ms"] for r in rounds),
            "p99_ms_median": statistics.median(r["p99_ms"] for r in rounds),
            "errors": sum(r["errors"] for r in rounds),
            "proxy_cpu_us_median": _median_or_none(r.get("proxy_cpu_us") for r in rounds),
            "upstream_cpu_us_median": _median_or_none(r.get("upstream_cpu_us") for r in rounds),
        }
    g, m, d = (get[t]["rps_median"] for t in ("gateway", "minimal", "direct"))
    per_round = [
        ratio(gr["rps"], mr["rps"])
        for gr, mr in zip(by_target["gateway"], by_target["minimal"], strict=True)
    ]
    other = [
        r["other_load_cores"] for rs in by_target.values() for r in rs if "other_load_cores" in r
    ]
    return {
        "targets": get,
        "other_load_cores_mean": statistics.fmean(other) if other else None,
        "ratios": {
            # The goal is judged on the median of per-round ratios: the two figures of one
            # round are taken seconds apart, so drifts in machine load mostly cancel out.
            "gateway/minimal": statistics.median(per_round),
            "gateway/minimal, ratio of medians": ratio(g, m),
            "gateway/direct": ratio(g, d),
            "minimal/direct": ratio(m, d),
            "gateway/minimal per round": [round(x, 3) for x in per_round],
            "cpu per request gateway/minimal": (
                ratio(get["gateway"]["proxy_cpu_us_median"], get["minimal"]["proxy_cpu_us_median"])
                if get["gateway"]["proxy_cpu_us_median"] and get["minimal"]["proxy_cpu_us_median"]
                else None
            ),
        },
    }


def summarize(results: Results) -> dict[str, Any]:
    reg = {}
    for target in TARGETS:
        samples = results.reg_latency[target]
        tp = results.reg_throughput[target]
        reg[target] = {
            "count": len(samples),
            "failures": results.reg_failures[target] + sum(r["failures"] for r in tp),
            "p50_ms": percentile(samples, 50) * 1000,
            "p99_ms": percentile(samples, 99) * 1000,
            "throughput_rps_median": statistics.median(r["rps"] for r in tp)
            if tp
            else float("nan"),
            "throughput_rounds": [round(r["rps"], 1) for r in tp],
        }
    return {
        "get": {path: summarize_get(rounds) for path, rounds in results.get_rounds.items()},
        "registration": reg,
        "registration_ratios": {
            "p50 gateway/direct": ratio(reg["gateway"]["p50_ms"], reg["direct"]["p50_ms"]),
            "p99 gateway/direct": ratio(reg["gateway"]["p99_ms"], reg["direct"]["p99_ms"]),
            "p50 gateway/minimal": ratio(reg["gateway"]["p50_ms"], reg["minimal"]["p50_ms"]),
            "throughput gateway/direct": ratio(
                reg["gateway"]["throughput_rps_median"], reg["direct"]["throughput_rps_median"]
            ),
            "throughput gateway/minimal": ratio(
                reg["gateway"]["throughput_rps_median"], reg["minimal"]["throughput_rps_median"]
            ),
        },
    }


def report_get(path: str, result: dict[str, Any], meta: dict[str, Any]) -> None:
    get = result["targets"]
    gr = result["ratios"]
    print_table(
        f"Pass-through: GET {path} ({meta['loadgen']}, {meta['connections']} connections, "
        f"{meta['duration']:g}s x {meta['rounds']} rounds, median)",
        [
            "target",
            "requests/s",
            "per round",
            "p50 ms",
            "p99 ms",
            "proxy CPU us/req",
            "upstream CPU us/req",
            "errors",
        ],
        [
            [
                {
                    "direct": "upstream direct",
                    "minimal": "minimal aiohttp proxy",
                    "gateway": "dcr-gateway",
                }[t],
                f"{get[t]['rps_median']:.0f}",
                " / ".join(f"{x:.0f}" for x in get[t]["rps_rounds"]),
                f"{get[t]['p50_ms_median']:.2f}",
                f"{get[t]['p99_ms_median']:.2f}",
                "-" if t == "direct" else _fmt(get[t]["proxy_cpu_us_median"]),
                _fmt(get[t]["upstream_cpu_us_median"]),
                str(get[t]["errors"]),
            ]
            for t in TARGETS
        ],
    )
    print_table(
        f"Pass-through ratios, GET {path} (same run)",
        ["ratio", "value"],
        [
            ["gateway / minimal proxy (median of rounds)", f"{gr['gateway/minimal']:.3f}"],
            [
                "gateway / minimal proxy (ratio of medians)",
                f"{gr['gateway/minimal, ratio of medians']:.3f}",
            ],
            ["gateway / direct", f"{gr['gateway/direct']:.3f}"],
            ["minimal proxy / direct", f"{gr['minimal/direct']:.3f}"],
            [
                "gateway / minimal, per round",
                " / ".join(f"{x:.3f}" for x in gr["gateway/minimal per round"]),
            ],
            [
                "proxy CPU per request, gateway / minimal",
                _fmt(gr["cpu per request gateway/minimal"], ".3f"),
            ],
        ],
    )
    other = result.get("other_load_cores_mean")
    if other is not None:
        print(f"other processes kept {other:.2f} cores busy on average during these rounds")
        if other > OTHER_LOAD_WARNING:
            print("warning: the machine was not quiet; these figures are less reliable")


def report(summary: dict[str, Any], meta: dict[str, Any]) -> None:
    for path, result in summary["get"].items():
        report_get(path, result, meta)
    reg = summary["registration"]
    rr = summary["registration_ratios"]
    print_table(
        f"Registration: POST /reg, {meta['registrations']} sequential (latency) and "
        f"{meta['reg_total']} with concurrency {meta['reg_concurrency']} (throughput, median of "
        f"{meta['rounds']})",
        ["target", "n", "p50 ms", "p99 ms", "registrations/s", "failures"],
        [
            [
                {
                    "direct": "upstream direct",
                    "minimal": "minimal aiohttp proxy",
                    "gateway": "dcr-gateway",
                }[t],
                str(reg[t]["count"]),
                f"{reg[t]['p50_ms']:.2f}",
                f"{reg[t]['p99_ms']:.2f}",
                f"{reg[t]['throughput_rps_median']:.0f}",
                str(reg[t]["failures"]),
            ]
            for t in TARGETS
        ],
    )
    print_table(
        "Registration ratios (same run)",
        ["ratio", "value"],
        [[k, f"{v:.3f}"] for k, v in rr.items()],
    )
    print()
    for path, result in summary["get"].items():
        goal = result["ratios"]["gateway/minimal"]
        cpu = result["ratios"]["cpu per request gateway/minimal"]
        print(
            f"Goal: throughput >= 0.95x the minimal proxy, GET {path}: {goal:.3f}x -> "
            f"{'met' if goal >= 0.95 else 'NOT met'}"
        )
        if cpu is not None:
            print(
                f"Goal: CPU per request <= 1.10x the minimal proxy's, GET {path}: {cpu:.3f}x "
                f"-> {'met' if cpu <= 1.10 else 'NOT met'}"
            )
    p50 = rr["p50 gateway/minimal"]
    print(
        f"Goal: registration p50 <= 1.15x the minimal proxy's: {p50:.3f}x -> "
        f"{'met' if p50 <= 1.15 else 'NOT met'}"
    )


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description="dcr-gateway pass-through and registration bench")
    parser.add_argument("--duration", type=int, default=4, help="seconds per GET round")
    parser.add_argument("--connections", type=int, default=32, help="concurrent GET connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per target")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per target")
    parser.add_argument(
        "--path",
        action="append",
        help=f"path of a small GET (repeatable; default: {' and '.join(DEFAULT_PATHS)})",
    )
    parser.add_argument("--registrations", type=int, default=300, help="sequential POST /reg")
    parser.add_argument(
        "--reg-total", type=int, default=1000, help="POST /reg per throughput round"
    )
    parser.add_argument("--reg-concurrency", type=int, default=8)
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--uvloop", action="store_true", help="run the gateway and the minimal proxy on uvloop"
    )
    parser.add_argument(
        "--callgrind",
        type=int,
        default=0,
        metavar="N",
        help="also count instructions per request under valgrind's callgrind, N requests "
        "per path (repeatable whatever the machine's load; about a minute per path)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    args.path = args.path or list(DEFAULT_PATHS)
    if not all(p.startswith("/") for p in args.path) or len(args.path) > 4:
        parser.error("--path must start with '/' (at most 4)")
    if not (
        0 < args.warmup <= 60
        and 0 < args.duration <= 120
        and 0 < args.rounds <= 10
        and 0 < args.connections <= 1024
    ):
        parser.error("--warmup 1..60, --duration 1..120, --rounds 1..10, --connections 1..1024")

    wrk = None
    if args.loadgen in ("auto", "wrk"):
        wrk = ensure_wrk()
        if wrk is None and args.loadgen == "wrk":
            parser.error("wrk is not installed and could not be installed")
    loadgen_name = f"wrk -t{args.threads}" if wrk else "python aiohttp client"
    if wrk is None and args.loadgen == "auto":
        print("wrk unavailable: using the (slower) Python load generator", flush=True)

    started_at = time.monotonic()
    results = Results()
    procs: list[Proc] = []
    upstream = UpstreamServer()
    with tempfile.TemporaryDirectory(prefix="dcr-bench-") as tmp:
        workdir = Path(tmp)
        try:
            gateway_port, minimal_port = free_port(), free_port()
            gateway_url = f"http://127.0.0.1:{gateway_port}"
            minimal_url = f"http://127.0.0.1:{minimal_port}"
            # The issuer is the gateway's URL, as in a real deployment behind it.
            upstream.start(issuer=gateway_url, test_endpoints=True)
            config = write_gateway_config(workdir, gateway_port, upstream.url)
            event_loop = "uvloop" if args.uvloop else "asyncio"
            procs.append(
                spawn(
                    "gateway",
                    [*gateway_command(), "run", "-c", str(config), "--event-loop", event_loop],
                    workdir,
                )
            )
            procs.append(
                spawn(
                    "minimal",
                    [
                        sys.executable,
                        str(MINIMAL_PROXY),
                        "--port",
                        str(minimal_port),
                        "--upstream",
                        upstream.url,
                        *(["--uvloop"] if args.uvloop else []),
                    ],
                    workdir,
                )
            )
            bases = {"direct": upstream.url, "minimal": minimal_url, "gateway": gateway_url}
            wait_http(gateway_url + "/-/healthz", procs[0])
            for proc, base in zip(procs, (gateway_url, minimal_url), strict=True):
                for path in args.path:
                    wait_http(base + path, proc)
            print(
                f"upstream {upstream.url}, minimal proxy {minimal_url}, gateway {gateway_url}; "
                f"load generator: {loadgen_name}",
                flush=True,
            )

            # ---- pass-through GETs: warm-up, then interleaved rounds
            for path in args.path:
                results.get_rounds[path] = {t: [] for t in TARGETS}
                for target in TARGETS:
                    run_load(wrk, bases[target] + path, args, args.warmup)
            pids = {
                "direct": None,
                "minimal": procs[1].process.pid,
                "gateway": procs[0].process.pid,
            }
            node_pid = upstream._process.pid if upstream._process else None
            for round_no, path, target in (
                (r, p, t) for r in range(args.rounds) for p in args.path for t in TARGETS
            ):
                before = cpu_seconds(pids[target]), cpu_seconds(node_pid)
                busy_before, own_before = busy_cpu_seconds(), own_cpu_seconds()
                t0 = time.monotonic()
                result = run_load(wrk, bases[target] + path, args, args.duration)
                elapsed = time.monotonic() - t0
                after = cpu_seconds(pids[target]), cpu_seconds(node_pid)
                busy_after, own_after = busy_cpu_seconds(), own_cpu_seconds()
                count = result["requests"] or 0
                if None not in (busy_before, busy_after, before[1], after[1]):
                    ours = own_after - own_before + after[1] - before[1]
                    if before[0] is not None and after[0] is not None:
                        ours += after[0] - before[0]
                    # cores kept busy by processes other than the ones measured
                    other = (busy_after - busy_before - ours) / elapsed
                    result["other_load_cores"] = max(0.0, other)
                for key, b, a in zip(
                    ("proxy_cpu_us", "upstream_cpu_us"), before, after, strict=True
                ):
                    known = a is not None and b is not None and count
                    result[key] = (a - b) / count * 1e6 if known else None
                results.get_rounds[path][target].append(result)
                errors = f"errors {result['errors']}"
                if result["socket_errors"]:
                    errors += ", socket errors: " + result["socket_errors"]
                if result.get("other_load_cores") is not None:
                    errors += f"; other load {result['other_load_cores']:.2f} cores"
                print(
                    f"  round {round_no + 1} {path} {target:8s} {result['rps']:9.1f} req/s "
                    f"({errors})",
                    flush=True,
                )

            # ---- registrations: warm-up, sequential latency in interleaved blocks, throughput
            async def registrations() -> None:
                for target in TARGETS:
                    await registration_latency(bases[target] + "/reg", 20, 20)
                blocks = 3
                per_block = max(1, args.registrations // blocks)
                for _ in range(blocks):
                    for target in TARGETS:
                        samples, failures = await registration_latency(
                            bases[target] + "/reg", per_block, 60
                        )
                        results.reg_latency[target].extend(samples)
                        results.reg_failures[target] += failures
                for _ in range(args.rounds):
                    for target in TARGETS:
                        results.reg_throughput[target].append(
                            await registration_throughput(
                                bases[target] + "/reg", args.reg_total, args.reg_concurrency, 30
                            )
                        )

            asyncio.run(registrations())
        finally:
            for proc in procs:
                proc.stop()
            upstream.stop()

    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "node": subprocess.run(
            ["node", "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "loadgen": loadgen_name,
        "paths": args.path,
        "connections": args.connections,
        "duration": args.duration,
        "rounds": args.rounds,
        "registrations": args.registrations,
        "reg_total": args.reg_total,
        "reg_concurrency": args.reg_concurrency,
        "elapsed_s": round(time.monotonic() - started_at, 1),
    }
    summary = summarize(results)
    if args.callgrind:
        from callgrind_bench import run_callgrind

        summary["callgrind"] = run_callgrind(
            args.path,
            requests=args.callgrind,
            registrations=max(1, args.callgrind // 5),
            uvloop=args.uvloop,
        )
    meta["event_loop"] = "uvloop" if args.uvloop else "asyncio"
    print(
        f"\n{meta['date']}; {meta['cpus']} CPUs; Python {meta['python']}, aiohttp "
        f"{meta['aiohttp']}, node {meta['node']}, {meta['event_loop']} event loop; load "
        "generator on the same cores, loopback"
    )
    report(summary, meta)
    if "callgrind" in summary:
        from callgrind_bench import report as report_callgrind

        report_callgrind(summary["callgrind"], 8, args.uvloop)
    print(f"\n(total {meta['elapsed_s']} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "meta": meta,
                    "summary": summary,
                    "raw": {
                        "get_rounds": results.get_rounds,
                        "reg_throughput": results.reg_throughput,
                    },
                },
                indent=2,
            )
        )
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
