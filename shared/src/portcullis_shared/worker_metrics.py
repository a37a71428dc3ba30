"""Where the workers of one service keep their metrics, chosen before any is started.

Each worker process counts on its own. With several, prometheus-client's
multiprocess mode has each write its metrics to files in one directory, and
`/metrics`, whichever worker answers, adds them up. prometheus-client reads
`PROMETHEUS_MULTIPROC_DIR` once, when it is imported, and a worker forked from
the serving process inherits what that process imported: so the directory is
chosen first, before anything imports it (`prepare_worker_metrics` refuses to
run later rather than leave the workers counting apart).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
"""Where prometheus-client's multiprocess mode keeps each process's metric files."""


def prepare_worker_metrics(workers: int) -> None:
    """Before the workers of a service start: with several, have each write its metrics
    to files that `/metrics` adds up.

    The directory is `PROMETHEUS_MULTIPROC_DIR` when the operator set it, emptied of
    the files an earlier run left (they would add a dead run's counts); otherwise a
    fresh private one (mode 0700), removed when this process exits. With one worker
    nothing changes: its metrics stay in its memory (or in the operator's directory,
    shared as they arranged).
    """
    if workers <= 1:
        return
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prepare_worker_metrics must run before prometheus_client is imported")
    chosen = os.environ.get(MULTIPROCESS_DIRECTORY, "").strip()
    if chosen:
        directory = Path(chosen)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        created = tempfile.mkdtemp(prefix="portcullis-metrics-")
        atexit.register(_remove_directory, created, os.getpid())
        os.environ[MULTIPROCESS_DIRECTORY] = created


def _remove_directory(path: str, owner: int) -> None:
    # A worker forked from the owner inherits this hook; only the owner removes.
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)
