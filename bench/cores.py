"""Which core does what: the servers, and the raw rates that are their baselines, on one
core; the load generators and this process on the other, so that load never takes the
servers' core."""

from __future__ import annotations

import os
import shutil

SERVER_CORE, LOAD_CORE = 0, 1


def pinned(core: int) -> list[str]:
    """The prefix that runs a command on `core`: none without taskset or a second core."""
    return (
        ["taskset", "-c", str(core)]
        if shutil.which("taskset") and (os.cpu_count() or 1) > 1
        else []
    )


def move_to_load_core() -> None:
    """This process (it runs wrk and the refresh chains) onto the load core."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {LOAD_CORE})
