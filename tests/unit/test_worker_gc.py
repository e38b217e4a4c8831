"""The collector settings a worker takes once it is ready to serve (service.app._settle_gc)."""

from __future__ import annotations

import gc

from service.app import GC_YOUNG_THRESHOLD, _settle_gc


def test_settle_gc_freezes_what_exists_and_collects_the_young_generation_less_often() -> None:
    before = gc.get_threshold()
    try:
        _settle_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # cycles are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
