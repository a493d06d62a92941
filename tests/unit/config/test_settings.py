"""Unit tests for gateway.config.settings: the config file turned into typed settings."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from yarl import URL

from gateway.config.settings import (
    Audit,
    Limits,
    Listen,
    Settings,
    Upstream,
    read_settings,
)
from gateway.config.yamlsource import Problem, parse_text
from tests.support.paths import ROOT

BASE = Path("/etc/dcr-gateway")
EXAMPLE = ROOT / "config.example.yaml"
MINIMAL = "upstream:\n  url: http://127.0.0.1:3000\npolicy_file: policy.yaml\n"

STORAGE_MESSAGE = (
    "must be memory://, or a redis://, rediss://, unix://, redis+sentinel:// or "
    "redis+cluster:// URL"
)


def load(text: str, env: dict[str, str] | None = None) -> tuple[Settings, list[Problem]]:
    problems: list[Problem] = []
    document = parse_text(text, "config.yaml", problems, env={} if env is None else env)
    settings = read_settings(document, BASE, problems)
    return settings, problems


def triples(problems: list[Problem]) -> list[tuple[str, str, str | None]]:
    return [(p.path, p.message, p.location) for p in problems]


def test_example_config_loads_into_typed_values() -> None:
    settings, problems = load(EXAMPLE.read_text(encoding="utf-8"))
    assert problems == []
    assert settings == Settings(
        listen=Listen(host="127.0.0.1", port=8080),
        public_url=URL("http://127.0.0.1:8080"),
        upstream=Upstream(
            url=URL("http://127.0.0.1:3000"),
            registration_paths=None,
            connect_timeout=2.0,
            timeout=15.0,
            max_connections=100,
            preserve_host=False,
            discovery_timeout=30.0,
        ),
        policy_file=BASE / "policies" / "default.yaml",
        storage="memory://",
        trusted_proxies=(),
        limits=Limits(max_body_bytes=65536, max_response_bytes=1_048_576),
        audit=Audit(sink="stdout"),
        log_level="info",
    )


def test_minimal_config_uses_defaults() -> None:
    settings, problems = load(MINIMAL)
    assert problems == []
    assert settings.listen == Listen("127.0.0.1", 8080)
    assert settings.public_url == URL("http://127.0.0.1:8080")
    assert settings.upstream == Upstream(url=URL("http://127.0.0.1:3000"))
    assert settings.policy_file == BASE / "policy.yaml"
    assert settings.storage == "memory://"
    assert settings.trusted_proxies == ()
    assert settings.limits == Limits(65536, 1024 * 1024)
    assert settings.audit == Audit("stdout")
    assert settings.log_level == "info"


def test_full_config_with_every_key_set() -> None:
    text = """\
listen: {host: 0.0.0.0, port: 9000}
public_url: https://gw.example/
upstream:
  url: https://as.internal:8443/oidc
  registration_paths: [/reg, /oidc/register]
  connect_timeout: 500ms
  timeout: 1m
  max_connections: 10
  preserve_host: true
  discovery_timeout: 1h
policy_file: /srv/policy.yaml
storage: redis://cache:6379/0
trusted_proxies: [10.0.0.0/8, 192.0.2.7, "2001:db8::/32"]
limits: {max_body_bytes: 64KiB, max_response_bytes: 2MB}
audit: {sink: /var/log/dcr/audit.jsonl}
log_level: debug
"""
    settings, problems = load(text)
    assert problems == []
    assert settings == Settings(
        listen=Listen("0.0.0.0", 9000),
        public_url=URL("https://gw.example/"),
        upstream=Upstream(
            url=URL("https://as.internal:8443/oidc"),
            registration_paths=("/reg", "/oidc/register"),
            connect_timeout=0.5,
            timeout=60.0,
            max_connections=10,
            preserve_host=True,
            discovery_timeout=3600.0,
        ),
        policy_file=Path("/srv/policy.yaml"),
        storage="redis://cache:6379/0",
        trusted_proxies=(
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("192.0.2.7/32"),
            ipaddress.ip_network("2001:db8::/32"),
        ),
        limits=Limits(65536, 2_000_000),
        audit=Audit("/var/log/dcr/audit.jsonl"),
        log_level="debug",
    )


def test_five_mistakes_give_five_problems_at_once() -> None:
    text = """\
