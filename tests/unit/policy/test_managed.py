"""The managed list of MCP clients (gateway.policy.managed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config.yamlsource import ConfigError, Document, Problem
from gateway.policy.managed import build_index, default_path, load_managed, read_managed
from gateway.policy.model import ManagedClient
from gateway.policy.names import claim_keys, prefixes
from gateway.policy.patterns import LoopbackMode, compile_pattern
from gateway.uri.parse import RedirectURI, parse_redirect_uri
from tests.support.paths import ROOT

REPO = ROOT
CLIENTS = load_managed()
IDS = [c.id for c in CLIENTS]
MCP_REMOTE_ID = "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d"


def uri(raw: str) -> RedirectURI:
    parsed = parse_redirect_uri(raw)
    assert isinstance(parsed, RedirectURI), parsed
    return parsed


def read(data: Any) -> tuple[tuple[ManagedClient, ...], list[tuple[str, str]]]:
    problems: list[Problem] = []
    clients = read_managed(Document(data, "managed.yaml"), problems)
    return clients, [(p.path, p.message) for p in problems]


def entry(client_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": client_id,
        "name": fields.pop("name", client_id.title()),
        "vendor": "Example",
        "redirect_uris": [f"https://{client_id}.example.com/cb"],
        **fields,
    }


# --- the shipped list -----------------------------------------------------------------------------


def test_the_shipped_list_loads() -> None:
    assert IDS == [
        "claude",
        "claude-code",
        "chatgpt",
        "cursor",
        "vscode",
        "zed",
        "goose",
        "mcp-remote",
        "gemini-cli",
        "mcp-inspector",
        "cline",
        "continue",
        "antigravity",
        "warp",
    ]
    claude = CLIENTS[0]
    assert claude == ManagedClient(
        id="claude",
        name="Claude",
        vendor="Anthropic",
        client_names=("claudeai", "Claude"),
        redirect_uris=(
            "https://claude.ai/api/mcp/auth_callback",
            "https://claude.com/api/mcp/auth_callback",
        ),
        cimd_client_ids=("https://claude.ai/oauth/mcp-oauth-client-metadata",),
        software_ids=(),
        source="https://claude.com/docs/connectors/building/authentication",
        verified="2026-11-24",
        hosts=("claude.ai", "claude.com", "anthropic.com"),
    )


def test_the_packaged_copy_is_the_policies_copy() -> None:
    assert default_path() == REPO / "gateway" / "data" / "mcp-clients.yaml"
    packaged = default_path().read_bytes()
    assert packaged == (REPO / "policies" / "managed" / "mcp-clients.yaml").read_bytes()
    assert load_managed(REPO / "policies" / "managed" / "mcp-clients.yaml") == CLIENTS


def test_load_managed_is_cached() -> None:
    assert load_managed() is CLIENTS


def test_ids_are_unique() -> None:
    assert len(set(IDS)) == len(IDS)


def test_no_two_entries_share_a_name() -> None:
    owner: dict[str, str] = {}
    for client in CLIENTS:
        for key in {k for n in (client.name, *client.client_names) for k in claim_keys(n)}:
            assert owner.setdefault(key, client.id) == client.id, key


def test_every_entry_lists_the_hosts_it_uses() -> None:
    for client in CLIENTS:
        hosts = (*client.hosts, *client.shared_hosts)
        assert hosts, client.id
        assert all("." in host and host == host.lower() for host in hosts), client.id


def test_no_shared_platform_is_owned() -> None:
    owned = {host for client in CLIENTS for host in client.hosts}
    assert not owned & {"github.com", "gitlab.com", "npmjs.com", "pypi.org"}


def test_every_entry_is_complete() -> None:
    for client in CLIENTS:
        assert client.name and client.vendor and client.redirect_uris, client.id
        assert client.source.startswith("https://"), client.id
        assert client.verified, client.id
        for cimd in client.cimd_client_ids:
            assert cimd.startswith("https://"), (client.id, cimd)


@pytest.mark.parametrize(
    ("client_id", "pattern"), [(c.id, u) for c in CLIENTS for u in c.redirect_uris]
)
def test_every_pattern_compiles(client_id: str, pattern: str) -> None:
    compiled = compile_pattern(pattern, f"managed:{client_id}")
    assert compiled.label == f"managed:{client_id}"


def test_names_client_names_and_vendors_are_protected() -> None:
    index = build_index(CLIENTS, LoopbackMode.ANY_PORT)
    for client in CLIENTS:
        for identity in (client.name, *client.client_names, client.vendor):
            for key in claim_keys(identity):
                assert client in index.protected[key], (client.id, identity)
    assert {c.id for c in index.protected[next(iter(claim_keys("Anthropic")))]} == {
        "claude",
        "claude-code",
    }
    assert index.claim_prefixes == prefixes(index.protected)
    assert {sid: [c.id for c in cs] for sid, cs in index.by_software_id.items()} == {
        MCP_REMOTE_ID: ["mcp-remote"]
    }
    assert index.clients is CLIENTS
    assert len(index.patterns) == sum(len(c.redirect_uris) for c in CLIENTS)
    assert set(index.per_client) == set(IDS)


# --- build_index per loopback mode ----------------------------------------------------------------

LOOPBACK_TABLE = [
    # uri, any_port, exact, deny -- the first matching entry in each mode (None: no match)
    ("http://localhost:49152/callback", "claude-code", None, None),
    ("http://localhost/callback", "claude-code", "claude-code", None),
    ("http://localhost:8787/callback", "claude-code", "cursor", None),
    ("http://localhost:7777/oauth/callback", "mcp-remote", None, None),
    ("http://localhost:6274/oauth/callback", "mcp-remote", "mcp-inspector", None),
    ("http://127.0.0.1:6274/oauth/callback", "mcp-inspector", "mcp-inspector", None),
    ("http://127.0.0.1:1456/mcp/oauth/callback", "cline", "cline", None),
    ("http://127.0.0.1:1999/mcp/oauth/callback", "cline", None, None),
    ("http://127.0.0.1:33418/", "vscode", "vscode", None),
    ("http://localhost:3000/?state=abc", "continue", "continue", None),
    ("http://localhost:3001/?state=abc", "continue", None, None),
    ("https://claude.ai/api/mcp/auth_callback", "claude", "claude", "claude"),
    ("warp://mcp/oauth2callback", "warp", "warp", "warp"),
    ("https://chatgpt.com/connector/oauth/x1", "chatgpt", "chatgpt", "chatgpt"),
]


@pytest.mark.parametrize(
    ("raw", "any_port", "exact", "deny"), LOOPBACK_TABLE, ids=[row[0] for row in LOOPBACK_TABLE]
)
def test_build_index_per_loopback_mode(
    raw: str, any_port: str | None, exact: str | None, deny: str | None
) -> None:
    for mode, expected in (
        (LoopbackMode.ANY_PORT, any_port),
        (LoopbackMode.EXACT, exact),
        (LoopbackMode.DENY, deny),
    ):
        index = build_index(CLIENTS, mode)
        assert index.patterns.loopback is mode
        match = index.patterns.match(uri(raw))
        got = None if match is None else match.label.removeprefix("managed:")
        assert got == expected, (mode, raw)
        if expected is not None:
            assert index.per_client[expected].match(uri(raw)) is not None


def test_per_client_sets_are_each_entrys_own() -> None:
    index = build_index(CLIENTS, LoopbackMode.ANY_PORT)
    shared = uri("http://localhost:7777/oauth/callback")
    owners = [c.id for c in CLIENTS if index.per_client[c.id].match(shared) is not None]
    assert owners == ["mcp-remote", "gemini-cli", "mcp-inspector"]
    assert index.per_client["claude"].match(shared) is None


def test_build_index_is_cached_per_mode() -> None:
    assert build_index(CLIENTS, LoopbackMode.EXACT) is build_index(CLIENTS, LoopbackMode.EXACT)
    assert build_index(CLIENTS, LoopbackMode.EXACT) is not build_index(
        CLIENTS, LoopbackMode.ANY_PORT
    )


# --- broken managed documents ---------------------------------------------------------------------


def test_a_valid_small_document() -> None:
    clients, problems = read(
        {
            "version": 1,
            "updated": "2026-01-01",
            "clients": [entry("alpha", client_names=["Alpha App"], software_ids=["s-1"])],
        }
    )
    assert problems == []
    assert clients == (
        ManagedClient(
            id="alpha",
            name="Alpha",
            vendor="Example",
            client_names=("Alpha App",),
            redirect_uris=("https://alpha.example.com/cb",),
            cimd_client_ids=(),
            software_ids=("s-1",),
            source="",
            verified="",
        ),
    )


BROKEN = [
    (
        "duplicate id",
        [entry("alpha"), entry("alpha", name="Other")],
        [("clients[1].id", "duplicate id 'alpha'")],
    ),
    (
        "bad pattern",
        [entry("alpha", redirect_uris=["https://ok.example.com/cb", "http://evil.example/cb"])],
        [("clients[0].redirect_uris[1]", "uses http on a host that is not loopback")],
    ),
    (
        "wildcard crossing segments",
        [entry("alpha", redirect_uris=["https://a.example.com/**"])],
        [("clients[0].redirect_uris[0]", "'**' has no special meaning here")],
    ),
    (
        "client name clash",
        [entry("alpha", client_names=["Shared"]), entry("beta", client_names=["  SHARED "])],
        [("clients[1].client_names[0]", "name '  SHARED ' is already used by entry 'alpha'")],
    ),
    (
        "client name clash with another entry's display name",
        [
            entry("alpha", name="Alpha"),
            entry("beta", client_names=["\uff41\uff4c\uff50\uff48\uff41"]),
        ],
        [
            (
                "clients[1].client_names[0]",
                "name '\uff41\uff4c\uff50\uff48\uff41' is already used by entry 'alpha'",
            )
        ],
    ),
    (
        "bad id",
        [entry("Alpha_1", redirect_uris=["https://alpha.example.com/cb"])],
        [("clients[0].id", "must be lower-case letters, digits and '-', not 'Alpha_1'")],
    ),
    (
        "unknown key",
        [entry("alpha", homepage="https://x")],
        [("clients[0].homepage", "unknown key")],
    ),
    (
        "missing vendor",
        [{"id": "alpha", "name": "Alpha", "redirect_uris": []}],
        [("clients[0].vendor", "is required")],
    ),
]


@pytest.mark.parametrize(
    ("entries", "expected"), [row[1:] for row in BROKEN], ids=[row[0] for row in BROKEN]
)
def test_broken_documents_report_problems(
    entries: list[Any], expected: list[tuple[str, str]]
) -> None:
    _, problems = read({"version": 1, "clients": entries})
    assert [path for path, _ in problems] == [path for path, _ in expected]
    for (_, message), (_, fragment) in zip(problems, expected, strict=True):
        assert fragment in message


def test_a_document_without_clients() -> None:
    assert read({"version": 1}) == ((), [("clients", "must be a list of client entries")])
    assert read(None) == (
        (),
        [("version", "is required"), ("clients", "must be a list of client entries")],
    )


def test_load_managed_raises_with_locations(tmp_path: Path) -> None:
    path = tmp_path / "managed.yaml"
    path.write_text(
        "version: 1\n"
        "clients:\n"
        "  - id: alpha\n"
        "    name: Alpha\n"
        "    vendor: Example\n"
        "    redirect_uris: [https://alpha.example.com/cb]\n"
        "  - id: alpha\n"
        "    name: Beta\n"
        "    vendor: Example\n"
        "    redirect_uris: ['https://beta.example.com/**']\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_managed(path)
    assert [str(p).split(": ", 2)[:2] for p in caught.value.problems] == [
        [f"{path}:7", "clients[1].id"],
        [f"{path}:10", "clients[1].redirect_uris[0]"],
    ]


def test_a_display_name_clash_is_reported_at_name() -> None:
    _, problems = read(
        {"version": 1, "clients": [entry("alpha", client_names=["Beta"]), entry("beta")]}
    )
    assert [path for path, _ in problems] == ["clients[1].name"]


def test_missing_ids_are_not_duplicates() -> None:
    no_id = {"name": "A", "vendor": "V", "redirect_uris": []}
    _, problems = read({"version": 1, "clients": [no_id, {**no_id, "name": "B"}]})
    assert problems == [("clients[0].id", "is required"), ("clients[1].id", "is required")]
