"""The delivery outbox: what is to be sent where, claimed by workers on any node, exactly once.

How exactly-once holds across crashes and nodes:

- :meth:`Outbox.enqueue_due` puts one row per (target, recording, kind) in ``deliveries`` (a UNIQUE constraint,
  ``ON CONFLICT DO NOTHING``): a recording is never enqueued twice for a target, whatever runs concurrently.
- :meth:`Outbox.claim` takes due rows with ``FOR UPDATE SKIP LOCKED`` and marks them ``sending`` under a lease
  (owner, until) in the same statement, so two nodes never claim the same row. The upload runs outside any
  transaction. A node that dies leaves its rows ``sending``; once the lease runs out another node claims them,
  closing the dead attempt in the log as ``abandoned``.
- The transport finishes idempotently: a copy already complete under its final name (the node died after the
  rename, before :meth:`succeed`) counts as delivered, never a second copy (``siprec_server.delivery``).
- :meth:`succeed`, :meth:`retry` and :meth:`dead` are fenced by (owner, attempt number): a node whose lease was
  taken over cannot overwrite the newer attempt's result.

Retries wait :func:`storage.delivery_backoff.retry_delay`; after the target's ``max_attempts`` the row is
``dead`` until :meth:`replay`. Each delivered recording and notice is also audited (``recording.deliver``,
``delivery.notice``), in the transaction that marks it delivered.

Notices (GDPR Art. 19): :meth:`enqueue_notices` turns ``lifecycle_outbox`` events (erased, restricted,
unrestricted) of recordings delivered, or being delivered, to a target into rows of that kind for the target. A
notice is not claimed while its recording's own delivery to the target is still pending or sending. Erasures a
person caused (an erasure request, consent withdrawn or refused) are told; the end of our own retention period
is not (the recipient keeps and deletes its copy itself), nor the erasure of our copy after a delivery that
asked for it (:mod:`storage.delivery_copies`). A restriction lifted and placed again is told again.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from .audit import Actor, AuditEntry, AuditLog
from .delivery_filter import MATCHES
from .delivery_items import (
    IDEMPOTENCY_KEY_SQL,
    AttemptResult,
    DeliveryAttempt,
    DeliveryItem,
    DeliveryKind,
    DeliveryStatus,
)
from .delivery_schedule import Schedule
from .errors import LifecycleError, NotFoundError, translated

__all__ = [
    "AttemptResult",
    "DeliveryAttempt",
    "DeliveryItem",
    "DeliveryKind",
    "DeliveryStatus",
    "Outbox",
]

_MAX_LIST = 1000
_ABANDONED = "the lease ran out: the node stopped or stalled mid-attempt"
# What a target takes: finished recordings with audio (complete, or interrupted: the audio up to the failure).
DELIVERABLE = "r.status IN ('complete', 'interrupted') AND r.file_path IS NOT NULL AND r.ended_at IS NOT NULL"
_IN_HORIZON = f"r.tenant_id = t.tenant_id AND {DELIVERABLE} AND r.ended_at >= t.deliver_since AND {MATCHES}"

_ITEM = "SELECT d.*, t.max_attempts FROM deliveries d JOIN delivery_targets t ON t.id = d.target_id"
_DUE_TARGETS = """
    SELECT id, schedule, last_enqueued_at FROM delivery_targets
    WHERE enabled AND ($1::uuid IS NULL OR id = $1)
    ORDER BY id
    FOR UPDATE SKIP LOCKED
"""
_RECORDING_KEY = IDEMPOTENCY_KEY_SQL.format(target="t.id", recording="r.id", kind="'recording'")
_ENQUEUE = f"""
    INSERT INTO deliveries (target_id, tenant_id, recording_id, reference, kind, next_attempt_at,
                            idempotency_key, created_at)
    SELECT t.id, t.tenant_id, r.id, r.reference, 'recording', $2, {_RECORDING_KEY}, $2
    FROM delivery_targets t
    JOIN recordings r ON r.tenant_id = t.tenant_id
    LEFT JOIN retention_classes c ON c.id = r.retention_class_id
    WHERE t.id = $1 AND {_IN_HORIZON}
      AND NOT EXISTS (SELECT 1 FROM deliveries d
                      WHERE d.target_id = t.id AND d.recording_id = r.id AND d.kind = 'recording')
    ORDER BY r.ended_at, r.id
    ON CONFLICT DO NOTHING
"""  # noqa: S608 (constant fragments)
_MARK_RUN = "UPDATE delivery_targets SET last_enqueued_at = $2 WHERE id = $1"
_BACKFILL = """
    UPDATE delivery_targets SET deliver_since = least(deliver_since, $2), updated_at = $3 WHERE id = $1
    RETURNING tenant_id, name, deliver_since
