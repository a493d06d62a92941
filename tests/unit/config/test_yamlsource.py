"""Unit tests for gateway.config.yamlsource: lines, duplicate keys, ${ENV} interpolation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config.yamlsource import (
    ConfigError,
    Document,
    Problem,
    format_path,
    load_file,
    parse_text,
)


def parse(text: str, env: dict[str, str] | None = None) -> tuple[Document, list[Problem]]:
    problems: list[Problem] = []
    document = parse_text(text, "config.yaml", problems, env={} if env is None else env)
    return document, problems


def triples(problems: list[Problem]) -> list[tuple[str, str, str | None]]:
    return [(p.path, p.message, p.location) for p in problems]


# --- format_path, Problem, ConfigError ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ((), "(top level)"),
        (("listen",), "listen"),
        (("upstream", "url"), "upstream.url"),
        (("upstream", "paths", 2), "upstream.paths[2]"),
        ((0,), "[0]"),
        ((0, "name"), "[0].name"),
        (("a", 0, 1, "b"), "a[0][1].b"),
    ],
    ids=["empty", "one-key", "nested", "key-then-index", "index-only", "index-then-key", "mixed"],
)
def test_format_path(path: tuple[str | int, ...], expected: str) -> None:
    assert format_path(path) == expected


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        (Problem("a.b", "is required", "config.yaml:3"), "config.yaml:3: a.b: is required"),
        (Problem("a.b", "is required"), "a.b: is required"),
    ],
    ids=["with-location", "without-location"],
)
def test_problem_str(problem: Problem, expected: str) -> None:
    assert str(problem) == expected


def test_config_error_lists_every_problem() -> None:
    problems = [Problem("a", "bad", "c.yaml:1"), Problem("b", "worse")]
    error = ConfigError(problems)
    assert error.problems == problems
    assert str(error) == "c.yaml:1: a: bad\nb: worse"


# --- plain parsing -------------------------------------------------------------------------


def test_parses_values_and_records_lines() -> None:
    text = "listen:\n  host: 127.0.0.1\n  port: 8080\npaths:\n  - /reg\n  - /register\n"
    document, problems = parse(text)
    assert problems == []
    assert document.name == "config.yaml"
    assert document.data == {
        "listen": {"host": "127.0.0.1", "port": 8080},
        "paths": ["/reg", "/register"],
    }
    assert document.lines[("listen", "host")] == 2
    assert document.lines[("listen", "port")] == 3
    assert document.lines[("paths", 0)] == 5
    assert document.lines[("paths", 1)] == 6


@pytest.mark.parametrize(
    "text",
    ["", "   \n", "# only a comment\n"],
    ids=["empty", "blank", "comment-only"],
)
def test_empty_document_has_no_data_and_no_problem(text: str) -> None:
    document, problems = parse(text)
    assert document.data is None
    assert problems == []


def test_integer_keys_are_allowed() -> None:
    document, problems = parse("1: one\n2: two\n")
    assert problems == []
    assert document.data == {1: "one", 2: "two"}


# --- duplicate keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected_problems", "expected_data"),
    [
        (
            "a: 1\nb: 2\na: 3\n",
            [("a", "duplicate key", "config.yaml:3")],
            {"a": 1, "b": 2},
        ),
        (
            "upstream:\n  url: http://a\n  timeout: 2s\n  url: http://b\n",
            [("upstream.url", "duplicate key", "config.yaml:4")],
            {"upstream": {"url": "http://a", "timeout": "2s"}},
        ),
        (
            "rules:\n  - name: first\n    deny: true\n    name: second\n",
            [("rules[0].name", "duplicate key", "config.yaml:4")],
            {"rules": [{"name": "first", "deny": True}]},
        ),
        (
            "a:\n  b:\n    c:\n      d: 1\n      d: 2\n",
            [("a.b.c.d", "duplicate key", "config.yaml:5")],
            {"a": {"b": {"c": {"d": 1}}}},
        ),
        (
            "listen: {host: a, host: b}\n",
            [("listen.host", "duplicate key", "config.yaml:1")],
            {"listen": {"host": "a"}},
        ),
        (
            "a: 1\na: 2\na: 3\n",
            [("a", "duplicate key", "config.yaml:2"), ("a", "duplicate key", "config.yaml:3")],
            {"a": 1},
        ),
        (
            "'a': 1\n\"a\": 2\n",
            [("a", "duplicate key", "config.yaml:2")],
            {"a": 1},
        ),
        (
            "1: x\n0x1: y\n",
            [("[1]", "duplicate key", "config.yaml:2")],
            {1: "x"},
        ),
    ],
    ids=[
        "top-level",
        "nested-mapping",
        "inside-list-item",
        "deeply-nested",
        "flow-mapping",
        "three-times",
        "differently-quoted",
        "same-integer-spelled-differently",
    ],
)
def test_duplicate_keys_are_problems_with_file_and_line(
    text: str, expected_problems: list[tuple[str, str, str]], expected_data: object
) -> None:
    document, problems = parse(text)
    assert triples(problems) == expected_problems
    assert document.data == expected_data


def test_duplicates_in_several_places_are_all_reported() -> None:
    text = "a: 1\na: 2\nb:\n  c: 1\n  c: 2\n"
    _, problems = parse(text)
    assert triples(problems) == [
        ("a", "duplicate key", "config.yaml:2"),
        ("b.c", "duplicate key", "config.yaml:5"),
    ]


# --- non-string keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("1.5: x\n", "1.5"),
        ("null: x\n", "None"),
        ("~: x\n", "None"),
        ("yes: x\n", "True"),
        ("on: x\n", "True"),
        ("false: x\n", "False"),
        ("? [1, 2]\n: x\n", "[]"),
        ("? {a: 1}\n: x\n", "{}"),
    ],
    ids=["float", "null", "tilde", "yaml11-yes", "yaml11-on", "bool", "sequence", "mapping"],
)
def test_non_string_keys_are_problems(text: str, shown: str) -> None:
    document, problems = parse(text)
    assert triples(problems) == [
        ("(top level)", f"keys must be strings, not {shown}", "config.yaml:1")
    ]
    assert document.data == {}


def test_non_string_nested_key_names_its_parent_path() -> None:
    document, problems = parse("upstream:\n  url: http://a\n  true: 1\n")
    assert triples(problems) == [("upstream", "keys must be strings, not True", "config.yaml:3")]
    assert document.data == {"upstream": {"url": "http://a"}}


# --- ${ENV} interpolation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${A}", {"A": "alpha"}, "alpha"),
        ("pre-${A}-post", {"A": "alpha"}, "pre-alpha-post"),
        ("${A}${B}", {"A": "x", "B": "y"}, "xy"),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": "set"}, "set"),
        ("${A:-}", {}, ""),
        ("${URL:-redis://cache:6379/0}", {}, "redis://cache:6379/0"),
        ("${A}", {"A": "${B}"}, "${B}"),
        ("$A", {"A": "alpha"}, "$A"),
        ("${1A}", {"1A": "x"}, "${1A}"),
        ("${A", {"A": "alpha"}, "${A"),
    ],
    ids=[
        "whole-value",
        "embedded",
        "two-variables",
        "default-when-unset",
        "value-beats-default",
        "empty-default",
        "default-with-colons",
        "not-re-expanded",
        "no-braces-untouched",
        "invalid-name-untouched",
        "unclosed-untouched",
    ],
)
def test_interpolation(value: str, env: dict[str, str], expected: str) -> None:
    document, problems = parse(f"key: '{value}'\n", env)
    assert problems == []
    assert document.data == {"key": expected}


def test_missing_variable_is_a_problem_with_location() -> None:
    document, problems = parse("storage: memory://\nupstream:\n  url: ${UPSTREAM_URL}\n")
    assert triples(problems) == [
        ("upstream.url", "environment variable UPSTREAM_URL is not set", "config.yaml:3")
    ]
    assert document.data == {"storage": "memory://", "upstream": {"url": ""}}


def test_every_missing_variable_is_reported() -> None:
    _, problems = parse("a: ${ONE}/${TWO}\nb:\n  - ${THREE}\n")
    assert triples(problems) == [
        ("a", "environment variable ONE is not set", "config.yaml:1"),
        ("a", "environment variable TWO is not set", "config.yaml:1"),
        ("b[0]", "environment variable THREE is not set", "config.yaml:3"),
    ]


def test_keys_and_non_strings_are_not_interpolated() -> None:
    document, problems = parse("${A}: 1\nport: 8080\n", {"A": "alpha"})
    assert problems == []
    assert document.data == {"${A}": 1, "port": 8080}


def test_interpolated_secret_is_not_echoed_in_problems() -> None:
    document, problems = parse("a: ${SECRET}\nb: 1\nb: 2\n", {"SECRET": "hunter2"})
    assert document.data == {"a": "hunter2", "b": 1}
    assert all("hunter2" not in str(p) for p in problems)


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCR_TEST_VALUE", "from-os")
    problems: list[Problem] = []
    document = parse_text("key: ${DCR_TEST_VALUE}\n", "config.yaml", problems)
    assert problems == []
    assert document.data == {"key": "from-os"}


def test_default_is_used_when_variable_is_empty() -> None:
    document, problems = parse("storage: ${REDIS_URL:-memory://}\n", {"REDIS_URL": ""})
    assert problems == []
    assert document.data == {"storage": "memory://"}


# --- invalid YAML --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: [1, 2\nb: 3\n", 2),
        ("a: b: c\n", 1),
        ("a: 1\n  b: 2\n", 2),
        ("a: 1\n---\nb: 2\n", 2),
        ("a:\n\t- 1\n", 2),
        ("a: *nowhere\n", 1),
        ("a: 'unterminated\n", 2),
    ],
    ids=[
        "unclosed-flow-list",
        "mapping-in-plain-value",
        "bad-indentation",
        "two-documents",
        "tab-indentation",
        "undefined-alias",
        "unterminated-quote",
    ],
)
def test_invalid_yaml_is_one_problem_with_a_line(text: str, line: int) -> None:
    document, problems = parse(text)
    assert document.data is None
    assert len(problems) == 1
    assert problems[0].path == "(file)"
    assert problems[0].message.startswith("not valid YAML: ")
    # file:line:column, PyYAML's problem mark
    assert re.fullmatch(rf"config\.yaml:{line}:\d+", problems[0].location or "")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: !custom value\n", 1),
        ("a: !!python/object/apply:os.getcwd []\n", 1),
        ("base: &base {x: 1}\nchild:\n  <<: *base\n  y: 2\n", 3),
        ("a: &loop [*loop]\n", 1),
    ],
    ids=["unknown-tag", "python-tag", "merge-key", "recursive-alias"],
)
def test_unconstructible_yaml_is_a_problem_not_an_exception(text: str, line: int) -> None:
    _, problems = parse(text)
    assert len(problems) == 1
    assert re.fullmatch(rf"config\.yaml:{line}(:\d+)?", problems[0].location or "")


# --- Document.location ---------------------------------------------------------------------


LOCATION_TEXT = (
    "# comment\nlisten:\n  host: 127.0.0.1\nupstream:\n  url: http://a\n  paths:\n    - /reg\n"
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("listen", "host"), "config.yaml:3"),
        (("upstream", "paths", 0), "config.yaml:7"),
        (("upstream", "url", "deeper", 3), "config.yaml:5"),
        (("upstream", "paths", 5), "config.yaml:7"),
        (("upstream", "missing"), "config.yaml:5"),
        (("missing",), "config.yaml:2"),
        ((), "config.yaml:2"),
    ],
    ids=[
        "exact",
        "list-item",
        "below-a-scalar",
        "missing-index",
        "missing-key-in-section",
        "missing-top-key",
        "top-level",
    ],
)
def test_location_finds_nearest_written_ancestor(
    path: tuple[str | int, ...], expected: str
) -> None:
    document, problems = parse(LOCATION_TEXT)
    assert problems == []
    assert document.location(path) == expected


@pytest.mark.parametrize("path", [(), ("a",), ("a", 0, "b")], ids=["top", "one-key", "deep"])
def test_location_without_lines_is_the_file_name(path: tuple[str | int, ...]) -> None:
    assert Document(None, "empty.yaml").location(path) == "empty.yaml"


# --- load_file -----------------------------------------------------------------------------


def test_load_file_reads_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("a: 1\na: 2\n", encoding="utf-8")
    problems: list[Problem] = []
    document = load_file(path, problems, env={})
    assert document.data == {"a": 1}
    assert document.name == str(path)
    assert triples(problems) == [("a", "duplicate key", f"{path}:2")]


def test_load_file_interpolates_with_given_env(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("a: ${X}\n", encoding="utf-8")
    problems: list[Problem] = []
    document = load_file(path, problems, env={"X": "y"})
    assert problems == []
    assert document.data == {"a": "y"}


@pytest.mark.parametrize(
    "content",
    [None, b"a: \xff\xfe\n"],
    ids=["missing-file", "invalid-utf8"],
)
def test_unreadable_file_is_a_problem(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_bytes(content)
    problems: list[Problem] = []
    document = load_file(path, problems, env={})
    assert document.data is None
    assert len(problems) == 1
    assert problems[0].path == "(file)"
    assert problems[0].message.startswith("cannot read: ")
    assert problems[0].location == str(path)


# --- what a YAML error says -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "redirect_uris:\n  allow: [*.example.com]\n",
        "client:\n  client_name:\n    deny:\n      - *admin*\n",
        "deny: [*admin]\n",  # an alias to nothing
    ],
    ids=["wildcard-host", "glob-in-block-list", "undefined-alias"],
)
def test_an_unquoted_star_pattern_gets_the_quoting_hint(text: str) -> None:
    _, problems = parse(text)
    (problem,) = problems
    assert problem.hint is not None
    assert "patterns starting with `*` must be quoted" in problem.hint
    assert "\n  hint: patterns starting with `*` must be quoted" in str(problem)


def test_a_yaml_error_keeps_line_column_and_context() -> None:
    _, problems = parse("redirect_uris:\n  allow: [*.example.com]\n")
    (problem,) = problems
    assert problem.location == "config.yaml:2:12"  # the problem mark: the '.' after '*'
    assert "while scanning an alias at line 2, column 11" in problem.message


def test_a_tab_in_the_indentation_gets_the_tab_hint() -> None:
    _, problems = parse("redirect_uris:\n\tallow: []\n")
    (problem,) = problems
    assert problem.location == "config.yaml:2:1"
    assert problem.hint == "YAML indentation must use spaces; this line has a tab"


def test_an_ordinary_syntax_error_gets_no_hint() -> None:
    _, problems = parse("a: [1, 2\n")
    (problem,) = problems
    assert problem.hint is None
    assert "hint" not in str(problem)


def test_the_source_of_yaml_booleans_is_kept() -> None:
    document, problems = parse("mode: off\nlist: [yes, 'no', true]\n")
    assert problems == []
    assert document.data == {"mode": False, "list": [True, "no", True]}
    assert document.booleans == {("mode",): "off", ("list", 0): "yes", ("list", 2): "true"}


def test_a_boolean_key_gets_the_boolean_hint() -> None:
    _, problems = parse("on: 1\n")
    (problem,) = problems
    assert problem.message == "keys must be strings, not True"
    assert "YAML reads an unquoted on as a boolean" in (problem.hint or "")
