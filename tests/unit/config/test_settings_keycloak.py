"""Settings of the ``keycloak`` profile (upstream.profile, upstream.path_prefix, tenants,
keycloak.allow_providers) and the loading of per-tenant policy files."""

from __future__ import annotations

from pathlib import Path

import pytest
from yarl import URL

from gateway.cli import main
from gateway.config.load import load_config
from gateway.config.settings import Keycloak, Settings, read_settings
from gateway.config.yamlsource import ConfigError, Problem, parse_text
from tests.support.paths import ROOT

BASE = Path("/etc/dcr-gateway")
DEFAULT_POLICY = ROOT / "policies" / "default.yaml"


def load(text: str) -> tuple[Settings, list[Problem]]:
    problems: list[Problem] = []
    document = parse_text(text, "config.yaml", problems, env={})
    return read_settings(document, BASE, problems), problems


def triples(problems: list[Problem]) -> list[tuple[str, str, str | None]]:
    return [(p.path, p.message, p.location) for p in problems]


def keycloak_config(upstream: str = "", top: str = "") -> str:
    return (
        "upstream:\n"
        "  url: http://keycloak:8080\n"
        "  profile: keycloak\n"
        f"{upstream}"
        "policy_file: default.yaml\n"
        f"{top}"
    )


def test_a_keycloak_deployment_loads_into_typed_values() -> None:
    settings, problems = load(
        keycloak_config(
            "  path_prefix: /auth/\n",
            "tenants:\n  Customers: policies/customers.yaml\n  acme-eu: acme.yaml\n"
            "keycloak:\n  allow_providers: [openid-connect, default]\n",
        )
    )
    assert problems == []
    assert settings.upstream.profile == "keycloak"
    assert settings.upstream.url == URL("http://keycloak:8080")
    assert settings.upstream.path_prefix == "/auth"
    assert settings.upstream.registration_paths is None
    assert settings.tenants == (
        ("Customers", BASE / "policies" / "customers.yaml"),
        ("acme-eu", BASE / "acme.yaml"),
    )
    assert settings.keycloak == Keycloak(allow_providers=("openid-connect", "default"))


def test_defaults_of_the_keycloak_profile() -> None:
    settings, problems = load(keycloak_config())
    assert problems == []
    assert settings.upstream.path_prefix == ""
    assert settings.tenants == ()
    assert settings.keycloak.allow_providers == ("openid-connect",)


@pytest.mark.parametrize(
    "url",
    [
        "http://keycloak:8080/realms/acme",
        "http://keycloak:8080/realms/acme/",
        "http://keycloak:8080/auth/realms/Customers",
        "https://sso.example.com/realms",
    ],
)
def test_a_realm_url_as_upstream_url_is_an_error_naming_the_key(url: str) -> None:
    text = keycloak_config().replace("http://keycloak:8080", url)
    _, problems = load(text)
    assert len(problems) == 1, problems
    [problem] = problems
    assert problem.path == "upstream.url"
    assert problem.location == "config.yaml:2"
    assert "not a realm's" in problem.message
    assert "tenants" in problem.message


def test_a_realm_url_is_fine_for_the_generic_profile() -> None:
    # The generic profile guards one authorization server, which may be a realm.
    _, problems = load(
        "upstream:\n  url: http://keycloak:8080/realms/acme\npolicy_file: default.yaml\n"
    )
    assert problems == []


@pytest.mark.parametrize("profile", ["", "  profile: generic\n"])
def test_tenants_need_the_keycloak_profile(profile: str) -> None:
    _, problems = load(
        f"upstream:\n  url: http://keycloak:8080\n{profile}policy_file: default.yaml\n"
        "tenants:\n  Customers: customers.yaml\n"
    )
    assert [(p.path, p.location) for p in problems] == [
        ("tenants", f"config.yaml:{6 if profile else 5}")  # the mapping's first line
    ]
    assert "upstream.profile: keycloak" in problems[0].message


def test_path_prefix_needs_the_keycloak_profile() -> None:
    _, problems = load(
        "upstream:\n  url: http://keycloak:8080\n  path_prefix: /auth\npolicy_file: default.yaml\n"
    )
    assert triples(problems) == [
        ("upstream.path_prefix", "applies to the keycloak profile only", "config.yaml:3")
    ]


def test_a_prefix_in_both_url_and_path_prefix_is_a_problem() -> None:
    _, problems = load(
        "upstream:\n  url: http://keycloak:8080/auth/\n  profile: keycloak\n"
        "  path_prefix: /auth\npolicy_file: default.yaml\n"
    )
    assert [(p.path, p.location) for p in problems] == [("upstream.path_prefix", "config.yaml:4")]
    assert "/auth/auth/realms" in problems[0].message


def test_a_url_path_alone_is_kept_for_a_relative_path_keycloak() -> None:
    # Keycloak with http-relative-path=/kc behind a hostname without it: the public paths
    # have no prefix, every forwarded request gets /kc.
    settings, problems = load(
        "upstream:\n  url: http://keycloak:8080/kc\n  profile: keycloak\n"
        "policy_file: default.yaml\n"
    )
    assert problems == []
    assert (settings.upstream.url.path, settings.upstream.path_prefix) == ("/kc", "")


def test_registration_paths_are_refused_with_the_keycloak_profile() -> None:
    _, problems = load(keycloak_config("  registration_paths: [/realms/acme/reg]\n"))
    assert [(p.path, p.location) for p in problems] == [
        ("upstream.registration_paths", "config.yaml:4")
    ]


