"""Loading a whole deployment: the config file and the policy file it names.

Both are validated before anything starts, and problems from both files are reported
together, so one ``dcr-gateway check`` run shows everything that needs fixing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.config.settings import Settings, read_settings
from gateway.config.yamlsource import ConfigError, Problem, load_file
from gateway.policy.loader import read_policy
from gateway.policy.model import Policy


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    settings: Settings
    policy: Policy


def load_config(path: Path, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, validate and type the config and its policy; raise :class:`ConfigError`
    listing every problem found in either file."""
    problems: list[Problem] = []
    document = load_file(path, problems, env)
    settings = read_settings(document, path.parent, problems)
    policy_problems: list[Problem] = []
    policy: Policy | None = None
    if settings.policy_file != path.parent:
        policy_document = load_file(settings.policy_file, policy_problems)
        if policy_document.data is not None or not policy_problems:
            policy = read_policy(policy_document, policy_problems)
    problems.extend(policy_problems)
    if problems or policy is None:
        raise ConfigError(problems)
    return LoadedConfig(settings, policy)
