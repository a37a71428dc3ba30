"""Metrics of a guarded service, and the directory several workers count in.

`/metrics` needs no token; requests count by route template and by the status
the app answered, the guard's 401 and 503 included; the guard counts the
checks it refused because the revocation list or the keys could not be read,
and the key cache its fetches and their failures. The counters are the
process's own, so each test compares a scrape after with a scrape before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from portcullis_shared.jwks import JWKSCache
from portcullis_shared.metrics import (
    ServiceMetrics,
    forget_dead_workers,
)
from portcullis_shared.plugin import PortcullisGuard
from portcullis_shared.worker_metrics import MULTIPROCESS_DIRECTORY, prepare_worker_metrics
from tests.clock import FakeClock
from tests.integration.processes import free_port
from tests.metrics import sample
from tests.shared.conftest import (
    JWKSServer,
    SigningKey,
    assert_unavailable,
    bearer,
    guard_config,
    list_posts,
    mint,
)

Http = AsyncTestClient[Litestar]
POST_ROUTE = "/api/posts/{post_id}"


@get("/api/posts/{post_id:int}")
async def one_post(post_id: FromPath[int]) -> dict[str, int]:
    return {"id": post_id}


def metered_app(guard: PortcullisGuard) -> Litestar:
    return Litestar(route_handlers=[list_posts, one_post], plugins=[guard, ServiceMetrics("posts")])


async def scrape(http: Http) -> str:
    """`/metrics` as a scraper gets it: no token."""
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def requests_of(exposition: str, path: str, status: str) -> float:
    return sample(
        exposition,
        "portcullis_requests_total",
        app_name="posts",
        method="GET",
        path=path,
        status_code=status,
    )


def unavailable(exposition: str, cause: str) -> float:
    return sample(exposition, "portcullis_token_checks_unavailable_total", cause=cause)


async def test_requests_count_by_route_template_and_the_status_answered(
    jwks_server: JWKSServer, redis_url: str, redis_prefix: str, marked: None, rsa_key: SigningKey
) -> None:
    guard = PortcullisGuard(
        guard_config(
            jwks_url=jwks_server.url,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            revocation_feed=False,
        )
    )
    token = mint(rsa_key)
    async with AsyncTestClient(app=metered_app(guard)) as http:
        before = await scrape(http)
        assert (await http.get("/api/posts/7", headers=bearer(token))).status_code == 200
        assert (await http.get("/api/posts/8", headers=bearer(token))).status_code == 200
        # Refused by the guard's middleware, answered by the app outside it.
        assert (await http.get("/api/posts/9")).status_code == 401
        after = await scrape(http)

    assert requests_of(after, POST_ROUTE, "200") - requests_of(before, POST_ROUTE, "200") == 2
    assert requests_of(after, POST_ROUTE, "401") - requests_of(before, POST_ROUTE, "401") == 1
    timed = "portcullis_request_duration_seconds_count"
    assert sample(after, timed, path=POST_ROUTE) - sample(before, timed, path=POST_ROUTE) == 3
    # No raw path, no token: labels hold route templates, methods and statuses only.
    assert "/api/posts/7" not in after
    assert token not in after
    assert token.split(".")[2] not in after


async def test_a_revocation_list_out_of_reach_is_counted_as_it_fails_closed(
    jwks_server: JWKSServer, redis_prefix: str, rsa_key: SigningKey
) -> None:
    guard = PortcullisGuard(
        guard_config(
            jwks_url=jwks_server.url,
            redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            redis_prefix=redis_prefix,
            revocation_feed=False,
        )
    )
    async with AsyncTestClient(app=metered_app(guard)) as http:
        before = await scrape(http)
        assert_unavailable(await http.get("/api/posts", headers=bearer(mint(rsa_key))))
        after = await scrape(http)

    assert unavailable(after, "revocation_list") - unavailable(before, "revocation_list") == 1
    assert unavailable(after, "signing_keys") == unavailable(before, "signing_keys")
    assert requests_of(after, "/api/posts", "503") - requests_of(before, "/api/posts", "503") == 1
    errors = "portcullis_requests_error_total"
    assert sample(after, errors, path="/api/posts") - sample(before, errors, path="/api/posts") == 1


async def test_no_signing_keys_is_counted_as_it_fails_closed(
    redis_url: str, redis_prefix: str, marked: None, rsa_key: SigningKey
) -> None:
    guard = PortcullisGuard(
        guard_config(
            jwks_url=f"http://127.0.0.1:{free_port()}/.well-known/jwks.json",  # unreachable
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            revocation_feed=False,
        )
    )
    failures = "portcullis_jwks_fetch_failures_total"
    failed = registry_value(failures)
    async with AsyncTestClient(app=metered_app(guard)) as http:  # the first fetch fails
        before = await scrape(http)
        assert_unavailable(await http.get("/api/posts", headers=bearer(mint(rsa_key))))
        after = await scrape(http)

    assert unavailable(after, "signing_keys") - unavailable(before, "signing_keys") == 1
    assert unavailable(after, "revocation_list") == unavailable(before, "revocation_list")
    assert sample(after, failures) > failed


def registry_value(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_jwks_fetches_and_their_failures_are_counted(
    jwks_server: JWKSServer, rsa_key: SigningKey
) -> None:
    clock = FakeClock()
    cache = JWKSCache(jwks_server.url, clock=clock)
    fetches, failures = "portcullis_jwks_fetches_total", "portcullis_jwks_fetch_failures_total"
    fetched, failed = registry_value(fetches), registry_value(failures)
    try:
        await cache.start()
        assert (registry_value(fetches) - fetched, registry_value(failures) - failed) == (1, 0)

        jwks_server.stop()
        clock.advance(301)  # past max-age: the next lookup fetches again, and fails
        await cache.get_key(rsa_key.kid)  # the cached key still serves
        assert (registry_value(fetches) - fetched, registry_value(failures) - failed) == (2, 1)
    finally:
        await cache.close()


# --- several workers ------------------------------------------------------------------------
# prepare_worker_metrics changes prometheus-client's state for the whole process, so it runs
# in a process of its own (tests/shared/metrics_workers.py), as it does in `serve`'s parent.

ROOT = Path(__file__).resolve().parents[2]


def run_workers_script(*args: str, directory: Path | None = None) -> str:
    environ = {k: v for k, v in os.environ.items() if k != MULTIPROCESS_DIRECTORY}
    if directory is not None:
        environ[MULTIPROCESS_DIRECTORY] = str(directory)
    completed = subprocess.run(
        [sys.executable, "-m", "tests.shared.metrics_workers", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_preparing_after_prometheus_client_is_imported_is_refused() -> None:
    """Workers forked from a process that imported it would count apart, each scrape
    showing one worker's share: refused rather than served wrong."""
    with pytest.raises(RuntimeError, match="before prometheus_client is imported"):
        prepare_worker_metrics(2)  # this process imported it with the metrics module