"""
_WAITING = f"""
    SELECT count(*) FROM delivery_targets t
    JOIN recordings r ON r.tenant_id = t.tenant_id
    LEFT JOIN retention_classes c ON c.id = r.retention_class_id
    WHERE t.id = $1 AND {_IN_HORIZON}
      AND NOT EXISTS (SELECT 1 FROM deliveries d
                      WHERE d.target_id = t.id AND d.recording_id = r.id AND d.kind = 'recording')
"""  # noqa: S608

_CURSOR = "SELECT watermark FROM delivery_notice_cursor FOR UPDATE"
_NOTICE_KEY = IDEMPOTENCY_KEY_SQL.format(target="target_id", recording="recording_id", kind="event")
# Erasures the recipient is told of: those a person caused (an erasure request, consent withdrawn or refused).
# Not the end of our own retention period (the recipient keeps and deletes its copy itself), nor the erasure
# of our copy after a delivery that asked for it (the recipient's copy is then the one that counts).
_NOTICES = f"""
    WITH events AS (
        SELECT o.id, o.recording_id, o.event, o.created_at,
            CASE o.event
                WHEN 'erased' THEN coalesce((SELECT x.reason FROM disposals x WHERE x.recording_id = o.recording_id
                                             ORDER BY x.id DESC LIMIT 1), 'erased')
                WHEN 'restricted' THEN 'legal_hold'
                ELSE 'hold_released'
            END AS reason
        FROM lifecycle_outbox o
        WHERE o.id > $1 AND NOT EXISTS (SELECT 1 FROM delivery_notice_events s WHERE s.event_id = o.id)
        ORDER BY o.id
        LIMIT $2
    ), seen AS (
        INSERT INTO delivery_notice_events (event_id) SELECT id FROM events
    ), latest AS (
        SELECT DISTINCT ON (d.target_id, d.recording_id, e.event)
            d.target_id, d.tenant_id, d.recording_id, d.reference, d.remote_path, e.event,
            e.created_at AS event_at, e.reason
        FROM events e
        JOIN deliveries d ON d.recording_id = e.recording_id AND d.kind = 'recording'
                         AND d.status IN ('delivered', 'sending')
        WHERE NOT (e.event = 'erased' AND (
            e.reason IN ('expired', 'not_kept')
            OR EXISTS (SELECT 1 FROM deliveries y
                       WHERE y.recording_id = e.recording_id AND y.copy_state IN ('erasing', 'erased'))))
        ORDER BY d.target_id, d.recording_id, e.event, e.id DESC
    ), notices AS (
        INSERT INTO deliveries AS n (target_id, tenant_id, recording_id, reference, kind, next_attempt_at,
                                     idempotency_key, remote_path, event_at, reason, created_at)
        SELECT target_id, tenant_id, recording_id, reference, event, $3, {_NOTICE_KEY}, remote_path, event_at,
               reason, $3
        FROM latest
        ON CONFLICT ON CONSTRAINT deliveries_once DO UPDATE SET
            status = 'pending', attempt_floor = n.attempts, next_attempt_at = EXCLUDED.next_attempt_at,
            remote_path = EXCLUDED.remote_path, event_at = EXCLUDED.event_at, reason = EXCLUDED.reason,
            last_error = NULL, delivered_at = NULL, bytes = NULL, sha256 = NULL
        WHERE n.status IN ('delivered', 'dead') AND n.event_at < EXCLUDED.event_at
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM notices) AS notices
"""  # noqa: S608
# Events read ten minutes ago are behind the watermark for good (see migration 0009).
_ADVANCE = """
    WITH moved AS (
        UPDATE delivery_notice_cursor SET watermark = greatest(watermark, coalesce(
            (SELECT max(event_id) FROM delivery_notice_events WHERE seen_at < now() - interval '10 minutes'), 0))
        RETURNING watermark
    )
    DELETE FROM delivery_notice_events WHERE event_id <= (SELECT watermark FROM moved)
