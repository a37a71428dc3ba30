"""What one bench is set to: the environment's values (BENCH_DURATION, BENCH_RUNS,
BENCH_CONNECTIONS, PORTCULLIS_TEST_DATABASE_URL, PORTCULLIS_TEST_REDIS_URL), else the
defaults, and where the repository and its virtual environment are."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DURATION = int(os.environ.get("BENCH_DURATION", "8"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
WARM_UP = 2
"""Seconds of an unmeasured run before the measured ones: pools filled, caches warm."""
POOL_SIZE = 12
"""Database connections per posts service (plus half again at peaks): with the two auth
services, at their default of 20 (30 at most), all six must fit in Postgres's default
100 connections."""
DATABASE_URL = os.environ.get(
    "PORTCULLIS_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("PORTCULLIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