def test_one_worker_keeps_its_metrics_in_memory() -> None:
    assert json.loads(run_workers_script("prepare", "1")) == {"directory": None}


def test_several_workers_get_a_private_directory_removed_at_exit() -> None:
    chosen = json.loads(run_workers_script("prepare", "2"))
    assert chosen["mode"] == 0o700
    # Only the preparing process's own files, none of another run's.
    assert all(name.endswith(f"_{chosen['pid']}.db") for name in chosen["files"]), chosen
    assert not Path(chosen["directory"]).exists()


def test_an_operators_directory_is_kept_and_emptied_of_an_earlier_run(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    stale = [directory / "counter_4242.db", directory / "gauge_livesum_4242.db"]
    for path in stale:
        path.write_bytes(b"\0" * 16)
    unrelated = directory / "README"
    unrelated.write_text("not ours")

    chosen = json.loads(run_workers_script("prepare", "2", directory=directory))

    assert chosen["directory"] == str(directory)
    assert not any(path.name in chosen["files"] for path in stale)
    assert not any(path.exists() for path in stale)
    assert unrelated.exists()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_what_forked_or_spawned_workers_count_is_added_up(start_method: str) -> None:
    exposition = run_workers_script("count", start_method)
    assert sample(exposition, "portcullis_jwks_fetches_total") == 2, exposition
    unavailable = "portcullis_token_checks_unavailable_total"
    assert sample(exposition, unavailable, cause="revocation_list") == 2, exposition


def test_a_worker_starting_forgets_the_live_gauges_of_workers_gone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead, alive = int(gone.stdout), os.getpid()
    files = {
        name: tmp_path / name
        for name in (
            f"gauge_livesum_{dead}.db",
            f"gauge_livesum_{alive}.db",
            f"counter_{dead}.db",  # a dead worker's counts still count
        )
    }
    for path in files.values():
        path.write_bytes(b"\0" * 16)
    monkeypatch.setenv(MULTIPROCESS_DIRECTORY, str(tmp_path))

    forget_dead_workers()

    assert {name for name, path in files.items() if path.exists()} == {
        f"gauge_livesum_{alive}.db",
        f"counter_{dead}.db",
    }
