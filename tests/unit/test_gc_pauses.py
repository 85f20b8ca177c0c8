"""Collector pauses reach the metric by generation, and a long one is logged."""

from __future__ import annotations

import gc
import logging

import pytest
from prometheus_client import CollectorRegistry

from siprec_server import gc_pauses
from siprec_server.gc_pauses import GcPauses


def count(registry: CollectorRegistry, generation: str) -> float:
    value = registry.get_sample_value("hangtar_gc_pause_seconds_count", {"generation": generation})
    assert value is not None  # every generation is exported from the start
    return value


def test_each_collection_is_timed_under_its_generation() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses(registry)
    pauses.install()
    try:
        before = [count(registry, g) for g in "012"]
        gc.collect(2)
        gc.collect(0)
    finally:
        pauses.uninstall()
    assert count(registry, "2") == before[2] + 1
    assert count(registry, "0") >= before[0] + 1
    gc.collect(2)  # uninstalled: no longer counted
    assert count(registry, "2") == before[2] + 1


def test_a_long_pause_is_logged(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(gc_pauses, "_SLOW", 0.0)
    pauses = GcPauses(CollectorRegistry())
    pauses.install()
    try:
        with caplog.at_level(logging.WARNING, logger="siprec_server.gc_pauses"):
            gc.collect(2)
    finally:
        pauses.uninstall()
    assert any("garbage collection of generation 2 took" in r.getMessage() for r in caplog.records)


def test_a_planned_long_pause_is_logged_as_information(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(gc_pauses, "_SLOW", 0.0)
    pauses = GcPauses(CollectorRegistry())
    pauses.install()
    try:
        with caplog.at_level(logging.INFO, logger="siprec_server.gc_pauses"), pauses.planned():
            gc.collect(2)
    finally:
        pauses.uninstall()
    long = [r for r in caplog.records if "garbage collection of generation 2 took" in r.getMessage()]
    assert long and all(r.levelno == logging.INFO for r in long)
