"""``dcr-gateway clients`` against a stand-in admin API (a local HTTP server in a thread).

Why it matters: the command holds the admin credential.  It must send it where it is asked
to (the ``Authorization`` header of the gateway it names) and nowhere else (not on a
redirect, not in what it prints), take it from the environment only, and fail with a clear
message and exit status rather than a traceback.  ``bulk-delete`` must never delete without
``--yes``, and with it must send the count its own dry run saw.
"""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from gateway.cli import COMMANDS, main

TOKEN = "cli-admin-token-5d1e2f0a9b8c7d6e"
TOKEN_ENV = "DCR_GATEWAY_ADMIN_TOKEN"


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any


Answer = tuple[int, Any]


@dataclass
class AdminStandIn:
    """Records each request and answers what ``answers`` says for its method and path
    (a fixed answer, or a function of the request); 404 JSON for anything else."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answers: dict[tuple[str, str], Answer | Callable[[Seen], Answer]] = field(default_factory=dict)

    def on(self, method: str, path: str, answer: Answer | Callable[[Seen], Answer]) -> None:
        self.answers[(method, path)] = answer

    def answer(self, seen: Seen) -> Answer:
        self.seen.append(seen)
        found = self.answers.get((seen.method, seen.path))
        if found is None:
            return 404, {"error": "invalid_request", "error_description": "no such path"}
        return found(seen) if callable(found) else found


def handler_for(stand_in: AdminStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            seen = Seen(
                self.command,
                split.path,
                parse_qsl(split.query, keep_blank_values=True),
                dict(self.headers.items()),
                json.loads(raw) if raw else None,
            )
            status, body = stand_in.answer(seen)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            if status in (301, 302, 307):
                self.send_header("Location", stand_in.url + "/elsewhere")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

    return Handler


@pytest.fixture
def api() -> Iterator[AdminStandIn]:
    stand_in = AdminStandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(stand_in))
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.delenv("DCR_GATEWAY_ADMIN_URL", raising=False)


def run(capsys, api: AdminStandIn | None, *args: str) -> tuple[int, str, str]:
    url = ["--url", api.url] if api is not None else []
    code = main(["clients", args[0], *url, *args[1:]])
    out, err = capsys.readouterr()
    assert TOKEN not in out + err  # whatever happened, the token is not printed
    return code, out, err


def client(client_id: str = "c-1", **fields: Any) -> dict[str, Any]:
    base = {
        "client_id": client_id,
        "tenant": None,
        "source": "dcr",
        "vendor": "claude",
        "client_name": "Claude",
        "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
        "software_id": None,
        "registered_at": "2027-01-15T08:00:00Z",
        "registered_ip": "192.0.2.1",
        "initial_access_token_name": None,
        "status": "active",
        "status_changed_at": None,
        "reason": None,
        "changed_by": None,
        "last_used_at": None,
        "deleting": False,
        "delete_attempts": 0,
        "last_error": None,
        "can_delete_upstream": True,
    }
    return {**base, **fields}


def listing(*clients: dict[str, Any], next_cursor: str | None = None, total: int | None = None):
    return 200, {
        "clients": list(clients),
        "next_cursor": next_cursor,
        "total": len(clients) if total is None else total,
    }


def error(status: int, description: str) -> Answer:
    return status, {"error": "invalid_request", "error_description": description}


# --------------------------------------------------------------------------- basics


def test_the_command_is_registered():
    assert "clients" in [c.name for c in COMMANDS]


def test_list_prints_a_table_and_sends_the_admin_token(api, capsys):
    api.on(
        "GET",
        "/-/admin/clients",
        listing(
            client("c-1", last_used_at="2027-01-16T09:30:00Z"),
            client("c-22", tenant="acme", status="pending", vendor="cursor", client_name=None),
        ),
    )
    code, out, err = run(capsys, api, "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "client_id",
        "tenant",
        "status",
        "vendor",
        "client_name",
        "registered_at",
        "last_used_at",
    ]
    assert lines[1].split() == [
        "c-1",
        "-",
        "active",
        "claude",
        "Claude",
        "2027-01-15T08:00:00Z",
        "2027-01-16T09:30:00Z",
    ]
    assert lines[2].split()[:5] == ["c-22", "acme", "pending", "cursor", "-"]
    # aligned: every column starts at the same offset on every line
    assert len({line.index("status") for line in lines[:1]} | {lines[1].index("active")}) == 1
    (seen,) = api.seen
    assert seen.method == "GET"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Accept"] == "application/json"
    assert seen.query == []


def test_json_prints_the_answer_as_json(api, capsys):
    answer = listing(client("c-1"), next_cursor="abc", total=5)
    api.on("GET", "/-/admin/clients", answer)
    code, out, _ = run(capsys, api, "list", "--json")
    assert code == 0
    assert json.loads(out) == answer[1]


def test_filters_are_sent_as_query_parameters(api, capsys):
    api.on("GET", "/-/admin/clients", listing())
    code, out, _ = run(
        capsys,
        api,
        "list",
        "--tenant",
        "acme",
        "--vendor",
        "cursor",
        "--source",
        "cimd",
        "--status",
        "pending",
        "--status",
        "active",
        "--name",
        "*IDE*",
        "--registered-before",
        "2027-01-01T00:00:00Z",
        "--registered-after",
        "1700000000",
        "--idle-for",
        "30d",
        "--limit",
        "50",
    )
    assert code == 0
    assert "no clients match" in out
    assert api.seen[0].query == [
        ("tenant", "acme"),
        ("vendor", "cursor"),
        ("source", "cimd"),
        ("status", "pending"),
        ("status", "active"),
        ("name", "*IDE*"),
        ("registered_before", "2027-01-01T00:00:00Z"),
        ("registered_after", "1700000000"),
        ("idle_for", "30d"),
        ("limit", "50"),
    ]


def test_all_follows_next_cursor_to_the_end(api, capsys):
    pages = {
        None: listing(client("c-1"), client("c-2"), next_cursor="p2", total=5),
        "p2": listing(client("c-3"), client("c-4"), next_cursor="p3", total=5),
        "p3": listing(client("c-5"), total=5),
    }
    api.on("GET", "/-/admin/clients", lambda seen: pages[dict(seen.query).get("cursor")])
    code, out, err = run(capsys, api, "list", "--all", "--limit", "2", "--status", "active")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:]] == [f"c-{i}" for i in range(1, 6)]
    assert [dict(s.query).get("cursor") for s in api.seen] == [None, "p2", "p3"]
    assert all(("status", "active") in s.query and ("limit", "2") in s.query for s in api.seen)
    code, out, _ = run(capsys, api, "list", "--all", "--json")
    merged = json.loads(out)
    assert [c["client_id"] for c in merged["clients"]] == [f"c-{i}" for i in range(1, 6)]
    assert merged["next_cursor"] is None and merged["total"] == 5


def test_without_all_more_pages_are_pointed_out(api, capsys):
    api.on("GET", "/-/admin/clients", listing(client("c-1"), next_cursor="CUR", total=9))
    code, _, err = run(capsys, api, "list")
    assert code == 0
    assert "1 of 9 shown" in err and "--cursor CUR" in err
    assert len(api.seen) == 1
    run(capsys, api, "list", "--cursor", "CUR")
    assert ("cursor", "CUR") in api.seen[1].query


def test_the_url_may_come_from_the_environment(api, capsys, monkeypatch):
    monkeypatch.setenv("DCR_GATEWAY_ADMIN_URL", api.url + "/")
    api.on("GET", "/-/admin/clients/stats", (200, {"total": 0}))
    code, _, err = run(capsys, None, "stats")
    assert code == 0, err
    assert api.seen[0].path == "/-/admin/clients/stats"


# --------------------------------------------------------------------------- the token


def test_without_the_token_in_the_environment_nothing_is_sent(api, capsys, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV)
    code, out, err = run(capsys, api, "list")
    assert code == 2
    assert out == ""
    assert f"${TOKEN_ENV}" in err and "--token-env" in err
    assert api.seen == []


def test_an_empty_token_is_no_token(api, capsys, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "  \n")
    assert run(capsys, api, "list")[0] == 2
    assert api.seen == []


def test_the_token_variable_can_be_named(api, capsys, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV)
    monkeypatch.setenv("OTHER_ADMIN_TOKEN", TOKEN)
    api.on("GET", "/-/admin/clients", listing())
    code, _, err = run(capsys, api, "list", "--token-env", "OTHER_ADMIN_TOKEN")
    assert code == 0, err
    assert api.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_token_with_a_line_break_inside_is_refused_without_printing_it(api, capsys, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN + "\r\nX-Injected: 1")
    code, _, err = run(capsys, api, "list")
    assert code == 2
    assert "characters" in err
    assert api.seen == []


@pytest.mark.parametrize("flag", ["--token", "--token-e", "--admin-token"])
def test_the_token_is_never_an_argument(capsys, flag):
    """Not even as an abbreviation of ``--token-env``."""
    with pytest.raises(SystemExit) as exited:
        main(["clients", "list", flag, TOKEN])
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_a_token_given_as_the_variable_name_is_not_echoed(api, capsys, monkeypatch):
    """``--token-env "$TOKEN"`` by mistake: the error must not print it back."""
    monkeypatch.delenv(TOKEN_ENV)
    code, _, err = run(capsys, api, "list", "--token-env", TOKEN)
    assert code == 2
    assert "--token-env" in err
    assert api.seen == []


def test_a_redirect_is_not_followed(api, capsys):
    """Following it would hand the admin token to wherever ``Location`` points."""
    api.on("GET", "/-/admin/clients", (302, {"moved": True}))
    api.on("GET", "/elsewhere", listing())
    code, _, err = run(capsys, api, "list")
    assert code == 1
    assert "302" in err
    assert [s.path for s in api.seen] == ["/-/admin/clients"]


# --------------------------------------------------------------------------- failures


def test_an_api_error_prints_its_description(api, capsys):
    api.on("GET", "/-/admin/clients/nope", error(404, "the registry has no client 'nope'"))
    code, out, err = run(capsys, api, "show", "nope")
    assert code == 1
    assert out == ""
    assert err.strip() == "error: the registry has no client 'nope'"


def test_an_answer_without_json_is_an_error(api, capsys):
    api.on("GET", "/-/admin/clients", (502, b"<html>bad gateway</html>"))
    code, _, err = run(capsys, api, "list")
    assert code == 1
    assert "502" in err and "JSON" in err
    assert "Traceback" not in err


def test_no_gateway_listening_is_a_clear_error(capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["clients", "list", "--url", f"http://127.0.0.1:{port}"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert f"cannot reach the gateway at http://127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_a_url_that_is_not_http_is_a_usage_error(capsys):
    assert main(["clients", "list", "--url", "file:///etc/passwd"]) == 2
    assert "http://" in capsys.readouterr().err


class BrokenPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_ends_quietly(api, monkeypatch, capsys):
    """``dcr-gateway clients list | head -1``: no traceback when the reader leaves."""
    api.on("GET", "/-/admin/clients", listing(*(client(f"c-{i}") for i in range(50))))
    monkeypatch.setattr(sys, "stdout", BrokenPipe())
    code = main(["clients", "list", "--url", api.url])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_client_chosen_text_cannot_drive_the_terminal(api, capsys):
    api.on(
        "GET",
        "/-/admin/clients",
        listing(client("c-1", client_name="Evil\x1b[2J\x1b]0;pwned\x07\u202eeman")),
    )
    code, out, _ = run(capsys, api, "list")
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "U+001B" in out and "U+202E" in out


# --------------------------------------------------------------------------- one client


def test_show_percent_encodes_the_client_id_and_sends_the_tenant(api, capsys):
    api.on("GET", "/-/admin/clients/a%2Fb%20c%3F", (200, client("a/b c?", tenant="acme")))
    code, out, err = run(capsys, api, "show", "a/b c?", "--tenant", "acme")
    assert code == 0, err
    assert api.seen[0].query == [("tenant", "acme")]
    fields = dict(line.split(None, 1) for line in out.splitlines())
    assert fields["client_id"] == "a/b c?"
    assert fields["tenant"] == "acme"
    assert fields["redirect_uris"] == "https://claude.ai/api/mcp/auth_callback"
    assert fields["can_delete_upstream"] == "yes"


def test_approve(api, capsys):
    api.on("POST", "/-/admin/clients/c-1/approve", (200, client("c-1", tenant="acme")))
    code, out, _ = run(capsys, api, "approve", "c-1", "--tenant", "acme")
    assert code == 0
    assert out.strip() == "approved c-1 (tenant acme): now active"
    assert api.seen[0].method == "POST"
    assert api.seen[0].query == [("tenant", "acme")]


def test_approving_a_client_that_is_not_pending_fails(api, capsys):
    api.on(
        "POST",
        "/-/admin/clients/c-1/approve",
        error(409, "only a pending client can be approved; it is active"),
    )
    code, _, err = run(capsys, api, "approve", "c-1")
    assert code == 1
    assert "only a pending client can be approved" in err


def test_reject_says_when_the_upstream_delete_is_left_to_the_job(api, capsys):
    api.on(
        "POST",
        "/-/admin/clients/c-1/reject",
        (
            200,
            {
                **client("c-1", status="rejected"),
                "upstream_deleted": False,
                "upstream_error": "the authorization server answered 500 to DELETE",
            },
        ),
    )
    code, out, _ = run(capsys, api, "reject", "c-1")
    assert code == 0  # the rejection holds
    assert "rejected c-1" in out and "answered 500" in out and "retries" in out
    api.on(
        "POST",
        "/-/admin/clients/c-1/reject",
        (200, {**client("c-1", status="rejected"), "upstream_deleted": True}),
    )
    assert run(capsys, api, "reject", "c-1")[1].strip() == "rejected c-1 and deleted it upstream"


def test_delete_and_forget(api, capsys):
    api.on(
        "DELETE",
        "/-/admin/clients/c-1",
        lambda seen: (
            (200, {"forgotten": True, "client_id": "c-1", "tenant": None})
            if ("forget", "true") in seen.query
            else (200, client("c-1", status="deleted"))
        ),
    )
    code, out, _ = run(capsys, api, "delete", "c-1")
    assert (code, out.strip()) == (0, "deleted c-1")
    code, out, _ = run(capsys, api, "delete", "c-1", "--forget")
    assert code == 0 and out.startswith("forgot c-1")
    assert [s.query for s in api.seen] == [[], [("forget", "true")]]


def test_a_failed_upstream_delete_exits_1(api, capsys):
    api.on(
        "DELETE",
        "/-/admin/clients/c-1",
        (
            502,
            {
                "error": "temporarily_unavailable",
                "error_description": "the upstream delete failed (timeout); the client is kept",
            },
        ),
    )
    code, _, err = run(capsys, api, "delete", "c-1")
    assert code == 1
    assert "the upstream delete failed (timeout)" in err


# --------------------------------------------------------------------------- many


def test_stats(api, capsys):
    api.on(
        "GET",
        "/-/admin/clients/stats",
        (
            200,
            {
                "total": 3,
                "live": 2,
                "deleting": 0,
                "by_status": {"pending": 1, "active": 1, "rejected": 0, "deleted": 1},
                "by_vendor": {"claude": 2, "unknown": 1},
                "live_by_vendor": {"claude": 2},
                "by_source": {"dcr": 3, "cimd": 0},
                "by_tenant": {"": 3},
            },
        ),
    )
    code, out, _ = run(capsys, api, "stats", "--tenant", "acme")
    assert code == 0
    assert out.splitlines()[0] == "total 3 (live 2, being deleted 0)"
    assert "by status:" in out and "live by vendor:" in out
    assert [line.split() for line in out.splitlines() if line.startswith("  pending")] == [
        ["pending", "1"]
    ]
    assert ["-", "3"] in [line.split() for line in out.splitlines()]  # no tenant
    assert api.seen[0].query == [("tenant", "acme")]
    code, out, _ = run(capsys, api, "stats", "--json")
    assert json.loads(out)["total"] == 3


def bulk(count: int, failed: list[dict[str, Any]] | None = None) -> Callable[[Seen], Answer]:
    def answer(seen: Seen) -> Answer:
        if seen.body.get("dry_run"):
            ids = [f"c-{i}" for i in range(count)]
            return 200, {"dry_run": True, "count": count, "client_ids": ids}
        if seen.body.get("expected_count") != count:
            return error(409, "the filter matches another number of clients now")
        gone = count - len(failed or [])
        return 200, {"dry_run": False, "deleted": gone, "failed": failed or [], "count": count}

    return answer


def test_bulk_delete_without_yes_only_counts(api, capsys):
    api.on("POST", "/-/admin/clients/delete", bulk(3))
    code, out, err = run(
        capsys, api, "bulk-delete", "--status", "pending", "--idle-for", "7d", "--name", "my *"
    )
    assert code == 0, err
    (seen,) = api.seen
    assert seen.body == {
        "filter": {"status": ["pending"], "name": "my *", "idle_for": "7d"},
        "dry_run": True,
    }
    assert seen.headers["Content-Type"] == "application/json"
    assert "3 clients would be deleted" in out
    assert "c-0" in out and "c-2" in out
    command = out.splitlines()[-1].strip()
    assert command.startswith("dcr-gateway clients bulk-delete --url ")
    assert "--status pending" in command and "--idle-for 7d" in command
    assert "--name 'my *'" in command and command.endswith("--yes")
    assert TOKEN not in command


def test_bulk_delete_with_yes_confirms_the_count_of_its_own_dry_run(api, capsys):
    api.on("POST", "/-/admin/clients/delete", bulk(2))
    code, out, err = run(capsys, api, "bulk-delete", "--vendor", "unknown", "--yes")
    assert code == 0, err
    assert [s.body for s in api.seen] == [
        {"filter": {"vendor": "unknown"}, "dry_run": True},
        {"filter": {"vendor": "unknown"}, "dry_run": False, "expected_count": 2},
    ]
    assert "deleted 2 of 2 clients" in out


def test_bulk_delete_reports_failures_and_exits_1(api, capsys):
    failed = [{"client_id": "c-1", "tenant": None, "result": "failed", "error": "answered 500"}]
    api.on("POST", "/-/admin/clients/delete", bulk(2, failed))
    code, out, _ = run(capsys, api, "bulk-delete", "--status", "active", "--yes")
    assert code == 1
    assert "deleted 1 of 2" in out
    assert ["c-1", "-", "answered", "500"] in [line.split() for line in out.splitlines()]


def test_bulk_delete_with_nothing_to_delete_sends_no_delete(api, capsys):
    api.on("POST", "/-/admin/clients/delete", bulk(0))
    code, out, _ = run(capsys, api, "bulk-delete", "--status", "active", "--yes")
    assert code == 0
    assert "nothing deleted" in out
    assert len(api.seen) == 1


def test_bulk_delete_refused_by_the_gateway(api, capsys):
    api.on("POST", "/-/admin/clients/delete", error(400, "filter: an empty filter would match all"))
    code, _, err = run(capsys, api, "bulk-delete", "--yes")
    assert code == 1
    assert "an empty filter" in err
    assert len(api.seen) == 1


@pytest.mark.parametrize(
    ("flag", "query"),
    [
        ((), []),
        (("--dry-run",), [("dry_run", "true")]),
        (("--no-dry-run",), [("dry_run", "false")]),
    ],
)
def test_run_lifecycle(api, capsys, flag, query):
    report = {
        "dry_run": bool(flag and flag[0] == "--dry-run"),
        "ran": True,
        "examined": 4,
        "actions": [
            {
                "client_id": "c-9",
                "tenant": None,
                "vendor": "claude",
                "reason": "idle",
                "result": "would_delete",
                "error": None,
            }
        ],
        "resealed": 0,
        "error": None,
    }
    api.on("POST", "/-/admin/lifecycle/run", (200, report))
    code, out, _ = run(capsys, api, "run-lifecycle", *flag)
    assert code == 0
    assert api.seen[0].query == query
    assert "examined 4, 1 due" in out
    assert ["c-9", "-", "claude", "idle", "would_delete", "-"] in [
        line.split() for line in out.splitlines()
    ]


def test_run_lifecycle_when_another_replica_runs_it(api, capsys):
    api.on(
        "POST",
        "/-/admin/lifecycle/run",
        (200, {"dry_run": False, "ran": False, "examined": 0, "actions": [], "error": None}),
    )
    code, out, _ = run(capsys, api, "run-lifecycle")
    assert code == 0
    assert "another replica" in out
