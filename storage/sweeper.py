"""The retention sweeper: deletes every finished recording whose retention period has ended.

A pass deletes each finished recording (status other than ``recording``) with ``expires_at <= as_of``, and
each one whose consent was withdrawn while a hold kept it and that no hold keeps any more (GDPR Art. 7(3)).
Held recordings are skipped and counted (Art. 18). Work is claimed in batches with ``FOR UPDATE SKIP
LOCKED``, one transaction per batch, so several nodes sweeping at once each take different recordings and
never wait on, nor delete twice, another's. Each deletion is :func:`storage.disposal.dispose` in a savepoint:
one recording that fails (a file that cannot be removed) is counted and left for the next pass, the rest of
its batch goes on. A pass writes one audit entry with its counts, not one per recording; the disposal log has
the per-recording rows. A pass is the operator's: it covers every tenant's recordings and the unclaimed ones.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from .audit import Actor, AuditEntry, AuditLog
from .blobs import FileBlobStore
from .consent import RecordingConsent
from .disposal import DisposalReason, dispose
from .errors import CatalogueError, NotFoundError, UnderHoldError, translated
from .lifecycle_rows import ACTIVE_HOLD_ON, FACT_COLUMNS, RecordingFacts
from .models import format_timestamp

__all__ = ["SweepItem", "SweepReport", "Sweeper"]

log = logging.getLogger(__name__)

_DUE = "r.status <> 'recording' AND (r.expires_at <= $1 OR r.consent_state = 'withdrawn')"
_CLAIM = f"""
    SELECT {FACT_COLUMNS}
    FROM recordings r LEFT JOIN retention_classes c ON c.id = r.retention_class_id
    WHERE {_DUE} AND NOT {ACTIVE_HOLD_ON} AND NOT (r.id = ANY ($3::uuid[]))
    ORDER BY r.expires_at NULLS LAST, r.id
    LIMIT $2
    FOR UPDATE OF r SKIP LOCKED
"""  # noqa: S608 (constant fragments)
_PREVIEW = f"""
    SELECT {FACT_COLUMNS}
    FROM recordings r LEFT JOIN retention_classes c ON c.id = r.retention_class_id
    WHERE {_DUE} AND NOT {ACTIVE_HOLD_ON}
    ORDER BY r.expires_at NULLS LAST, r.id