@pytest.mark.parametrize(
    ("providers", "expected"),
    [
        (
            "[openid-connect, bogus]",
            [("keycloak.allow_providers[1]", "unknown provider 'bogus'")],
        ),
        (
            "[openid-connect, Default, saml]",
            [
                ("keycloak.allow_providers[1]", "unknown provider 'Default'"),
                ("keycloak.allow_providers[2]", "unknown provider 'saml'"),
            ],
        ),
        ("[default]", [("keycloak.allow_providers", "must include openid-connect")]),
        ("[]", [("keycloak.allow_providers", "must include openid-connect")]),
    ],
)
def test_allow_providers_names_known_providers_only(
    providers: str, expected: list[tuple[str, str]]
) -> None:
    settings, problems = load(keycloak_config(top=f"keycloak:\n  allow_providers: {providers}\n"))
    assert [(p.path, p.message.split(";")[0]) for p in problems] == expected
    for problem in problems:
        assert problem.location == "config.yaml:6"
        if "unknown" in problem.message:
            assert "known: openid-connect, default, install, saml2-entity-descriptor" in (
                problem.message
            )
    assert set(settings.keycloak.allow_providers) <= {"openid-connect", "default"}


@pytest.mark.parametrize(
    ("tenants", "path"),
    [
        ("  a/b: x.yaml\n", "tenants.a/b"),
        ("  Customers: ''\n", "tenants.Customers"),
        ("  Customers: [x.yaml]\n", "tenants.Customers"),
    ],
)
def test_bad_tenant_entries_are_problems(tenants: str, path: str) -> None:
    _, problems = load(keycloak_config(top="tenants:\n" + tenants))
    assert [p.path for p in problems] == [path], problems


def test_a_realm_named_twice_is_a_problem() -> None:
    _, problems = load(keycloak_config(top="tenants:\n  Customers: a.yaml\n  Customers: b.yaml\n"))
    assert problems, "a duplicate realm must not silently pick one policy"
    assert any("Customers" in str(p) for p in problems), problems


# ---------------------------------------------------------------------- load_config


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def deployment(tmp_path: Path, tenants: str, extra: str = "") -> Path:
    write(tmp_path / "default.yaml", DEFAULT_POLICY.read_text(encoding="utf-8"))
    return write(
        tmp_path / "config.yaml",
        "upstream:\n"
        "  url: http://keycloak:8080\n"
        "  profile: keycloak\n"
        "policy_file: default.yaml\n"
        f"tenants:\n{tenants}"
        f"{extra}",
    )


CUSTOMERS_POLICY = (
    "version: 1\n"
    "mode: allowlist\n"
    "redirect_uris:\n"
    "  managed_list: none\n"
    "  allow: ['https://customers.example.com/*']\n"
)


def test_load_config_gives_each_tenant_its_policy(tmp_path: Path) -> None:
    write(tmp_path / "customers.yaml", CUSTOMERS_POLICY)
    loaded = load_config(deployment(tmp_path, "  Customers: customers.yaml\n"))
    assert set(loaded.policies.tenants) == {"Customers"}
    customers = loaded.policies.for_tenant("Customers")
    assert customers.source == str(tmp_path / "customers.yaml")
    assert loaded.policies.for_tenant("acme") is loaded.policy
    # Case-sensitive, as Keycloak's realm names.
    assert loaded.policies.for_tenant("customers") is loaded.policy
    assert customers.revision != loaded.policy.revision


def test_tenant_policy_problems_are_reported_with_the_others(tmp_path: Path) -> None:
    write(
        tmp_path / "customers.yaml",
        "version: 1\nmode: sometimes\nredirect_uris:\n  allow: [42]\n  blok: []\n",
    )
    config = deployment(
        tmp_path,
        "  Customers: customers.yaml\n  Missing: missing.yaml\n",
        "keycloak:\n  allow_providers: [openid-connect, bogus]\n",
    )
    with pytest.raises(ConfigError) as error:
        load_config(config)
    problems = error.value.problems
    located = {(p.location, p.path) for p in problems}
    customers, missing = tmp_path / "customers.yaml", tmp_path / "missing.yaml"
    # The config's own problem, and each of the tenant policy's at its file and line.
    assert (f"{config}:9", "keycloak.allow_providers[1]") in located
    assert (f"{customers}:2", "mode") in located
    assert (f"{customers}:4", "redirect_uris.allow[0]") in located
    assert (f"{customers}:5", "redirect_uris.blok") in located
    # The missing file is named, at the config key (and line) that names it.
    [unreadable] = [p for p in problems if p.path == "tenants.Missing"]
    assert unreadable.location == f"{config}:7"
    assert unreadable.message.startswith(f"{missing}: cannot read")
    assert len(problems) == 5, problems


def test_check_lists_tenant_policy_problems(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write(tmp_path / "customers.yaml", "version: 1\nmode: sometimes\n")
    config = deployment(tmp_path, "  Customers: customers.yaml\n  Missing: missing.yaml\n")
    assert main(["check", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'customers.yaml'}:2: mode" in err, err
    assert f"{tmp_path / 'missing.yaml'}" in err, err
    assert "2 problems found" in err, err


def test_check_accepts_a_keycloak_deployment(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write(tmp_path / "customers.yaml", CUSTOMERS_POLICY)
    config = deployment(tmp_path, "  Customers: customers.yaml\n")
    assert main(["check", "-c", str(config)]) == 0
    assert "config ok" in capsys.readouterr().out
