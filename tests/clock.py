"""A clock for tests: product code that measures time takes it instead of `time.monotonic`
or `time.time`, and the test moves it on instead of sleeping."""

from __future__ import annotations

import time


class FakeClock:
    """Seconds that stand still until `advance` moves them on.

    It starts at the wall clock's reading, so it can stand in for `time.time` (beside
    tokens minted now) as well as for `time.monotonic` (only differences count there).
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "a clock does not go back"
        self.now += seconds
