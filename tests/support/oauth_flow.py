"""A headless OAuth 2.1 client for integration tests: discovery, DCR, code flow with PKCE.

It behaves like an MCP client would behind the gateway: every URL comes from discovery or a
``Location`` header or a form ``action``, and it refuses to send anything to another origin than
``base_url``. So when ``base_url`` is the gateway, a passing flow proves that the gateway kept
all traffic (login and consent pages, cookies, token endpoint) on its own URL.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from typing import Any

import aiohttp
from yarl import URL

DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_STEPS = 20


class OAuthFlowError(AssertionError):
    """The flow went somewhere it should not, or a server answered with an error."""


def pkce_pair() -> tuple[str, str]:
    """Return ``(code_verifier, S256 code_challenge)`` (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)  # 64 characters, within 43..128
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


# ---------------------------------------------------------------------- HTML forms


class _Form:
    def __init__(self, action: str | None, method: str) -> None:
        self.action = action
        self.method = method
        self.fields: list[tuple[str, str, str]] = []  # (type, name, value)
        self.submit: tuple[str, str] | None = None  # first named submit button


class _FormParser(HTMLParser):
    """Collects forms with their inputs; enough for node-oidc-provider's devInteractions."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = _Form(
                attributes.get("action"), attributes.get("method", "get").lower() or "get"
            )
            self.forms.append(self._current)
        elif self._current is None:
            return
        elif tag == "input" and attributes.get("name"):
            self._current.fields.append(
                (
                    attributes.get("type", "text").lower(),
                    attributes["name"],
                    attributes.get("value", ""),
                )
            )
        elif (
            tag == "button"
            and attributes.get("name")
            and attributes.get("type", "submit").lower() == "submit"
            and self._current.submit is None
        ):
            self._current.submit = (attributes["name"], attributes.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _fill_form(html: str, page_url: URL, login: str) -> tuple[str, URL, dict[str, str]]:
    """Pick the page's form, fill login/password fields and return (method, url, data)."""
    parser = _FormParser()
    parser.feed(html)
    forms = [form for form in parser.forms if form.fields or form.submit]
    if not forms:
        raise OAuthFlowError(f"no form on {page_url}:\n{html[:2000]}")
    form = forms[0]
    data: dict[str, str] = {}
    for field_type, name, value in form.fields:
        if field_type in {"submit", "button", "image", "reset", "checkbox", "radio"}:
            continue
        if field_type == "password":
            data[name] = value or "any-password"
        elif field_type in {"text", "email"}:
            data[name] = value or login
        else:
            data[name] = value
    if form.submit is not None:
        data[form.submit[0]] = form.submit[1]
    action = page_url.join(URL(form.action)) if form.action else page_url
    return form.method.upper(), action, data


def _form_request(html: str, page_url: URL, login: str) -> tuple[str, URL, dict[str, str] | None]:
    method, action, data = _fill_form(html, page_url, login)
    if method == "GET":
        return method, action.with_query(data), None
    return "POST", action, data


# ---------------------------------------------------------------------- HTTP plumbing


