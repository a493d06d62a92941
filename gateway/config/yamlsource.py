"""YAML documents with line numbers, duplicate-key detection and ``${ENV}`` interpolation.

PyYAML silently keeps the last of two equal keys; in a security policy that hides a rule
the author believes is in force, so duplicates are errors here.  Every value's line is
kept so that errors can say ``policy.yaml:12``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Key = str | int
KeyPath = tuple[Key, ...]

#: Upper bound on values built from one document: aliases can make a few hundred bytes
#: expand into billions of nodes ("billion laughs").
MAX_NODES = 200_000

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def format_path(path: KeyPath) -> str:
    """Render ``("upstream", "paths", 2)`` as ``upstream.paths[2]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration error: where it is and what is wrong."""

    path: str
    message: str
    location: str | None = None
    #: What the author most likely meant, when a common mistake fits ("did you mean
    #: 'block'?", "quote patterns that start with '*'"); shown on a line of its own.
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        text = f"{where}{self.path}: {self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class ConfigError(Exception):
    """Raised once, after loading, with every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(slots=True)
class Document:
    """A parsed YAML file: its data, and the line each key path was written on."""

    data: Any
    name: str
    lines: dict[KeyPath, int] = field(default_factory=dict)
    #: The exact bytes that were parsed (empty for documents built from data).
    raw: bytes = b""
    #: The source text of every value YAML 1.1 read as a boolean (``no``, ``On``), so a
    #: reader that expected a string can say what happened.
    booleans: dict[KeyPath, str] = field(default_factory=dict)

    def location(self, path: KeyPath) -> str | None:
        """``file:line`` of the nearest written ancestor of ``path``."""
        probe = path
        while True:
            if probe in self.lines:
                return f"{self.name}:{self.lines[probe]}"
            if not probe:
                return self.name
            probe = probe[:-1]


#: libyaml's parser when PyYAML was built with it: fifteen times faster on large policies,
#: with the same nodes and marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class _TooLarge(Exception):
    """The document expands to more than :data:`MAX_NODES` values."""


class _Builder:
    """Turns composed YAML nodes into plain Python values, recording lines."""

    def __init__(self, name: str, env: Mapping[str, str], problems: list[Problem]) -> None:
        self.name = name
        self.env = env
        self.problems = problems
        self.lines: dict[KeyPath, int] = {}
        self.booleans: dict[KeyPath, str] = {}
        self._constructor = yaml.SafeLoader("")
        self._budget = MAX_NODES

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise _TooLarge
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
            raise yaml.constructor.ConstructorError(
                None, None, f"tag {node.tag!r} is not allowed", node.start_mark
            )
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._constructor.construct_object(key_node)
                if not isinstance(key, str | int) or isinstance(key, bool):
                    hint = boolean_hint(key_node.value) if isinstance(key, bool) else None
                    self._problem(path, f"keys must be strings, not {key!r}", key_node, hint)
                    continue
                if key in out:
                    self._problem((*path, key), "duplicate key", key_node)
                    continue
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self._constructor.construct_object(node)
        if isinstance(value, bool):
            self.booleans[path] = str(node.value)
        if isinstance(value, str) and "${" in value:
            value = self._interpolate(value, path, node)
        return value

    def _interpolate(self, value: str, path: KeyPath, node: yaml.Node) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = self.env.get(name)
            if default is not None and not value:
                return default  # shell semantics: ${X:-d} also covers an empty X
            if value is not None:
                return value
            self._problem(path, f"environment variable {name} is not set", node)
            return ""

        return _ENV_RE.sub(replace, value)

    def _problem(
        self, path: KeyPath, message: str, node: yaml.Node, hint: str | None = None
    ) -> None:
        location = f"{self.name}:{node.start_mark.line + 1}"
        self.problems.append(Problem(format_path(path), message, location, hint))


def boolean_hint(source: str) -> str:
    """Why a word became ``true``/``false``: YAML 1.1 (PyYAML's) reads an unquoted
    ``yes``/``no``/``on``/``off``/``true``/``false`` as a boolean."""
    return (
        f"YAML reads an unquoted {source} as a boolean (YAML 1.1: yes, no, on, off, true, "
        f"false); write '{source}' in quotes if you meant the text"
    )


def _syntax_problem(exc: yaml.YAMLError, text: str, name: str, what: str) -> Problem:
    """One problem for a YAML error, keeping PyYAML's line, column and context (``while
    scanning an alias``), with a hint when the mistake is a common one."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    location = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    message = f"{what}: {problem}"
    if context:
        where = ""
        if context_mark is not None and context_mark is not mark:
            where = f" at line {context_mark.line + 1}, column {context_mark.column + 1}"
        message += f" ({context}{where})"
    lines = text.splitlines()
    line = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    return Problem("(file)", message, location, _syntax_hint(problem, context, line, mark))


def _syntax_hint(problem: str, context: str | None, line: str, mark: Any) -> str | None:
    if "alias" in (context or "") or "undefined alias" in problem:
        return (
            "patterns starting with `*` must be quoted: YAML reads an unquoted `*name` as an "
            "alias; write '*.example.com' or \"*admin*\""
        )
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    at_tab = mark is not None and mark.column < len(line) and line[mark.column] == "\t"
    if "\t" in indent or at_tab:
        return "YAML indentation must use spaces; this line has a tab"
    return None


def parse_text(
    text: str, name: str, problems: list[Problem], env: Mapping[str, str] | None = None
) -> Document:
    """Parse YAML text; syntax errors and duplicate keys are appended to ``problems``."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        problems.append(_syntax_problem(exc, text, name, "not valid YAML"))
        return Document(None, name)
    if node is None:
        return Document(None, name)
    builder = _Builder(name, os.environ if env is None else env, problems)
    try:
        data = builder.build(node, ())
    except yaml.YAMLError as exc:  # unknown tags, merge keys (<<)
        problems.append(_syntax_problem(exc, text, name, "unsupported YAML"))
        return Document(None, name)
    except (RecursionError, _TooLarge):
        problems.append(
            Problem(
                "(file)",
                "the document nests or repeats itself too deeply (aliases?)",
                f"{name}:{node.start_mark.line + 1}",
            )
        )
        return Document(None, name)
    return Document(data, name, builder.lines, booleans=builder.booleans)


def load_file(
    path: Path, problems: list[Problem], env: Mapping[str, str] | None = None
) -> Document:
    """Read and parse a YAML file; an unreadable file is a problem, not an exception.

    The file is read once, as bytes: the document keeps them, so a digest of the policy
    (its revision) is of exactly what was parsed, even if the file changes meanwhile.
    """
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem("(file)", f"cannot read: {exc}", str(path)))
        return Document(None, str(path))
    document = parse_text(text, str(path), problems, env)
    document.raw = raw
    return document
