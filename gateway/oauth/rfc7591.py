"""Client metadata as RFC 7591 §2 (and OpenID Connect Dynamic Client Registration 1.0 §2)
define it: which fields exist and which JSON type each one has.

Pure spec knowledge, no policy: :mod:`gateway.oauth.body` checks types against these
tables, and the policy engine knows which fields carry URLs.
"""

from __future__ import annotations

STRING_ARRAY_FIELDS = frozenset(
    {
        "redirect_uris",
        "grant_types",
        "response_types",
        "contacts",
        "post_logout_redirect_uris",
        "request_uris",
        "default_acr_values",
    }
)
STRING_FIELDS = frozenset(
    {
        "token_endpoint_auth_method",
        "client_name",
        "client_uri",
        "logo_uri",
        "scope",
        "tos_uri",
        "policy_uri",
        "jwks_uri",
        "software_id",
        "software_version",
        "software_statement",
        "application_type",
        "sector_identifier_uri",
        "subject_type",
        "initiate_login_uri",
        "backchannel_logout_uri",
        "frontchannel_logout_uri",
        "token_endpoint_auth_signing_alg",
        "id_token_signed_response_alg",
        "userinfo_signed_response_alg",
        "request_object_signing_alg",
    }
)
#: Fields that RFC 7591 §2.2 lets carry a language tag: ``client_name#ja-Jpan-JP``.
LOCALIZABLE_FIELDS = frozenset({"client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri"})
OBJECT_FIELDS = frozenset({"jwks"})
INTEGER_FIELDS = frozenset({"default_max_age"})
BOOLEAN_FIELDS = frozenset({"require_auth_time"})

#: Lists whose length the body check caps; the redirect URI lists are capped by policy
#: (``max_redirect_uris``), so that a refusal can say which policy key to change.
CAPPED_LIST_FIELDS = frozenset(
    {"grant_types", "response_types", "contacts", "request_uris", "default_acr_values"}
)
#: URL-valued fields the authorization server fetches itself: an SSRF surface.
FETCHED_URL_FIELDS = frozenset({"jwks_uri", "sector_identifier_uri", "backchannel_logout_uri"})
#: Every URL-valued field apart from the redirect URI lists (``request_uris`` is a list of
#: fetched URLs and is checked entry by entry).
URL_FIELDS = frozenset(
    {
        "jwks_uri",
        "logo_uri",
        "client_uri",
        "policy_uri",
        "tos_uri",
        "sector_identifier_uri",
        "initiate_login_uri",
        "backchannel_logout_uri",
        "frontchannel_logout_uri",
    }
)


def base_field(key: str) -> str:
    """``client_name#ja-Jpan-JP`` -> ``client_name`` (RFC 7591 §2.2 language tags)."""
    return key.split("#", 1)[0] if "#" in key else key
