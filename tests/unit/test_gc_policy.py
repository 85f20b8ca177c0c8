"""The collector policy: calls' objects frozen while calls are up, cycles among them reclaimed when idle or
when due, and what was reclaimed counted."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from siprec_server import gc_pauses
from siprec_server.gc_pauses import GcPauses
from siprec_server.gc_policy import GcAction, GcPolicy, GcSchedule


class Node:
    """An object that can sit in a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The test process's objects are given back to the collector afterwards, whatever the test froze."""
    yield
    gc.unfreeze()


def schedule(**kwargs: float) -> GcSchedule:
    values = {"freeze_interval": 2.0, "idle_reclaim": 600.0, "reclaim_interval": 3600.0, "last_reclaim": 0.0}
    values.update(kwargs)
    return GcSchedule(**values)


def test_calls_up_freeze_and_nothing_is_done_between_calls() -> None:
    plan = schedule()
    assert plan.next(10, active_calls=0) is GcAction.NOTHING  # nothing was frozen: nothing to reclaim
    assert plan.next(12, active_calls=3) is GcAction.FREEZE
    assert plan.next(14, active_calls=3) is GcAction.FREEZE


def test_idle_reclaims_once_idle_reclaim_has_passed_and_only_after_a_freeze() -> None:
    plan = schedule(idle_reclaim=600)
    assert plan.next(2, active_calls=1) is GcAction.FREEZE
    assert plan.next(300, active_calls=0) is GcAction.NOTHING  # idle, but too soon after the last one
    assert plan.next(600, active_calls=0) is GcAction.RECLAIM_IDLE
    assert plan.next(1300, active_calls=0) is GcAction.NOTHING  # nothing frozen since
    assert plan.next(1302, active_calls=2) is GcAction.FREEZE
    assert plan.next(1304, active_calls=0) is GcAction.RECLAIM_IDLE  # 704 s after the last one
    assert plan.next(1306, active_calls=1) is GcAction.FREEZE
    assert plan.next(1500, active_calls=0) is GcAction.NOTHING  # idle again, 196 s after: waits
    assert plan.last_reclaim == 1304


def test_a_node_never_idle_reclaims_when_due() -> None:
    plan = schedule(reclaim_interval=3600)
    actions = [plan.next(t, active_calls=500) for t in range(2, 7202, 2)]
    reclaims = [t for t, a in zip(range(2, 7202, 2), actions, strict=True) if a is GcAction.RECLAIM_DUE]
    assert reclaims == [3600, 7200]
    assert actions.count(GcAction.FREEZE) == len(actions) - 2


def test_a_frozen_cycle_waits_for_the_reclaim_and_is_counted(unfrozen: None) -> None:
    now = [0.0]
    calls = [1]
    registry = CollectorRegistry()
    policy = GcPolicy(
        registry,
        lambda: calls[0],
        freeze_interval=2,
        idle_reclaim=10,
        reclaim_interval=3600,
        clock=lambda: now[0],
    )
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    now[0] = 2
    assert policy.tick() is GcAction.FREEZE
    del a, b
    gc.collect()  # a plain full collection no longer sees the frozen cycle
    assert gone() is not None
    calls[0] = 0
    now[0] = 12
    assert policy.tick() is GcAction.RECLAIM_IDLE
    assert gone() is None
    assert registry.get_sample_value("hangtar_gc_reclaims_total", {"reason": "idle"}) == 1
    assert registry.get_sample_value("hangtar_gc_reclaims_total", {"reason": "due"}) == 0
    reclaimed = registry.get_sample_value("hangtar_gc_reclaimed_objects_total")
    assert reclaimed is not None and reclaimed >= 2
    assert gc.get_freeze_count() > 0  # frozen again after the reclaim


def test_frozen_objects_without_a_cycle_are_freed_at_once(unfrozen: None) -> None:
    policy = GcPolicy(
        CollectorRegistry(),
        lambda: 1,
        freeze_interval=2,
        idle_reclaim=10,
        reclaim_interval=3600,
        clock=lambda: 2,
    )
    lone = Node()
    gone = weakref.ref(lone)
    assert policy.tick() is GcAction.FREEZE
    del lone
    assert gone() is None  # reference counting still frees what is frozen


async def test_off_means_no_freezing(unfrozen: None) -> None:
    policy = GcPolicy(
        CollectorRegistry(), lambda: 1, freeze_interval=0, idle_reclaim=10, reclaim_interval=3600
    )
    await policy.run()  # returns at once instead of ticking
    assert policy.schedule.frozen_since_reclaim is False


def test_the_reclaim_pause_is_logged_as_planned(
    unfrozen: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(gc_pauses, "_SLOW", 0.0)  # every collection counts as long
    registry = CollectorRegistry()
    pauses = GcPauses(registry)
    calls = [1]
    policy = GcPolicy(
        registry, lambda: calls[0], freeze_interval=2, idle_reclaim=1, reclaim_interval=3600, pauses=pauses
    )
    pauses.install()
    try:
        assert policy.tick() is GcAction.FREEZE
        calls[0] = 0
        policy.schedule.last_reclaim -= 10
        with caplog.at_level(logging.INFO, logger="siprec_server.gc_pauses"):
            assert policy.tick() is GcAction.RECLAIM_IDLE
    finally:
        pauses.uninstall()
    full = [r for r in caplog.records if "generation 2" in r.getMessage()]
    assert full and all(r.levelno == logging.INFO for r in full)