class _Browser:
    """A session wrapper that pins the origin and keeps its own IP-friendly cookie jar."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base = URL(base_url)
        self.origin = self.base.origin()
        self.session = session
        # aiohttp's default jar ignores cookies from IP hosts; ours must not, whatever jar the
        # caller's session has.
        self.jar = aiohttp.CookieJar(unsafe=True)

    def check_origin(self, url: URL) -> None:
        if not url.is_absolute() or url.origin() != self.origin:
            raise OAuthFlowError(
                f"refusing to send a request to {url}: its origin is not {self.origin} "
                "(something sent the client around the gateway)"
            )

    @asynccontextmanager
    async def request(
        self, method: str, url: URL | str, **kwargs: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        target = URL(url)
        self.check_origin(target)
        async with self.session.request(
            method,
            target,
            allow_redirects=False,
            cookies=self.jar.filter_cookies(target),
            **kwargs,
        ) as response:
            self.jar.update_cookies(response.cookies, response.url)
            yield response

    async def json(self, method: str, url: URL | str, **kwargs: Any) -> tuple[int, Any]:
        async with self.request(method, url, **kwargs) as response:
            text = await response.text()
            try:
                body = await response.json(content_type=None)
            except ValueError as exc:
                raise OAuthFlowError(
                    f"{method} {url} answered {response.status} with non-JSON:\n{text[:2000]}"
                ) from exc
            return response.status, body


@asynccontextmanager
async def _browser(base_url: str, session: aiohttp.ClientSession | None) -> AsyncIterator[_Browser]:
    if session is not None:
        yield _Browser(base_url, session)
        return
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as own:
        yield _Browser(base_url, own)


async def _discover(browser: _Browser, check_issuer: bool) -> dict[str, Any]:
    url = browser.base.join(URL(DISCOVERY_PATH))
    status, metadata = await browser.json("GET", url)
    if status != 200 or not isinstance(metadata, dict):
        raise OAuthFlowError(f"discovery at {url} answered {status}: {metadata!r}")
    expected = str(browser.base).rstrip("/")
    if check_issuer and metadata.get("issuer") != expected:
        # What MCP clients check (RFC 8414 section 3.3).
        raise OAuthFlowError(f"metadata issuer {metadata.get('issuer')!r} != {expected!r}")
    return metadata


#: Makes a fresh client assertion (RFC 7523) for the given audience, the token endpoint.
AssertionFactory = Callable[[str], str]
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _client_auth(
    client_id: str,
    client_secret: str | None,
    data: dict[str, str],
    assertion: str | None = None,
) -> dict[str, str]:
    """Return the headers that authenticate the client (or put client_id in ``data``, and
    a client assertion, RFC 7521 §4.2, when one is given)."""
    if client_secret is None:
        data["client_id"] = client_id
        if assertion is not None:
            data["client_assertion_type"] = JWT_BEARER
            data["client_assertion"] = assertion
        return {}
    # client_secret_basic; RFC 6749 section 2.3.1 form-encodes both parts first.
    pair = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(client_secret, safe='')}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}


async def _token_request(
    browser: _Browser,
    metadata: Mapping[str, Any],
    client_id: str,
    client_secret: str | None,
    data: dict[str, str],
    client_assertion: AssertionFactory | None = None,
) -> dict[str, Any]:
    endpoint = metadata["token_endpoint"]
    assertion = None if client_assertion is None else client_assertion(endpoint)
    auth = _client_auth(client_id, client_secret, data, assertion)
    headers = {"Accept": "application/json", **auth}
    status, body = await browser.json("POST", endpoint, data=data, headers=headers)
    if status != 200 or not isinstance(body, dict) or "access_token" not in body:
        raise OAuthFlowError(f"token endpoint answered {status}: {body!r}")
    return body


# ---------------------------------------------------------------------- public helpers


async def discover(
    base_url: str, *, session: aiohttp.ClientSession | None = None, check_issuer: bool = True
) -> dict[str, Any]:
    """Fetch ``base_url/.well-known/openid-configuration``; check its issuer like MCP clients."""
    async with _browser(base_url, session) as browser:
        return await _discover(browser, check_issuer)


async def register_client(
    base_url: str,
    metadata: Mapping[str, Any],
    *,
    session: aiohttp.ClientSession | None = None,
    check_issuer: bool = True,
) -> dict[str, Any]:
    """Register a client at the discovered ``registration_endpoint``; expects 201."""
    async with _browser(base_url, session) as browser:
        discovered = await _discover(browser, check_issuer)
        status, body = await browser.json(
            "POST", discovered["registration_endpoint"], json=dict(metadata)
        )
        if status != 201 or not isinstance(body, dict):
            raise OAuthFlowError(f"registration answered {status}: {body!r}")
        return body


async def authorization_code_flow(
    base_url: str,
    client_id: str,
    redirect_uri: str,
    *,
    client_secret: str | None = None,
    client_assertion: AssertionFactory | None = None,
    scope: str = "openid offline_access",
    resource: str | None = None,
    session: aiohttp.ClientSession | None = None,
    login: str = "test-user",
    check_issuer: bool = True,
) -> dict[str, Any]:
    """Run authorization code + PKCE (S256) through login and consent; return the token JSON.

    ``resource`` is sent at both the authorization and the token endpoint, as MCP clients do.
    With ``client_secret`` the client authenticates with client_secret_basic, otherwise it
    sends ``client_id`` in the body (a public client). Raises :class:`OAuthFlowError`.
    """
    async with _browser(base_url, session) as browser:
        metadata = await _discover(browser, check_issuer)
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        params = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if resource is not None:
            params["resource"] = resource

        method = "GET"
        url = URL(metadata["authorization_endpoint"]).update_query(params)
        data: dict[str, str] | None = None
        callback: URL | None = None
        for _ in range(MAX_STEPS):
            async with browser.request(method, url, data=data) as response:
                body = await response.text()
                if response.status in {301, 302, 303, 307, 308}:
                    location = response.headers.get("Location")
                    if not location:
                        raise OAuthFlowError(f"{method} {url}: {response.status} without Location")
                    if location.startswith(redirect_uri):
                        callback = URL(location, encoded=True)
                        break
                    url = url.join(URL(location, encoded=True))
                    if response.status in {307, 308}:
                        continue  # keep method and body
                    method, data = "GET", None
                    continue
                if response.status == 200 and "<form" in body:
                    method, url, data = _form_request(body, response.url, login)
                    continue
                raise OAuthFlowError(f"{method} {url} answered {response.status}:\n{body[:2000]}")
        if callback is None:
            raise OAuthFlowError(f"no redirect to {redirect_uri} after {MAX_STEPS} steps")

        query = callback.query
        if "error" in query:
            raise OAuthFlowError(
                f"authorization error {query['error']}: {query.get('error_description')}"
            )
        if query.get("state") != state:
            raise OAuthFlowError(f"state mismatch: sent {state!r}, got {query.get('state')!r}")
        issuer = metadata["issuer"]
        iss_expected = "iss" in query or metadata.get(
            "authorization_response_iss_parameter_supported"
        )
        if iss_expected and query.get("iss") != issuer:  # RFC 9207
            raise OAuthFlowError(f"iss {query.get('iss')!r} != issuer {issuer!r}")
        code = query.get("code")
        if not code:
            raise OAuthFlowError(f"no code in {callback}")

        token_data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        if resource is not None:
            token_data["resource"] = resource
        return await _token_request(
            browser, metadata, client_id, client_secret, token_data, client_assertion
        )


async def refresh_access_token(
    base_url: str,
    client_id: str,
    refresh_token: str,
    *,
    client_secret: str | None = None,
    client_assertion: AssertionFactory | None = None,
    resource: str | None = None,
    session: aiohttp.ClientSession | None = None,
    check_issuer: bool = True,
) -> dict[str, Any]:
    """Use a refresh token at the discovered token endpoint; return the token JSON."""
    async with _browser(base_url, session) as browser:
        metadata = await _discover(browser, check_issuer)
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if resource is not None:
            data["resource"] = resource
        return await _token_request(
            browser, metadata, client_id, client_secret, data, client_assertion
        )
