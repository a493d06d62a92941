"""Loading a whole deployment: the config file and the policy files it names.

All are validated before anything starts, and problems from every file are reported
together, so one ``dcr-gateway check`` run shows everything that needs fixing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.config.settings import Settings, read_settings
from gateway.config.yamlsource import (
    ConfigError,
    Document,
    KeyPath,
    Problem,
    format_path,
    load_file,
)
from gateway.policy.loader import read_policy
from gateway.policy.model import Policy
from gateway.policy.policies import Policies


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    settings: Settings
    policies: Policies

    @property
    def policy(self) -> Policy:
        """The default policy (of every tenant without its own)."""
        return self.policies.default


def _load_policy(
    path: Path, problems: list[Problem], config: Document, key: KeyPath
) -> Policy | None:
    """The policy file that config key ``key`` names; a file that cannot be read is
    reported at that key (``tenants.customers`` at ``config.yaml:12``), so the reader
    knows which setting to fix."""
    policy_problems: list[Problem] = []
    document = load_file(path, policy_problems)
    policy = None
    if document.data is not None or not policy_problems:
        policy = read_policy(document, policy_problems)
    for problem in policy_problems:
        if problem.path == "(file)" and problem.location == str(path):
            problem = Problem(format_path(key), f"{path}: {problem.message}", config.location(key))
        problems.append(problem)
    return None if policy_problems else policy


def _read_policies(
    settings: Settings, problems: list[Problem], config: Document | None, *, default: bool = True
) -> Policies | None:
    """Every policy file the settings name (``policy_file``, each of ``tenants``), with
    the files those name (initial access tokens' policies).  An unreadable file is reported
    at the config key naming it when ``config`` is given, else at the file itself."""

    def one(path: Path, key: KeyPath) -> Policy | None:
        if config is not None:
            return _load_policy(path, problems, config, key)
        own: list[Problem] = []
        document = load_file(path, own)
        policy = read_policy(document, own) if document.data is not None or not own else None
        problems.extend(own)
        return None if own else policy

    policy = one(settings.policy_file, ("policy_file",)) if default else None
    tenants = {realm: one(file, ("tenants", realm)) for realm, file in settings.tenants}
    if policy is None or any(p is None for p in tenants.values()):
        return None
    return Policies(policy, {realm: p for realm, p in tenants.items() if p is not None})


def load_policies(settings: Settings) -> Policies:
    """Read every policy file of a running deployment again (a reload): the same files
    the settings named at start-up; raise :class:`ConfigError` listing every problem, each
    with its ``file:line``.  Pure of side effects: nothing changes until the caller swaps
    the result in."""
    problems: list[Problem] = []
    policies = _read_policies(settings, problems, None)
    if problems or policies is None:
        raise ConfigError(problems)
    return policies


def load_config(path: Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, validate and type the config and its policies; raise :class:`ConfigError`
    listing every problem found in any file."""
    problems: list[Problem] = []
    document = load_file(path, problems, env)
    settings = read_settings(document, path.parent, problems, env)
    # Without policy_file (a problem already), the tenants' files are still checked.
    default = settings.policy_file != path.parent
    policies = _read_policies(settings, problems, document, default=default)
    if problems or policies is None:
        raise ConfigError(problems)
    return LoadedConfig(settings, policies)
