"""How a service is served: Granian, one or more worker processes, each building
the app from the environment.

`make bench` measured three servers on the same app: stock uvicorn (httptools,
uvloop), uvicorn with a transport of our own that joined each response's two
writes (it subclassed a private uvicorn class, so it went), and Granian, whose
HTTP side is Rust. Granian served the most requests per CPU-second, and its
process manager runs the workers: `serve(..., workers=N)` starts N processes
that share the listening socket, restarts one that dies, and stops them all on
SIGTERM or SIGINT after their requests finish.

A worker imports `target` ("module:function") and calls it for the app, so
everything a worker needs must come from the environment: the `serve` commands
check the settings in the parent first, so that a mistake is reported once, in
words, rather than by every worker. No access log (request lines can carry
credentials in query strings), no proxy-header rewriting (the services judge
`X-Forwarded-For` by their own trusted-proxy setting), HTTP/1.1 only and no
WebSockets: nothing the services speak is left out, and nothing more is
listening.
"""

from __future__ import annotations

import gc
from typing import TypeVar

from portcullis_shared.logs import server_log_config

App = TypeVar("App")

GC_YOUNG_THRESHOLD = 20_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""

STOP_TIMEOUT = 20
"""Seconds a stopping worker has to finish its requests before it is killed."""


def tune_garbage_collector() -> None:
    """Fewer collections for a long-running server.

    A token request allocates thousands of short-lived objects (Litestar,
    SQLAlchemy), so at CPython's default the young generation is collected
    several times per request. Collecting it every 20,000 allocations instead
    raised client-credentials throughput by about 7 % in `make bench`; short-lived
    objects are freed by reference counting either way. What exists at start-up
    (modules, the app, the ORM's mappers) lives as long as the process, so it is
    frozen out of every later collection.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def worker_app(app: App) -> App:
    """What a worker's app factory returns: `app`, with the collector tuned now that
    everything that lives as long as the process exists."""
    tune_garbage_collector()
    return app


def serve(target: str, *, host: str, port: int, workers: int = 1, log_format: str = "text") -> None:
    """Serve the app that `target` ("module:function") builds, in `workers` processes;
    the server's own lines (listening, workers started and stopped) in `log_format`."""
    from granian import Granian  # noqa: PLC0415
    from granian.constants import HTTPModes, Interfaces  # noqa: PLC0415 - serving only

    Granian(
        target,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        http=HTTPModes.http1,
        websockets=False,
        log_access=False,
        log_dictconfig=server_log_config(log_format),
        respawn_failed_workers=True,
        workers_kill_timeout=STOP_TIMEOUT,
    ).serve()
