"""Policy engine cost as the custom redirect URI list grows: 10 against 10,000 patterns.

Pure in-process, no network. Measures

* the time to load a policy of 10,000 custom patterns, from a mapping
  (``policy_from_mapping``: validation, compilation, indexing) and from a YAML file
  (``load_policy``: the same plus YAML parsing, what ``dcr-gateway run`` does), goal < 1 s;
* decisions per second of ``decide(policy, metadata)`` for a request that matches a custom
  pattern, one that matches nothing, a managed (Claude-shaped) one and a private-use one,
  at 10 and at 10,000 patterns; goal: 10,000 patterns within 2x of 10.

Every figure is the median of several repeats, timed with ``time.perf_counter``.

    .venv/bin/python bench/policy_bench.py [--repeats 7] [--min-time 0.2] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from gateway.policy.engine import decide  # noqa: E402
from gateway.policy.loader import load_policy, policy_from_mapping  # noqa: E402
from gateway.policy.model import Policy  # noqa: E402

SMALL, LARGE = 10, 10_000
LOAD_GOAL_S = 1.0
DECISION_GOAL = 2.0


def custom_patterns(count: int) -> list[str]:
    """A realistic mix: mostly one host per application, some wildcard tenants, any-port
    and any-query callbacks, and private-use schemes of native apps."""
    out = []
    for i in range(count):
        kind = i % 10
        if kind < 6:
            out.append(f"https://app{i}.example.com/oauth/*")
        elif kind == 6:
            out.append(f"https://*.tenant{i}.example.com/cb")
        elif kind == 7:
            out.append(f"https://app{i}.example.com:*/cb")
        elif kind == 8:
            out.append(f"https://app{i}.example.com/cb?*")
        else:
            out.append(f"com.example.app{i}:/cb")
    return out


def policy_mapping(count: int) -> dict[str, Any]:
    return {
        "version": 1,
        "mode": "allowlist",
        "redirect_uris": {
            "managed_list": "all",
            "allow": custom_patterns(count),
            "loopback": "any_port",
            "on_mismatch": "reject",
        },
        "client": {
            "token_endpoint_auth_methods": ["client_secret_basic", "client_secret_post", "none"],
            "scopes": {"allowed": ["openid", "profile", "email", "offline_access"]},
        },
    }


def _request(redirect_uri: str, **extra: Any) -> dict[str, Any]:
    return {
        "client_name": "bench",
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid offline_access",
        **extra,
    }


def requests_for(count: int) -> dict[str, tuple[dict[str, Any], str]]:
    """Request bodies and the rule each must get. The matching ones target a pattern near
    the end of the list (index ``count - 5``, an ``/oauth/*`` one), where a linear scan
    would be slowest."""
    last = count - 5
    return {
        "match (custom)": (
            _request(f"https://app{last}.example.com/oauth/callback"),
            "allow.custom",
        ),
        "no match": (
            _request("https://evil.example.net/oauth/callback"),
            "redirect_uri.not_allowed",
        ),
        "managed (Claude)": (
            {
                "client_name": "claudeai",
                "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            },
            "allow.managed",
        ),
        "match (private-use)": (
            _request(f"com.example.app{count - 1}:/cb", application_type="native"),
            "allow.custom",
        ),
    }


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def decisions_per_second(
    policy: Policy, metadata: dict[str, Any], repeats: int, min_time: float
) -> tuple[float, list[float]]:
    """Median rate over ``repeats`` runs of enough decisions to last ``min_time`` each."""

    def run(iterations: int) -> float:
        return timed(lambda: [decide(policy, metadata) for _ in range(iterations)])

    iterations = 1
    while run(iterations) < min_time and iterations < 1 << 22:  # calibrate, bounded
        iterations *= 2
    rates = [iterations / run(iterations) for _ in range(repeats)]
    return statistics.median(rates), rates


def main() -> int:
    parser = argparse.ArgumentParser(description="policy load time and decision rate, 10 vs 10,000")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per timed run")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    if not (1 <= args.repeats <= 50 and 0 < args.min_time <= 5):
        parser.error("--repeats 1..50, --min-time 0..5")

    results: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "repeats": args.repeats,
        }
    }
    print(
        f"{results['meta']['date']}; Python {results['meta']['python']}; "
        f"median of {args.repeats} repeats"
    )

    # ---- load time
    mapping = policy_mapping(LARGE)
    first = timed(lambda: policy_from_mapping(mapping))  # includes reading the managed list
    from_mapping = [timed(lambda: policy_from_mapping(mapping)) for _ in range(args.repeats)]
    with tempfile.TemporaryDirectory(prefix="dcr-policy-bench-") as tmp:
        path = Path(tmp) / "policy.yaml"
        path.write_text(yaml.safe_dump(mapping, sort_keys=False))
        from_file = [timed(lambda: load_policy(path)) for _ in range(args.repeats)]
        file_kib = path.stat().st_size / 1024
    load = {
        "first_from_mapping_s": first,
        "from_mapping_s": statistics.median(from_mapping),
        "from_yaml_file_s": statistics.median(from_file),
        "yaml_file_kib": round(file_kib, 1),
    }
    results["load"] = load
    print(f"\nLoad time, {LARGE:,} custom patterns (goal < {LOAD_GOAL_S:g} s)")
    label = "policy_from_mapping (validate, compile, index)"
    print(f"  {label:52s} {load['from_mapping_s'] * 1000:8.1f} ms")
    print(f"  {'  first call in the process (+ managed list)':52s} {first * 1000:8.1f} ms")
    print(
        f"  {f'load_policy from YAML ({file_kib:.0f} KiB, what run/check do)':52s} "
        f"{load['from_yaml_file_s'] * 1000:8.1f} ms"
    )

    # ---- decisions
    policies = {
        SMALL: policy_from_mapping(policy_mapping(SMALL)),
        LARGE: policy_from_mapping(mapping),
    }
    rows = []
    decisions: dict[str, Any] = {}
    for label in requests_for(SMALL):
        rates = {}
        for count, policy in policies.items():
            metadata, expected = requests_for(count)[label]
            decision = decide(policy, metadata)
            if decision.rule != expected:
                raise SystemExit(
                    f"{label} at {count}: expected {expected}, got {decision.rule} "
                    f"({decision.description})"
                )
            rates[count], _ = decisions_per_second(policy, metadata, args.repeats, args.min_time)
        slowdown = rates[SMALL] / rates[LARGE]
        decisions[label] = {
            "rule": expected,
            "per_s_10": rates[SMALL],
            "per_s_10000": rates[LARGE],
            "slowdown_10000_vs_10": slowdown,
        }
        rows.append((label, expected, rates[SMALL], rates[LARGE], slowdown))
    results["decisions"] = decisions

    print(
        f"\nDecisions per second, decide(policy, metadata) (goal: {LARGE:,} within "
        f"{DECISION_GOAL:g}x of {SMALL})"
    )
    header = (
        f"  {'request':20s} {'rule':26s} {'10 patterns':>12s} {'10,000':>12s} "
        f"{'us/decision':>12s} {'10 / 10,000':>12s}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for label, rule, small, large, slowdown in rows:
        print(
            f"  {label:20s} {rule:26s} {small:12,.0f} {large:12,.0f} "
            f"{1e6 / small:5.1f} / {1e6 / large:5.1f} {slowdown:11.2f}x"
        )

    worst = max(r[4] for r in rows)
    load_ok = max(load["from_mapping_s"], load["from_yaml_file_s"]) < LOAD_GOAL_S
    print(
        f"\nGoal: {LARGE:,} patterns load under {LOAD_GOAL_S:g} s: "
        f"mapping {load['from_mapping_s']:.3f} s, YAML file {load['from_yaml_file_s']:.3f} s -> "
        f"{'met' if load_ok else 'NOT met'}"
    )
    print(
        f"Goal: decisions at {LARGE:,} within {DECISION_GOAL:g}x of {SMALL}: worst "
        f"{worst:.2f}x -> {'met' if worst <= DECISION_GOAL else 'NOT met'}"
    )
    results["goals"] = {
        "load_met": load_ok,
        "decisions_worst_slowdown": worst,
        "decisions_met": worst <= DECISION_GOAL,
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
