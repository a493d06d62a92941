"""Where an upstream keeps its registration, management and discovery endpoints.

A profile turns a request path into a :class:`gateway.http.routes.Target`: the generic
profile for any RFC 7591 server (one registration endpoint, learned from discovery or
configured), the Keycloak profile for Keycloak's realms and registration providers.
"""
