"""``dcr-gateway clients``: the registered-client admin API from a shell.

``list``, ``show``, ``approve``, ``reject``, ``delete``, ``stats``, ``bulk-delete`` and
``run-lifecycle`` call a running gateway's admin API (:mod:`gateway.registry.admin`) over
HTTP, so they work against any replica and need nothing of its config: a URL (``--url``,
or ``DCR_GATEWAY_ADMIN_URL``) and the admin token.

The token is read from an environment variable only (``--token-env``, by default
``DCR_GATEWAY_ADMIN_TOKEN``), never from the command line, where it would stay in the
shell's history and the process list; it is sent in the ``Authorization`` header only (not
on a redirect, which is refused), and never printed.

Deleting upstream is RFC 7592 §2.3, done by the gateway with each client's own
registration access token.  ``bulk-delete`` is two steps: without ``--yes`` it only counts
(a dry run) and prints the command that deletes; with ``--yes`` it counts again and deletes
with that count as ``expected_count``, which the gateway refuses if the filter matches
another number by then.  Text the clients chose (their names) is printed with control
characters spelled out, so a client name cannot rewrite the operator's terminal.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shlex
import sys
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from gateway.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Command

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "DCR_GATEWAY_ADMIN_URL"
TOKEN_ENV = "DCR_GATEWAY_ADMIN_TOKEN"  # noqa: S105 (the variable's name, not a token)
PATH = "/-/admin/clients"
LIFECYCLE_PATH = "/-/admin/lifecycle/run"
COLUMNS = (
    "client_id",
    "tenant",
    "status",
    "vendor",
    "client_name",
    "registered_at",
    "last_used_at",
)
#: Longest cell of a table; longer values end in ``...``.
MAX_CELL = 48
#: The filter options: (flag, attribute, API key).
FILTERS = (
    ("--vendor", "vendor", "vendor"),
    ("--source", "source", "source"),
    ("--status", "status", "status"),
    ("--name", "name", "name"),
    ("--registered-before", "registered_before", "registered_before"),
    ("--registered-after", "registered_after", "registered_after"),
    ("--idle-for", "idle_for", "idle_for"),
)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ApiError(Exception):
    """The gateway answered an error; ``description`` says why."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


