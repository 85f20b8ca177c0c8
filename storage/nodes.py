"""The nodes of a deployment in the shared catalogue: who runs, since when, last seen, draining, how busy.

Each ``hangtar serve`` registers under its node name at start (a restart clears ``draining`` and
``stopped_at``), refreshes ``seen_at`` and its active call count at every heartbeat, and marks itself stopped
on a clean exit. Operators read the table (``hangtar nodes``) to plan a rolling restart and to tell a node that
died (not seen for a while, never stopped) from one that is merely quiet. The table steers nothing: the SIP
dispatcher in front decides where calls go, from each node's OPTIONS answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .errors import translated

__all__ = ["NodeRegistry", "NodeState", "valid_node_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")  # the table's CHECK nodes_name_format
_COLUMNS = "name, version, sip_address, started_at, seen_at, draining, active_calls, stopped_at"


def valid_node_name(name: str) -> bool:
    """Whether ``name`` can name a node: a host name or a label, 1-63 characters."""
    return bool(_NAME.match(name))


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeState:
    name: str
    version: str
    sip_address: str
    started_at: datetime
    seen_at: datetime
    draining: bool
    active_calls: int
    stopped_at: datetime | None

    def silent_for(self, now: datetime) -> timedelta:
        return now - self.seen_at

    def presumed_running(self, now: datetime, heartbeat: float) -> bool:
        """Not stopped, and seen within three heartbeats."""
        return self.stopped_at is None and self.silent_for(now) <= timedelta(seconds=3 * heartbeat)


class NodeRegistry:
    """The ``nodes`` table (migration 0010)."""

    def __init__(self, pool: Any, *, clock: Callable[[], datetime]) -> None:
        self._pool = pool
        self._clock = clock

    async def register(self, name: str, *, version: str, sip_address: str) -> NodeState:
        """This node starts (again): accepting calls, none active."""
        if not valid_node_name(name):
            raise ValueError(f"{name!r} cannot name a node: use letters, digits, '.', '_' or '-' (1-63)")
        now = self._clock()
        with translated("register this node"):
            row = await self._pool.fetchrow(
                f"""
                INSERT INTO nodes (name, version, sip_address, started_at, seen_at)
                VALUES ($1, $2, $3, $4, $4)
                ON CONFLICT (name) DO UPDATE SET
                    version = EXCLUDED.version, sip_address = EXCLUDED.sip_address,
                    started_at = EXCLUDED.started_at, seen_at = EXCLUDED.seen_at,
                    draining = false, active_calls = 0, stopped_at = NULL
                RETURNING {_COLUMNS}
                """,  # noqa: S608 (column list is a constant)
                name,
                version,
                sip_address,
                now,
            )
        return _state(row)

    async def heartbeat(self, name: str, *, draining: bool, active_calls: int) -> None:
        with translated("record this node's heartbeat"):
            await self._pool.execute(
                "UPDATE nodes SET seen_at = $2, draining = $3, active_calls = $4 WHERE name = $1",
                name,
                self._clock(),
                draining,
                active_calls,
            )

    async def stopped(self, name: str) -> None:
        with translated("record this node's stop"):
            await self._pool.execute(
                "UPDATE nodes SET stopped_at = $2, seen_at = $2, active_calls = 0 WHERE name = $1",
                name,
                self._clock(),
            )

    async def get(self, name: str) -> NodeState | None:
        with translated("read a node"):
            row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM nodes WHERE name = $1", name)  # noqa: S608
        return None if row is None else _state(row)

    async def list(self) -> list[NodeState]:
        with translated("list the nodes"):
            rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM nodes ORDER BY name")  # noqa: S608
        return [_state(row) for row in rows]


def _state(row: Any) -> NodeState:
    return NodeState(
        name=row["name"],
        version=row["version"],
        sip_address=row["sip_address"],
        started_at=row["started_at"],
        seen_at=row["seen_at"],
        draining=row["draining"],
        active_calls=row["active_calls"],
        stopped_at=row["stopped_at"],
    )
