"""The managed list: known MCP clients, shipped with the gateway and curated by us.

After Glean's "managed list", a policy can allow every vetted client (``all``), some of
them by id, or none.  The file is ``policies/managed/mcp-clients.yaml``; the package
carries the same file as ``gateway/data/mcp-clients.yaml``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.config.reader import Reader, as_int, as_nonempty_str
from gateway.config.yamlsource import ConfigError, Document, KeyPath, Problem, load_file
from gateway.policy.model import ManagedClient, ManagedIndex
from gateway.policy.names import claim_keys, invalid_software_id, prefixes, software_id_key
from gateway.policy.patterns import LoopbackMode, PatternError, PatternSet, compile_pattern
from gateway.policy.spec import MANAGED_ID_PATTERN
from gateway.uri.hosts import HostError, is_ip_address, normalize_host

_ID_RE = re.compile(MANAGED_ID_PATTERN)
_ENTRY_KEYS = {
    "id",
    "name",
    "vendor",
    "client_names",
    "redirect_uris",
    "cimd_client_ids",
    "software_ids",
    "source",
    "verified",
    "hosts",
    "shared_hosts",
}


def default_path() -> Path:
    return Path(str(resources.files("gateway") / "data" / "mcp-clients.yaml"))


def as_host(value: Any) -> str:
    """A DNS name (no scheme, port or path), in its normal form; subdomains included."""
    text = as_nonempty_str(value)
    try:
        host, _ = normalize_host(text)
    except HostError as exc:
        raise ValueError(f"{text!r} {exc.problem}") from None
    if is_ip_address(host) or "." not in host:
        raise ValueError(f"must be a DNS name with at least two labels, not {text!r}")
    return host


def _same_vendor(clients: list[ManagedClient], entry_id: str, vendor: object) -> bool:
    """Entries of one vendor (claude and claude-code) may own the same hosts."""
    return any(c.id == entry_id and c.vendor == vendor for c in clients)


def _as_id(value: Any) -> str:
    text = as_nonempty_str(value)
    if not _ID_RE.match(text):
        raise ValueError(f"must be lower-case letters, digits and '-', not {text!r}")
    return text


def read_managed(document: Document, problems: list[Problem]) -> tuple[ManagedClient, ...]:
    """Validate a managed-list document; every problem is collected."""
    r = Reader(document, problems)
    top = r.section(document.data, (), {"version", "updated", "clients"})
    r.require(top, (), "version", as_int(1, 1), 1)
    entries = top.get("clients")
    if not isinstance(entries, list):
        r.problem(("clients",), "must be a list of client entries")
        return ()
    clients: list[ManagedClient] = []
    seen_ids: set[str] = set()
    seen_names: dict[str, str] = {}
    seen_hosts: dict[str, str] = {}
    for index, raw in enumerate(entries):
        path = ("clients", index)
        entry = r.section(raw, path, _ENTRY_KEYS)
        client_id = r.require(entry, path, "id", _as_id, "")
        if client_id and client_id in seen_ids:
            r.problem((*path, "id"), f"duplicate id {client_id!r}")
        seen_ids.add(client_id)
        names = r.str_list(entry, path, "client_names", ())
        uris = r.str_list(entry, path, "redirect_uris", ())
        for position, uri in enumerate(uris):
            try:
                compile_pattern(uri, f"managed:{client_id}")
            except PatternError as exc:
                r.problem((*path, "redirect_uris", position), str(exc))
        display = r.require(entry, path, "name", as_nonempty_str, "")
        named: list[tuple[KeyPath, str]] = [((*path, "name"), display)]
        named += [((*path, "client_names", i), n) for i, n in enumerate(names)]
        for where, name in named:
            keys = claim_keys(name)
            if not keys:
                r.problem(where, f"name {name!r} has no letters or digits to protect")
            for key in keys:
                if seen_names.get(key, client_id) != client_id:
                    r.problem(where, f"name {name!r} is already used by entry {seen_names[key]!r}")
                seen_names.setdefault(key, client_id)
        software_ids = r.str_list(entry, path, "software_ids", ())
        for position, software_id in enumerate(software_ids):
            problem = invalid_software_id(software_id)
            if problem:
                r.problem((*path, "software_ids", position), f"software id {problem}")
        hosts = tuple(r.items(entry.get("hosts"), (*path, "hosts"), as_host))
        shared = tuple(r.items(entry.get("shared_hosts"), (*path, "shared_hosts"), as_host))
        for position, host in enumerate(hosts):
            holder = seen_hosts.setdefault(host, client_id)
            if holder != client_id and not _same_vendor(clients, holder, entry.get("vendor")):
                r.problem((*path, "hosts", position), f"host {host!r} is owned by {holder!r}")
        clients.append(
            ManagedClient(
                id=client_id,
                name=display,
                vendor=r.require(entry, path, "vendor", as_nonempty_str, ""),
                client_names=names,
                redirect_uris=uris,
                cimd_client_ids=r.str_list(entry, path, "cimd_client_ids", ()),
                software_ids=software_ids,
                source=r.get(entry, path, "source", as_nonempty_str, ""),
                verified=str(entry.get("verified", "")),
                hosts=hosts,
                shared_hosts=shared,
            )
        )
    return tuple(clients)


@functools.cache
def _load(path: Path) -> tuple[tuple[ManagedClient, ...], bytes]:
    problems: list[Problem] = []
    document = load_file(path, problems)
    clients = read_managed(document, problems) if not problems else ()
    if problems:
        raise ConfigError(problems)
    return clients, document.raw


def load_managed(path: Path | None = None) -> tuple[ManagedClient, ...]:
    """The managed list (cached: it only changes with a new release)."""
    return _load(path or default_path())[0]


def managed_source(path: Path | None = None) -> bytes:
    """The exact bytes :func:`load_managed` parsed, for the policy revision."""
    return _load(path or default_path())[1]


@functools.cache
def build_index(clients: tuple[ManagedClient, ...], loopback: LoopbackMode) -> ManagedIndex:
    """Compile the managed list for one loopback mode (cached per mode)."""
    per_client: dict[str, PatternSet] = {}
    every = []
    protected: dict[str, list[ManagedClient]] = {}
    by_software_id: dict[str, list[ManagedClient]] = {}
    for client in clients:
        label = f"managed:{client.id}"
        compiled = [compile_pattern(uri, label) for uri in client.redirect_uris]
        per_client[client.id] = PatternSet(compiled, loopback)
        every.extend(compiled)
        for identity in (client.name, *client.client_names, client.vendor):
            for key in claim_keys(identity):
                holders = protected.setdefault(key, [])
                if client not in holders:
                    holders.append(client)
        for software_id in client.software_ids:
            by_software_id.setdefault(software_id_key(software_id), []).append(client)
    protected.pop("", None)
    return ManagedIndex(
        clients=clients,
        patterns=PatternSet(every, loopback),
        per_client=per_client,
        protected={key: tuple(entries) for key, entries in protected.items()},
        claim_prefixes=prefixes(protected),
        by_software_id={key: tuple(entries) for key, entries in by_software_id.items()},
    )
