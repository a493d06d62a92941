"""The worst-case cost of one decision, for bodies up to ``limits.max_body_bytes``.

The event loop is single-threaded: a body that takes 100 ms to judge delays every other
request by 100 ms, health checks included.  This script builds the most expensive bodies
it knows of, each at most ``--max-body`` bytes (default 64 KiB, the shipped limit), and
times ``judge_body`` (JSON parsing, type checks and the whole policy) on them, under the
shipped default policy and under policies that make the engine look at everything (``on_mismatch:
drop``, ``mode: open``).  Goal: the slowest of them at most 5 ms on this machine kind.

    .venv/bin/python bench/worst_case_bench.py [--repeats 30] [--json out.json]

It prints one line per (policy, body shape): median and worst time in milliseconds.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gateway.oauth.rfc7591 import URL_FIELDS  # noqa: E402
from gateway.policy.judge import judge_body  # noqa: E402
from gateway.policy.loader import load_policy, policy_from_mapping  # noqa: E402
from gateway.policy.model import Policy  # noqa: E402
from gateway.uri.hosts import warm_up  # noqa: E402

GOAL_MS = 5.0
#: Lower-case Latin letters with diacritics: valid in every label position, so a host of
#: them is parsed and encoded to the end (Punycode, IDNA2008 checks) rather than refused.
IDN = "\u00fc\u00f6\u00e4\u00e9\u00e8\u00ea\u00e7\u00f1\u00e5\u00f8"


def _fill(base: dict[str, Any], key: str, make: Callable[[int], Any], limit: int) -> bytes:
    """``base`` with ``key`` grown item by item while the body stays within ``limit``
    (sizes added up item by item: re-encoding the whole body each time is quadratic)."""
    items: list[Any] = []
    size = len(json.dumps({**base, key: []}).encode())
    while True:
        item = make(len(items))
        grown = size + len(json.dumps(item).encode()) + (2 if items else 0)
        if grown > limit:
            return json.dumps({**base, key: items}).encode()
        items.append(item)
        size = grown


def _idn_host(index: int, width: int = 50) -> str:
    """A host of three long internationalized labels, different for every index (so no
    cache could help), within DNS limits once encoded."""
    label = "".join(IDN[(index + i * 7) % len(IDN)] for i in range(width))
    return f"{label}.{label[::-1]}.{label[1:]}.example.org"


def bodies(limit: int, salt: int = 0) -> dict[str, bytes]:
    """Named worst-case bodies, each at most ``limit`` bytes; ``salt`` makes every string
    different, so no cache inside the gateway can help from one repeat to the next."""
    base = {"client_name": f"bench {salt}", "token_endpoint_auth_method": "none"}
    n = salt * 1000
    out: dict[str, bytes] = {}
    # The original report: ~880 IDNA redirect URIs in one 64 KB body (now capped at 20).
    out["880 IDN redirect URIs"] = _fill(
        base, "redirect_uris", lambda i: f"https://{_idn_host(n + i, 20)}/cb{i}", limit
    )
    # Just under the cap, every URI long, internationalized and allowed-looking.
    out["20 long IDN redirect URIs"] = json.dumps(
        {
            **base,
            "redirect_uris": [f"https://{_idn_host(n + i)}/{'p' * 200}/{i}" for i in range(20)],
        }
    ).encode()
    out["20 loopback URIs + 20 post-logout"] = json.dumps(
        {
            **base,
            "redirect_uris": [f"http://127.0.0.1:{1000 + i}/callback" for i in range(20)],
            "post_logout_redirect_uris": [f"https://{_idn_host(n + i)}/bye" for i in range(20)],
        }
    ).encode()
    out["20 language-tagged names, 256 chars each"] = json.dumps(
        {
            **base,
            "redirect_uris": ["http://127.0.0.1/callback"],
            **{
                f"client_name#x-{i}": (
                    f"{salt}-{i} " + " ".join(["Cl\u0430ude", "Code", "Anthropic"] * 21)
                )[:256]
                for i in range(20)
            },
        }
    ).encode()
    out["every URL field + 20 request_uris, IDN hosts"] = json.dumps(
        {
            **base,
            "redirect_uris": ["http://127.0.0.1/callback"],
            **{
                field: f"https://{_idn_host(n + i)}/{field}"
                for i, field in enumerate(sorted(URL_FIELDS))
            },
            "request_uris": [f"https://{_idn_host(n + 50 + i)}/r/{i}" for i in range(20)],
        }
    ).encode()
    scope_words = " ".join(f"s{i}" for i in range(limit // 6))
    out["64 KB scope"] = _truncate_json(base, "scope", scope_words, limit)
    out["thousands of unknown keys"] = _many_keys(base, limit)
    out["deeply nested jwks"] = _nested(base, limit)
    return out


def _truncate_json(base: dict[str, Any], key: str, value: str, limit: int) -> bytes:
    while True:
        body = json.dumps(
            {**base, "redirect_uris": ["http://127.0.0.1/callback"], key: value}
        ).encode()
        if len(body) <= limit:
            return body
        value = value[: len(value) - (len(body) - limit) - 1]


def _many_keys(base: dict[str, Any], limit: int) -> bytes:
    members = dict(base)
    members["redirect_uris"] = ["http://127.0.0.1/callback"]
    index = 0
    while True:
        members[f"x{index}"] = index
        if len(json.dumps(members).encode()) > limit:
            del members[f"x{index}"]
            return json.dumps(members).encode()
        index += 1


def _nested(base: dict[str, Any], limit: int) -> bytes:
    depth = 0
    while True:
        depth += 50
        text = '{"keys": ' + "[" * depth + "]" * depth + "}"
        body = json.dumps({**base, "redirect_uris": ["http://127.0.0.1/callback"]})[:-1]
        body += f', "jwks": {text}}}'
        if len(body) > limit or depth > 900:
            return (body[: limit - 1] + "}").encode() if len(body) > limit else body.encode()


def policies() -> dict[str, Policy]:
    default = load_policy(REPO / "policies" / "default.yaml")
    drop = policy_from_mapping(
        {
            "version": 1,
            "mode": "allowlist",
            "redirect_uris": {
                "allow": ["https://*.example.com/*"],
                "on_mismatch": "drop",
                "max_redirect_uris": 20,
            },
            "client": {"scopes": {"allowed": "any"}, "client_name": {"deny": ["*admin*"]}},
        }
    )
    open_ = policy_from_mapping({"version": 1, "mode": "open"})
    return {"default": default, "drop": drop, "open": open_}


def measure(policy: Policy, args: argparse.Namespace, first_salt: int) -> dict[str, list[float]]:
    """Milliseconds of ``judge_body`` per body shape, over fresh bodies: the gateway
    caches parsed URIs and identity keys, and the worst case is a request it has never
    seen, so every run of every policy gets strings of its own."""
    times: dict[str, list[float]] = {}
    for salt in range(first_salt, first_salt + args.repeats):
        for shape, body in bodies(args.max_body, salt).items():
            assert len(body) <= args.max_body, (shape, len(body))
            started = time.perf_counter()
            judge_body(policy, body)
            times.setdefault(shape, []).append((time.perf_counter() - started) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description="worst-case decision cost")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--max-body", type=int, default=65536)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    worst = 0.0
    warm_up()  # as the gateway does at start-up
    for policy in policies().values():
        judge_body(policy, bodies(args.max_body)["20 long IDN redirect URIs"])
    gc.disable()  # a collection inside one timed call would be measured as its cost
    print(f"{'policy':8} {'body':48} {'bytes':>6} {'median ms':>10} {'worst ms':>9}  rule")
    worst_median = 0.0
    for number, (policy_name, policy) in enumerate(policies().items()):
        times = measure(policy, args, 1 + number * args.repeats)
        last = bodies(args.max_body, 0)
        gc.collect()
        for shape, runs in times.items():
            median, slowest = statistics.median(runs), max(runs)
            rule = judge_body(policy, last[shape]).rule
            worst = max(worst, slowest)
            worst_median = max(worst_median, median)
            size = len(last[shape])
            results.append(
                {
                    "policy": policy_name,
                    "body": shape,
                    "bytes": size,
                    "median_ms": round(median, 3),
                    "worst_ms": round(slowest, 3),
                    "rule": rule,
                }
            )
            print(f"{policy_name:8} {shape:48} {size:6} {median:10.3f} {slowest:9.3f}  {rule}")
    verdict = "met" if worst_median <= GOAL_MS else "NOT met"
    print(
        f"\nmost expensive body: {worst_median:.3f} ms median, {worst:.3f} ms worst single "
        f"run (goal <= {GOAL_MS} ms for the median: {verdict})"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"results": results, "worst_ms": worst, "worst_median_ms": worst_median})
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
