"""Unit tests for gateway.config.reader: typed parsers and the problem-collecting Reader."""

from __future__ import annotations

import math
from typing import Any

import pytest
from yarl import URL

from gateway.config.reader import (
    Reader,
    as_bool,
    as_choice,
    as_duration,
    as_http_url,
    as_int,
    as_nonempty_str,
    as_size,
    as_str,
)
from gateway.config.yamlsource import Problem, parse_text


def reader_for(text: str) -> tuple[Reader, list[Problem]]:
    problems: list[Problem] = []
    document = parse_text(text, "config.yaml", problems, env={})
    assert problems == []
    return Reader(document, problems), problems


def triples(problems: list[Problem]) -> list[tuple[str, str, str | None]]:
    return [(p.path, p.message, p.location) for p in problems]


# --- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2s", 2.0),
        ("150ms", 0.15),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("30d", 2_592_000.0),
        ("1.5s", 1.5),
        (" 2 s ", 2.0),
        ("15", 15.0),
        (15, 15.0),
        (0.25, 0.25),
        ("1ms", 0.001),
    ],
    ids=[
        "seconds",
        "milliseconds",
        "half-second",
        "minutes",
        "hours",
        "days",
        "fractional",
        "spaces",
        "bare-string-number",
        "bare-int",
        "bare-float",
        "one-ms",
    ],
)
def test_duration_accepted(value: Any, seconds: float) -> None:
    assert as_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "must be greater than zero"),
        ("0s", "must be greater than zero"),
        ("0ms", "must be greater than zero"),
        (0.0, "must be greater than zero"),
        (-5, "must be greater than zero"),
        (-0.5, "must be greater than zero"),
        ("-5s", "must be a duration such as 2s, 500ms, 5m, not '-5s'"),
        (True, "must be a duration such as 2s, 500ms, 5m"),
        (False, "must be a duration such as 2s, 500ms, 5m"),
        ("soon", "must be a duration such as 2s, 500ms, 5m, not 'soon'"),
        ("2 weeks", "must be a duration such as 2s, 500ms, 5m, not '2 weeks'"),
        ("2S", "must be a duration such as 2s, 500ms, 5m, not '2S'"),
        ("5s5", "must be a duration such as 2s, 500ms, 5m, not '5s5'"),
        ("1e3", "must be a duration such as 2s, 500ms, 5m, not '1e3'"),
        ("", "must be a duration such as 2s, 500ms, 5m, not ''"),
        (None, "must be a duration such as 2s, 500ms, 5m, not None"),
        ([1], "must be a duration such as 2s, 500ms, 5m, not [1]"),
    ],
    ids=[
        "zero-int",
        "zero-seconds",
        "zero-ms",
        "zero-float",
        "negative-int",
        "negative-float",
        "negative-string",
        "true",
        "false",
        "word",
        "unknown-unit",
        "upper-case-unit",
        "trailing-garbage",
        "exponent",
        "empty",
        "null",
        "list",
    ],
)
def test_duration_refused(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        as_duration(value)
    assert str(info.value) == message


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "infinity"])
def test_duration_refuses_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match=r"duration|greater than zero|finite"):
        as_duration(value)


