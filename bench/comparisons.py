"""How runs are taken so that their figures compare: loads in turns, servers side by side
on one core, or a load's runs each just after a run of its raw baseline. The machine's
speed drifts over minutes, so a figure is only ever compared with one from the same moment."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bench.figures import Figure, Pair, median_run
from bench.raw_rates import raw_rate
from bench.servers import Server
from bench.settings import DURATION, RUNS, WARM_UP
from bench.wrk import Load, probe, wrk_once


def wrk_interleaved(*loads: Load) -> list[Figure]:
    """Figures for loads compared with each other, their runs taken in turns, so that
    the machine's drift during a run falls on each alike."""
    runs: list[list[Figure]] = [[] for _ in loads]
    for load in loads:
        probe(load)
        wrk_once(load, WARM_UP)
    for run in range(RUNS):
        # Each round in the other order, so that none always runs first.
        order = list(zip(loads, runs, strict=True))
        for load, figures in order if run % 2 == 0 else reversed(order):
            figures.append(wrk_once(load, DURATION))
    return [median_run(figures) for figures in runs]


Served = tuple[Load, Server]
"""A load and the server it goes to."""


def wrk_side_by_side(reference: Served, *others: Served) -> list[Pair]:
    """Each of `others` beside `reference`, all served at once: one wrk each, their servers
    sharing the server core, so that each run sees one machine speed for all (taken in
    turns on a noisy machine, one pair of runs moved by a third). Each run's ratio is a
    load's rate over the reference's in that run; a Pair's ratio is their median. Each
    figure carries the part of the core its server got, to show the sharing was even."""
    served = [reference, *others]
    if len({id(server) for _, server in served}) < len(served):
        raise ValueError("side by side, each load needs a server of its own")
    for load, _ in served:
        probe(load)
    _wrk_together(served, WARM_UP)
    runs = [_wrk_together(served, DURATION) for _ in range(RUNS)]
    pairs = []
    for index in range(1, len(served)):
        ratios = [run[index].rps / run[0].rps for run in runs]
        pairs.append(
            Pair(
                load=median_run([run[index] for run in runs]),
                baseline=median_run([run[0] for run in runs]),
                ratio=statistics.median(ratios),
                ratios=[round(ratio, 3) for ratio in ratios],
            )
        )
    return pairs


def _wrk_together(served: list[Served], seconds: int) -> list[Figure]:
    cpu_before = [server.cpu_seconds() for _, server in served]
    started = time.monotonic()
    with ThreadPoolExecutor(len(served)) as pool:
        runs = [pool.submit(wrk_once, load, seconds) for load, _ in served]
    elapsed = time.monotonic() - started
    figures = [run.result() for run in runs]
    for figure, (_, server), before in zip(figures, served, cpu_before, strict=True):
        figure.cpu_share = round((server.cpu_seconds() - before) / elapsed, 3)
    return figures


def paired(
    baseline: Callable[[], object], run_load: Callable[[int], Figure], server: Server
) -> Pair:
    """RUNS runs of a load on `server`, each just after a run of its raw baseline, after
    a short unmeasured load run (pools filled, caches warm). Each raw run waits until
    the server has finished what the load before it left in flight."""
    run_load(WARM_UP)
    baselines, loads = [], []
    for _ in range(RUNS):
        server.wait_until_idle()
        baselines.append(raw_rate(baseline, runs=1))
        loads.append(run_load(DURATION))
    ratios = [load.rps / base.rps for base, load in zip(baselines, loads, strict=True)]
    return Pair(
        median_run(loads),
        median_run(baselines),
        statistics.median(ratios),
        [round(r, 3) for r in ratios],
    )


def wrk_alone_in_turns(*served: Served) -> list[Figure]:
    """Each load alone on its server, the servers in turns, each run's figure carrying the
    part of a core its server used: requests per CPU-second is `rps / cpu_share`."""
    runs: list[list[Figure]] = [[] for _ in served]
    for load, _ in served:
        probe(load)
        wrk_once(load, WARM_UP)
    for run in range(RUNS):
        order = list(zip(served, runs, strict=True))
        for one, figures in order if run % 2 == 0 else reversed(order):
            figures.extend(_wrk_together([one], DURATION))
    return [median_run(figures) for figures in runs]