class Unreachable(Exception):
    """No answer from the gateway (connection refused, timeout, a broken answer)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The admin API never redirects; following one could carry the token elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Api:
    """A running gateway's admin API."""

    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        host = urllib.parse.urlsplit(self.base_url).hostname or ""
        proxies = urllib.request.ProxyHandler({} if host in _LOOPBACK else None)
        self._opener = urllib.request.build_opener(_NoRedirect, proxies)

    def call(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The JSON object answered; :class:`ApiError` for an error answer."""
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http/s only)
        request.add_unredirected_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        status, raw = self._send(request)
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ApiError(status, f"the gateway answered {status} without a JSON object")
        if status >= 300:
            why = answer.get("error_description") or answer.get("error") or f"HTTP {status}"
            raise ApiError(status, str(why))
        return answer

    def _send(self, request: urllib.request.Request) -> tuple[int, bytes]:
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()
        except urllib.error.URLError as exc:
            raise Unreachable(
                f"cannot reach the gateway at {self.base_url}: {exc.reason}"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            why = "no answer in time" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            raise Unreachable(f"cannot reach the gateway at {self.base_url}: {why}") from None


# --------------------------------------------------------------------------- arguments


def _arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", help=f"the gateway's admin URL (default: ${URL_ENV}, else {DEFAULT_URL})"
    )
    common.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        metavar="NAME",
        help=f"the environment variable holding the admin token (default: {TOKEN_ENV})",
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")
    common.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for an answer (default 60)"
    )
    common.add_argument("--tenant", help="the tenant (Keycloak realm)")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--vendor", help="the managed vendor's id, or 'unknown'")
    filters.add_argument("--source", choices=("dcr", "cimd"))
    filters.add_argument(
        "--status",
        action="append",
        choices=("pending", "active", "rejected", "deleted"),
        help="repeat for several",
    )
    filters.add_argument("--name", help="a glob over client_name, any case ('*cursor*')")
    filters.add_argument("--registered-before", metavar="TIME", help="RFC 3339, a date, or unix")
    filters.add_argument("--registered-after", metavar="TIME", help="RFC 3339, a date, or unix")
    filters.add_argument(
        "--idle-for", metavar="DURATION", help="unused (or, never used, registered) this long: 30d"
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str, *parents: argparse.ArgumentParser) -> Any:
        # No abbreviations: ``--token SECRET`` must not pass for ``--token-env SECRET``.
        return sub.add_parser(
            name, help=help_text, description=help_text, parents=parents, allow_abbrev=False
        )

    listing = action("list", "list registered clients by filter", common, filters)
    listing.add_argument("--limit", type=int, help="clients per page (API default 100, max 1000)")
    listing.add_argument("--cursor", help="start after this cursor (a next_cursor)")
    listing.add_argument("--all", action="store_true", help="follow next_cursor to the end")
    for name, help_text in (
        ("show", "show one client"),
        ("approve", "approve a pending client"),
        ("reject", "reject a pending or active client (and delete it upstream)"),
        ("delete", "delete a client upstream (RFC 7592 section 2.3) and mark it deleted"),
    ):
        one = action(name, help_text, common)
        one.add_argument("client_id")
        if name == "delete":
            one.add_argument(
                "--forget",
                action="store_true",
                help="drop the record only (the client was deleted upstream some other way)",
            )
    action("stats", "count clients by status, vendor, source and tenant", common, filters)
    bulk = action("bulk-delete", "delete every client a filter matches", common, filters)
    bulk.add_argument("--yes", action="store_true", help="delete (without it: count only)")
    run = action("run-lifecycle", "run the lifecycle job once", common)
    run.add_argument(
        "--dry-run",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only say what would be done (default: the gateway's registry.dry_run)",
    )


# --------------------------------------------------------------------------- actions


def _list(api: Api, args: argparse.Namespace) -> int:
    query = _filter_query(args)
    if args.limit is not None:
        query.append(("limit", str(args.limit)))
    cursor = args.cursor
    answer = api.call("GET", PATH, [*query, *_cursor(cursor)])
    clients = list(answer.get("clients") or [])
    while args.all and answer.get("next_cursor"):
        answer = api.call("GET", PATH, [*query, ("cursor", str(answer["next_cursor"]))])
        clients.extend(answer.get("clients") or [])
    if args.json:
        _print_json({**answer, "clients": clients} if args.all else answer)
        return EXIT_OK
    print(table(clients, COLUMNS) if clients else "no clients match")
    shown, total, more = len(clients), answer.get("total"), answer.get("next_cursor")
    if more:
        _note(f"{shown} of {total} shown; --all for every page, or --cursor {more}")
    return EXIT_OK


def _show(api: Api, args: argparse.Namespace) -> int:
    answer = api.call("GET", _item(args.client_id), _tenant(args))
    if args.json:
        _print_json(answer)
        return EXIT_OK
    width = max((len(key) for key in answer), default=0)
    for key, value in answer.items():
        print(f"{key.ljust(width)}  {cell(value, limit=None)}")
    return EXIT_OK


def _approve(api: Api, args: argparse.Namespace) -> int:
    answer = api.call("POST", _item(args.client_id) + "/approve", _tenant(args))
    if args.json:
        _print_json(answer)
    else:
        print(f"approved {_who(answer)}: now {cell(answer.get('status'))}")
    return EXIT_OK


def _reject(api: Api, args: argparse.Namespace) -> int:
    answer = api.call("POST", _item(args.client_id) + "/reject", _tenant(args))
    if args.json:
        _print_json(answer)
    elif answer.get("upstream_deleted"):
        print(f"rejected {_who(answer)} and deleted it upstream")
    else:
        print(
            f"rejected {_who(answer)}; it is refused from now on, but the upstream delete "
            f"failed ({cell(answer.get('upstream_error'), limit=None)}): the lifecycle job "
            "retries it"
        )
    return EXIT_OK


def _delete(api: Api, args: argparse.Namespace) -> int:
    query = _tenant(args) + ([("forget", "true")] if args.forget else [])
    answer = api.call("DELETE", _item(args.client_id), query)
    if args.json:
        _print_json(answer)
    elif args.forget:
        print(f"forgot {_who(answer)} (the authorization server was not asked)")
    else:
        print(f"deleted {_who(answer)}")
    return EXIT_OK


def _stats(api: Api, args: argparse.Namespace) -> int:
    answer = api.call("GET", PATH + "/stats", _filter_query(args))
    if args.json:
        _print_json(answer)
        return EXIT_OK
    print(
        f"total {answer.get('total')} (live {answer.get('live')}, "
        f"being deleted {answer.get('deleting')})"
    )
    for section in ("by_status", "by_source", "by_tenant", "by_vendor", "live_by_vendor"):
        counts = answer.get(section) or {}
        print(f"{section.replace('_', ' ')}:")
        rows = [{"name": name or "-", "count": count} for name, count in counts.items()]
        for line in table(rows, ("name", "count"), header=False).splitlines():
            print(f"  {line}")
    return EXIT_OK


def _bulk_delete(api: Api, args: argparse.Namespace) -> int:
    chosen = _filter_json(args)
    dry = api.call("POST", PATH + "/delete", body={"filter": chosen, "dry_run": True})
    count = int(dry.get("count") or 0)
    if not args.yes:
        if args.json:
            _print_json(dry)
            return EXIT_OK
        ids = [str(i) for i in dry.get("client_ids") or []]
        print(f"{count} client{'s' if count != 1 else ''} would be deleted")
        for client_id in ids[:20]:
            print(f"  {cell(client_id, limit=None)}")
        if len(ids) < count or len(ids) > 20:
            print(f"  ... and {count - min(len(ids), 20)} more")
        if count:
            print(f"to delete them, run:\n  {confirm_command(args)}")
        return EXIT_OK
    if count == 0:
        if args.json:
            _print_json({"dry_run": False, "deleted": 0, "failed": [], "count": 0})
        else:
            print("no clients match; nothing deleted")
        return EXIT_OK
    body = {"filter": chosen, "dry_run": False, "expected_count": count}
    answer = api.call("POST", PATH + "/delete", body=body)
    failed = list(answer.get("failed") or [])
    if args.json:
        _print_json(answer)
    else:
        print(f"deleted {answer.get('deleted')} of {answer.get('count')} clients")
        if failed:
            print(f"{len(failed)} not deleted (the lifecycle job retries failed deletes):")
            print(table(failed, ("client_id", "tenant", "error")))
    return EXIT_FAIL if failed else EXIT_OK


def _run_lifecycle(api: Api, args: argparse.Namespace) -> int:
    query = [] if args.dry_run is None else [("dry_run", "true" if args.dry_run else "false")]
    answer = api.call("POST", LIFECYCLE_PATH, query)
    if args.json:
        _print_json(answer)
    elif not answer.get("ran"):
        print("not run: another replica is running the lifecycle job")
    else:
        actions = list(answer.get("actions") or [])
        what = "dry run: " if answer.get("dry_run") else ""
        print(f"{what}examined {answer.get('examined')}, {len(actions)} due")
        if actions:
            print(table(actions, ("client_id", "tenant", "vendor", "reason", "result", "error")))
    if answer.get("error"):
        _note(f"error: {cell(answer['error'], limit=None)}")
        return EXIT_FAIL
    return EXIT_OK


ACTIONS: dict[str, Callable[[Api, argparse.Namespace], int]] = {
    "list": _list,
    "show": _show,
    "approve": _approve,
    "reject": _reject,
    "delete": _delete,
    "stats": _stats,
    "bulk-delete": _bulk_delete,
    "run-lifecycle": _run_lifecycle,
}


def clients(args: argparse.Namespace) -> int:
    # The variable's name is echoed only when it is the default: a token pasted by
    # mistake as ``--token-env`` must not be printed back.
    name = f"${TOKEN_ENV}" if args.token_env == TOKEN_ENV else "the --token-env variable"
    token = (
        os.environ.get(args.token_env, "").strip() if _ENV_NAME.fullmatch(args.token_env) else ""
    )
    if not token:
        _note(
            f"error: no admin token: set {name} to the gateway's admin token "
            "(or name another environment variable with --token-env)"
        )
        return EXIT_USAGE
    if not all(33 <= ord(ch) <= 126 for ch in token):
        _note(f"error: {name} holds characters no bearer token has")
        return EXIT_USAGE
    url = args.url or os.environ.get(URL_ENV) or DEFAULT_URL
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        _note(f"error: the admin URL must be http:// or https://, not {cell(url, limit=None)}")
        return EXIT_USAGE
    try:
        code = ACTIONS[args.action](Api(url, token, args.timeout), args)
        sys.stdout.flush()
        return code
    except ApiError as exc:
        _note(f"error: {cell(exc.description, limit=None)}")
        return EXIT_FAIL
    except Unreachable as exc:
        _note(f"error: {cell(str(exc), limit=None)}")
        return EXIT_FAIL
    except BrokenPipeError:  # `... | head`: the reader left; say nothing more
        _silence_stdout()
        return EXIT_FAIL
    except KeyboardInterrupt:
        _note("interrupted")
        return 130


# --------------------------------------------------------------------------- output


def cell(value: object, limit: int | None = MAX_CELL) -> str:
    """One value as text: ``-`` for none, lists joined, control and format characters
    (which could move the cursor or hide text) spelled ``U+XXXX``, cut to ``limit``."""
    if value is None or value == "":
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = ", ".join(cell(v, limit=None) for v in value) or "-"
    else:
        text = "".join(
            f"U+{ord(ch):04X}" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
            for ch in str(value)
        )
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], header: bool = True) -> str:
    """Plain columns aligned with spaces, a header line first."""
    body = [[cell(row.get(column)) for column in columns] for row in rows]
    lines = ([list(columns)] if header else []) + body
    widths = [max((len(line[i]) for line in lines), default=0) for i in range(len(columns))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def confirm_command(args: argparse.Namespace) -> str:
    """The ``bulk-delete`` command line of ``args`` with ``--yes``."""
    words = ["dcr-gateway", "clients", "bulk-delete"]
    if args.url:
        words += ["--url", args.url]
    if args.token_env != TOKEN_ENV:
        words += ["--token-env", args.token_env]
    if args.tenant:
        words += ["--tenant", args.tenant]
    for flag, attribute, _ in FILTERS:
        value = getattr(args, attribute)
        for item in value if isinstance(value, list) else [] if value is None else [value]:
            words += [flag, item]
    return shlex.join([*words, "--yes"])


def _filter_query(args: argparse.Namespace) -> list[tuple[str, str]]:
    query = _tenant(args)
    for _, attribute, key in FILTERS:
        value = getattr(args, attribute)
        for item in value if isinstance(value, list) else [] if value is None else [value]:
            query.append((key, item))
    return query


def _filter_json(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"tenant": args.tenant} if args.tenant else {}
    for _, attribute, key in FILTERS:
        value = getattr(args, attribute)
        if value is not None:
            out[key] = value
    return out


def _tenant(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [("tenant", args.tenant)] if args.tenant else []


def _cursor(cursor: str | None) -> list[tuple[str, str]]:
    return [("cursor", cursor)] if cursor else []


def _item(client_id: str) -> str:
    return f"{PATH}/{urllib.parse.quote(client_id, safe='')}"


def _who(answer: Mapping[str, Any]) -> str:
    tenant = answer.get("tenant")
    where = f" (tenant {cell(tenant, limit=None)})" if tenant else ""
    return f"{cell(answer.get('client_id'), limit=None)}{where}"


def _print_json(answer: object) -> None:
    print(json.dumps(answer, indent=2))


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


COMMAND = Command(
    "clients",
    "list, approve, reject and delete registered clients through a running gateway",
    _arguments,
    clients,
)
