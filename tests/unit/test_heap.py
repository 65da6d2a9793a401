"""The collector settings of a service process (shared.heap, issue 9: a full
collection walked every object of the process, 60-100 ms with the GIL held):
once settled, a collection skips what startup built, cycles made afterwards
are still freed, every pause is observed, and release gives everything back."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from shared.heap import release, settle


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def pause_count(generation: int) -> float:
    value = REGISTRY.get_sample_value("pl_gc_pause_seconds_count", {"generation": str(generation)})
    return value or 0.0


def frozen_gauge() -> float:
    return REGISTRY.get_sample_value("pl_gc_frozen_objects") or 0.0


@pytest.fixture
def settled() -> Iterator[int]:
    frozen = settle()
    try:
        yield frozen
    finally:
        release()


def test_settle_freezes_what_exists(settled: int) -> None:
    # (frozen objects still die of their last reference: the count only falls)
    assert settled >= gc.get_freeze_count() > 1_000  # this process's modules at least
    assert frozen_gauge() == settled


def test_a_cycle_made_after_settling_is_still_collected(settled: int) -> None:
    node = Node()
    gone = weakref.ref(node)
    del node
    gc.collect()
    assert gone() is None


def test_a_cycle_made_before_settling_waits_for_release() -> None:
    node = Node()
    gone = weakref.ref(node)
    del node
    settle()  # collects first: the garbage of startup is not frozen
    try:
        assert gone() is None
        kept = Node()
        held = weakref.ref(kept)
        gc.freeze()
        del kept
        gc.collect()
        assert held() is not None  # frozen: out of the collector's reach
    finally:
        release()
    gc.collect()
    assert held() is None
    assert gc.get_freeze_count() == 0
    assert frozen_gauge() == 0


def test_every_collection_pause_is_observed(settled: int) -> None:
    gc.disable()  # only the collections below (reading the registry allocates)
    try:
        before = [pause_count(g) for g in range(3)]
        gc.collect(0)
        gc.collect(2)
        assert pause_count(0) == before[0] + 1
        assert pause_count(2) == before[2] + 1
        assert pause_count(1) == before[1]
    finally:
        gc.enable()