"""

_CLAIM = f"""
    WITH picked AS (
        SELECT d.id FROM deliveries d JOIN delivery_targets t ON t.id = d.target_id
        WHERE t.enabled AND ($4::uuid IS NULL OR d.target_id = $4)
          AND ((d.status = 'pending' AND d.next_attempt_at <= $2) OR (d.status = 'sending' AND d.lease_until <= $2))
          AND (d.kind = 'recording' OR NOT EXISTS (
                  SELECT 1 FROM deliveries x
                  WHERE x.target_id = d.target_id AND x.recording_id = d.recording_id AND x.kind = 'recording'
                    AND x.status IN ('pending', 'sending')))
        ORDER BY d.next_attempt_at, d.id
        LIMIT $3
        FOR UPDATE OF d SKIP LOCKED
    ), closed AS (
        UPDATE delivery_attempts a SET ended_at = $2, result = 'abandoned', error = '{_ABANDONED}'
        FROM picked WHERE a.delivery_id = picked.id AND a.ended_at IS NULL
    ), claimed AS (
        UPDATE deliveries d SET status = 'sending', lease_owner = $1, lease_until = $5, attempts = d.attempts + 1
        FROM picked WHERE d.id = picked.id
        RETURNING d.*
    ), logged AS (
        INSERT INTO delivery_attempts (delivery_id, attempt, node, started_at)
        SELECT id, attempts, $1, $2 FROM claimed
    )
    SELECT c.*, t.max_attempts FROM claimed c JOIN delivery_targets t ON t.id = c.target_id
    ORDER BY c.next_attempt_at, c.id
"""  # noqa: S608
# Fenced by owner and attempt number: a node whose lease another took over changes nothing.
_SETTLE = """
    WITH settled AS (
        UPDATE deliveries SET status = $4::text, next_attempt_at = coalesce($5::timestamptz, next_attempt_at),
            last_error = $6::text, remote_path = coalesce($7::text, remote_path),
            bytes = coalesce($8::bigint, bytes), sha256 = coalesce($9::text, sha256),
            delivered_at = CASE WHEN $4::text = 'delivered' THEN $10::timestamptz END,
            lease_owner = NULL, lease_until = NULL
        WHERE id = $1 AND status = 'sending' AND lease_owner = $2 AND attempts = $3
        RETURNING id, attempts
    )
    UPDATE delivery_attempts a SET ended_at = $10::timestamptz, result = $11, error = $6::text,
        remote_path = $7::text, bytes = $8::bigint, sha256 = $9::text
    FROM settled WHERE a.delivery_id = settled.id AND a.attempt = settled.attempts
    RETURNING a.delivery_id
"""
_REPLAY = """
    UPDATE deliveries SET status = 'pending', attempt_floor = attempts, next_attempt_at = $2, last_error = NULL
    WHERE id = $1 AND status = 'dead'
    RETURNING id
"""
_COPY_OF = f"{_ITEM} WHERE d.target_id = $1 AND d.recording_id = $2 AND d.kind = 'recording'"
_GET = f"{_ITEM} WHERE d.id = $1"
_ITEMS = f"""
    {_ITEM}
    WHERE ($1::text IS NULL OR d.status = $1) AND ($2::uuid IS NULL OR d.target_id = $2)
      AND ($3::uuid IS NULL OR d.recording_id = $3) AND ($4::uuid IS NULL OR d.tenant_id = $4)
    ORDER BY d.id DESC
    LIMIT $5
"""
_LOG = """
    SELECT a.*, d.target_id, t.name AS target_name, d.recording_id, d.reference, d.kind
    FROM delivery_attempts a
    JOIN deliveries d ON d.id = a.delivery_id
    JOIN delivery_targets t ON t.id = d.target_id
    WHERE ($1::uuid IS NULL OR d.recording_id = $1) AND ($2::uuid IS NULL OR d.target_id = $2)
      AND ($3::bigint IS NULL OR d.id = $3)
    ORDER BY a.started_at DESC, a.delivery_id DESC, a.attempt DESC
    LIMIT $4
"""
_BACKLOG = """
    SELECT count(*) AS waiting, min(d.created_at) AS oldest
    FROM deliveries d JOIN delivery_targets t ON t.id = d.target_id
    WHERE d.status IN ('pending', 'sending') AND t.enabled
