"""Loading policy files (gateway.policy.loader): defaults, validation, locations."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config.yamlsource import ConfigError
from gateway.policy.loader import load_policy, policy_from_mapping
from gateway.policy.managed import build_index, load_managed
from gateway.policy.model import ClientPolicy, Mode, OnExcess, OnMismatch, ScopePolicy
from gateway.policy.names import name_matches
from gateway.policy.patterns import LoopbackMode
from gateway.uri.parse import RedirectURI, parse_redirect_uri
from tests.support.paths import ROOT

TOP_KEYS = (
    "known keys: approval, cimd, cleanup, client, enforcement, identity, "
    "initial_access_tokens, mode, on_storage_error, quotas, rate_limits, redirect_uris, "
    "version"
)

REPO = ROOT
MANAGED = REPO / "gateway" / "data" / "mcp-clients.yaml"


def problems_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        policy_from_mapping(data)
    return [(p.path, p.message) for p in caught.value.problems]


def uri(raw: str) -> RedirectURI:
    parsed = parse_redirect_uri(raw)
    assert isinstance(parsed, RedirectURI)
    return parsed


# --- defaults -------------------------------------------------------------------------------------


def test_every_default() -> None:
    policy = policy_from_mapping({"version": 1})
    clients = load_managed()
    assert policy.version == 1
    assert policy.mode is Mode.ALLOWLIST
    rp = policy.redirect_uris
    assert rp.managed_ids == tuple(c.id for c in clients)
    assert len(rp.managed_ids) == 14
    assert [p.label for p in rp.allowed] == [
        f"managed:{c.id}" for c in clients for _ in c.redirect_uris
    ]
    assert [p.source for p in rp.allowed] == [u for c in clients for u in c.redirect_uris]
    assert rp.allowed.loopback is LoopbackMode.ANY_PORT
    assert len(rp.blocked) == 0
    assert rp.loopback is LoopbackMode.ANY_PORT
    assert rp.on_mismatch is OnMismatch.REJECT
    assert policy.client == ClientPolicy(
        token_endpoint_auth_methods=frozenset(
            {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
        ),
        default_token_endpoint_auth_method="client_secret_basic",
        grant_types=frozenset({"authorization_code", "refresh_token"}),
        response_types=frozenset({"code"}),
        scopes=ScopePolicy(
            allowed=frozenset({"openid", "profile", "email", "offline_access"}),
            default=("openid", "offline_access"),
            on_excess=OnExcess.REJECT,
        ),
        client_name_deny=(),
    )
    assert policy.managed is build_index(clients, LoopbackMode.ANY_PORT)
    assert policy.source == "<inline>"
    expected = hashlib.sha256(json.dumps({"version": 1}, sort_keys=True).encode())
    expected.update(MANAGED.read_bytes())
    assert policy.revision == expected.hexdigest()


def test_empty_sections_are_the_defaults() -> None:
    empty = policy_from_mapping({"version": 1, "redirect_uris": None, "client": {}})
    default = policy_from_mapping({"version": 1})
    assert empty.client == default.client
    assert empty.redirect_uris.managed_ids == default.redirect_uris.managed_ids


def test_the_shipped_default_policy() -> None:
    path = REPO / "policies" / "default.yaml"
    policy = load_policy(path)
    assert policy.mode is Mode.ALLOWLIST
    assert len(policy.redirect_uris.managed_ids) == 14
    assert [g.source for g in policy.client.client_name_deny] == ["*admin*"]
    assert policy.source == str(path)
    assert policy.revision == hashlib.sha256(path.read_bytes() + MANAGED.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("value", "mode"),
    [("open", Mode.OPEN), ("allowlist", Mode.ALLOWLIST), ("disabled", Mode.DISABLED)],
)
def test_modes(value: str, mode: Mode) -> None:
    assert policy_from_mapping({"version": 1, "mode": value}).mode is mode


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("any_port", LoopbackMode.ANY_PORT),
        ("exact", LoopbackMode.EXACT),
        ("deny", LoopbackMode.DENY),
    ],
)
def test_loopback_modes_reach_every_pattern_set(value: str, mode: LoopbackMode) -> None:
    policy = policy_from_mapping({"version": 1, "redirect_uris": {"loopback": value}})
    rp = policy.redirect_uris
    assert rp.loopback is mode
    assert rp.allowed.loopback is mode
    assert rp.blocked.loopback is mode
    assert policy.managed.patterns.loopback is mode


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ("none", ()),
        (None, ()),
        ([], ()),
        (["warp", "claude"], ("warp", "claude")),
    ],
)
def test_managed_list_selection(value: Any, ids: tuple[str, ...]) -> None:
    policy = policy_from_mapping({"version": 1, "redirect_uris": {"managed_list": value}})
    assert policy.redirect_uris.managed_ids == ids
    # selected entries are in the allow set; the index keeps the whole list either way
    labels = {p.label for p in policy.redirect_uris.allowed}
    assert labels == {f"managed:{i}" for i in ids}
    assert len(policy.managed.clients) == 14


def test_custom_and_block_patterns() -> None:
    policy = policy_from_mapping(
        {
            "version": 1,
            "redirect_uris": {
                "managed_list": ["claude"],
                "allow": ["https://a.example/*", "https://*.b.example/cb"],
                "block": ["https://x.b.example/cb"],
            },
        }
    )
    rp = policy.redirect_uris
    assert [(p.label, p.source) for p in rp.allowed] == [
        ("managed:claude", "https://claude.ai/api/mcp/auth_callback"),
        ("managed:claude", "https://claude.com/api/mcp/auth_callback"),
        ("custom", "https://a.example/*"),
        ("custom", "https://*.b.example/cb"),
    ]
    assert [(p.label, p.source) for p in rp.blocked] == [("block", "https://x.b.example/cb")]
    match = rp.allowed.match(uri("https://y.b.example/cb"))
    assert match is not None and match.pattern == "https://*.b.example/cb"


def test_client_settings() -> None:
    policy = policy_from_mapping(
        {
            "version": 1,
            "client": {
                "token_endpoint_auth_methods": ["none", "private_key_jwt"],
                "default_token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "urn:example:custom-grant"],
                "response_types": ["code", "code id_token"],
                "scopes": {"allowed": "any", "default": ["anything:goes"], "on_excess": "trim"},
                "client_name": {"deny": ["*Admin*", "root?"]},
            },
        }
    )
    client = policy.client
    assert client.token_endpoint_auth_methods == {"none", "private_key_jwt"}
    assert client.default_token_endpoint_auth_method == "none"
    assert client.grant_types == {"authorization_code", "urn:example:custom-grant"}
    assert client.response_types == {"code", "code id_token"}
    assert client.scopes == ScopePolicy(None, ("anything:goes",), OnExcess.TRIM)
    assert [g.source for g in client.client_name_deny] == ["*Admin*", "root?"]
    assert name_matches(client.client_name_deny[0].regexes, "Super ADMIN tool")
    assert name_matches(client.client_name_deny[1].regexes, "roots")
    assert not name_matches(client.client_name_deny[1].regexes, "root")


# --- validation -----------------------------------------------------------------------------------

AUTH_KNOWN = (
    "client_secret_basic, client_secret_jwt, client_secret_post, none, private_key_jwt, "
    "self_signed_tls_client_auth, tls_client_auth"
)
GRANTS_KNOWN = (
    "authorization_code, client_credentials, implicit, password, refresh_token, "
    "urn:ietf:params:oauth:grant-type:device_code, urn:ietf:params:oauth:grant-type:jwt-bearer, "
    "urn:ietf:params:oauth:grant-type:saml2-bearer, "
    "urn:ietf:params:oauth:grant-type:token-exchange"
)
IDS_KNOWN = (
    "claude, claude-code, chatgpt, cursor, vscode, zed, goose, mcp-remote, gemini-cli, "
    "mcp-inspector, cline, continue, antigravity, warp"
)
CLIENT_KEYS = (
    "client_name, default_token_endpoint_auth_method, fetched_url_hosts, grant_types, "
    "report_only, response_types, scopes, token_endpoint_auth_methods"
)

ERRORS: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    ("version missing", {}, [("version", "is required")]),
    ("version 2", {"version": 2}, [("version", "must be at most 1")]),
    ("version 0", {"version": 0}, [("version", "must be at least 1")]),
    ("version as text", {"version": "1"}, [("version", "must be a whole number, not a string")]),
    (
        "version as boolean",
        {"version": True},
        [("version", "must be a whole number, not a boolean")],
    ),
    (
        "unknown top-level key",
        {"version": 1, "rules": []},
        [("rules", f"unknown key ({TOP_KEYS})")],
    ),
    (
        "unknown redirect_uris key",
        {"version": 1, "redirect_uris": {"blok": []}},
        [
            (
                "redirect_uris.blok",
                "unknown key (known keys: allow, block, loopback, managed_list, "
                "max_redirect_uris, on_mismatch, report_only)",
            )
        ],
    ),
    (
        "unknown client key",
        {"version": 1, "client": {"grant_type": []}},
        [
            (
                "client.grant_type",
                f"unknown key (known keys: {CLIENT_KEYS})",
            )
        ],
    ),
    (
        "unknown scopes key",
        {"version": 1, "client": {"scopes": {"allow": []}}},
        [("client.scopes.allow", "unknown key (known keys: allowed, default, on_excess)")],
    ),
    (
        "unknown client_name key",
        {"version": 1, "client": {"client_name": {"allow": []}}},
        [("client.client_name.allow", "unknown key (known keys: deny, unprotected)")],
    ),
    (
        "a section that is not a mapping",
        {"version": 1, "redirect_uris": ["https://a.example/cb"]},
        [("redirect_uris", "must be a mapping, not a list")],
    ),
    (
        "bad mode",
        {"version": 1, "mode": "sometimes"},
        [("mode", "must be one of open, allowlist, disabled; got 'sometimes'")],
    ),
    (
        "bad loopback",
        {"version": 1, "redirect_uris": {"loopback": "allow"}},
        [("redirect_uris.loopback", "must be one of any_port, exact, deny; got 'allow'")],
    ),
    (
        "bad on_mismatch",
        {"version": 1, "redirect_uris": {"on_mismatch": "ignore"}},
        [("redirect_uris.on_mismatch", "must be one of reject, drop; got 'ignore'")],
    ),
    (
        "bad on_excess",
        {"version": 1, "client": {"scopes": {"on_excess": "cut"}}},
        [("client.scopes.on_excess", "must be one of reject, trim; got 'cut'")],
    ),
    (
        "unknown grant type",
        {"version": 1, "client": {"grant_types": ["authorization_code", "magic"]}},
        [
            (
                "client.grant_types[1]",
                f"unknown grant type 'magic'; known: {GRANTS_KNOWN}",
            )
        ],
    ),
    (
        "grant types not a list",
        {"version": 1, "client": {"grant_types": "authorization_code"}},
        [("client.grant_types", "must be a list, not a string")],
    ),
    (
        "unknown response type",
        {"version": 1, "client": {"response_types": ["code", "code bogus"]}},
        [
            (
                "client.response_types[1]",
                "unknown response type 'code bogus' (parts: code, token, id_token, none)",
            )
        ],
    ),
    (
        "unknown auth method",
        {
            "version": 1,
            "client": {"token_endpoint_auth_methods": ["client_secret_basic", "pigeon"]},
        },
        [
            (
                "client.token_endpoint_auth_methods[1]",
                f"unknown token endpoint auth method 'pigeon'; known: {AUTH_KNOWN}",
            )
        ],
    ),
    (
        "default auth method not in the list",
        {"version": 1, "client": {"token_endpoint_auth_methods": ["none"]}},
        [
            (
                "client.default_token_endpoint_auth_method",
                "'client_secret_basic' is not in token_endpoint_auth_methods",
            )
        ],
    ),
    (
        "default auth method unknown",
        {"version": 1, "client": {"default_token_endpoint_auth_method": "pigeon"}},
        [
            (
                "client.default_token_endpoint_auth_method",
                f"unknown token endpoint auth method 'pigeon'; known: {AUTH_KNOWN}",
            )
        ],
    ),
    (
        "default scope not in allowed",
        {
            "version": 1,
            "client": {"scopes": {"allowed": ["openid", "mcp"], "default": ["openid", "email"]}},
        },
        [("client.scopes.default[1]", "scope 'email' is not in allowed")],
    ),
    (
        "the implicit default scopes must be allowed too",
        {"version": 1, "client": {"scopes": {"allowed": ["mcp"]}}},
        [
            ("client.scopes.default[0]", "scope 'openid' is not in allowed"),
            ("client.scopes.default[1]", "scope 'offline_access' is not in allowed"),
        ],
    ),
    (
        "scope that is not a scope token",
        {
            "version": 1,
            "client": {"scopes": {"allowed": ["openid", "a b", 'q"'], "default": ["openid"]}},
        },
        [
            ("client.scopes.allowed[1]", "'a b' is not a scope token (RFC 6749 §3.3)"),
            ("client.scopes.allowed[2]", "'q\"' is not a scope token (RFC 6749 §3.3)"),
        ],
    ),
    (
        "deny globs must be non-empty strings",
        {"version": 1, "client": {"client_name": {"deny": ["", 3]}}},
        [
            ("client.client_name.deny[0]", "must not be empty"),
            ("client.client_name.deny[1]", "must be a string, not a number"),
        ],
    ),
    (
        "unknown managed ids",
        {"version": 1, "redirect_uris": {"managed_list": ["claude", "copilot"]}},
        [
            (
                "redirect_uris.managed_list[1]",
                f"no managed entry 'copilot'; known ids: {IDS_KNOWN}",
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("data", "expected"), [row[1:] for row in ERRORS], ids=[row[0] for row in ERRORS]
)
def test_validation_errors(data: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems_of(data) == expected


BAD_PATTERNS = [
    ("https://example.com/**", "'**' has no special meaning here"),
    ("http://example.com/cb", "(redirect_uri.insecure_http), so this pattern could never match"),
    ("https://*.com/cb", "'*.' needs at least two labels after it"),
    ("https://*/cb", "a bare '*' host would match every host"),
    ("https://a*.example.com/cb", "only allowed as the whole leftmost label"),
    ("javascript:*", "(redirect_uri.dangerous_scheme), so this pattern could never match"),
    ("https://example.com/cb#x", "(redirect_uri.fragment), so this pattern could never match"),
    ("https://example.com/cb?x=*", "a pattern query is exact, or '?*' for any query"),
    ("https://example.com:8*/cb", "only ':*' (any port) is allowed"),
    ("*://example.com/cb", "a '*' cannot stand for a scheme"),
    ("/relative/cb", "(redirect_uri.relative), so this pattern could never match"),
]


@pytest.mark.parametrize("key", ["allow", "block"])
@pytest.mark.parametrize(("pattern", "fragment"), BAD_PATTERNS, ids=[p for p, _ in BAD_PATTERNS])
def test_bad_patterns(key: str, pattern: str, fragment: str) -> None:
    data = {"version": 1, "redirect_uris": {key: ["https://ok.example.com/cb", pattern]}}
    [(path, message)] = problems_of(data)
    assert path == f"redirect_uris.{key}[1]"
    assert message.startswith(f"redirect URI pattern {pattern!r}: ")
    assert fragment in message


def test_a_pattern_that_is_not_a_string() -> None:
    data = {"version": 1, "redirect_uris": {"allow": [5]}}
    assert problems_of(data) == [("redirect_uris.allow[0]", "must be a string, not a number")]


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "version": 1,
        "mode": "sometimes",
        "redirect_uris": {"blok": [], "allow": ["https://x.example/**"], "managed_list": ["nope"]},
        "client": {"grant_types": ["magic"], "scopes": {"on_excess": "cut"}},
    }
    assert [path for path, _ in problems_of(data)] == [
        "mode",
        "redirect_uris.blok",
        "redirect_uris.managed_list[0]",
        "redirect_uris.allow[0]",
        "client.grant_types[0]",
        "client.scopes.on_excess",
    ]


def test_an_empty_auth_method_list_is_a_load_error() -> None:
    data = {"version": 1, "client": {"token_endpoint_auth_methods": []}}
    assert [path for path, _ in problems_of(data)] == ["client.token_endpoint_auth_methods"]


def test_a_misspelt_managed_list_is_one_problem() -> None:
    data = {"version": 1, "redirect_uris": {"managed_list": "ALL"}}
    assert problems_of(data) == [
        ("redirect_uris.managed_list", "must be all, none, or a list of entry ids")
    ]


# --- policy_from_mapping --------------------------------------------------------------------------


def test_policy_from_mapping_names_and_digests() -> None:
    data = {"version": 1, "mode": "open", "redirect_uris": {"allow": ["https://a.example/cb"]}}
    before = copy.deepcopy(data)
    policy = policy_from_mapping(data, "cases.yaml#policy")
    assert data == before
    assert policy.source == "cases.yaml#policy"
    assert policy.mode is Mode.OPEN
    reordered = {"redirect_uris": {"allow": ["https://a.example/cb"]}, "mode": "open", "version": 1}
    assert policy_from_mapping(reordered).revision == policy.revision
    assert policy_from_mapping({**data, "mode": "allowlist"}).revision != policy.revision


def test_policy_from_mapping_raises_with_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        policy_from_mapping({"version": 1, "mode": "x", "bogus": 1}, "inline-name")
    assert [str(p) for p in caught.value.problems] == [
        f"inline-name: bogus: unknown key ({TOP_KEYS})",
        "inline-name: mode: must be one of open, allowlist, disabled; got 'x'",
    ]


# --- load_policy: file:line -----------------------------------------------------------------------


def load_problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    return [str(p) for p in caught.value.problems]


def test_problems_carry_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "mode: sometimes\n"
        "redirect_uris:\n"
        "  blok: []\n"
        "  allow:\n"
        "    - https://ok.example.com/cb\n"
        "    - https://example.com/**\n"
        "client:\n"
        "  grant_types: [authorization_code, magic]\n",
        encoding="utf-8",
    )
    problems = load_problems(path)
    assert [p.split(" ", 1)[0] for p in problems] == [
        f"{path}:2:",
        f"{path}:4:",
        f"{path}:7:",
        f"{path}:9:",
    ]
    assert (
        problems[0] == f"{path}:2: mode: must be one of open, allowlist, disabled; got 'sometimes'"
    )
    assert problems[1].startswith(f"{path}:4: redirect_uris.blok: unknown key")
    assert problems[2].startswith(f"{path}:7: redirect_uris.allow[1]: redirect URI pattern")
    assert problems[3].startswith(f"{path}:9: client.grant_types[1]: unknown grant type 'magic'")


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n"])
def test_an_empty_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_problems(path) == [
        f"{path}: (top level): the policy file is empty",
        f"{path}: version: is required",
    ]


def test_version_2_file(tmp_path: Path) -> None:
    path = tmp_path / "v2.yaml"
    path.write_text("version: 2\nmode: open\n", encoding="utf-8")
    assert load_problems(path) == [f"{path}:1: version: must be at most 1"]


def test_a_duplicate_key_file(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("version: 1\nmode: open\nmode: disabled\n", encoding="utf-8")
    assert load_problems(path) == [f"{path}:3: mode: duplicate key"]


def test_a_file_that_is_a_list(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- version: 1\n", encoding="utf-8")
    assert load_problems(path) == [
        f"{path}:1: (top level): must be a mapping, not a list",
        f"{path}:1: version: is required",
    ]


def test_a_missing_file(tmp_path: Path) -> None:
    problems = load_problems(tmp_path / "absent.yaml")
    assert problems[0].startswith(f"{tmp_path / 'absent.yaml'}: (file): cannot read:")


def test_the_revision_is_of_the_policy_bytes_then_the_managed_list(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"version: 1\nmode: open\n")
    policy = load_policy(path)
    expected = hashlib.sha256(b"version: 1\nmode: open\n" + MANAGED.read_bytes()).hexdigest()
    assert policy.revision == expected
    path.write_bytes(b"version: 1\nmode: open\n# a comment changes the revision\n")
    assert load_policy(path).revision != expected
    assert policy.source == str(path)


# --- one mistake, one error ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # A section of the wrong type: one error, none for the keys it would hold.
        ({"redirect_uris": ["https://a.example.com/cb"]}, ["redirect_uris"]),
        ({"client": "none"}, ["client"]),
        # A list that is not a list does not also make its default "not in it".
        (
            {"client": {"token_endpoint_auth_methods": "none"}},
            ["client.token_endpoint_auth_methods"],
        ),
        (
            {"client": {"scopes": {"allowed": "openid", "default": ["openid", "email"]}}},
            ["client.scopes.allowed"],
        ),
    ],
)
def test_one_mistake_gives_one_error(data: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        policy_from_mapping({"version": 1, **data})
    assert [p.path for p in caught.value.problems] == expected


def test_invalid_yaml_is_one_error_not_also_a_missing_version(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nredirect_uris:\n  allow: [*.example.com]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    (problem,) = caught.value.problems
    assert problem.location == f"{path}:3:12"
    assert "must be quoted" in (problem.hint or "")


def test_a_misspelt_key_says_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nredirect_uris:\n  blok: []\nmode: no\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    second, first = caught.value.problems  # top-level keys are read first
    assert (first.path, first.location, first.hint) == (
        "redirect_uris.blok",
        f"{path}:3",
        "did you mean 'block'?",
    )
    assert second.path == "mode"
    assert "YAML reads an unquoted no as a boolean" in (second.hint or "")


def test_fetched_url_hosts_null_is_as_absent() -> None:
    policy = policy_from_mapping({"version": 1, "client": {"fetched_url_hosts": None}})
    assert policy.client.fetched_url_hosts is None
