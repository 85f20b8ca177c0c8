"""The nodes table: registration, heartbeats, stop, and what an operator reads from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from storage.nodes import NodeRegistry, valid_node_name

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def test_a_node_registers_beats_and_stops(pool: asyncpg.Pool) -> None:
    clock = Clock()
    nodes = NodeRegistry(pool, clock=clock)
    first = await nodes.register("rec-1", version="0.9", sip_address="192.0.2.10:5060")
    assert (first.started_at, first.seen_at, first.draining, first.active_calls) == (T0, T0, False, 0)
    assert first.presumed_running(T0 + timedelta(seconds=30), heartbeat=10)
    assert not first.presumed_running(T0 + timedelta(seconds=31), heartbeat=10)  # three beats missed: silent

    clock.now = T0 + timedelta(seconds=10)
    await nodes.heartbeat("rec-1", draining=True, active_calls=42)
    beat = await nodes.get("rec-1")
    assert beat is not None and (beat.seen_at, beat.draining, beat.active_calls) == (clock.now, True, 42)

    clock.now = T0 + timedelta(seconds=15)
    await nodes.stopped("rec-1")
    stopped = await nodes.get("rec-1")
    assert stopped is not None and stopped.stopped_at == clock.now and stopped.active_calls == 0
    assert not stopped.presumed_running(clock.now, heartbeat=10)

    clock.now = T0 + timedelta(minutes=5)  # a restart: accepting again, no longer stopped
    again = await nodes.register("rec-1", version="1.0", sip_address="192.0.2.10:5060")
    assert (again.version, again.started_at, again.draining, again.stopped_at) == (
        "1.0",
        clock.now,
        False,
        None,
    )


async def test_nodes_are_listed_by_name_and_unknown_ones_are_none(pool: asyncpg.Pool) -> None:
    nodes = NodeRegistry(pool, clock=Clock())
    await nodes.register("rec-2", version="1.0", sip_address="192.0.2.11:5060")
    await nodes.register("rec-1", version="1.0", sip_address="192.0.2.10:5060")
    assert [n.name for n in await nodes.list()] == ["rec-1", "rec-2"]
    assert await nodes.get("rec-3") is None


@pytest.mark.parametrize("name", ["", "-rec", "rec 1", "rec/1", "x" * 64, "réc"])
async def test_names_that_cannot_name_a_node_are_refused(pool: asyncpg.Pool, name: str) -> None:
    assert not valid_node_name(name)
    with pytest.raises(ValueError, match="cannot name a node"):
        await NodeRegistry(pool, clock=Clock()).register(name, version="1.0", sip_address="192.0.2.10:5060")


def test_host_names_and_labels_name_nodes() -> None:
    assert all(valid_node_name(n) for n in ("rec-1", "srs01.dc2", "node_3", "x" * 63))
