"""The Keycloak stand-in behaves like Keycloak's URL layout, so keycloak-profile tests can rely
on it. These test the stand-in itself, not the gateway."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.support.keycloak import (
    REGISTRATION_PATH,
    KeycloakStandIn,
    KeycloakStandInError,
    realm_session,
)
from tests.support.keycloak_fixtures import KeycloakFactory, keycloak_factory  # noqa: F401
from tests.support.oauth_flow import (
    OAuthFlowError,
    authorization_code_flow,
    refresh_access_token,
    register_client,
)

pytestmark = pytest.mark.integration

REALMS = ("acme", "Customers")
REDIRECT_URI = "http://127.0.0.1:12345/callback"
RESOURCE = "http://127.0.0.1:9999/mcp"
GATEWAY = "http://127.0.0.1:5555"

# What the official MCP Python SDK sends.
PUBLIC_NATIVE_CLIENT = {
    "response_types": ["code"],
    "scope": "openid offline_access mcp:execute",
    "client_name": "keycloak stand-in test",
    "redirect_uris": [REDIRECT_URI],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "application_type": "native",
}


@pytest.fixture(scope="module")
def standin() -> Iterator[KeycloakStandIn]:
    """One stand-in for the module (realms acme and Customers, no prefix, test endpoints on).

    Its state is shared: compare counts before and after rather than expecting absolute ones.
    """
    server = KeycloakStandIn().start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------- helpers


def discovery_urls(server: KeycloakStandIn, realm: str) -> dict[str, str]:
    """Every URL the stand-in answers with the realm's metadata document."""
    prefix = server.url + server.path_prefix
    return {
        "realm": server.realm_url(realm) + "/.well-known/openid-configuration",
        "rfc8414": f"{prefix}/.well-known/oauth-authorization-server/realms/{realm}",
        "oidc-insertion": f"{prefix}/.well-known/openid-configuration/realms/{realm}",
    }