"""  # noqa: S608
_HELD = f"SELECT count(*) FROM recordings r WHERE {_DUE} AND {ACTIVE_HOLD_ON}"  # noqa: S608


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepItem:
    """A recording a pass deleted (or, in a dry run, would delete)."""

    recording_id: UUID
    reference: str
    tenant_id: UUID | None
    retention_class: str | None
    expires_at: datetime | None
    reason: DisposalReason

    def to_json(self) -> dict[str, Any]:
        return {
            "recording_id": str(self.recording_id),
            "reference": self.reference,
            "tenant_id": None if self.tenant_id is None else str(self.tenant_id),
            "retention_class": self.retention_class,
            "expires_at": format_timestamp(self.expires_at),
            "reason": self.reason.value,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepReport:
    as_of: datetime
    dry_run: bool
    items: tuple[SweepItem, ...]  # deleted, or in a dry run due
    held: int  # due but kept by a legal hold
    failed: int  # due but not deleted this time (the error is logged); the next pass retries
    error: str | None = None  # the pass stopped early (the database failed); what it did so far stands

    @property
    def deleted(self) -> int:
        return 0 if self.dry_run else len(self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": format_timestamp(self.as_of),
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "due": len(self.items),
            "held": self.held,
            "failed": self.failed,
            "error": self.error,
            "recordings": [item.to_json() for item in self.items],
        }


class Sweeper:
    """One per node; ``node`` names it in the disposal log (``sweeper@<node>``)."""

    def __init__(
        self,
        pool: Any,
        blobs: FileBlobStore,
        *,
        audit: AuditLog,
        clock: Callable[[], datetime],
        node: str | None = None,
    ) -> None:
        self._pool = pool
        self._blobs = blobs
        self._audit = audit
        self._clock = clock
        self._node = node or socket.gethostname()
        self._actor = Actor(name="system:sweeper", origin=self._node)
        self._one_pass = asyncio.Lock()

    @property
    def disposed_by(self) -> str:
        return f"sweeper@{self._node}"

    async def sweep(
        self, as_of: datetime, *, dry_run: bool = False, batch: int = 100, actor: Actor | None = None
    ) -> SweepReport:
        """Delete what is due at ``as_of`` (timezone-aware); a dry run lists it and changes nothing."""
        if as_of.utcoffset() is None:
            raise ValueError("as_of must be timezone-aware")
        if batch < 1:
            raise ValueError("a batch holds at least one recording")
        who = actor or self._actor
        async with self._one_pass:
            if dry_run:
                report = await self._preview(as_of)
            else:
                report = await self._delete_due(as_of, batch)
            await self._audit.record(
                self._pool,
                AuditEntry(
                    actor=who,
                    action="retention.sweep",
                    details={
                        "as_of": format_timestamp(as_of),
                        "dry_run": dry_run,
                        "deleted": report.deleted,
                        "due": len(report.items),
                        "held": report.held,
                        "failed": report.failed,
                        "error": report.error,
                        "node": self._node,
                    },
                ),
            )
        return report

    async def run_periodically(
        self,
        interval: float,
        stop_event: asyncio.Event,
        on_report: Callable[[SweepReport], None] | None = None,
    ) -> None:
        """Sweep at the injected clock's time every ``interval`` seconds until ``stop_event`` is set, handing
        each pass's report to ``on_report`` (the server's metrics). A failed pass is logged and the next one
        runs on schedule."""
        if interval <= 0:
            raise ValueError("the sweep interval must be positive")
        while not stop_event.is_set():
            try:
                report = await self.sweep(self._clock())
            except Exception:
                log.exception("retention sweep failed; retrying in %.0f s", interval)
            else:
                if on_report is not None:
                    on_report(report)
                if report.deleted or report.failed:
                    log.info(
                        "retention sweep deleted %d recording(s), %d held, %d failed",
                        report.deleted,
                        report.held,
                        report.failed,
                    )
            try:
                await asyncio.wait_for(stop_event.wait(), interval)
            except TimeoutError:
                continue

    async def _preview(self, as_of: datetime) -> SweepReport:
        with translated("list recordings due for deletion"):
            rows = await self._pool.fetch(_PREVIEW, as_of)
            held = int(await self._pool.fetchval(_HELD, as_of))
        items = tuple(_item(RecordingFacts.from_row(row)) for row in rows)
        return SweepReport(as_of=as_of, dry_run=True, items=items, held=held, failed=0)

    async def _delete_due(self, as_of: datetime, batch: int) -> SweepReport:
        items: list[SweepItem] = []
        skipped: list[UUID] = []  # failed or held meanwhile: not claimed again in this pass
        raced_held = 0
        held = 0
        error = None
        try:
            while (claimed := await self._delete_batch(as_of, batch, skipped, items)) is not None:
                raced_held += claimed.held
            with translated("count held recordings"):
                held = int(await self._pool.fetchval(_HELD, as_of))
        except CatalogueError as exc:
            log.warning("retention sweep stopped early: %s", exc)
            error = str(exc)
        failed = len(skipped) - raced_held
        return SweepReport(
            as_of=as_of, dry_run=False, items=tuple(items), held=held, failed=failed, error=error
        )

    async def _delete_batch(
        self, as_of: datetime, batch: int, skipped: list[UUID], items: list[SweepItem]
    ) -> _Batch | None:
        """Claim and delete one batch in one transaction; None when nothing was left to claim."""
        outcome = _Batch()
        with translated("sweep a batch of recordings"):
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(_CLAIM, as_of, batch, skipped)
                if not rows:
                    return None
                for row in rows:
                    await self._delete_one(conn, RecordingFacts.from_row(row), outcome)
        skipped.extend(outcome.skipped)
        items.extend(outcome.deleted)  # only once the batch committed
        return outcome

    async def _delete_one(self, conn: Any, facts: RecordingFacts, outcome: _Batch) -> None:
        item = _item(facts)
        try:  # dispose() runs in a savepoint: one failure leaves the rest of the batch alone
            await dispose(
                conn,
                facts,
                reason=item.reason,
                disposed_by=self.disposed_by,
                now=self._clock(),
                blobs=self._blobs,
            )
        except UnderHoldError:  # a hold placed since the claim
            outcome.skipped.append(facts.id)
            outcome.held += 1
        except NotFoundError:
            return
        except CatalogueError as exc:
            log.warning("retention sweep could not delete %s: %s", facts.reference, exc)
            outcome.skipped.append(facts.id)
        else:
            outcome.deleted.append(item)


@dataclass(slots=True)
class _Batch:
    deleted: list[SweepItem] = field(default_factory=list)
    skipped: list[UUID] = field(default_factory=list)  # not claimed again in this pass
    held: int = 0  # of the skipped, kept by a hold placed since the claim


# A consent-based call refused or withdrawn is logged as such, also when the sweeper is what deletes it.
_CONSENT_REASONS = {
    RecordingConsent.WITHDRAWN: DisposalReason.CONSENT_WITHDRAWN,
    RecordingConsent.REFUSED: DisposalReason.CONSENT_REFUSED,
}


def _item(facts: RecordingFacts) -> SweepItem:
    return SweepItem(
        recording_id=facts.id,
        reference=facts.reference,
        tenant_id=facts.tenant_id,
        retention_class=None if facts.retention_class is None else facts.retention_class.code,
        expires_at=facts.expires_at,
        reason=_CONSENT_REASONS.get(facts.consent_state, DisposalReason.EXPIRED),
    )