# --- sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (65536, 65536),
        ("65536", 65536),
        ("64KiB", 65536),
        ("64kib", 65536),
        ("1KB", 1000),
        ("1MB", 1_000_000),
        ("1MiB", 1_048_576),
        ("2GB", 2_000_000_000),
        ("1GiB", 1_073_741_824),
        ("10b", 10),
        (" 1 MiB ", 1_048_576),
        (1, 1),
    ],
    ids=[
        "int",
        "string-int",
        "kib",
        "kib-lower-case",
        "kb",
        "mb",
        "mib",
        "gb",
        "gib",
        "bytes-unit",
        "spaces",
        "one-byte",
    ],
)
def test_size_accepted(value: Any, size: int) -> None:
    assert as_size(value) == size


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "must be greater than zero"),
        ("0", "must be greater than zero"),
        ("0KiB", "must be greater than zero"),
        (-1, "must be greater than zero"),
        (True, "must be a size such as 65536 or 64KiB"),
        (1.5, "must be a size such as 65536 or 64KiB, not 1.5"),
        ("1.5MB", "must be a size such as 65536 or 64KiB, not '1.5MB'"),
        ("-1", "must be a size such as 65536 or 64KiB, not '-1'"),
        ("1TB", "must be a size such as 65536 or 64KiB, not '1TB'"),
        ("big", "must be a size such as 65536 or 64KiB, not 'big'"),
        (None, "must be a size such as 65536 or 64KiB, not None"),
    ],
    ids=[
        "zero",
        "zero-string",
        "zero-with-unit",
        "negative",
        "boolean",
        "float",
        "fractional-string",
        "negative-string",
        "unknown-unit",
        "word",
        "null",
    ],
)
def test_size_refused(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        as_size(value)
    assert str(info.value) == message


# --- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "path"),
    [
        ("http://127.0.0.1:3000", "127.0.0.1", 3000, "/"),
        ("https://as.example", "as.example", 443, "/"),
        ("https://as.example/base/", "as.example", 443, "/base/"),
        ("http://[::1]:8080", "::1", 8080, "/"),
        ("HTTPS://AS.example", "as.example", 443, "/"),
    ],
    ids=["http-ip-port", "https-default-port", "with-path", "ipv6", "upper-case-scheme"],
)
def test_http_url_accepted(text: str, host: str, port: int, path: str) -> None:
    url = as_http_url(text)
    assert isinstance(url, URL)
    assert (url.host, url.port, url.path) == (host, port, path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://user:pw@as.example", "must not carry credentials, a query or a fragment"),
        ("https://user@as.example", "must not carry credentials, a query or a fragment"),
        ("https://as.example/?a=1", "must not carry credentials, a query or a fragment"),
        ("https://as.example/#frag", "must not carry credentials, a query or a fragment"),
        ("ftp://as.example", "must be an absolute http:// or https:// URL"),
        ("file:///etc/passwd", "must be an absolute http:// or https:// URL"),
        ("javascript:alert(1)", "must be an absolute http:// or https:// URL"),
        ("//as.example/x", "must be an absolute http:// or https:// URL"),
        ("/relative/path", "must be an absolute http:// or https:// URL"),
        ("as.example", "must be an absolute http:// or https:// URL"),
        ("http://", "must be an absolute http:// or https:// URL"),
        ("http://as.example:99999", "is not a URL"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (8080, "must be a string, not a number"),
        (None, "must be a string, not empty"),
    ],
    ids=[
        "userinfo-with-password",
        "userinfo-user-only",
        "query",
        "fragment",
        "ftp-scheme",
        "file-scheme",
        "javascript-scheme",
        "scheme-relative",
        "relative-path",
        "no-scheme",
        "no-host",
        "port-out-of-range",
        "empty",
        "blank",
        "number",
        "null",
    ],
)
def test_http_url_refused(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        as_http_url(value)
    assert str(info.value).startswith(message)


def test_http_url_refuses_empty_userinfo() -> None:
    with pytest.raises(ValueError, match="credentials"):
        as_http_url("http://:@as.example/")


# --- scalar parsers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "value", "expected"),
    [
        (as_str, "x", "x"),
        (as_str, "", ""),
        (as_nonempty_str, " x ", " x "),
        (as_bool, True, True),
        (as_bool, False, False),
        (as_int(), 0, 0),
        (as_int(0, 65535), 65535, 65535),
        (as_int(1, 10), 1, 1),
        (as_int(), -7, -7),
        (as_choice("info", "debug"), "debug", "debug"),
    ],
    ids=[
        "str",
        "str-empty",
        "nonempty-str-keeps-spaces",
        "bool-true",
        "bool-false",
        "int-zero",
        "int-at-maximum",
        "int-at-minimum",
        "int-negative-unbounded",
        "choice",
    ],
)
def test_scalar_parser_accepts(parse: Any, value: Any, expected: Any) -> None:
    assert parse(value) == expected


