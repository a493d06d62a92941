"""The router remembers classifications, boundedly, and never shares a refusal."""

from __future__ import annotations

from gateway.errors import OAuthError
from gateway.http import routes
from gateway.http.routes import PASSTHROUGH, Kind, Router, Target
from gateway.rules import PROVIDER_REFUSED


class Counting:
    """A profile that counts how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0

    def classify(self, raw_path: str) -> Target:
        self.asked += 1
        if raw_path == "/refused":
            return Target(Kind.REFUSE, refusal=PROVIDER_REFUSED.refuse("no"))
        return PASSTHROUGH

    def knows_registration(self) -> bool:
        return True

    def registration_path(self, tenant: str | None) -> str | None:
        return "/reg"


def test_a_path_is_classified_once() -> None:
    profile = Counting()
    router = Router(profile)
    assert router.classify("/token") is router.classify("/token")
    assert profile.asked == 1


def test_a_refusal_is_made_anew_for_every_request() -> None:
    profile = Counting()
    router = Router(profile)
    first, second = router.classify("/refused"), router.classify("/refused")
    assert isinstance(first.refusal, OAuthError)
    assert first.refusal is not second.refusal
    assert profile.asked == 2


def test_the_cache_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(routes, "CACHE_SIZE", 8)
    profile = Counting()
    router = Router(profile)
    for index in range(20):
        router.classify(f"/p{index}")
    assert len(router._cache) <= 8
    router.classify("/" + "x" * (routes.CACHE_PATH_LENGTH + 1))
    assert all(len(path) <= routes.CACHE_PATH_LENGTH for path in router._cache)
