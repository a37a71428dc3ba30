"""Prometheus metrics of a Portcullis service: `GET /metrics`, right with several workers.

Requests are counted by Litestar's Prometheus middleware, labelled with the
route's template (`/api/posts/{post_id}`), never the path a caller sent: a raw
path would make a series per post id, and a label must hold nothing a request
carried. The guard's own counters (JWKS fetches, token checks refused while the
keys or the revocation list cannot be read) live here too, so every service that
mounts the guard counts them.

Each worker process counts in its own memory. When a service runs several,
`worker_metrics.prepare_worker_metrics`, called by `portcullis serve` before
anything imports this module, points prometheus-client at a directory where each
worker writes its metrics to files of its own, and `/metrics`, whichever worker
answers, adds them up (prometheus-client's multiprocess mode).

The route is served only when `PORTCULLIS_METRICS` is on. It needs no token (a
scraper has none, and giving it one would put a token in a scrape config), so it
tells whoever reaches it the traffic, failed and throttled logins and refresh
token reuse that the service sees: serve it where only the scraper reaches it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from litestar import Request
from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin
from litestar.plugins.prometheus import (
    PrometheusConfig,
    PrometheusController,
    PrometheusMiddleware,
)
from litestar.types import Receive, Scope, Send
from prometheus_client import Counter

from portcullis_shared.worker_metrics import MULTIPROCESS_DIRECTORY

JWKS_FETCHES = Counter(
    "portcullis_jwks_fetches",
    "JWKS fetches started by the guard's key cache: at start, when the keys expire, "
    "on an unknown kid (at most once per cooldown).",
)
JWKS_FETCH_FAILURES = Counter(
    "portcullis_jwks_fetch_failures",
    "JWKS fetches that failed: the auth service unreachable, an error status, or not a JWKS.",
)
TOKEN_CHECKS_UNAVAILABLE = Counter(
    "portcullis_token_checks_unavailable",
    "Token checks the guard refused with 503 (fail closed): cause=revocation_list when the "
    "revocation list could not be read or was being rebuilt, cause=signing_keys when no "
    "usable JWKS was held.",
    ["cause"],
)


def forget_dead_workers() -> None:
    """Remove the live gauges (requests in progress) of worker processes that have gone.

    A worker that died mid-request and was replaced left its count behind; this is
    prometheus-client's `mark_process_dead`, run by each worker as it starts, since
    the servers we run give no hook on a worker's exit."""
    directory = os.environ.get(MULTIPROCESS_DIRECTORY)
    if not directory:
        return
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


def answered_status(error: BaseException) -> int:
    """The status an exception is answered with: its own (HTTP, bearer and OAuth errors
    carry one), else 500."""
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) and 100 <= status <= 599 else 500


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted by name; any other a caller sends counts as `other`."""


class RouteMetricsMiddleware(PrometheusMiddleware):
    """Litestar's Prometheus middleware, also right about requests an inner middleware
    refused by raising, and labelling a method the caller made up as `other` (a route
    that takes any method, as the token endpoint does, would otherwise make a series
    of every method sent to it).

    The guard raises its 401 or 503 from a middleware inside this one, and the app
    answers it outside: Litestar's middleware sees no response and would count a 200
    that took no time. Here such a request counts with the status its exception is
    answered with, and the time until it was raised.
    """

    def _get_default_labels(self, request: Request[Any, Any, Any]) -> dict[str, str | int | float]:
        labels = super()._get_default_labels(request)
        if labels["method"] not in HTTP_METHODS:
            labels["method"] = "other"
        return labels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request[Any, Any, Any](scope, receive)
        labels = {**self._get_default_labels(request), **self._get_extra_labels(request)}
        # status 0: no response started yet.
        span: dict[str, float] = {
            "start_time": time.perf_counter(),
            "end_time": 0,
            "duration": 0,
            "status_code": 0,
        }
        # No status while in progress: the series is the route's.
        route = {name: value for name, value in labels.items() if name != "status_code"}
        in_progress = self.requests_in_progress(route).labels(*route.values())
        in_progress.inc()
        try:
            await self.app(scope, receive, self._get_wrapped_send(send, span))
        except Exception as error:
            if not span["status_code"]:
                span["status_code"] = answered_status(error)
                span["duration"] = time.perf_counter() - span["start_time"]
            raise
        finally:
            in_progress.dec()
            status = int(span["status_code"]) or 200
            labels["status_code"] = status
            label_values = [*labels.values()]
            if status >= 500:
                self.requests_error_count(labels).labels(*label_values).inc()
            self.request_count(labels).labels(*label_values).inc()
            self.request_time(labels).labels(*label_values).observe(span["duration"])


class MetricsController(PrometheusController):
    """`GET /metrics` in Prometheus's text format: every worker's metrics when several run."""

    path = "/metrics"
    include_in_schema = False
    opt: Mapping[str, Any] | None = {"exclude_from_auth": True}
    """Open past the guard: a scraper has no token and needs none."""


class ServiceMetrics(InitPlugin):
    """Serves `/metrics` and counts each request by route template, method and status:
    `portcullis_requests_total`, `portcullis_request_duration_seconds`,
    `portcullis_requests_in_progress` and `portcullis_requests_error_total` (5xx),
    labelled `app_name` (the service), `method`, `path` (the template) and, but for
    requests in progress, `status_code`."""

    def __init__(self, service: str) -> None:
        self.config = PrometheusConfig(
            app_name=service,
            prefix="portcullis",
            group_path=True,
            exclude=["^/metrics$"],
            middleware_class=RouteMetricsMiddleware,
        )

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        # First, so outermost: it sees what every other middleware answers.
        app_config.middleware.insert(0, self.config.middleware)
        app_config.route_handlers.append(MetricsController)
        app_config.on_startup.append(forget_dead_workers)
        return app_config
