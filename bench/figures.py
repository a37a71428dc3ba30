"""What a measurement yields: one run's figure, a load's runs beside its baseline's, and
every named result of one bench."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figure:
    rps: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    samples: list[float] = field(default_factory=list)
    cpu_share: float | None = None
    """Side by side: the part of a core the server used during the run."""


@dataclass
class Pair:
    """A load's runs beside its baseline's, each taken just after a baseline run (a raw
    rate) or at the same time (side by side): `ratio` is the median of the runs' ratios,
    `load` and `baseline` the median runs."""

    load: Figure
    baseline: Figure
    ratio: float
    ratios: list[float]


def median_run(figures: list[Figure]) -> Figure:
    """The run of median rate, carrying every run's rate as its samples."""
    middle = sorted(figures, key=lambda f: f.rps)[len(figures) // 2]
    middle.samples = [round(f.rps, 1) for f in figures]
    return middle


Measured = Figure | Pair | int | float | dict[str, float]
"""One result: a figure, a pair, a count or duration, or a figure per server."""

Results = dict[str, Measured]
"""Every result of one bench by name, in the order measured (the JSON keeps that order)."""
