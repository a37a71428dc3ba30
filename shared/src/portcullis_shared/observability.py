"""How a service tells what it does: log lines, request ids and traces, in one plugin.

Both services mount `Observability`, so both report alike:

- logging as `logs.py` sets it up, in the format `PORTCULLIS_LOG_FORMAT` names
  (`text`, the default, or `json`: one object a line);
- `X-Request-ID` on every answer and on the log lines of its request
  (`request_id.py`);
- OpenTelemetry traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`tracing.py`,
  imported then and only then: the `otel` extra may be absent otherwise).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin
from litestar.types.composite_types import Middleware

from portcullis_shared.environment import EnvReader, SettingsError
from portcullis_shared.logs import LOG_FORMATS, logging_config
from portcullis_shared.request_id import RequestIdMiddleware, send_request_id

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# What tracing.py imports beyond the base install: the `otel` extra.
TRACING_MODULES = (
    "opentelemetry.sdk",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.instrumentation.asgi",
)


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    log_format: str = "text"
    """`PORTCULLIS_LOG_FORMAT`: `text`, or `json` for one JSON object a line."""
    tracing: bool = False
    """OpenTelemetry traces over OTLP/HTTP: on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and `OTEL_SDK_DISABLED` is not true."""

    @classmethod
    def from_env(cls, env: EnvReader) -> ObservabilitySettings:
        tracing = any(env.unprefixed(name) for name in OTLP_ENDPOINT_VARIABLES) and (
            (env.unprefixed("OTEL_SDK_DISABLED") or "").lower() != "true"
        )
        if tracing and not tracing_installed():
            raise SettingsError(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
                "install portcullis-shared[otel], or unset the variable"
            )
        return cls(log_format=env.choice("LOG_FORMAT", "text", LOG_FORMATS), tracing=tracing)


def tracing_installed() -> bool:
    """Whether the `otel` extra is there, found without importing it."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in TRACING_MODULES)
    except ModuleNotFoundError:  # a parent package is missing
        return False


class Observability(InitPlugin):
    """Mounts logging, request ids and (when on) tracing on a service's app."""

    def __init__(
        self,
        settings: ObservabilitySettings,
        *,
        service_name: str,
        span_exporter: SpanExporter | None = None,
    ) -> None:
        """`service_name`: the traces' `service.name`. `span_exporter`: where spans go
        instead of OTLP (tests keep them in memory); giving one turns tracing on."""
        self.settings = settings
        self.service_name = service_name
        self.tracer_provider: TracerProvider | None = None
        if settings.tracing or span_exporter is not None:
            from portcullis_shared.tracing import tracer_provider  # noqa: PLC0415

            self.tracer_provider = tracer_provider(service_name, span_exporter)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.logging_config = logging_config(self.settings.log_format)
        app_config.before_send.append(send_request_id)
        # First among the route's middleware: the bearer guard's log lines carry the id.
        route_middleware: list[Middleware] = [RequestIdMiddleware]
        if self.tracer_provider is not None:
            from portcullis_shared.tracing import RouteSpanName, server_tracing  # noqa: PLC0415

            app_config.middleware.append(server_tracing(self.tracer_provider))
            route_middleware.append(RouteSpanName)
            app_config.lifespan.append(self._send_last_spans)
        app_config.middleware[0:0] = route_middleware
        return app_config

    def http_transport(
        self, transport: httpx.AsyncBaseTransport | None = None
    ) -> httpx.AsyncBaseTransport:
        """The transport for calls to another service (`transport`, by default over the
        network), traced when tracing is on."""
        transport = transport or httpx.AsyncHTTPTransport()
        if self.tracer_provider is None:
            return transport
        from portcullis_shared.tracing import TracedTransport  # noqa: PLC0415

        return TracedTransport(transport, self.tracer_provider)

    @asynccontextmanager
    async def _send_last_spans(self, _: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self.tracer_provider is not None:
                # Exports what is pending (bounded by the exporter's timeout) off the loop.
                await asyncio.to_thread(self.tracer_provider.shutdown)
