"""What a service process does before serving."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from portcullis_shared.serving import GC_YOUNG_THRESHOLD, tune_garbage_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


@pytest.mark.usefixtures("restored_gc")
def test_the_young_generation_is_collected_less_often_and_start_up_objects_are_frozen() -> None:
    older = gc.get_threshold()[1:]
    tune_garbage_collector()
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *older)
    assert gc.get_freeze_count() > 0
