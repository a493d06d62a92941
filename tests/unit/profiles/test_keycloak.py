"""The Keycloak profile's reading of request paths (gateway.profiles.keycloak)."""

from __future__ import annotations

import pytest

from gateway.http.routes import Kind
from gateway.profiles.keycloak import KeycloakProfile

PROFILE = KeycloakProfile(tenants=("Customers",))
AUTH = KeycloakProfile("/auth", tenants=("Customers",))
REG = "/realms/acme/clients-registrations/openid-connect"
DOC = "openid-configuration"
AS = "oauth-authorization-server"


@pytest.mark.parametrize(
    "path",
    [
        REG,
        REG + "/",
        "//realms//acme//clients-registrations//openid-connect",
        "/realms/acme/x/../clients-registrations/openid-connect",
        "/realms/%61cme/clients-registrations/openid%2Dconnect",
        "/REALMS/acme/CLIENTS-REGISTRATIONS/OPENID-CONNECT",
        "/realms/acme/clients-registrations/openid-connect;jsessionid=1",
        "/realms/acme/clients-registrations/%252Fopenid-connect/..//openid-connect",
    ],
)
def test_every_spelling_of_registration_is_guarded(path: str) -> None:
    target = PROFILE.classify(path)
    assert (target.kind, target.tenant, target.upstream_path) == (Kind.REGISTER, "acme", REG)


def test_management_keeps_the_client_id_case() -> None:
    target = PROFILE.classify(REG + "/MyClient%2Dx")
    assert (target.kind, target.tenant, target.client_id) == (Kind.MANAGE, "acme", "MyClient-x")
    assert target.upstream_path == REG + "/MyClient-x"


@pytest.mark.parametrize(
    "provider", ["default", "install", "saml2-entity-descriptor", "DEFAULT", "%64efault", "other"]
)
def test_sibling_providers_are_refused(provider: str) -> None:
    target = PROFILE.classify(f"/realms/acme/clients-registrations/{provider}")
    assert target.kind is Kind.REFUSE
    assert target.refusal is not None
    assert (target.refusal.rule, target.refusal.status) == ("provider.not_allowed", 403)


def test_an_allowed_sibling_passes_through() -> None:
    profile = KeycloakProfile(allow_providers=("openid-connect", "default"))
    assert profile.classify("/realms/acme/clients-registrations/default").kind is Kind.PASSTHROUGH
    assert profile.classify("/realms/acme/clients-registrations/install").kind is Kind.REFUSE


@pytest.mark.parametrize("rest", ["", "/", "/openid-connect/a/b"])
def test_paths_that_are_not_a_client_are_refused(rest: str) -> None:
    target = PROFILE.classify("/realms/acme/clients-registrations" + rest)
    assert target.kind is Kind.REFUSE
    assert target.refusal is not None and target.refusal.rule == "management.not_a_client"


@pytest.mark.parametrize(
    "path",
    ["/realms/customers" + REG[12:], "/realms/CUSTOMERS/.well-known/openid-configuration"],
)
def test_a_realm_differing_only_in_case_from_a_tenant_is_refused(path: str) -> None:
    target = PROFILE.classify(path)
    assert target.kind is Kind.REFUSE
    assert target.refusal is not None
    assert (target.refusal.rule, target.refusal.status) == ("tenant.case_mismatch", 404)


def test_the_tenant_is_the_realm_as_written() -> None:
    assert PROFILE.classify("/realms/Customers" + REG[12:]).tenant == "Customers"


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        (
            "/realms/acme/.well-known/openid-configuration",
            "/realms/acme/.well-known/openid-configuration",
        ),
        (
            "/realms/acme/.well-known/oauth-authorization-server",
            "/realms/acme/.well-known/oauth-authorization-server",
        ),
        # The path-insertion forms (Keycloak 26.4+) are read from the realm's OIDC document,
        # which every version serves.
        (
            "/.well-known/oauth-authorization-server/realms/acme",
            "/realms/acme/.well-known/openid-configuration",
        ),
        (
            "/.WELL-KNOWN/openid-configuration/realms/acme/",
            "/realms/acme/.well-known/openid-configuration",
        ),
    ],
)
def test_discovery_in_both_forms(path: str, upstream: str) -> None:
    target = PROFILE.classify(path)
    assert (target.kind, target.tenant, target.upstream_path) == (Kind.DISCOVERY, "acme", upstream)
    assert target.registration_path == REG


