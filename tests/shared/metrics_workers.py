"""A server's parent process and its workers, in miniature, for `test_metrics.py`.

Run as a process of its own (it changes prometheus-client's process-wide state):

    python -m tests.shared.metrics_workers prepare WORKERS
        prepare_worker_metrics(WORKERS), then print what it chose as JSON
    python -m tests.shared.metrics_workers count fork|spawn
        prepare for two workers, start them (forked or spawned) to count, then print
        what `GET /metrics` answers in the parent
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import sys
from multiprocessing.process import BaseProcess
from pathlib import Path

from portcullis_shared.worker_metrics import MULTIPROCESS_DIRECTORY, prepare_worker_metrics

WORKERS = 2


def work() -> None:
    """A worker's counting: a metric without labels and one with labels, both made when
    the metrics module was imported, after the directory was chosen, as in `serve`."""
    from portcullis_shared.metrics import JWKS_FETCHES, TOKEN_CHECKS_UNAVAILABLE  # noqa: PLC0415

    JWKS_FETCHES.inc()
    TOKEN_CHECKS_UNAVAILABLE.labels("revocation_list").inc()


def prepare(workers: int) -> dict[str, object]:
    prepare_worker_metrics(workers)
    chosen = os.environ.get(MULTIPROCESS_DIRECTORY)
    if chosen is None:
        return {"directory": None}
    directory = Path(chosen)
    return {
        "directory": chosen,
        "mode": stat.S_IMODE(directory.stat().st_mode),
        "files": sorted(path.name for path in directory.iterdir()),
        "pid": os.getpid(),
    }


def new_worker(start_method: str) -> BaseProcess:
    if start_method == "fork":
        return multiprocessing.get_context("fork").Process(target=work)
    return multiprocessing.get_context("spawn").Process(target=work)


def count(start_method: str) -> str:
    prepare_worker_metrics(WORKERS)
    # As in `serve`: the parent imports the app's modules before its workers start.
    from litestar import Litestar  # noqa: PLC0415
    from litestar.testing import TestClient  # noqa: PLC0415

    from portcullis_shared.metrics import MetricsController  # noqa: PLC0415

    workers = [new_worker(start_method) for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0, worker.exitcode
    with TestClient(Litestar([MetricsController])) as client:
        return client.get("/metrics").text


if __name__ == "__main__":
    command, argument = sys.argv[1:3]
    if command == "prepare":
        print(json.dumps(prepare(int(argument))))
    else:
        print(count(argument))
