"""The generic profile's reading of request paths (gateway.profiles.generic)."""

from __future__ import annotations

import pytest

from gateway.http.routes import Kind
from gateway.profiles.generic import GenericProfile

PROFILE = GenericProfile(["/reg"])


@pytest.mark.parametrize(
    "path", ["/reg", "/REG", "/reg/", "//reg", "/%72eg", "/x/../reg", "/reg;x"]
)
def test_registration(path: str) -> None:
    target = PROFILE.classify(path)
    assert (target.kind, target.upstream_path) == (Kind.REGISTER, "/reg")


@pytest.mark.parametrize(
    ("path", "client_id"),
    [("/reg/AbC", "AbC"), ("/REG/AbC/", "AbC"), ("//reg//a%2Db", "a-b"), ("/reg/x/../AbC", "AbC")],
)
def test_management(path: str, client_id: str) -> None:
    target = PROFILE.classify(path)
    assert (target.kind, target.client_id) == (Kind.MANAGE, client_id)
    assert target.upstream_path == f"/reg/{client_id}"


@pytest.mark.parametrize("path", ["/reg/a/b", "/reg/a/b/c"])
def test_deeper_paths_are_refused(path: str) -> None:
    target = PROFILE.classify(path)
    assert target.kind is Kind.REFUSE
    assert target.refusal is not None and target.refusal.status == 404


@pytest.mark.parametrize(
    "path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server/"]
)
def test_discovery(path: str) -> None:
    target = PROFILE.classify(path)
    assert (target.kind, target.registration_path) == (Kind.DISCOVERY, "/reg")


def test_a_keycloak_shaped_endpoint_refuses_its_siblings() -> None:
    profile = GenericProfile(["/clients-registrations/openid-connect"])
    assert profile.classify("/clients-registrations/default").kind is Kind.REFUSE
    assert profile.classify("/Clients-Registrations/%69nstall/x").kind is Kind.REFUSE
    assert profile.classify("/clients-registrations/openid-connect").kind is Kind.REGISTER


@pytest.mark.parametrize("path", ["/regx", "/token", "/", "/re/g"])
def test_everything_else_passes_through(path: str) -> None:
    assert PROFILE.classify(path).kind is Kind.PASSTHROUGH


def test_without_a_registration_path_nothing_is_known() -> None:
    assert not GenericProfile([]).knows_registration()