"""


class Outbox:
    """The ``deliveries`` and ``delivery_attempts`` SQL; ``clock`` stamps rows and audit entries."""

    def __init__(self, pool: Any, *, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._pool = pool
        self._audit = audit
        self._clock = clock

    # -- filling the outbox --
    async def enqueue_due(self, now: datetime, *, target_id: UUID | None = None, force: bool = False) -> int:
        """For every enabled target whose schedule is due at ``now`` (each one with ``force``; only
        ``target_id`` when given): enqueue each finished recording of its tenant that it takes and does not
        have yet. Targets another node is enqueuing right now are skipped. Returns the rows added."""
        added = 0
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("enqueue recordings for delivery"):
                for row in await conn.fetch(_DUE_TARGETS, target_id):
                    if not force and not Schedule.from_json(row["schedule"]).is_due(
                        now, row["last_enqueued_at"]
                    ):
                        continue
                    status = await conn.execute(_ENQUEUE, row["id"], now)
                    added += int(status.rsplit(" ", 1)[1])
                    await conn.execute(_MARK_RUN, row["id"], now)
        return added

    async def backfill(self, target_id: UUID, since: datetime, *, actor: Actor) -> int:
        """Also send the recordings finished since ``since`` (a target only takes those finished after it was
        created): they go with the target's next due pass. Returns how many wait for it now."""
        if since.utcoffset() is None:
            raise ValueError("since must be timezone-aware")
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("backfill a delivery target"):
                row = await conn.fetchrow(_BACKFILL, target_id, since, self._clock())
                if row is None:
                    raise NotFoundError(f"no delivery target {target_id}")
                waiting = int(await conn.fetchval(_WAITING, target_id))
            await self._audit.append(
                conn,
                AuditEntry(
                    actor=actor,
                    action="delivery_target.backfill",
                    tenant_id=row["tenant_id"],
                    object_kind="delivery_target",
                    object_id=str(target_id),
                    details={"name": row["name"], "since": since.isoformat(), "waiting": waiting},
                ),
            )
        return waiting

    async def enqueue_notices(self, now: datetime, *, batch: int = 500) -> int:
        """Turn new lifecycle events of delivered recordings into notices for their targets (GDPR Art. 19).
        One node at a time does this (the cursor row's lock). Returns the notices added or re-armed."""
        added = 0
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("enqueue erasure and restriction notices"):
                watermark = await conn.fetchval(_CURSOR)
                while True:
                    row = await conn.fetchrow(_NOTICES, watermark, batch, now)
                    added += int(row["notices"])
                    if row["events"] < batch:
                        break
                await conn.execute(_ADVANCE)
        return added

    # -- working through it --
    async def release_own(self, owner: str) -> int:
        """At a node's start: end the leases its previous process held (it died mid-attempt), so those rows
        are claimed again at once instead of when the lease runs out; the dead attempts are then closed as
        abandoned. Returns the leases ended."""
        with translated("release this node's delivery leases"):
            status: str = await self._pool.execute(
                "UPDATE deliveries SET lease_until = $2 WHERE status = 'sending' AND lease_owner = $1",
                owner,
                self._clock(),
            )
        return int(status.split()[-1])

    async def claim(
        self, owner: str, limit: int, lease: timedelta, *, target_id: UUID | None = None
    ) -> list[DeliveryItem]:
        """Up to ``limit`` due rows, now ``sending`` under ``owner``'s lease until the clock plus ``lease``:
        pending ones due, and sending ones whose lease ran out (their old attempt closed as abandoned)."""
        if limit < 1 or lease <= timedelta(0):
            raise ValueError("claim at least one row, for a positive lease")
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("claim deliveries"):
                rows = await conn.fetch(_CLAIM, owner, now, limit, target_id, now + lease)
        return [DeliveryItem.from_row(row) for row in rows]

    async def succeed(self, item: DeliveryItem, *, remote_path: str, bytes: int, sha256: str | None) -> bool:
        """The transport confirmed the copy (size and hash checked). False when the lease was taken over."""
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            settled = await self._settle(
                conn,
                item,
                DeliveryStatus.DELIVERED,
                AttemptResult.DELIVERED,
                None,
                None,
                now,
                remote_path=remote_path,
                size=bytes,
                sha256=sha256,
            )
            if settled:
                await self._audit.append(conn, _delivered_entry(item, remote_path, bytes, sha256))
        return settled

    async def retry(self, item: DeliveryItem, error: str, at: datetime) -> DeliveryStatus | None:
        """The attempt failed: ``pending`` again from ``at``, or ``dead`` if it was the target's last attempt.
        The new status; None when the lease was taken over."""
        if item.failures >= item.max_attempts:
            return await self.dead(item, f"{error} (gave up after {item.failures} attempts)")
        async with self._pool.acquire() as conn, conn.transaction():
            settled = await self._settle(
                conn, item, DeliveryStatus.PENDING, AttemptResult.RETRY, at, error, self._clock()
            )
        return DeliveryStatus.PENDING if settled else None

    async def dead(self, item: DeliveryItem, error: str) -> DeliveryStatus | None:
        """Give up now (a failure no retry can fix: a wrong host key, a refused login)."""
        async with self._pool.acquire() as conn, conn.transaction():
            settled = await self._settle(
                conn, item, DeliveryStatus.DEAD, AttemptResult.DEAD, None, error, self._clock()
            )
        return DeliveryStatus.DEAD if settled else None

    async def replay(self, item_id: int, *, actor: Actor) -> DeliveryItem:
        """Send a dead row again: pending now, with the target's full count of attempts.
        :class:`LifecycleError` when it is not dead."""
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("replay a delivery"):
                if await conn.fetchval(_REPLAY, item_id, now) is None:
                    item = await self._get(conn, item_id)
                    raise LifecycleError(
                        f"delivery {item_id} is {item.status.value}, not dead: nothing to replay"
                    )
                item = await self._get(conn, item_id)
            await self._audit.append(
                conn,
                AuditEntry(
                    actor=actor,
                    action="delivery.replay",
                    tenant_id=item.tenant_id,
                    object_kind="delivery",
                    object_id=str(item.id),
                    details={
                        "target_id": str(item.target_id),
                        "recording_id": str(item.recording_id),
                        "kind": item.kind.value,
                    },
                ),
            )
        return item

    # -- reading it --
    async def get(self, item_id: int) -> DeliveryItem:
        async with self._pool.acquire() as conn:
            return await self._get(conn, item_id)

    async def copy_of(self, item: DeliveryItem) -> DeliveryItem | None:
        """For a notice: the delivery of the recording itself to the same target (where the copy lies)."""
        with translated("look up a delivered copy"):
            row = await self._pool.fetchrow(_COPY_OF, item.target_id, item.recording_id)
        return None if row is None else DeliveryItem.from_row(row)

    async def items(
        self,
        *,
        status: DeliveryStatus | None = None,
        target_id: UUID | None = None,
        recording_id: UUID | None = None,
        tenant_id: UUID | None = None,
        limit: int = 100,
    ) -> builtins.list[DeliveryItem]:
        """Newest first; dead letters with ``status=DeliveryStatus.DEAD``."""
        _check_limit(limit)
        with translated("list deliveries"):
            rows = await self._pool.fetch(
                _ITEMS, None if status is None else status.value, target_id, recording_id, tenant_id, limit
            )
        return [DeliveryItem.from_row(row) for row in rows]

    async def log(
        self,
        *,
        recording_id: UUID | None = None,
        target_id: UUID | None = None,
        delivery_id: int | None = None,
        limit: int = 100,
    ) -> builtins.list[DeliveryAttempt]:
        """The delivery log, newest attempt first."""
        _check_limit(limit)
        with translated("read the delivery log"):
            rows = await self._pool.fetch(_LOG, recording_id, target_id, delivery_id, limit)
        return [DeliveryAttempt.from_row(row) for row in rows]

    async def backlog(self) -> tuple[int, float]:
        """(rows waiting for enabled targets, seconds since the oldest of them was enqueued; 0 when none)."""
        with translated("measure the delivery backlog"):
            row = await self._pool.fetchrow(_BACKLOG)
        oldest = row["oldest"]
        age = 0.0 if oldest is None else max(0.0, (self._clock() - oldest).total_seconds())
        return int(row["waiting"]), age

    async def _get(self, conn: Any, item_id: int) -> DeliveryItem:
        with translated("look up a delivery"):
            row = await conn.fetchrow(_GET, item_id)
        if row is None:
            raise NotFoundError(f"no delivery {item_id}")
        return DeliveryItem.from_row(row)

    async def _settle(
        self,
        conn: Any,
        item: DeliveryItem,
        status: DeliveryStatus,
        result: AttemptResult,
        at: datetime | None,
        error: str | None,
        now: datetime,
        *,
        remote_path: str | None = None,
        size: int | None = None,
        sha256: str | None = None,
    ) -> bool:
        if item.lease_owner is None:
            raise ValueError("only a claimed delivery can be settled")
        with translated("record a delivery attempt"):
            row = await conn.fetchrow(
                _SETTLE,
                item.id,
                item.lease_owner,
                item.attempts,
                status.value,
                at,
                None if error is None else error[:2000],
                remote_path,
                size,
                sha256,
                now,
                result.value,
            )
        return row is not None


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= _MAX_LIST:
        raise ValueError(f"limit must be between 1 and {_MAX_LIST}")


def _delivered_entry(item: DeliveryItem, remote_path: str, size: int, sha256: str | None) -> AuditEntry:
    return AuditEntry(
        actor=Actor(name="system:delivery", origin=item.lease_owner),
        action="recording.deliver" if item.kind is DeliveryKind.RECORDING else "delivery.notice",
        tenant_id=item.tenant_id,
        object_kind="recording",
        object_id=str(item.recording_id),
        details={
            "delivery_id": item.id,
            "target_id": str(item.target_id),
            "kind": item.kind.value,
            "attempt": item.attempts,
            "remote_path": remote_path,
            "bytes": size,
            "sha256": sha256,
        },
    )
