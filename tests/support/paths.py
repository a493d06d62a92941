"""Where things are in the checkout, for tests that read shipped files."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICY_CASES = ROOT / "tests" / "policy_cases"