def test_a_path_prefix() -> None:
    assert AUTH.classify("/auth" + REG).upstream_path == "/auth" + REG
    # Keycloak 16 serves nothing there, but a newer one with http-relative-path might.
    assert AUTH.classify(REG).refusal.rule == "keycloak.prefix_mismatch"
    discovery = AUTH.classify("/auth/realms/acme/.well-known/openid-configuration")
    assert discovery.registration_path == "/auth" + REG


@pytest.mark.parametrize(
    "path",
    ["/realms/acme/protocol/openid-connect/certs", "/realms/acme/account", "/", "/admin/x"],
)
def test_everything_else_passes_through(path: str) -> None:
    assert PROFILE.classify(path).kind is Kind.PASSTHROUGH


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/realms/acme/protocol/openid-connect/auth", Kind.AUTHORIZE),
        ("/realms/acme/protocol/openid-connect/token", Kind.TOKEN),
        ("/realms/acme/protocol/openid-connect/ext/par/request", Kind.TOKEN),
        ("/realms/acme/protocol/openid-connect/auth/device", Kind.TOKEN),
        ("/realms/acme/protocol/openid-connect/revoke", Kind.TOKEN),
        ("/realms/acme/protocol/openid-connect/token/introspect", Kind.TOKEN),
        # Spelled as Keycloak's router would still route them.
        ("/realms/acme/protocol/OpenID-Connect/TOKEN/", Kind.TOKEN),
        ("//realms/acme/protocol/openid-connect/%61uth", Kind.AUTHORIZE),
    ],
)
def test_where_clients_are_used_is_known_per_realm(path: str, kind: Kind) -> None:
    """A realm's authorization and token endpoints: a pending client is stopped there."""
    target = PROFILE.classify(path)
    assert (target.kind, target.tenant) == (kind, "acme")


@pytest.mark.parametrize(
    ("profile", "path"),
    [
        (PROFILE, "/auth/realms/acme/clients-registrations/openid-connect"),
        (PROFILE, "/auth/realms/acme/clients-registrations/default"),
        (PROFILE, "/keycloak/auth/REALMS/acme/Clients-Registrations/install/x"),
        (PROFILE, "/%61uth/realms/acme/clients-registrations/openid-connect/id"),
        (AUTH, "/realms/acme/clients-registrations/default"),
        (AUTH, "/x/realms/acme/clients-registrations/openid-connect"),
    ],
)
def test_registration_under_another_prefix_is_refused(profile: KeycloakProfile, path: str) -> None:
    target = profile.classify(path)
    assert target.kind is Kind.REFUSE and target.tenant == "acme"
    assert (target.refusal.rule, target.refusal.status) == ("keycloak.prefix_mismatch", 404)


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("/realms/Customers/clients-registrations/default", "provider.not_allowed"),
        ("/realms/Customers/clients-registrations", "management.not_a_client"),
        ("/realms/Customers/clients-registrations/openid-connect/a/b", "management.not_a_client"),
        ("/realms/customers/clients-registrations/openid-connect", "tenant.case_mismatch"),
    ],
)
def test_refusals_name_the_realm_they_were_for(path: str, rule: str) -> None:
    target = PROFILE.classify(path)
    assert target.refusal.rule == rule
    assert target.tenant == path.split("/")[2]


def test_uma2_configuration_is_discovery_in_the_realm_form() -> None:
    target = PROFILE.classify("/realms/acme/.well-known/uma2-configuration")
    assert (target.kind, target.upstream_path) == (
        Kind.DISCOVERY,
        "/realms/acme/.well-known/uma2-configuration",
    )
    assert PROFILE.classify("/.well-known/uma2-configuration/realms/acme").kind is Kind.PASSTHROUGH
