"""A posts service started before the auth service (Compose and Kubernetes start
both at once): not ready while it holds no keys, and serving the first valid token
within 2 s of the auth service answering, not after the unknown-key cooldown."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import requests

from tests.integration.processes import ServiceProcess
from tests.integration.stack import READ, Stack, running_stack

FIRST_TOKEN_WITHIN = 2.0


class PostsFirst:
    """The stack, started posts first, and what `/readyz` said before the auth service ran."""

    def __init__(self) -> None:
        self.readyz_while_auth_down: tuple[int, Any] | None = None
        self.auth_up = 0.0
        """When the auth service had just answered `/healthz` (monotonic)."""

    def check_readyz(self, posts: ServiceProcess) -> None:
        answer = requests.get(f"{posts.base_url}/readyz", timeout=10)
        self.readyz_while_auth_down = (answer.status_code, answer.json())


@pytest.fixture
async def posts_first(
    postgres_url: str,
    service_postgres_url: str,
    redis_url: str,
    template_database: str,
    resource_template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Stack, PostsFirst]]:
    started = PostsFirst()
    async with running_stack(
        postgres_url,
        service_postgres_url,
        redis_url,
        template_database,
        resource_template_database,
        tmp_path_factory.mktemp("start-order"),
        # The cooldown a forged kid would wait out: far longer than the bound tested.
        posts_settings={"PORTCULLIS_JWKS_COOLDOWN": "30"},
        while_auth_down=started.check_readyz,
    ) as stack:
        started.auth_up = time.monotonic()
        yield stack, started


def test_posts_started_first_is_ready_and_serving_soon_after_auth_comes_up(
    posts_first: tuple[Stack, PostsFirst],
) -> None:
    stack, started = posts_first
    assert started.readyz_while_auth_down == (
        503,
        {"status": "unavailable", "database": "ok", "keys": "unavailable"},
    )
    token = stack.client_token(stack.machine_client, scope=READ)["access_token"]
    while True:
        answer = stack.posts_call("GET", "/api/posts", token)
        waited = time.monotonic() - started.auth_up
        if answer.status_code == 200 or waited > FIRST_TOKEN_WITHIN + 5:
            break
        time.sleep(0.05)
    assert answer.status_code == 200, answer.text
    assert waited < FIRST_TOKEN_WITHIN, f"first token served {waited:.2f} s after the JWKS"
    ready = requests.get(f"{stack.posts_url}/readyz", timeout=10)
    assert (ready.status_code, ready.json()["keys"]) == (200, "ok")
