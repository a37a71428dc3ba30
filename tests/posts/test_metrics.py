"""The posts service's `/metrics`: off by default; when on, served past the guard with no
token, counting requests by route template."""

from __future__ import annotations

import dataclasses
import uuid

from litestar.testing import AsyncTestClient

from portcullis_resource.http.app import create_app
from portcullis_resource.settings import ResourceSettings
from portcullis_shared.testing import TestTokens
from tests.metrics import sample


async def test_metrics_are_not_served_unless_turned_on(
    resource_settings: ResourceSettings, tokens: TestTokens
) -> None:
    assert resource_settings.metrics is False
    async with AsyncTestClient(app=create_app(resource_settings, guard=tokens.guard())) as http:
        assert (await http.get("/metrics")).status_code == 404


async def test_metrics_need_no_token_and_name_routes_by_template(
    resource_settings: ResourceSettings, tokens: TestTokens
) -> None:
    settings = dataclasses.replace(resource_settings, metrics=True)
    reader = tokens.acting_as(uuid.uuid4(), scopes=["read-posts"])
    missing = f"/api/posts/{uuid.uuid4()}"
    route = {"app_name": "posts", "method": "GET", "path": "/api/posts/{post_id}"}
    async with AsyncTestClient(app=create_app(settings, guard=tokens.guard())) as http:
        before = (await http.get("/metrics")).text
        assert (await http.get(missing, headers=reader)).status_code == 404
        scraped = await http.get("/metrics")
    assert scraped.status_code == 200, scraped.text
    after = scraped.text
    name = "portcullis_requests_total"
    not_found = {"status_code": "404", **route}
    assert sample(after, name, **not_found) - sample(before, name, **not_found) == 1
    assert missing not in after
    assert reader["Authorization"].split()[1] not in after
