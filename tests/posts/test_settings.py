"""The posts service's settings: what it needs, and what it may go without."""

from __future__ import annotations

import pytest

from portcullis_resource.settings import ResourceSettings
from portcullis_shared.environment import SettingsError
from portcullis_shared.plugin import GuardConfig

NEEDED = {
    "PORTCULLIS_ISSUER": "https://auth.example",
    "PORTCULLIS_JWKS_URL": "https://auth.example/.well-known/jwks.json",
    "PORTCULLIS_REDIS_URL": "redis://127.0.0.1:6379/0",
    "PORTCULLIS_DATABASE_URL": "sqlite+aiosqlite:///posts.db",
}


def test_the_posts_service_is_the_posts_audience_unless_told_otherwise() -> None:
    assert ResourceSettings.from_env(NEEDED).guard.audience == "posts"
    told = {**NEEDED, "PORTCULLIS_AUDIENCE": "posts-eu"}
    assert ResourceSettings.from_env(told).guard.audience == "posts-eu"


def test_another_service_using_the_guard_must_name_its_audience() -> None:
    with pytest.raises(SettingsError, match="PORTCULLIS_AUDIENCE"):
        GuardConfig.from_env(NEEDED)
