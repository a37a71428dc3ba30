"""Posts-service fixtures: the real app on a real database, tokens minted in memory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from portcullis_resource.http.app import create_app
from portcullis_resource.settings import ResourceSettings
from portcullis_shared.plugin import GuardConfig
from portcullis_shared.testing import TestTokens

ISSUER = "https://auth.test"


@pytest.fixture(scope="session")
def tokens() -> TestTokens:
    return TestTokens(issuer=ISSUER, audience="posts")


@pytest.fixture
def resource_settings(resource_database_url: str) -> ResourceSettings:
    return ResourceSettings(
        guard=GuardConfig(issuer=ISSUER, audience="posts"), database_url=resource_database_url
    )


@pytest.fixture
async def posts_http(
    resource_settings: ResourceSettings, tokens: TestTokens
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = create_app(resource_settings, guard=tokens.guard())
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
def author_id() -> uuid.UUID:
    return uuid.uuid4()
