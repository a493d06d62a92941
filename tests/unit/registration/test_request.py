"""Unit tests for gateway.registration.request: method, content headers, body."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import UnsupportedMediaType
from gateway.registration.request import check_content_headers


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


# --- check_content_headers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON; charset=UTF-8",
        "application/json;charset=utf-8",
        "application/json; charset=utf8",
        'application/json; charset="utf-8"',
        " application/json ",
        "application/json; boundary=x",
        "application/json;",
    ],
    ids=[
        "plain",
        "mixed-case-with-charset",
        "no-space",
        "utf8-alias",
        "quoted-charset",
        "surrounding-spaces",
        "other-parameter",
        "empty-parameter",
    ],
)
def test_content_type_accepted(content_type: str) -> None:
    check_content_headers(headers(("Content-Type", content_type), ("Content-Length", "2")))


@pytest.mark.parametrize(
    "pairs",
    [
        (("Content-Type", "text/plain"),),
        (("Content-Type", "application/jsonx"),),
        (("Content-Type", "application/x-www-form-urlencoded"),),
        (("Content-Type", "application/jwt"),),
        (("Content-Type", "application/json-patch+json"),),
        (("Content-Type", "application/json, text/plain"),),
        (("Content-Type", "application/json; charset=latin-1"),),
        (("Content-Type", "application/json; charset=utf-16"),),
        (("Content-Type", "application/json; charset=utf-8; charset=latin-1"),),
        (("Content-Type", ""),),
        (("Content-Type", "application/json"), ("Content-Type", "application/json")),
        (("Content-Type", "application/json"), ("content-type", "text/plain")),
        (),
    ],
    ids=[
        "text-plain",
        "jsonx",
        "form",
        "jwt",
        "json-suffix",
        "comma-list",
        "latin-1",
        "utf-16",
        "second-charset",
        "empty",
        "two-equal-headers",
        "two-different-headers",
        "missing",
    ],
)
def test_content_type_refused(pairs: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        check_content_headers(headers(*pairs))
    assert info.value.status == 415
    assert info.value.error == "invalid_request"
    assert info.value.rule == "request.content_type"


@pytest.mark.parametrize(
    "encoding",
    ["gzip", "deflate", "br", "identity", "", "GZIP"],
    ids=["gzip", "deflate", "br", "identity", "empty", "upper-case"],
)
def test_any_content_encoding_is_refused(encoding: str) -> None:
    incoming = headers(("Content-Type", "application/json"), ("Content-Encoding", encoding))
    with pytest.raises(UnsupportedMediaType) as info:
        check_content_headers(incoming)
    assert info.value.status == 415
    assert info.value.rule == "request.content_encoding"
    assert "Content-Encoding" in info.value.description


def test_refused_content_type_is_named_but_cut_short() -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        check_content_headers(headers(("Content-Type", "text/" + "x" * 500)))
    assert "'text/" + "x" * 75 + "'" in info.value.description
    assert "x" * 100 not in info.value.description
