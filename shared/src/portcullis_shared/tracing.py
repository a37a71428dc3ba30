"""OpenTelemetry tracing for both services, on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

It needs the `otel` extra (`portcullis-shared[otel]`, which both services
install). Only `observability.py` imports this module, and only when tracing is
on: without the variable no OpenTelemetry module is loaded and no request pays
for it.

Each app has a tracer provider of its own, named by `service.name` (`portcullis
dev` serves both services from one process). Spans leave in batches over
OTLP/HTTP; the SDK reads the other OTEL_* variables (headers, timeout, sampler,
resource attributes) as usual. Litestar's OpenTelemetry middleware opens a
server span around each request, continuing the trace of the caller's
`traceparent`, and `RouteSpanName` names it by route template (`POST
/oauth/token`), never by a path that holds ids. `TracedTransport` does the same
for a call out: a client span, its `traceparent` sent along, so that a login
through the posts service's proxy is one trace across both services.

What a span holds: method, route, status, addresses, user agent, the request id.
Never a query string (RFC 6750 §2.3 lets a client put a token there, and the
device page takes a user code), never the `Authorization`, `Cookie`,
`Set-Cookie`, `Location` (an authorization code, a device's user code) or
`Referer` (a page's query) header, even when OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* asks
for headers. Health probes and metrics scrapes are not traced.
"""

from __future__ import annotations

from typing import Any

import httpx
from litestar.enums import ScopeType
from litestar.middleware.base import DefineMiddleware
from litestar.plugins.opentelemetry import OpenTelemetryConfig
from litestar.types import ASGIApp, Receive, Scope, Send
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL, URL_QUERY
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    get_custom_headers,
)

from portcullis_shared.request_id import request_id_of

INSTRUMENTATION_NAME = "portcullis"
REQUEST_ID_ATTRIBUTE = "portcullis.request_id"
SECRET_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    # URLs with query strings: an authorization response's code and state (Location),
    # and whatever the page a browser came from carried (Referer).
    "location",
    "referer",
)
NOT_TRACED = ["^/healthz$", "^/readyz$", "^/metrics$"]
# The old semantic conventions' full URL, query string included (the default mode).
_HTTP_URL = "http.url"


def tracer_provider(service_name: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """A provider for one app: its spans named `service_name`, sent in batches to
    `exporter` (default: OTLP over HTTP, configured by the OTEL_* variables)."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter()))
    return provider


def server_tracing(provider: TracerProvider) -> DefineMiddleware:
    """Litestar's OpenTelemetry middleware, which Litestar moves outside everything else
    (errors and 404s included); `RouteSpanName` goes among the route's middleware."""
    config = OpenTelemetryConfig(
        tracer_provider=provider,
        scope_span_details_extractor=_span_details,
        server_request_hook_handler=_hide_query_string,
        exclude=NOT_TRACED,
        exclude_spans=["receive", "send"],  # a span per ASGI message says nothing here
        http_capture_headers_sanitize_fields=sanitized_headers(),
    )
    return config.middleware


def sanitized_headers() -> list[str]:
    """Headers whose values a span never holds: the operator's list and the secret ones."""
    configured = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS)
    return [*configured, *(name for name in SECRET_HEADERS if name not in configured)]


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    # The route is not known yet (RouteSpanName names the span once it is): the
    # method alone, rather than a path full of ids.
    return str(scope.get("method", "HTTP")), {}


def _hide_query_string(span: Span, scope: dict[str, Any]) -> None:
    if not scope.get("query_string") or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    url = attributes.get(_HTTP_URL)
    if isinstance(url, str):
        span.set_attribute(_HTTP_URL, url.split("?", 1)[0])
    if URL_QUERY in attributes:
        span.set_attribute(URL_QUERY, "REDACTED")


class RouteSpanName:
    """Names the request's server span by its route template, and tags it with the
    request id that its log lines carry."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = trace.get_current_span()
        if scope["type"] == ScopeType.HTTP and span.is_recording():
            template = scope.get("path_template")
            if template:
                span.update_name(f"{scope['method']} {template}")
                span.set_attribute(HTTP_ROUTE, template)
            span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id_of(scope))
        await self.app(scope, receive, send)


class TracedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that traces each call out: a client span, and the trace
    context in the request's headers (W3C `traceparent`) for the server to continue.

    Written here rather than taken from an instrumentation package so that no
    setting can make it record a request header: the proxy's calls carry the
    password client's secret and the caller's bearer token."""

    def __init__(self, transport: httpx.AsyncBaseTransport, provider: TracerProvider) -> None:
        self._transport = transport
        self._tracer = provider.get_tracer(INSTRUMENTATION_NAME)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        attributes: dict[str, str | int] = {
            HTTP_REQUEST_METHOD: request.method,
            URL_FULL: str(url.copy_with(query=None, fragment=None)),
            SERVER_ADDRESS: url.host,
        }
        if url.port is not None:
            attributes[SERVER_PORT] = url.port
        with self._tracer.start_as_current_span(
            request.method, kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            propagate.inject(request.headers)
            response = await self._transport.handle_async_request(request)
            span.set_attribute(HTTP_RESPONSE_STATUS_CODE, response.status_code)
            if response.status_code >= 500:
                span.set_attribute(ERROR_TYPE, str(response.status_code))
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self._transport.aclose()
