"""The policy file's JSON Schema (draft 2020-12), generated from :mod:`gateway.policy.spec`.

The loader takes its known keys from the same declarations, so the schema an editor uses
(``# yaml-language-server: $schema=...`` at the top of a policy) lists exactly the keys the
gateway accepts, with their defaults and meanings.  The shipped copy is
``policies/policy.schema.json``; regenerate it after changing a key with::

    python -m gateway.policy.schema policies/policy.schema.json

(a test fails, saying so, when the shipped file and the generated schema differ).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.policy import spec

DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: Where the shipped copy lives, from the repository root.
SHIPPED = Path("policies") / "policy.schema.json"
REGENERATE = f"python -m gateway.policy.schema {SHIPPED.as_posix()}"


def node_schema(node: spec.Node) -> dict[str, Any]:
    """The JSON Schema of one key's value."""
    if isinstance(node, spec.Section):
        out: dict[str, Any] = {
            "type": ["object", "null"] if node.nullable else "object",
            "description": node.description,
            "additionalProperties": False,
            "properties": {name: node_schema(child) for name, child in node.keys.items()},
        }
        if node.required:
            out["required"] = list(node.required)
        return out
    if isinstance(node, spec.Entries):
        out = {
            "type": ["array", "null"],
            "description": node.description,
            "items": node_schema(node.entry),
        }
        if node.max_items is not None:
            out["maxItems"] = node.max_items
        return out
    out = dict(node.schema)
    # A value's own description (of its shape) comes after the key's meaning.
    shape = out.pop("description", None)
    out["description"] = f"{node.description} ({shape})" if shape else node.description
    if node.default is not None:
        out["default"] = node.default
    return out


def generate() -> dict[str, Any]:
    """The whole schema, ready for ``json.dumps``."""
    top = node_schema(spec.TOP)
    return {
        "$schema": DRAFT,
        "title": "dcr-gateway policy, version 1",
        **top,
    }


def render() -> str:
    """The schema as the shipped file spells it (stable key order, two-space indent)."""
    return json.dumps(generate(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1:
        print(f"usage: {REGENERATE}", file=sys.stderr)
        return 2
    if not args or args[0] == "-":
        sys.stdout.write(render())
        return 0
    Path(args[0]).write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover - the regeneration command
    raise SystemExit(main())
