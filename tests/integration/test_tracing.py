"""OpenTelemetry traces across both services, kept in memory instead of sent over OTLP.

The auth service runs on a real local server (uvicorn on a thread of its own);
the posts service's login proxy reaches it over TCP through the client the
service builds for itself, so the trace context crosses as it does in
production: in the `traceparent` header.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from portcullis_auth.http import app as auth_app
from portcullis_auth.settings import AuthSettings
from portcullis_resource.http import app as posts_app
from portcullis_resource.settings import PasswordProxySettings, ResourceSettings
from portcullis_shared.observability import Observability, ObservabilitySettings
from portcullis_shared.plugin import GuardConfig
from portcullis_shared.testing import TestTokens
from tests.auth.conftest import USER_PASSWORD, Seed, auth_environ
from tests.integration.processes import free_port

USER_EMAIL = "ada@example.com"
STARTUP_TIMEOUT = 15.0


@contextmanager
def served(app: Litestar) -> Iterator[str]:
    """`app` on 127.0.0.1, its lifespan run, until the block ends; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            loop="asyncio",
            ws="none",
            lifespan="on",
            access_log=False,
            log_config=None,
        )
    )
    thread = threading.Thread(target=server.run, name="auth-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        assert thread.is_alive(), "the auth service stopped while starting"
        assert time.monotonic() < deadline, "the auth service did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT)


def traced(service_name: str, spans: InMemorySpanExporter) -> Observability:
    return Observability(ObservabilitySettings(), service_name=service_name, span_exporter=spans)


def only(spans: Sequence[ReadableSpan], kind: SpanKind) -> ReadableSpan:
    matching = [span for span in spans if span.kind is kind]
    assert len(matching) == 1, [(span.name, span.kind) for span in spans]
    return matching[0]


def everything_recorded(spans: Sequence[ReadableSpan]) -> str:
    """Span names, attributes and events as one text, to look for secrets in."""
    return json.dumps(
        [
            [
                span.name,
                dict(span.attributes or {}),
                [dict(e.attributes or {}) for e in span.events],
            ]
            for span in spans
        ],
        default=str,
    )


async def test_one_trace_follows_a_login_from_the_proxy_to_the_token_endpoint(
    database_url: str,
    resource_database_url: str,
    redis_url: str,
    redis_prefix: str,
    redis_client: aioredis.Redis,
) -> None:
    settings = AuthSettings.from_env(auth_environ(database_url, redis_url, redis_prefix))
    seed = Seed(settings)
    await seed.signing_key()
    await seed.user(USER_EMAIL)
    client_id, secret = await seed.client(first_party=True)
    assert secret is not None
    auth_spans, posts_spans = InMemorySpanExporter(), InMemorySpanExporter()

    auth = auth_app.create_app(settings, observability=traced(auth_app.SERVICE_NAME, auth_spans))
    with served(auth) as auth_url:
        posts_settings = ResourceSettings(
            guard=GuardConfig(issuer=settings.tokens.issuer, audience="posts"),
            database_url=resource_database_url,
            proxy=PasswordProxySettings(auth_url, client_id=client_id, client_secret=secret),
        )
        posts = posts_app.create_app(
            posts_settings,
            guard=TestTokens(issuer=settings.tokens.issuer, audience="posts").guard(),
            observability=traced(posts_app.SERVICE_NAME, posts_spans),
        )
        async with AsyncTestClient(app=posts) as http:
            login = await http.post(
                "/api/oauth/password/token",
                json={"username": USER_EMAIL, "password": USER_PASSWORD},
                headers={"X-Request-ID": "traced-login"},
            )
            assert login.status_code == 200, login.text
        # Each app's spans are all exported once it has shut down.

    proxy = only(posts_spans.get_finished_spans(), SpanKind.SERVER)
    call = only(posts_spans.get_finished_spans(), SpanKind.CLIENT)
    token = only(auth_spans.get_finished_spans(), SpanKind.SERVER)
    assert proxy.name == "POST /api/oauth/password/token"
    assert token.name == "POST /oauth/token"
    assert {proxy.context.trace_id, call.context.trace_id, token.context.trace_id} == {
        proxy.context.trace_id
    }
    assert call.parent is not None
    assert call.parent.span_id == proxy.context.span_id
    assert token.parent is not None
    assert token.parent.is_remote
    assert token.parent.span_id == call.context.span_id
    attributes: dict[str, Any] = dict(call.attributes or {})
    assert attributes["url.full"] == f"{auth_url}/oauth/token"
    assert attributes["http.response.status_code"] == 200
    assert proxy.resource.attributes["service.name"] == "portcullis-posts"
    assert token.resource.attributes["service.name"] == "portcullis-auth"
    for server_span in (proxy, token):
        assert (server_span.attributes or {})["portcullis.request_id"] == "traced-login"

    recorded = everything_recorded(
        [*posts_spans.get_finished_spans(), *auth_spans.get_finished_spans()]
    )
    tokens = login.json()
    for value in (USER_PASSWORD, secret, tokens["access_token"], tokens["refresh_token"]):
        assert value not in recorded


async def test_spans_hold_no_query_string_and_probes_are_not_traced(
    resource_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator asking for every request header must still not get the secret ones.
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    tokens = TestTokens(issuer="https://auth.test", audience="posts")
    settings = ResourceSettings(
        guard=GuardConfig(issuer=tokens.issuer, audience="posts"),
        database_url=resource_database_url,
    )
    spans = InMemorySpanExporter()
    app = posts_app.create_app(
        settings, guard=tokens.guard(), observability=traced(posts_app.SERVICE_NAME, spans)
    )
    reader = tokens.acting_as(uuid.uuid4(), scopes=["read-posts"])
    async with AsyncTestClient(app=app) as http:
        listed = await http.get(
            "/api/posts?access_token=secret-in-the-query",
            headers={
                **reader,
                "Cookie": "session=secret-in-a-cookie",
                "Referer": "https://app.example/callback?code=secret-in-a-referer",
                "X-Request-ID": "listing",
            },
        )
        assert listed.status_code == 200
        assert (await http.get("/healthz")).status_code == 200

    (span,) = spans.get_finished_spans()
    assert span.name == "GET /api/posts"
    assert (span.attributes or {})["http.route"] == "/api/posts"
    recorded = everything_recorded([span])
    assert "http.request.header.x_request_id" in recorded  # headers were captured...
    for secret in (
        "secret-in-the-query",
        "secret-in-a-cookie",
        "secret-in-a-referer",
        reader["Authorization"],
    ):
        assert secret not in recorded  # ...but not these