listen: {host: 127.0.0.1, port: 70000}
public_url: ftp://gw.example
upstream:
  url: http://127.0.0.1:3000
  timeout: soon
policy_file: policy.yaml
storage: mysql://db
trusted_proxies:
  - 10.0.0.0/8
  - not-a-cidr
"""
    settings, problems = load(text)
    assert [(p.path, p.location) for p in problems] == [
        ("listen.port", "config.yaml:1"),
        ("public_url", "config.yaml:2"),
        ("upstream.timeout", "config.yaml:5"),
        ("storage", "config.yaml:7"),
        ("trusted_proxies[1]", "config.yaml:10"),
    ]
    messages = [p.message for p in problems]
    assert messages[0] == "must be at most 65535"
    assert messages[1].startswith("must be an absolute http:// or https:// URL")
    assert messages[2] == "must be a duration such as 2s, 500ms, 5m, not 'soon'"
    assert messages[3] == STORAGE_MESSAGE
    assert messages[4].startswith("is not an IP address or CIDR")
    # Every invalid value falls back to its default, and the valid ones are kept.
    assert settings.listen.port == 8080
    assert settings.upstream.timeout == 15.0
    assert settings.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    ("text", "path", "line"),
    [
        ("lisen: {port: 1}\n" + MINIMAL, "lisen", 1),
        (MINIMAL + "upstream_url: x\n", "upstream_url", 4),
        ("listen: {host: a, prot: 1}\n" + MINIMAL, "listen.prot", 1),
        ("upstream:\n  url: http://a\n  timeout_s: 2\npolicy_file: p\n", "upstream.timeout_s", 3),
        (MINIMAL + "limits: {max_body: 1}\n", "limits.max_body", 4),
        (MINIMAL + "audit: {sink: stdout, format: json}\n", "audit.format", 4),
    ],
    ids=["top-typo", "top-extra", "listen", "upstream", "limits", "audit"],
)
def test_unknown_keys_are_problems(text: str, path: str, line: int) -> None:
    _, problems = load(text)
    assert [(p.path, p.location) for p in problems] == [(path, f"config.yaml:{line}")]
    assert problems[0].message.startswith("unknown key (known keys: ")


def test_unknown_top_key_lists_every_known_key() -> None:
    _, problems = load(MINIMAL + "polcy: x\n")
    assert problems[0].message == (
        "unknown key (known keys: admin, audit, cimd, cors, keycloak, limits, listen, log_level, "
        "metrics, policy_file, policy_reload, public_url, registry, server, storage, tenants, "
        "trusted_proxies, upstream)"
    )


REQUIRED = [("upstream", "is required"), ("upstream.url", "is required")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "",
            [
                ("(top level)", "the config file is empty"),
                *REQUIRED,
                ("policy_file", "is required"),
            ],
        ),
        (
            "[1, 2]\n",
            [
                ("(top level)", "must be a mapping, not a list"),
                *REQUIRED,
                ("policy_file", "is required"),
            ],
        ),
        ("policy_file: p\n", REQUIRED),
        ("upstream: {url: http://a}\n", [("policy_file", "is required")]),
        ("upstream: {timeout: 2s}\npolicy_file: p\n", [("upstream.url", "is required")]),
        (
            "upstream: http://a\npolicy_file: p\n",
            [("upstream", "must be a mapping, not a string"), ("upstream.url", "is required")],
        ),
    ],
    ids=[
        "empty-file",
        "not-a-mapping",
        "no-upstream",
        "no-policy-file",
        "no-upstream-url",
        "upstream-is-a-string",
    ],
)
def test_required_and_shape_problems(text: str, expected: list[tuple[str, str]]) -> None:
    _, problems = load(text)
    assert [(p.path, p.message) for p in problems] == expected


@pytest.mark.parametrize(
    ("policy_file", "expected"),
    [
        ("policy.yaml", BASE / "policy.yaml"),
        ("policies/default.yaml", BASE / "policies" / "default.yaml"),
        ("../shared/policy.yaml", BASE / ".." / "shared" / "policy.yaml"),
        ("/srv/policy.yaml", Path("/srv/policy.yaml")),
    ],
    ids=["bare-name", "sub-folder", "parent-folder", "absolute"],
)
def test_policy_file_is_resolved_against_base_dir(policy_file: str, expected: Path) -> None:
    settings, problems = load(f"upstream: {{url: http://a}}\npolicy_file: {policy_file}\n")
    assert problems == []
    assert settings.policy_file == expected


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        ("stdout", "stdout"),
        ("stderr", "stderr"),
        ("audit.jsonl", str(BASE / "audit.jsonl")),
        ("logs/audit.jsonl", str(BASE / "logs" / "audit.jsonl")),
        ("/var/log/audit.jsonl", "/var/log/audit.jsonl"),
    ],
    ids=["stdout", "stderr", "relative", "relative-sub-folder", "absolute"],
)
def test_audit_sink(sink: str, expected: str) -> None:
    settings, problems = load(MINIMAL + f"audit: {{sink: {sink}}}\n")
    assert problems == []
    assert settings.audit.sink == expected


@pytest.mark.parametrize(
    "storage",
    [
        "memory://",
        "redis://cache:6379/0",
        "rediss://user:pw@cache:6380/1",
        "unix:///run/redis.sock",
        "REDIS://cache",
    ],
    ids=["memory", "redis", "rediss", "unix", "upper-case-scheme"],
)
def test_storage_accepted(storage: str) -> None:
    settings, problems = load(MINIMAL + f"storage: '{storage}'\n")
    assert problems == []
    assert settings.storage == storage


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("memory", STORAGE_MESSAGE),
        ("redis:/cache", STORAGE_MESSAGE),
        ("http://cache", STORAGE_MESSAGE),
        ("memcached://cache", STORAGE_MESSAGE),
        ("''", "must not be empty"),
        ("6379", "must be a string, not a number"),
    ],
    ids=["no-scheme", "single-slash", "http", "memcached", "empty", "number"],
)
def test_storage_refused(storage: str, message: str) -> None:
    settings, problems = load(MINIMAL + f"storage: {storage}\n")
    assert triples(problems) == [("storage", message, "config.yaml:4")]
    assert settings.storage == "memory://"


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ("[]", ()),
        ("[10.0.0.0/8]", ("10.0.0.0/8",)),
        ("[10.1.2.3/8]", ("10.0.0.0/8",)),
        ("[192.0.2.1]", ("192.0.2.1/32",)),
        ("['2001:db8::/32', '::1']", ("2001:db8::/32", "::1/128")),
        ("[172.16.0.0/12, 127.0.0.1]", ("172.16.0.0/12", "127.0.0.1/32")),
    ],
    ids=["empty", "cidr", "host-bits-set", "single-address", "ipv6", "several"],
)
def test_trusted_proxies_accepted(entries: str, expected: tuple[str, ...]) -> None:
    settings, problems = load(MINIMAL + f"trusted_proxies: {entries}\n")
    assert problems == []
    assert settings.trusted_proxies == tuple(ipaddress.ip_network(e) for e in expected)


@pytest.mark.parametrize(
    ("entries", "path", "message_start"),
    [
        ("[10.0.0.0/33]", "trusted_proxies[0]", "is not an IP address or CIDR"),
        ("[example.com]", "trusted_proxies[0]", "is not an IP address or CIDR"),
        ("[10.0.0.0/8, 300.1.1.1]", "trusted_proxies[1]", "is not an IP address or CIDR"),
        ("[8]", "trusted_proxies[0]", "is not an IP address or CIDR"),
        ("10.0.0.0/8", "trusted_proxies", "must be a list, not a string"),
    ],
    ids=["prefix-too-long", "hostname", "bad-octet", "number", "not-a-list"],
)
def test_trusted_proxies_refused(entries: str, path: str, message_start: str) -> None:
    _, problems = load(MINIMAL + f"trusted_proxies: {entries}\n")
    assert [p.path for p in problems] == [path]
    assert problems[0].message.startswith(message_start)


AT_LEAST_ONE = ("upstream.registration_paths", "must list at least one path, or be omitted")


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ("[]", [AT_LEAST_ONE]),
        (
            "[reg]",
            [
                (
                    "upstream.registration_paths[0]",
                    "must be an absolute path starting with '/', not 'reg'",
                ),
                AT_LEAST_ONE,
            ],
        ),
        (
            "['/reg?x=1', /ok]",
            [("upstream.registration_paths[0]", "must be a path, without query or fragment")],
        ),
        (
            "['/reg#x']",
            [
                ("upstream.registration_paths[0]", "must be a path, without query or fragment"),
                AT_LEAST_ONE,
            ],
        ),
        (
            "/reg",
            [("upstream.registration_paths", "must be a list, not a string"), AT_LEAST_ONE],
        ),
    ],
    ids=["empty-list", "relative", "query-next-to-valid", "fragment", "not-a-list"],
)
def test_registration_paths_refused(paths: str, expected: list[tuple[str, str]]) -> None:
    text = f"upstream:\n  url: http://a\n  registration_paths: {paths}\npolicy_file: p\n"
    _, problems = load(text)
    assert [(p.path, p.message) for p in problems] == expected


@pytest.mark.parametrize(
    ("line", "path", "message"),
    [
        ("  max_connections: 0", "upstream.max_connections", "must be at least 1"),
        ("  max_connections: 10001", "upstream.max_connections", "must be at most 10000"),
        ("  preserve_host: 'true'", "upstream.preserve_host", "must be true or false, not 'true'"),
        ("  connect_timeout: 0s", "upstream.connect_timeout", "must be greater than zero"),
        ("  discovery_timeout: -1", "upstream.discovery_timeout", "must be greater than zero"),
        ("  url: http://u:p@as.example", "upstream.url", "must not carry credentials"),
    ],
    ids=[
        "no-connections",
        "too-many-connections",
        "boolean-as-string",
        "zero-timeout",
        "negative-timeout",
        "url-with-credentials",
    ],
)
def test_upstream_values_refused(line: str, path: str, message: str) -> None:
    text = "upstream:\n  url: http://a\n" if "url:" not in line else "upstream:\n"
    _, problems = load(text + line + "\npolicy_file: p\n")
    assert [p.path for p in problems] == [path]
    assert problems[0].message.startswith(message)


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("limits: {max_body_bytes: 0}\n", "limits.max_body_bytes", "must be greater than zero"),
        ("limits: {max_response_bytes: lots}\n", "limits.max_response_bytes", "must be a size"),
        ("log_level: verbose\n", "log_level", "must be one of debug, info, warning, error"),
        ("listen: {port: -1}\n", "listen.port", "must be at least 0"),
        ("listen: {host: ''}\n", "listen.host", "must not be empty"),
        ("public_url: https://gw.example/?x=1\n", "public_url", "must not carry credentials"),
        ("audit: {sink: ''}\n", "audit.sink", "must not be empty"),
    ],
    ids=[
        "zero-body",
        "bad-response-size",
        "log-level",
        "negative-port",
        "empty-host",
        "public-url-query",
        "empty-sink",
    ],
)
def test_other_values_refused(text: str, path: str, message: str) -> None:
    _, problems = load(MINIMAL + text)
    assert [p.path for p in problems] == [path]
    assert problems[0].message.startswith(message)


def test_env_interpolation_in_values() -> None:
    text = (
        "upstream:\n  url: ${AS_URL}\n  timeout: ${AS_TIMEOUT:-5s}\n"
        "policy_file: ${POLICY:-policy.yaml}\nstorage: ${REDIS_URL}\n"
    )
    env = {"AS_URL": "https://as.example", "REDIS_URL": "rediss://:pw@cache:6380/0"}
    settings, problems = load(text, env)
    assert problems == []
    assert settings.upstream.url == URL("https://as.example")
    assert settings.upstream.timeout == 5.0
    assert settings.policy_file == BASE / "policy.yaml"
    assert settings.storage == "rediss://:pw@cache:6380/0"


def test_missing_env_variable_is_reported_with_its_key() -> None:
    settings, problems = load(MINIMAL + "storage: ${REDIS_URL}\n")
    assert triples(problems) == [
        ("storage", "environment variable REDIS_URL is not set", "config.yaml:4"),
        ("storage", "must not be empty", "config.yaml:4"),
    ]
    assert settings.storage == "memory://"


@pytest.mark.parametrize(
    ("listen", "public_url"),
    [
        ("{host: 127.0.0.1, port: 9000}", "http://127.0.0.1:9000"),
        ("{host: gw.internal}", "http://gw.internal:8080"),
    ],
    ids=["ipv4", "hostname"],
)
def test_public_url_defaults_to_listen_address(listen: str, public_url: str) -> None:
    settings, problems = load(MINIMAL + f"listen: {listen}\n")
    assert problems == []
    assert settings.public_url == URL(public_url)


@pytest.mark.parametrize("host", ["'::'", "'::1'"], ids=["any-ipv6", "loopback-ipv6"])
def test_ipv6_listen_host_without_public_url(host: str) -> None:
    settings, problems = load(MINIMAL + f"listen: {{host: {host}}}\n")
    assert problems == []
    assert settings.public_url.port == 8080
    assert settings.public_url.host == host.strip("'")


def test_body_timeout_is_a_duration_with_a_default() -> None:
    settings, problems = load("upstream: {url: 'http://as'}\npolicy_file: p.yaml\n")
    assert problems == []
    assert settings.limits.body_timeout == 10.0
    settings, problems = load(
        "upstream: {url: 'http://as'}\npolicy_file: p.yaml\nlimits: {body_timeout: 750ms}\n"
    )
    assert problems == []
    assert settings.limits.body_timeout == 0.75
    _, problems = load(
        "upstream: {url: 'http://as'}\npolicy_file: p.yaml\nlimits: {body_timeout: never}\n"
    )
    assert [p.path for p in problems] == ["limits.body_timeout"]


def test_policy_reload_defaults_to_no_watcher() -> None:
    settings, problems = load(MINIMAL)
    assert problems == []
    assert (settings.policy_reload.watch, settings.policy_reload.interval) == (False, 2.0)


def test_policy_reload_reads_watch_and_interval() -> None:
    settings, problems = load(MINIMAL + "policy_reload: {watch: true, interval: 500ms}\n")
    assert problems == []
    assert (settings.policy_reload.watch, settings.policy_reload.interval) == (True, 0.5)


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ("{watch: sometimes}", "policy_reload.watch"),
        ("{interval: 10ms}", "policy_reload.interval"),
        ("{interval: soon}", "policy_reload.interval"),
        ("{poll: 2s}", "policy_reload.poll"),
    ],
)
def test_policy_reload_problems_name_the_key(section: str, path: str) -> None:
    _, problems = load(MINIMAL + f"policy_reload: {section}\n")
    assert [p.path for p in problems] == [path]