async def get_json(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.get(url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def register(
    session: aiohttp.ClientSession, endpoint: str, metadata: Any = None, **kwargs: Any
) -> dict[str, Any]:
    async with session.post(endpoint, json=metadata or PUBLIC_NATIVE_CLIENT, **kwargs) as response:
        body = await response.json()
        assert response.status == 201, body
        return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def exchange(port: int, raw: bytes, *, timeout: float = 5.0, quiet: float = 0.5) -> bytes:
    """Send ``raw`` bytes and return what comes back until the connection ends or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(raw)
        sock.settimeout(quiet)
        received = bytearray()
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                received.extend(chunk)
                sock.settimeout(timeout)
        return bytes(received)


def raw_request(port: int, method: str, target: str, body: bytes = b"") -> tuple[int, Any]:
    """One request with the target sent byte for byte (no client-side normalisation)."""
    raw = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    answer = exchange(port, raw)
    head, _, payload = answer.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    assert match, answer[:300]
    return int(match.group(1)), json.loads(payload) if payload else None


def assert_serves(server: KeycloakStandIn, after: str) -> None:
    assert server.running, f"the stand-in died after {after}:\n{server.output()}"
    for realm in server.realms:
        status, metadata = raw_request(
            server.port, "GET", server.realm_path(realm) + "/.well-known/openid-configuration"
        )
        assert status == 200, after
        assert metadata["issuer"] == server.issuer(realm), after


# ---------------------------------------------------------------------- discovery


@pytest.mark.parametrize("realm", REALMS)
async def test_discovery_in_every_form_names_the_realm(
    standin: KeycloakStandIn, realm: str
) -> None:
    realm_url = standin.realm_url(realm)
    documents = {}
    async with aiohttp.ClientSession() as session:
        for form, url in discovery_urls(standin, realm).items():
            status, documents[form] = await get_json(session, url)
            assert status == 200, (form, documents[form])

    for form, metadata in documents.items():
        assert metadata["issuer"] == standin.issuer(realm) == realm_url, form
        assert metadata["registration_endpoint"] == realm_url + REGISTRATION_PATH, form
        assert metadata["registration_endpoint"].endswith(
            f"/realms/{realm}/clients-registrations/openid-connect"
        )
        protocol = realm_url + "/protocol/openid-connect/"
        assert metadata["authorization_endpoint"] == protocol + "auth", form
        assert metadata["token_endpoint"] == protocol + "token", form
        assert metadata["jwks_uri"] == protocol + "certs", form
        assert "S256" in metadata["code_challenge_methods_supported"]
    # One document, whichever way it was asked for.
    assert documents["rfc8414"] == documents["realm"] == documents["oidc-insertion"]


async def test_realms_are_separate_authorization_servers(standin: KeycloakStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        jwks = {}
        for realm in REALMS:
            _, metadata = await get_json(session, discovery_urls(standin, realm)["realm"])
            status, jwks[realm] = await get_json(session, metadata["jwks_uri"])
            assert status == 200
    # Each realm signs with its own keys, as Keycloak realms do.
    kids = {realm: {key["kid"] for key in jwks[realm]["keys"]} for realm in REALMS}
    assert not kids["acme"] & kids["Customers"]


# ---------------------------------------------------------------------- registration


@pytest.mark.parametrize(("realm", "other"), [REALMS, REALMS[::-1]])
async def test_registration_creates_a_client_only_in_its_realm(
    standin: KeycloakStandIn, realm: str, other: str
) -> None:
    async with aiohttp.ClientSession() as session:
        before = await standin.aclient_count(realm, session)
        before_other = await standin.aclient_count(other, session)
        client = await register(session, standin.registration_endpoint(realm))
        assert await standin.aclient_count(realm, session) == before + 1
        assert await standin.aclient_count(other, session) == before_other

        client_id = client["client_id"]
        assert client_id in standin.client_ids(realm)
        assert client_id not in standin.client_ids(other)
        assert client["registration_client_uri"] == (
            f"{standin.registration_endpoint(realm)}/{client_id}"
        )
        assert "client_secret" not in client

        # The other realm knows neither the client nor its registration access token.
        other_uri = f"{standin.registration_endpoint(other)}/{client_id}"
        async with session.get(
            other_uri, headers=bearer(client["registration_access_token"])
        ) as response:
            assert response.status == 401, await response.text()


async def test_rfc7592_read_update_delete_with_a_rotating_token(standin: KeycloakStandIn) -> None:
    realm = "Customers"
    async with aiohttp.ClientSession() as session:
        client = await register(session, standin.registration_endpoint(realm))
        uri = client["registration_client_uri"]
        token = client["registration_access_token"]

        async with session.get(uri) as response:
            assert response.status == 401  # no token
        async with session.get(uri, headers=bearer("not-the-token")) as response:
            assert response.status == 401

        async with session.get(uri, headers=bearer(token)) as response:
            read_back = await response.json()
            assert response.status == 200, read_back
        assert read_back["client_id"] == client["client_id"]
        assert read_back["redirect_uris"] == [REDIRECT_URI]
        assert read_back["registration_client_uri"] == uri
        # Like Keycloak, a read rotates the token too: only the newest one works.
        read_token = read_back["registration_access_token"]
        assert read_token != token
        async with session.get(uri, headers=bearer(token)) as response:
            assert response.status == 401, "the old token still works after GET"
        token = read_token

        new_redirect = "http://127.0.0.1:23456/callback"
        update = {
            key: value
            for key, value in read_back.items()
            if key not in {"registration_access_token", "registration_client_uri"}
            and not key.startswith("client_id_issued_at")
        }
        update["redirect_uris"] = [new_redirect]
        async with session.put(uri, json=update, headers=bearer(token)) as response:
            updated = await response.json()
            assert response.status == 200, updated
        assert updated["redirect_uris"] == [new_redirect]
        assert updated["registration_client_uri"] == uri
        new_token = updated["registration_access_token"]
        assert new_token != token

        async with session.get(uri, headers=bearer(token)) as response:
            assert response.status == 401, "the old token still works after PUT"
        async with session.get(uri, headers=bearer(new_token)) as response:
            assert response.status == 200
            newest = (await response.json())["registration_access_token"]

        before = await standin.aclient_count(realm, session)
        async with session.delete(uri, headers=bearer(newest)) as response:
            assert response.status == 204, await response.text()
        assert await standin.aclient_count(realm, session) == before - 1
        assert client["client_id"] not in standin.client_ids(realm)
        async with session.get(uri, headers=bearer(newest)) as response:
            assert response.status == 401


# ---------------------------------------------------------------------- sibling providers


async def test_sibling_providers_answer_201_and_are_counted(standin: KeycloakStandIn) -> None:
    before = standin.sibling_calls()
    clients_before = {realm: standin.client_count(realm) for realm in REALMS}
    calls = [
        ("POST", "acme", "default", {"clientId": "x", "redirectUris": ["*"]}),
        ("PUT", "acme", "default/some-client", {"clientId": "x"}),
        ("POST", "acme", "install", None),
        ("GET", "Customers", "saml2-entity-descriptor", None),
        ("DELETE", "Customers", "install/deeper/path", None),
    ]
    async with aiohttp.ClientSession() as session:
        for method, realm, tail, body in calls:
            url = f"{standin.realm_url(realm)}/clients-registrations/{tail}"
            async with session.request(method, url, json=body) as response:
                answer = await response.json()
                assert response.status == 201, (method, url, answer)
            assert answer == {"stand_in": tail.split("/")[0], "realm": realm}
        # openid-connect is the provider, not a sibling; a wrong-case realm is no realm.
        await register(session, standin.registration_endpoint("acme"))
        url = standin.url + "/realms/ACME/clients-registrations/default"
        async with session.post(url, json={}) as response:
            assert response.status == 404

    after = standin.sibling_calls()
    gained = {key: after[key] - before.get(key, 0) for key in after}
    assert {key: n for key, n in gained.items() if n} == {
        "acme/default": 2,
        "acme/install": 1,
        "Customers/saml2-entity-descriptor": 1,
        "Customers/install": 1,
    }
    # Siblings are stand-ins: they store nothing.
    assert standin.client_count("Customers") == clients_before["Customers"]
    assert standin.client_count("acme") == clients_before["acme"] + 1


async def test_escaped_and_dotted_paths_are_normalised_before_routing(
    standin: KeycloakStandIn,
) -> None:
    # What a guard that compares raw paths would miss: escapes of unreserved characters and
    # dot segments still reach the sibling providers.
    before = standin.sibling_calls()
    targets = [
        "/realms/acme/clients-registrations/%64efault",
        "/realms/%61cme/clients-registrations/default",
        "/realms/acme/clients-registrations/openid-connect/../default",
        "/realms/acme/clients-registrations/openid-connect/%2e%2e/default",
        "/realms/acme/./clients-registrations/default",
    ]
    for target in targets:
        status, body = raw_request(standin.port, "POST", target, b"{}")
        assert status == 201, (target, body)
        assert body == {"stand_in": "default", "realm": "acme"}
    after = standin.sibling_calls()
    assert after["acme/default"] - before.get("acme/default", 0) == len(targets)

    # The same normalisation applies to the OIDC provider: this registers in acme.
    before_clients = standin.client_count("acme")
    body = json.dumps(PUBLIC_NATIVE_CLIENT).encode()
    status, client = raw_request(
        standin.port, "POST", "/realms/%61cme/clients-registrations/openid%2Dconnect", body
    )
    assert status == 201, client
    assert standin.client_count("acme") == before_clients + 1


# ---------------------------------------------------------------------- realm names


async def test_realm_names_are_case_sensitive(standin: KeycloakStandIn) -> None:
    clients_before = standin.client_count("Customers")
    siblings_before = standin.sibling_calls()
    async with aiohttp.ClientSession() as session:
        for method, path in [
            ("GET", "/realms/customers/.well-known/openid-configuration"),
            ("POST", "/realms/customers/clients-registrations/openid-connect"),
            ("POST", "/realms/customers/clients-registrations/default"),
            ("GET", "/realms/customers"),
            ("GET", "/.well-known/oauth-authorization-server/realms/customers"),
            ("GET", "/.well-known/openid-configuration/realms/customers"),
            ("GET", "/realms/nope/protocol/openid-connect/auth"),
        ]:
            async with session.request(
                method, standin.url + path, json=PUBLIC_NATIVE_CLIENT
            ) as response:
                body = await response.json()
                assert response.status == 404, (path, body)
                assert body == {"error": "Realm does not exist"}, path
        async with session.get(standin.url + "/__test/clients?realm=customers") as response:
            assert response.status == 404
    assert standin.client_count("Customers") == clients_before
    assert standin.sibling_calls() == siblings_before


async def test_paths_outside_the_realms_are_not_found(standin: KeycloakStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        for path in [
            "/.well-known/openid-configuration",  # Keycloak has no root discovery
            "/.well-known/oauth-authorization-server",
            "/clients-registrations/openid-connect",
            "/reg",
            "/auth/realms/acme/.well-known/openid-configuration",  # no prefix configured
        ]:
            async with session.get(standin.url + path) as response:
                assert response.status == 404, path


# ---------------------------------------------------------------------- OAuth flows


@pytest.mark.parametrize("realm", REALMS)
async def test_authorization_code_flow_with_pkce_in_a_realm(
    standin: KeycloakStandIn, realm: str
) -> None:
    realm_url = standin.realm_url(realm)
    async with realm_session(realm_url) as session:
        # Discovery as an MCP client does it: the issuer must equal the realm URL.
        client = await register_client(realm_url, PUBLIC_NATIVE_CLIENT, session=session)
        tokens = await authorization_code_flow(
            realm_url,
            client["client_id"],
            REDIRECT_URI,
            scope="openid offline_access mcp:execute",
            resource=RESOURCE,
            session=session,
            check_issuer=True,
        )
        assert tokens["token_type"].lower() == "bearer"
        assert jwt_claims(tokens["id_token"])["iss"] == standin.issuer(realm)
        access = jwt_claims(tokens["access_token"])
        assert access["iss"] == standin.issuer(realm)
        assert access["aud"] == RESOURCE
        assert access["client_id"] == client["client_id"]

        refreshed = await refresh_access_token(
            realm_url,
            client["client_id"],
            tokens["refresh_token"],
            resource=RESOURCE,
            session=session,
        )
        assert refreshed["access_token"]


async def test_cookies_are_scoped_to_the_realm_path(standin: KeycloakStandIn) -> None:
    cookies: list[tuple[str, str]] = []  # (name, path) of every Set-Cookie

    async def record(session: Any, context: Any, params: aiohttp.TraceRequestEndParams) -> None:
        for header in params.response.headers.getall("Set-Cookie", []):
            name = header.split("=", 1)[0]
            paths = [
                p.strip()[5:] for p in header.split(";") if p.strip().lower().startswith("path=")
            ]
            cookies.append((name, paths[0] if paths else ""))

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(record)
    realm_url = standin.realm_url("acme")
    async with aiohttp.ClientSession(
        trace_configs=[trace], cookie_jar=aiohttp.DummyCookieJar()
    ) as traced:
        async with realm_session(realm_url, traced) as session:
            client = await register_client(realm_url, PUBLIC_NATIVE_CLIENT, session=session)
            await authorization_code_flow(
                realm_url, client["client_id"], REDIRECT_URI, session=session
            )
    names = {name for name, _ in cookies}
    assert {"_session", "_interaction", "_interaction_resume"} <= names
    # One realm's login never replaces another's: every cookie stays below the realm path.
    assert ("_session", "/realms/acme") in cookies
    for name, path in cookies:
        assert path == "/realms/acme" or path.startswith("/realms/acme/"), (name, path)


async def test_a_client_of_one_realm_cannot_log_in_to_another(standin: KeycloakStandIn) -> None:
    async with aiohttp.ClientSession() as plain:
        client = await register(plain, standin.registration_endpoint("acme"))
    realm_url = standin.realm_url("Customers")
    async with realm_session(realm_url) as session:
        with pytest.raises(OAuthFlowError, match=r"answered 400(?s:.*)invalid_client"):
            await authorization_code_flow(
                realm_url, client["client_id"], REDIRECT_URI, session=session
            )


async def test_oauth_flow_needs_the_realm_session(standin: KeycloakStandIn) -> None:
    # oauth_flow alone discovers at the origin's root, where Keycloak serves nothing.
    with pytest.raises(OAuthFlowError, match="404"):
        await authorization_code_flow(standin.realm_url("acme"), "any", REDIRECT_URI)


# ---------------------------------------------------------------------- behind a proxy


async def test_issuer_base_and_forwarded_headers(keycloak_factory: KeycloakFactory) -> None:  # noqa: F811
    server = keycloak_factory(issuer_base=GATEWAY)
    forwarded = {"X-Forwarded-Host": "127.0.0.1:5555", "X-Forwarded-Proto": "http"}
    async with aiohttp.ClientSession() as session:
        for realm in REALMS:
            gateway_realm = f"{GATEWAY}/realms/{realm}"
            assert server.issuer(realm) == gateway_realm
            for form, url in discovery_urls(server, realm).items():
                _, metadata = await get_json(session, url, headers=forwarded)
                assert metadata["issuer"] == gateway_realm, form
                endpoints = {k: v for k, v in metadata.items() if k.endswith(("_endpoint", "_uri"))}
                assert "registration_endpoint" in endpoints
                for name, value in endpoints.items():
                    assert value.startswith(gateway_realm + "/"), (form, name, value)

                # Without the headers: the same issuer, but endpoints on the stand-in itself.
                _, direct = await get_json(session, url)
                assert direct["issuer"] == gateway_realm
                assert direct["token_endpoint"].startswith(server.realm_url(realm) + "/")

            client = await register(session, server.registration_endpoint(realm), headers=forwarded)
            assert client["registration_client_uri"] == (
                f"{gateway_realm}{REGISTRATION_PATH}/{client['client_id']}"
            )
            # Without them, registration_client_uri names the stand-in.
            direct_client = await register(session, server.registration_endpoint(realm))
            assert direct_client["registration_client_uri"].startswith(server.realm_url(realm))

        # The scheme follows X-Forwarded-Proto, the path never follows X-Forwarded-Prefix:
        # a proxy must keep the realm path as it is.
        headers = {**forwarded, "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/kc"}
        _, metadata = await get_json(
            session, discovery_urls(server, "acme")["realm"], headers=headers
        )
        assert metadata["registration_endpoint"] == (
            f"https://127.0.0.1:5555/realms/acme{REGISTRATION_PATH}"
        )
        assert metadata["issuer"] == f"{GATEWAY}/realms/acme"  # fixed, whatever the headers


async def test_path_prefix_serves_everything_under_it(keycloak_factory: KeycloakFactory) -> None:  # noqa: F811
    server = keycloak_factory(path_prefix="/auth")
    assert server.realm_url("acme") == server.url + "/auth/realms/acme"
    async with aiohttp.ClientSession() as session:
        for realm in REALMS:
            realm_url = server.url + f"/auth/realms/{realm}"
            for form, url in discovery_urls(server, realm).items():
                assert url.startswith(server.url + "/auth/"), url
                status, metadata = await get_json(session, url)
                assert status == 200, (form, metadata)
                assert metadata["issuer"] == realm_url
                assert metadata["registration_endpoint"] == realm_url + REGISTRATION_PATH
                assert metadata["authorization_endpoint"].startswith(realm_url + "/protocol/")
            before = server.client_count(realm)
            client = await register(session, realm_url + REGISTRATION_PATH)
            assert client["registration_client_uri"].startswith(realm_url + REGISTRATION_PATH)
            assert server.client_count(realm) == before + 1
            async with session.post(realm_url + "/clients-registrations/install") as response:
                assert response.status == 201

        # Nothing is served without the prefix.
        for path in [
            "/realms/acme/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server/realms/acme",
            "/realms/acme/clients-registrations/default",
        ]:
            async with session.post(server.url + path, json={}) as response:
                assert response.status == 404, path
        async with session.get(server.url + "/auth/realms/customers") as response:
            assert (await response.json()) == {"error": "Realm does not exist"}
    assert server.sibling_calls() == {"acme/install": 1, "Customers/install": 1}

    realm_url = server.realm_url("Customers")
    async with realm_session(realm_url) as session:
        client = await register_client(realm_url, PUBLIC_NATIVE_CLIENT, session=session)
        tokens = await authorization_code_flow(
            realm_url, client["client_id"], REDIRECT_URI, session=session, check_issuer=True
        )
    assert jwt_claims(tokens["id_token"])["iss"] == realm_url


# ---------------------------------------------------------------------- test endpoints


async def test_test_endpoints(standin: KeycloakStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(standin.url + "/__test/clients") as response:
            assert response.status == 400
            assert (await response.json())["realms"] == list(REALMS)
        status, body = await get_json(session, standin.url + "/__test/clients?realm=acme")
        assert status == 200
        assert body["count"] == len(body["client_ids"])
        status, body = await get_json(session, standin.url + "/__test/siblings")
        assert status == 200
        assert body["total"] == sum(body["calls"].values())
        async with session.post(standin.url + "/__test/echo/x?y=1", data=b"hello") as response:
            echo = await response.json()
        assert echo["method"] == "POST"
        assert echo["path"] == "/__test/echo/x?y=1"
        assert echo["body"] == "hello"


async def test_test_endpoints_can_be_off(keycloak_factory: KeycloakFactory) -> None:  # noqa: F811
    server = keycloak_factory(realms=["solo"], test_endpoints=False)
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url + "/__test/clients?realm=solo") as response:
            assert response.status == 404
        status, metadata = await get_json(session, discovery_urls(server, "solo")["rfc8414"])
        assert status == 200
        assert metadata["issuer"] == server.url + "/realms/solo"


# ---------------------------------------------------------------------- robustness


def test_hostile_requests_are_answered_and_the_stand_in_lives(standin: KeycloakStandIn) -> None:
    registration = b"/realms/acme/clients-registrations/openid-connect"
    head = b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    cases = [
        ("TLS bytes", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400),
        ("unparsable target", b"GET //h:99999/x" + head + b"\r\n", 400),
        (
            "bad X-Forwarded-Host on a realm",
            b"GET /realms/acme/.well-known/openid-configuration"
            + head
            + b"X-Forwarded-Host: h:99999\r\n\r\n",
            400,
        ),
        (
            "bad X-Forwarded-Proto on the RFC 8414 path",
            b"GET /.well-known/oauth-authorization-server/realms/acme"
            + head
            + b"X-Forwarded-Proto: gopher\r\n\r\n",
            400,
        ),
        (
            "non-JSON registration",
            b"POST "
            + registration
            + head
            + b"Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{abc}",
            400,
        ),
        (
            "bad chunk to a sibling",
            b"POST /realms/acme/clients-registrations/default"
            + head
            + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            400,
        ),
        ("CONNECT", b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 405),
        ("bad escape in a realm", b"GET /realms/%zz/x" + head + b"\r\n", 404),
    ]
    for name, raw, expected in cases:
        answer = exchange(standin.port, raw)
        assert standin.running, f"the stand-in died on {name!r}:\n{standin.output()}"
        match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
        assert match and int(match.group(1)) == expected, (name, answer[:300])
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert "error" in body, (name, body)
    assert_serves(standin, "hostile requests")
    assert "uncaughtException" not in standin.output()
    assert "unhandledRejection" not in standin.output()


# ---------------------------------------------------------------------- start-up


def test_start_up_errors_are_reported(keycloak_factory: KeycloakFactory) -> None:  # noqa: F811
    with pytest.raises(KeycloakStandInError, match="exited with 2 before READY") as error:
        keycloak_factory(realms=["acme", "bad/realm"])
    assert "bad realm name" in str(error.value)
    with pytest.raises(KeycloakStandInError, match="exited with 1 before READY") as error:
        keycloak_factory(issuer_base="not-a-url")
    assert "Issuer Identifier must be a valid web uri" in str(error.value)


def test_start_twice_and_addresses_before_start() -> None:
    server = KeycloakStandIn()
    with pytest.raises(KeycloakStandInError, match="not started"):
        _ = server.url
    with server:
        assert server.running
        assert server.realms == REALMS
        with pytest.raises(KeycloakStandInError, match="already started"):
            server.start()
    assert not server.running
