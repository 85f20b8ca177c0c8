"""Restriction / legal hold (GDPR Art. 18): placing holds, listing them, and the two-person release.

A hold on a recording, or on a number's calls within an optional time range, stops every deletion path at
once: the database refuses to delete a held row (migration 0004), and erasure, discard, withdrawal and the
sweeper check first and say which hold keeps it. Placing or releasing a hold writes a ``restricted`` /
``unrestricted`` outbox event for every recording it covers (GDPR Art. 19: recipients of copies restrict
theirs too) and an audit entry, in the same transaction. The rules are :mod:`storage.hold_rules`.

A :data:`storage.scope.TenantScope` bounds every call: a tenant places, sees and releases only its own holds, on
its own recordings; :data:`~storage.scope.ALL_TENANTS` is the operator, who sees every hold and whose hold on a
number covers every tenant's calls. ``None`` reaches the holds without a tenant (the operator's, and those on
unclaimed recordings) and places holds on unclaimed recordings; a number hold for the unclaimed calls alone
cannot be stored apart from the operator's (a hold row without a tenant covers every tenant), so it is refused.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from .audit import Actor, AuditEntry, AuditLog
from .errors import NotFoundError, TwoPersonRuleError, translated
from .hold_rules import Hold, check_approval, check_release_request, check_time_range
from .lifecycle_rows import ACTIVE_HOLD_ON, HOLD_COVERS, Lock, number_for, recording_facts
from .models import format_timestamp
from .scope import ALL_TENANTS, AllTenants, TenantScope, scope_args, scope_sql

__all__ = ["HoldFilter", "HoldPlacement", "HoldRelease", "HoldService"]

_INSERT = """
    INSERT INTO holds (id, tenant_id, recording_id, number, from_at, until_at, reason, placed_by, placed_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    RETURNING *
"""
_GET = f"SELECT * FROM holds WHERE id = $1 AND {scope_sql('tenant_id', 2)}"  # noqa: S608 (constant fragment)
_LIST = f"""
    SELECT * FROM holds
    WHERE {scope_sql("tenant_id", 1)}
      AND ($3::boolean IS NULL OR (released_at IS NULL) = $3)
    ORDER BY placed_at DESC, id
"""  # noqa: S608
# The recordings a hold covers (the trigger's test), locked against deletion until the hold commits.
_COVERED = f"""
    SELECT r.id, r.tenant_id, r.reference FROM recordings r, holds h
    WHERE h.id = $1 AND {HOLD_COVERS}
    ORDER BY r.started_at, r.id
    FOR SHARE OF r
"""  # noqa: S608
_REQUEST = """
    UPDATE holds SET release_requested_by = $2, release_requested_at = $3
    WHERE id = $1 AND released_at IS NULL AND release_requested_by IS NULL
    RETURNING *
"""
_APPROVE = """
    UPDATE holds SET released_by = $2, released_at = $3
    WHERE id = $1 AND released_at IS NULL AND release_requested_by IS NOT NULL
    RETURNING *
"""
_OUTBOX = """
    INSERT INTO lifecycle_outbox (tenant_id, recording_id, reference, event, created_at)
    SELECT x.tenant_id, x.id, x.reference, $2, $3 FROM unnest($1::uuid[]) AS u (id)
    JOIN recordings x ON x.id = u.id
"""
_STILL_HELD = f"SELECT r.id FROM recordings r WHERE r.id = ANY ($1::uuid[]) AND {ACTIVE_HOLD_ON}"  # noqa: S608


class HoldFilter(enum.StrEnum):
    ACTIVE = "active"
    RELEASED = "released"
    ALL = "all"


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldPlacement:
    hold: Hold
    covered: tuple[UUID, ...]  # the recordings it restricts now (a number hold also covers later calls)

    def to_json(self) -> dict[str, Any]:
        return {**self.hold.to_json(), "covered": [str(recording_id) for recording_id in self.covered]}


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldRelease:
    hold: Hold
    unrestricted: tuple[UUID, ...]  # covered recordings no other active hold keeps: deletable again

    def to_json(self) -> dict[str, Any]:
        return {
            **self.hold.to_json(),
            "unrestricted": [str(recording_id) for recording_id in self.unrestricted],
        }


class HoldService:
    def __init__(
        self,
        pool: Any,
        *,
        audit: AuditLog,
        clock: Callable[[], datetime],
        id_factory: Callable[[], UUID] = uuid4,
    ) -> None:
        self._pool = pool
        self._audit = audit
        self._clock = clock
        self._new_id = id_factory

    async def place_on_recording(
        self, scope: TenantScope, recording_id: UUID, *, reason: str, actor: Actor
    ) -> HoldPlacement:
        """Restrict one recording (:class:`NotFoundError` outside ``scope``); the hold is its tenant's."""
        async with self._pool.acquire() as conn, conn.transaction():
            facts = await recording_facts(conn, scope, recording_id, lock=Lock.SHARE)
            hold = Hold(
                id=self._new_id(),
                tenant_id=facts.tenant_id,
                recording_id=facts.id,
                reason=reason.strip(),
                placed_by=actor.name,
                placed_at=self._clock(),
            )
            return await self._place(conn, hold, actor)

    async def place_on_number(
        self,
        scope: UUID | AllTenants,
        number: str,
        *,
        reason: str,
        actor: Actor,
        from_at: datetime | None = None,
        until_at: datetime | None = None,
    ) -> HoldPlacement:
        """Restrict a number's calls (any written form; within ``[from_at, until_at)`` when given), the ones
        recorded so far and those still to come: the tenant's calls, or with :data:`ALL_TENANTS` every tenant's
        and the unclaimed ones. ``ValueError`` for a number or range that is not one."""
        if scope is None:
            raise ValueError(
                "a hold on a number is a tenant's or the operator's (ALL_TENANTS), not unclaimed-only"
            )
        check_time_range(from_at, until_at)
        async with self._pool.acquire() as conn, conn.transaction():
            key = await number_for(conn, scope, number)
            hold = Hold(
                id=self._new_id(),
                tenant_id=None if scope is ALL_TENANTS else scope,
                number=key,
                from_at=from_at,
                until_at=until_at,
                reason=reason.strip(),
                placed_by=actor.name,
                placed_at=self._clock(),
            )
            return await self._place(conn, hold, actor)

    async def get(self, scope: TenantScope, hold_id: UUID) -> Hold:
        with translated("look up a hold"):
            row = await self._pool.fetchrow(_GET, hold_id, *scope_args(scope))
        if row is None:
            raise NotFoundError(f"no hold {hold_id}")
        return Hold.from_row(row)

    async def list(self, scope: TenantScope, *, which: HoldFilter = HoldFilter.ACTIVE) -> builtins.list[Hold]:
        """Newest first."""
        active = {HoldFilter.ACTIVE: True, HoldFilter.RELEASED: False, HoldFilter.ALL: None}[
            HoldFilter(which)
        ]
        with translated("list holds"):
            rows = await self._pool.fetch(_LIST, *scope_args(scope), active)
        return [Hold.from_row(row) for row in rows]

    async def request_release(self, scope: TenantScope, hold_id: UUID, actor: Actor) -> Hold:
        """The first person asks; the hold stays in force until a different person approves."""
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            hold = await _locked(conn, scope, hold_id)
            check_release_request(hold, actor.name)
            with translated("request the release of a hold"):
                row = await conn.fetchrow(_REQUEST, hold.id, actor.name, now)
            updated = Hold.from_row(row)
            await self._audit.append(conn, _entry(actor, "hold.request_release", updated, {}))
        return updated

    async def approve_release(self, scope: TenantScope, hold_id: UUID, actor: Actor) -> HoldRelease:
        """The second person approves: the hold ends (:class:`TwoPersonRuleError` for the one who asked)."""
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            hold = await _locked(conn, scope, hold_id)
            check_approval(hold, actor.name)
            covered = await _covered(conn, hold.id)
            with translated("release a hold"):
                try:
                    row = await conn.fetchrow(_APPROVE, hold.id, actor.name, now)
                except asyncpg.CheckViolationError as exc:  # holds_two_people
                    raise TwoPersonRuleError(f"hold {hold.id} needs a second person to approve") from exc
                still_held = {r["id"] for r in await conn.fetch(_STILL_HELD, covered)}
                unrestricted = [recording_id for recording_id in covered if recording_id not in still_held]
                await conn.execute(_OUTBOX, unrestricted, "unrestricted", now)
            released = Hold.from_row(row)
            await self._audit.append(
                conn,
                _entry(
                    actor,
                    "hold.release",
                    released,
                    {"requested_by": released.release_requested_by, "unrestricted": len(unrestricted)},
                ),
            )
        return HoldRelease(hold=released, unrestricted=tuple(unrestricted))

    async def _place(self, conn: Any, hold: Hold, actor: Actor) -> HoldPlacement:
        with translated("place a hold"):
            row = await conn.fetchrow(
                _INSERT,
                hold.id,
                hold.tenant_id,
                hold.recording_id,
                hold.number,
                hold.from_at,
                hold.until_at,
                hold.reason,
                hold.placed_by,
                hold.placed_at,
            )
            placed = Hold.from_row(row)
            covered = await _covered(conn, placed.id)
            await conn.execute(_OUTBOX, covered, "restricted", placed.placed_at)
        details: dict[str, Any] = {
            "target": "recording" if placed.recording_id is not None else "number",
            "recording_id": None if placed.recording_id is None else str(placed.recording_id),
            "from_at": format_timestamp(placed.from_at),
            "until_at": format_timestamp(placed.until_at),
            "reason": placed.reason,
            "covered": len(covered),
        }
        await self._audit.append(conn, _entry(actor, "hold.place", placed, details))
        return HoldPlacement(hold=placed, covered=tuple(covered))


async def _locked(conn: Any, scope: TenantScope, hold_id: UUID) -> Hold:
    with translated("look up a hold"):
        row = await conn.fetchrow(f"{_GET} FOR UPDATE", hold_id, *scope_args(scope))
    if row is None:
        raise NotFoundError(f"no hold {hold_id}")
    return Hold.from_row(row)


async def _covered(conn: Any, hold_id: UUID) -> list[UUID]:
    with translated("find the recordings a hold covers"):
        rows = await conn.fetch(_COVERED, hold_id)
    return [row["id"] for row in rows]


def _entry(actor: Actor, action: str, hold: Hold, details: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        actor=actor,
        action=action,
        tenant_id=hold.tenant_id,
        object_kind="hold",
        object_id=str(hold.id),
        details=details,
    )