@pytest.mark.parametrize(
    ("parse", "value", "message"),
    [
        (as_str, 1, "must be a string, not a number"),
        (as_str, ["a"], "must be a string, not a list"),
        (as_str, {"a": 1}, "must be a string, not a mapping"),
        (as_str, True, "must be a string, not a boolean"),
        (as_nonempty_str, "", "must not be empty"),
        (as_nonempty_str, " \t", "must not be empty"),
        (as_bool, "true", "must be true or false, not 'true'"),
        (as_bool, 1, "must be true or false, not 1"),
        (as_int(), True, "must be a whole number, not a boolean"),
        (as_int(), 1.0, "must be a whole number, not a number"),
        (as_int(), "8080", "must be a whole number, not a string"),
        (as_int(0, 65535), -1, "must be at least 0"),
        (as_int(0, 65535), 65536, "must be at most 65535"),
        (as_choice("info", "debug"), "INFO", "must be one of info, debug; got 'INFO'"),
        (as_choice("info", "debug"), None, "must be one of info, debug; got None"),
    ],
    ids=[
        "str-number",
        "str-list",
        "str-mapping",
        "str-boolean",
        "nonempty-empty",
        "nonempty-whitespace",
        "bool-string",
        "bool-int",
        "int-boolean",
        "int-float",
        "int-string",
        "int-below-minimum",
        "int-above-maximum",
        "choice-case",
        "choice-null",
    ],
)
def test_scalar_parser_refuses(parse: Any, value: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse(value)
    assert str(info.value) == message


# --- Reader --------------------------------------------------------------------------------


SECTION_TEXT = "upstream:\n  url: http://a\n  urll: x\n  timout: 2s\n  timeout: 3s\n"


def test_section_reports_every_unknown_key_with_the_known_keys() -> None:
    reader, problems = reader_for(SECTION_TEXT)
    data = reader.document.data
    section = reader.section(data["upstream"], ("upstream",), {"url", "timeout"})
    assert section == {"url": "http://a", "urll": "x", "timout": "2s", "timeout": "3s"}
    assert triples(problems) == [
        ("upstream.urll", "unknown key (known keys: timeout, url)", "config.yaml:3"),
        ("upstream.timout", "unknown key (known keys: timeout, url)", "config.yaml:4"),
    ]


@pytest.mark.parametrize(
    ("value", "expected_section", "expected_messages"),
    [
        (None, {}, []),
        ({}, {}, []),
        ({"url": "x"}, {"url": "x"}, []),
        ("text", {}, ["must be a mapping, not a string"]),
        ([1, 2], {}, ["must be a mapping, not a list"]),
        (5, {}, ["must be a mapping, not a number"]),
        (True, {}, ["must be a mapping, not a boolean"]),
    ],
    ids=["absent", "empty", "valid", "string", "list", "number", "boolean"],
)
def test_section_shapes(
    value: Any, expected_section: dict[str, Any], expected_messages: list[str]
) -> None:
    reader, problems = reader_for("upstream: 1\n")
    assert reader.section(value, ("upstream",), {"url"}) == expected_section
    assert [p.message for p in problems] == expected_messages
    assert all(p.path == "upstream" and p.location == "config.yaml:1" for p in problems)


GET_TEXT = "limits:\n  size: 64KiB\n  bad_size: huge\n  zero: 0\n"


@pytest.mark.parametrize(
    ("key", "expected", "expected_problems"),
    [
        ("size", 65536, []),
        ("absent", 123, []),
        (
            "bad_size",
            123,
            [
                (
                    "limits.bad_size",
                    "must be a size such as 65536 or 64KiB, not 'huge'",
                    "config.yaml:3",
                )
            ],
        ),
        ("zero", 123, [("limits.zero", "must be greater than zero", "config.yaml:4")]),
    ],
    ids=["valid", "absent-gives-default", "invalid-gives-default", "zero-gives-default"],
)
def test_get(key: str, expected: int, expected_problems: list[tuple[str, str, str]]) -> None:
    reader, problems = reader_for(GET_TEXT)
    section = reader.document.data["limits"]
    assert reader.get(section, ("limits",), key, as_size, 123) == expected
    assert triples(problems) == expected_problems


@pytest.mark.parametrize(
    ("key", "expected", "expected_problems"),
    [
        ("size", 65536, []),
        ("absent", 7, [("limits.absent", "is required", "config.yaml:2")]),
        (
            "bad_size",
            7,
            [
                (
                    "limits.bad_size",
                    "must be a size such as 65536 or 64KiB, not 'huge'",
                    "config.yaml:3",
                )
            ],
        ),
    ],
    ids=["present", "absent-is-a-problem", "invalid"],
)
def test_require(key: str, expected: int, expected_problems: list[tuple[str, str, str]]) -> None:
    reader, problems = reader_for(GET_TEXT)
    section = reader.document.data["limits"]
    assert reader.require(section, ("limits",), key, as_size, 7) == expected
    assert triples(problems) == expected_problems


def test_get_and_require_go_on_after_problems() -> None:
    reader, problems = reader_for("a: x\nb: 2s\nc: y\n")
    top = reader.document.data
    assert reader.get(top, (), "a", as_duration, 1.0) == 1.0
    assert reader.get(top, (), "b", as_duration, 1.0) == 2.0
    assert reader.get(top, (), "c", as_duration, 1.0) == 1.0
    assert reader.require(top, (), "d", as_duration, 1.0) == 1.0
    assert [(p.path, p.location) for p in problems] == [
        ("a", "config.yaml:1"),
        ("c", "config.yaml:3"),
        ("d", "config.yaml:1"),
    ]


ITEMS_TEXT = "paths:\n  - /a\n  - 5\n  - ''\n  - /b\n  - [x]\n"


def test_items_keeps_valid_elements_and_reports_each_invalid_one() -> None:
    reader, problems = reader_for(ITEMS_TEXT)
    value = reader.document.data["paths"]
    assert reader.items(value, ("paths",), as_nonempty_str) == ["/a", "/b"]
    assert triples(problems) == [
        ("paths[1]", "must be a string, not a number", "config.yaml:3"),
        ("paths[2]", "must not be empty", "config.yaml:4"),
        ("paths[4]", "must be a string, not a list", "config.yaml:6"),
    ]


@pytest.mark.parametrize(
    ("value", "expected_messages"),
    [
        (None, []),
        ([], []),
        ("/a", ["must be a list, not a string"]),
        ({"a": 1}, ["must be a list, not a mapping"]),
    ],
    ids=["absent", "empty", "string", "mapping"],
)
def test_items_shapes(value: Any, expected_messages: list[str]) -> None:
    reader, problems = reader_for("paths: 1\n")
    assert reader.items(value, ("paths",), as_nonempty_str) == []
    assert [p.message for p in problems] == expected_messages


@pytest.mark.parametrize(
    ("text", "expected", "messages"),
    [
        ("s: [a, b]\n", ("a", "b"), []),
        ("other: 1\n", ("x", "y"), []),
        ("s: [a, 1]\n", ("a",), ["must be a string, not a number"]),
        ("s: a\n", (), ["must be a list, not a string"]),
    ],
    ids=["list", "absent-default", "bad-element", "not-a-list"],
)
def test_str_list(text: str, expected: tuple[str, ...], messages: list[str]) -> None:
    reader, problems = reader_for(text)
    assert reader.str_list(reader.document.data, (), "s", ["x", "y"]) == expected
    assert [p.message for p in problems] == messages


def test_problem_uses_document_location() -> None:
    reader, problems = reader_for("a:\n  b:\n    c: 1\n")
    reader.problem(("a", "b", "c", "d"), "custom")
    reader.problem((), "top")
    assert triples(problems) == [
        ("a.b.c.d", "custom", "config.yaml:3"),
        ("(top level)", "top", "config.yaml:1"),
    ]


# --- hints -----------------------------------------------------------------------------------


def test_an_unknown_key_close_to_a_known_one_says_did_you_mean() -> None:
    problems: list[Problem] = []
    document = parse_text("upstream:\n  timout: 1s\n  colour: red\n", "config.yaml", problems)
    reader = Reader(document, problems)
    reader.section(document.data["upstream"], ("upstream",), {"timeout", "url"})
    assert [(p.path, p.hint) for p in problems] == [
        ("upstream.timout", "did you mean 'timeout'?"),
        ("upstream.colour", None),  # nothing close: no guess
    ]


def test_a_yaml_boolean_where_text_was_expected_gets_the_hint() -> None:
    problems: list[Problem] = []
    document = parse_text("mode: off\nnames: [Block, On]\n", "policy.yaml", problems)
    reader = Reader(document, problems)
    reader.get(document.data, (), "mode", as_choice("open", "allowlist"), "open")
    reader.str_list(document.data, (), "names", ())
    assert [(p.path, p.location) for p in problems] == [
        ("mode", "policy.yaml:1"),
        ("names[1]", "policy.yaml:2"),
    ]
    assert problems[0].hint == (
        "YAML reads an unquoted off as a boolean (YAML 1.1: yes, no, on, off, true, false); "
        "write 'off' in quotes if you meant the text"
    )
    assert "unquoted On" in (problems[1].hint or "")
