"""Policy file (version 1) -> :class:`~gateway.policy.model.Policy`, every error collected.

Unknown keys are errors (a misspelt ``blok:`` must not silently allow everything), each
problem carries its key path and ``file:line``, and every key has a default documented in
``docs/policy.md``.  The defaults are the safe ones: approved applications only (the
managed list), confidential or public clients with the authorization-code grant, no
implicit or password grant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config.reader import Reader, as_bool, as_choice, as_int, as_nonempty_str
from gateway.config.yamlsource import (
    ConfigError,
    Document,
    KeyPath,
    Problem,
    format_path,
    load_file,
)
from gateway.policy import spec
from gateway.policy.controls import (
    NestedLoader,
    read_on_storage_error,
    read_rate_limits,
    read_tokens,
)
from gateway.policy.lifecycle import read_approval, read_cleanup, read_quotas
from gateway.policy.managed import as_host, build_index, load_managed, managed_source
from gateway.policy.model import (
    CimdPolicy,
    ClientPolicy,
    Enforcement,
    ManagedClient,
    Mode,
    NameGlob,
    OnExcess,
    OnMismatch,
    Policy,
    RedirectPolicy,
    RuleGroup,
    ScopePolicy,
)
from gateway.policy.names import claim_keys, compile_name_glob
from gateway.policy.patterns import LoopbackMode, PatternError, PatternSet, compile_pattern
from gateway.policy.report_only import SECTION_GROUPS, enforced_view
from gateway.policy.spec import (
    AUTH_METHODS,
    DEFAULT_AUTH_METHODS,
    DEFAULT_GRANT_TYPES,
    DEFAULT_MAX_REDIRECT_URIS,
    DEFAULT_RESPONSE_TYPES,
    DEFAULT_SCOPES,
    DEFAULT_SCOPES_ALLOWED,
    GRANT_TYPES,
    MAX_REDIRECT_URIS,
    RESPONSE_TYPE_PARTS,
)

_SCOPE_TOKEN_RE = re.compile(spec.SCOPE_TOKEN_PATTERN)
_LOOPBACK = {
    "any_port": LoopbackMode.ANY_PORT,
    "exact": LoopbackMode.EXACT,
    "deny": LoopbackMode.DENY,
}


def _one_of(allowed: frozenset[str], what: str) -> Any:
    def parse(value: Any) -> str:
        text = as_nonempty_str(value)
        if text not in allowed and not (what == "grant type" and ":" in text):
            raise ValueError(f"unknown {what} {text!r}; known: {', '.join(sorted(allowed))}")
        return text

    return parse


def _response_type(value: Any) -> str:
    text = as_nonempty_str(value)
    parts = text.split(" ")
    unknown = [p for p in parts if p not in RESPONSE_TYPE_PARTS]
    if unknown:
        raise ValueError(f"unknown response type {text!r} (parts: code, token, id_token, none)")
    return text


def _scope(value: Any) -> str:
    text = as_nonempty_str(value)
    if not _SCOPE_TOKEN_RE.match(text):
        raise ValueError(f"{text!r} is not a scope token (RFC 6749 §3.3)")
    return text


class _PolicyReader:
    def __init__(self, document: Document, problems: list[Problem]) -> None:
        self.r = Reader(document, problems)

    def patterns(self, section: dict[str, Any], path: KeyPath, key: str, label: str) -> list[Any]:
        compiled = []
        for index, source in enumerate(self.r.str_list(section, path, key, ())):
            try:
                compiled.append(compile_pattern(source, label))
            except PatternError as exc:
                self.r.problem((*path, key, index), str(exc))
        return compiled

    def managed_ids(
        self, section: dict[str, Any], path: KeyPath, clients: tuple[ManagedClient, ...]
    ) -> tuple[str, ...]:
        known = [c.id for c in clients]
        value = section.get("managed_list", "all")
        if value == "all":
            return tuple(known)
        if value in ("none", None):
            return ()
        if not isinstance(value, list):
            self.r.problem((*path, "managed_list"), "must be all, none, or a list of entry ids")
            return ()
        ids = self.r.items(value, (*path, "managed_list"), as_nonempty_str)
        for index, entry_id in enumerate(ids):
            if entry_id not in known:
                self.r.problem(
                    (*path, "managed_list", index),
                    f"no managed entry {entry_id!r}; known ids: {', '.join(known)}",
                )
        return tuple(i for i in ids if i in known)

    def cimd(self, clients: tuple[ManagedClient, ...], loopback: Any) -> CimdPolicy:
        """``cimd``: the managed entries whose ``cimd_client_ids`` are accepted, and
        patterns for other client_id URLs (draft-ietf-oauth-client-id-metadata-document)."""
        r = self.r
        top = r.document.data if isinstance(r.document.data, dict) else {}
        path: KeyPath = ("cimd",)
        section = r.section(top.get("cimd"), path, spec.CIMD.names)
        ids = set(self.managed_ids(section, path, clients))
        managed = {url: c.id for c in clients if c.id in ids for url in c.cimd_client_ids}
        allow = self.patterns(section, path, "allow", "cimd")
        return CimdPolicy(managed=managed, allow=PatternSet(allow, loopback))

    def controls(self, nested: NestedLoader | None) -> dict[str, Any]:
        """``rate_limits``, ``on_storage_error``, ``initial_access_tokens``; a token's own
        policy (``nested`` is ``None``) may not carry them."""
        r = self.r
        top = r.document.data if isinstance(r.document.data, dict) else {}
        if nested is None:
            for key in spec.NOT_IN_TOKEN_POLICIES:
                if key in top:
                    r.problem(
                        (key,),
                        "has no effect in a token's policy: the policy that received the "
                        "request applies its own",
                    )
            return {}
        base_dir = Path(r.document.name).parent
        return {
            "rate_limits": read_rate_limits(r, top),
            "on_storage_error": read_on_storage_error(r, top),
            "initial_access_tokens": read_tokens(r, top, base_dir, nested),
            "approval": read_approval(r, top),
            "cleanup": read_cleanup(r, top),
            "quotas": read_quotas(r, top),
        }

    def reporting(self) -> tuple[Enforcement, frozenset[RuleGroup]]:
        """``enforcement`` and each section's ``report_only``: the groups whose refusals
        are audited as ``would_deny`` and not enforced (all of them under
        ``enforcement: report-only``, ``mode: disabled`` included)."""
        r = self.r
        top = r.document.data if isinstance(r.document.data, dict) else {}
        enforcement = Enforcement(
            r.get(top, (), "enforcement", as_choice(*(e.value for e in Enforcement)), "enforce")
        )
        groups: set[RuleGroup] = set()
        for group in SECTION_GROUPS:
            path: KeyPath = (group.value,)
            section = top.get(group.value)
            if group is RuleGroup.IDENTITY:  # the one section with nothing else in it
                section = r.section(section, path, spec.IDENTITY.names)
            if isinstance(section, dict) and r.get(section, path, "report_only", as_bool, False):
                groups.add(group)
        if enforcement is Enforcement.REPORT_ONLY:
            groups = {RuleGroup.MODE, *SECTION_GROUPS}
        return enforcement, frozenset(groups)

    def read(self, clients: tuple[ManagedClient, ...]) -> tuple[Any, ...]:
        r = self.r
        top = r.section(r.document.data, (), spec.TOP.names)
        version = r.require(top, (), "version", as_int(1, 1), 1)
        mode = Mode(r.get(top, (), "mode", as_choice(*(m.value for m in Mode)), "allowlist"))

        rp: KeyPath = ("redirect_uris",)
        red = r.section(top.get("redirect_uris"), rp, spec.REDIRECT.names)
        loopback = _LOOPBACK[r.get(red, rp, "loopback", as_choice(*_LOOPBACK), "any_port")]
        managed_ids = self.managed_ids(red, rp, clients)
        custom = self.patterns(red, rp, "allow", "custom")
        blocked = self.patterns(red, rp, "block", "block")
        on_mismatch = OnMismatch(
            r.get(red, rp, "on_mismatch", as_choice(*(m.value for m in OnMismatch)), "reject")
        )
        max_uris = r.get(
            red, rp, "max_redirect_uris", as_int(1, MAX_REDIRECT_URIS), DEFAULT_MAX_REDIRECT_URIS
        )

        cp: KeyPath = ("client",)
        cl = r.section(top.get("client"), cp, spec.CLIENT.names)
        before = len(r.problems)
        methods = self._list(
            cl,
            cp,
            "token_endpoint_auth_methods",
            DEFAULT_AUTH_METHODS,
            _one_of(AUTH_METHODS, "token endpoint auth method"),
        )
        default_method = r.get(
            cl,
            cp,
            "default_token_endpoint_auth_method",
            _one_of(AUTH_METHODS, "token endpoint auth method"),
            "client_secret_basic",
        )
        # Cross-checks only between values that were read cleanly: one mistake, one error
        # (a methods list that is not a list must not also make the default "not in it").
        clean = len(r.problems) == before
        if cl.get("token_endpoint_auth_methods") == []:
            r.problem((*cp, "token_endpoint_auth_methods"), "must allow at least one method")
        elif clean and default_method not in methods:
            r.problem(
                (*cp, "default_token_endpoint_auth_method"),
                f"{default_method!r} is not in token_endpoint_auth_methods",
            )
        grants = self._list(
            cl, cp, "grant_types", DEFAULT_GRANT_TYPES, _one_of(GRANT_TYPES, "grant type")
        )
        if cl.get("grant_types") == []:
            r.problem((*cp, "grant_types"), "must allow at least one grant type")
        responses = self._list(cl, cp, "response_types", DEFAULT_RESPONSE_TYPES, _response_type)

        sp: KeyPath = (*cp, "scopes")
        sc = r.section(cl.get("scopes"), sp, spec.SCOPES.names)
        allowed_scopes: frozenset[str] | None
        before = len(r.problems)
        if sc.get("allowed") == "any":
            allowed_scopes = None
        else:
            allowed_scopes = frozenset(
                self._list(sc, sp, "allowed", DEFAULT_SCOPES_ALLOWED, _scope)
            )
        clean = len(r.problems) == before
        default_scopes = self._list(sc, sp, "default", DEFAULT_SCOPES, _scope)
        if allowed_scopes is not None and clean:
            for index, scope in enumerate(default_scopes):
                if scope not in allowed_scopes:
                    r.problem((*sp, "default", index), f"scope {scope!r} is not in allowed")
        on_excess = OnExcess(
            r.get(sc, sp, "on_excess", as_choice(*(m.value for m in OnExcess)), "reject")
        )

        np: KeyPath = (*cp, "client_name")
        nm = r.section(cl.get("client_name"), np, spec.CLIENT_NAME.names)
        deny = tuple(
            NameGlob(source, compile_name_glob(source)) for source in r.str_list(nm, np, "deny", ())
        )
        unprotected = frozenset(
            key for n in r.str_list(nm, np, "unprotected", ()) for key in claim_keys(n)
        )
        fetched_hosts: tuple[str, ...] | None = None
        if cl.get("fetched_url_hosts") is not None:  # null, as absent: not restricted
            fetched_hosts = tuple(
                r.items(cl["fetched_url_hosts"], (*cp, "fetched_url_hosts"), as_host)
            )

        client = ClientPolicy(
            token_endpoint_auth_methods=frozenset(methods),
            default_token_endpoint_auth_method=default_method,
            grant_types=frozenset(grants),
            response_types=frozenset(responses),
            scopes=ScopePolicy(allowed_scopes, tuple(default_scopes), on_excess),
            client_name_deny=deny,
            unprotected_identities=unprotected,
            fetched_url_hosts=fetched_hosts,
        )
        return version, mode, loopback, managed_ids, custom, blocked, on_mismatch, max_uris, client

    def _list(
        self,
        section: dict[str, Any],
        path: KeyPath,
        key: str,
        default: tuple[str, ...],
        parse: Any,
    ) -> tuple[str, ...]:
        if key not in section:
            return default
        return tuple(self.r.items(section[key], (*path, key), parse))


def policy_revision(policy_bytes: bytes, managed_bytes: bytes) -> str:
    """SHA-256 (hex) of the policy's bytes followed by the managed list's: the revision
    every audit event carries, so an event says exactly which rules decided it."""
    digest = hashlib.sha256(policy_bytes)
    digest.update(managed_bytes)
    return digest.hexdigest()


def read_policy(
    document: Document,
    problems: list[Problem],
    clients: tuple[ManagedClient, ...] | None = None,
    *,
    token_policy: bool = False,
    managed_bytes: bytes | None = None,
) -> Policy:
    """Build a policy from a parsed document; problems are appended, not raised.

    The revision is of ``document.raw`` (or, for a document built from data, its canonical
    JSON) and of the managed list's bytes.  ``token_policy``: the policy an initial access
    token names (``initial_access_tokens.tokens[].policy``), which judges registrations but
    carries no controls of its own."""
    if managed_bytes is None:
        managed_bytes = managed_source() if clients is None else b""
    clients = load_managed() if clients is None else clients
    source_bytes = document.raw or json.dumps(document.data, sort_keys=True, default=str).encode(
        "utf-8"
    )
    if document.data is None and not problems:
        problems.append(Problem("(top level)", "the policy file is empty", document.name))
    reader = _PolicyReader(document, problems)
    (version, mode, loopback, managed_ids, custom, blocked, on_mismatch, max_uris, client) = (
        reader.read(clients)
    )

    def nested(path: Path, key: KeyPath) -> Policy | None:
        return _load_token_policy(path, key, document, problems, clients, managed_bytes)

    controls = reader.controls(None if token_policy else nested)
    enforcement, report_only = reader.reporting()
    index = build_index(clients, loopback)
    selected = [
        pattern
        for c in clients
        if c.id in managed_ids
        for pattern in (compile_pattern(u, f"managed:{c.id}") for u in c.redirect_uris)
    ]
    policy = Policy(
        version=version,
        mode=mode,
        redirect_uris=RedirectPolicy(
            managed_ids=managed_ids,
            allowed=PatternSet([*selected, *custom], loopback),
            blocked=PatternSet(blocked, loopback),
            loopback=loopback,
            on_mismatch=on_mismatch,
            max_redirect_uris=max_uris,
        ),
        client=client,
        managed=index,
        source=document.name,
        revision=policy_revision(source_bytes, managed_bytes),
        cimd=reader.cimd(clients, loopback),
        enforcement=enforcement,
        report_only=report_only,
        **controls,
    )
    if not report_only:
        return policy
    return dataclasses.replace(policy, enforced_view=enforced_view(policy, report_only))


def _load_token_policy(
    path: Path,
    key: KeyPath,
    parent: Document,
    problems: list[Problem],
    clients: tuple[ManagedClient, ...],
    managed_bytes: bytes,
) -> Policy | None:
    """The policy file a token names; unreadable, it is reported at the naming key.  Its
    revision is the one it has on its own (its bytes and the same managed list)."""
    own: list[Problem] = []
    document = load_file(path, own)
    if document.data is None and own:
        message = f"{path}: {own[0].message}"
        problems.append(Problem(format_path(key), message, parent.location(key)))
        return None
    policy = read_policy(document, own, clients, token_policy=True, managed_bytes=managed_bytes)
    problems.extend(own)
    return None if own else policy


def load_policy(path: Path) -> Policy:
    """Load and validate a policy file; raise :class:`ConfigError` with every problem."""
    problems: list[Problem] = []
    document = load_file(path, problems)
    if document.data is None and problems:  # unreadable: one error, not "version missing"
        raise ConfigError(problems)
    policy = read_policy(document, problems)
    if problems:
        raise ConfigError(problems)
    return policy


def policy_from_mapping(data: Mapping[str, Any], name: str = "<inline>") -> Policy:
    """A policy from already-parsed data (inline policies in test cases)."""
    problems: list[Problem] = []
    policy = read_policy(Document(dict(data), name), problems)
    if problems:
        raise ConfigError(problems)
    return policy
