"""The delivery worker: one per node, a periodic pass like the retention sweeper's.

A pass (:meth:`DeliveryWorker.run_once`):

1. puts new recordings in the outbox for the targets whose schedule is due (with ``target_id``: that target,
   now, whatever its schedule), and erasure / restriction notices for copies already delivered;
2. runs ``concurrency`` tasks that each claim one due row at a time (``FOR UPDATE SKIP LOCKED``: several nodes
   share the outbox), build its payload or notice, call the transport for the target's kind under a timeout
   below the lease, and record the outcome: delivered; retried after :func:`storage.delivery_backoff.retry_delay`
   (with jitter); or dead at once for a failure no retry can fix, or after the target's last attempt;
3. erases our copies of what delete-after-delivery targets now hold (:class:`storage.delivery_copies
   .DeliveredCopies`), closes the transports' connections and refreshes the backlog gauges.

A pass ends when nothing due is left to claim; rows retried later wait for a later pass. Secrets are decrypted
once per target and pass, and go only to the transport.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from storage.delivery_backoff import retry_delay
from storage.delivery_copies import CopyReport, DeliveredCopies
from storage.delivery_items import DeliveryItem, DeliveryKind, DeliveryStatus
from storage.delivery_outbox import Outbox
from storage.delivery_targets import DeliveryTarget, TargetKind, TargetStore
from storage.errors import CatalogueError, IntegrityError, KeyUnavailableError, NotFoundError, StorageError

from .metrics import DeliveryMetrics
from .payload import PayloadSource
from .transport import ClosableTransport, DeliveryFailure, Receipt, Transport

__all__ = ["DeliveryWorker", "PassReport"]

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=15)


@dataclass(frozen=True, slots=True, kw_only=True)
class PassReport:
    enqueued: int = 0  # recordings put in the outbox by due schedules
    notices: int = 0  # erasure / restriction notices put in the outbox
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0  # another node took the lease over meanwhile
    copies: CopyReport = field(default_factory=CopyReport)
    error: str | None = None  # the pass stopped early (the database failed); what it did so far stands

    def to_json(self) -> dict[str, Any]:
        return {
            "enqueued": self.enqueued,
            "notices": self.notices,
            "delivered": self.delivered,
            "retried": self.retried,
            "dead": self.dead,
            "lost": self.lost,
            "copies_erased": self.copies.erased,
            "copies_kept": self.copies.kept,
            "error": self.error,
        }


class DeliveryWorker:
    def __init__(
        self,
        *,
        outbox: Outbox,
        targets: TargetStore,
        payloads: PayloadSource,
        transports: Mapping[TargetKind, Transport],
        clock: Callable[[], datetime],
        copies: DeliveredCopies | None = None,
        node: str | None = None,
        concurrency: int = 4,
        lease: timedelta = DEFAULT_LEASE,
        jitter: Callable[[], float] = random.random,
        metrics: DeliveryMetrics | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a worker sends at least one item at a time")
        self._outbox = outbox
        self._targets = targets
        self._payloads = payloads
        self._transports = dict(transports)
        self._clock = clock
        self._copies = copies
        self._node = node or socket.gethostname()
        self._concurrency = concurrency
        self._lease = lease
        self._jitter = jitter
        self._metrics = metrics
        self._one_pass = asyncio.Lock()

    @property
    def node(self) -> str:
        return self._node

    async def run_once(self, *, target_id: UUID | None = None) -> PassReport:
        """One pass; with ``target_id`` only that target's rows, its recordings enqueued now."""
        async with self._one_pass:
            outcomes: collections.Counter[str] = collections.Counter()
            enqueued = notices = 0
            copies = CopyReport()
            error = None
            credentials: dict[UUID, asyncio.Task[tuple[DeliveryTarget, str]]] = {}
            try:
                now = self._clock()
                enqueued = await self._outbox.enqueue_due(
                    now, target_id=target_id, force=target_id is not None
                )
                notices = await self._outbox.enqueue_notices(now)
                stopped = await asyncio.gather(
                    *(self._drain(target_id, credentials, outcomes) for _ in range(self._concurrency))
                )
                error = next((reason for reason in stopped if reason is not None), None)
                if self._copies is not None and error is None:
                    copies = await self._copies.erase_delivered()
            except CatalogueError as exc:
                log.warning("delivery pass stopped early: %s", exc)
                error = str(exc)
            finally:
                for task in credentials.values():
                    task.cancel()
                await self._close_transports()
            await self._refresh_backlog()
        return PassReport(
            enqueued=enqueued,
            notices=notices,
            delivered=outcomes["delivered"],
            retried=outcomes["retry"],
            dead=outcomes["dead"],
            lost=outcomes["lost"],
            copies=copies,
            error=error,
        )

    async def run_periodically(self, interval: float, stop_event: asyncio.Event) -> None:
        """A pass every ``interval`` seconds until ``stop_event`` is set; a failed pass is logged and the next
        one runs on schedule."""
        if interval <= 0:
            raise ValueError("the delivery interval must be positive")
        while not stop_event.is_set():
            try:
                report = await self.run_once()
            except Exception:
                log.exception("delivery pass failed; retrying in %.0f s", interval)
            else:
                if report.delivered or report.retried or report.dead:
                    log.info(
                        "delivery pass: %d delivered, %d to retry, %d dead",
                        report.delivered,
                        report.retried,
                        report.dead,
                    )
            try:
                await asyncio.wait_for(stop_event.wait(), interval)
            except TimeoutError:
                continue

    async def _drain(
        self,
        target_id: UUID | None,
        credentials: dict[UUID, asyncio.Task[tuple[DeliveryTarget, str]]],
        outcomes: collections.Counter[str],
    ) -> str | None:
        """Claim and send one row at a time until none is due; the database's error if it failed (the rows
        this task held stay leased until their lease runs out)."""
        try:
            while claimed := await self._outbox.claim(self._node, 1, self._lease, target_id=target_id):
                item = claimed[0]
                try:
                    target, secret = await self._credentials(item.target_id, credentials)
                except (KeyUnavailableError, NotFoundError) as exc:
                    reason = f"the target's secret cannot be read: {exc}"
                    outcomes[await self._failed(item, None, reason, True)] += 1
                    continue
                outcomes[await self._deliver(item, target, secret)] += 1
        except CatalogueError as exc:
            log.warning("delivery worker %s stopped early: %s", self._node, exc)
            return str(exc)
        return None

    async def _credentials(
        self, target_id: UUID, cache: dict[UUID, asyncio.Task[tuple[DeliveryTarget, str]]]
    ) -> tuple[DeliveryTarget, str]:
        """The target and its decrypted secret, fetched once per pass however many tasks ask at once."""
        if target_id not in cache:
            cache[target_id] = asyncio.create_task(self._fetch_credentials(target_id))
        return await asyncio.shield(cache[target_id])

    async def _fetch_credentials(self, target_id: UUID) -> tuple[DeliveryTarget, str]:
        target = await self._targets.get(target_id)
        return target, await self._targets.secret(target)

    async def _deliver(self, item: DeliveryItem, target: DeliveryTarget, secret: str) -> str:
        transport = self._transports.get(target.kind)
        if transport is None:
            return await self._failed(item, target, f"this node has no {target.kind.value} transport", True)
        budget = self._lease.total_seconds() * 0.9
        try:
            async with asyncio.timeout(budget):
                receipt = await self._send(transport, item, target, secret)
        except DeliveryFailure as exc:
            return await self._failed(item, target, str(exc), exc.retryable)
        except TimeoutError:
            return await self._failed(item, target, f"no confirmation within {budget:.0f} s", True)
        except IntegrityError as exc:
            return await self._failed(
                item, target, f"the stored audio fails its integrity check: {exc}", False
            )
        except StorageError as exc:
            return await self._failed(item, target, str(exc), True)
        except Exception as exc:
            log.exception("delivery %d (%s) to %s failed unexpectedly", item.id, item.reference, target.name)
            return await self._failed(item, target, f"{type(exc).__name__}: {exc}", True)
        if receipt is None:
            return await self._failed(
                item, target, "no copy was delivered to this target; nothing to notify", False
            )
        settled = await self._outbox.succeed(
            item, remote_path=receipt.remote_path, bytes=receipt.bytes, sha256=receipt.sha256
        )
        result = "delivered" if settled else "lost"
        log.info(
            "%s %s to %s: %s (%s)", item.kind.value, item.reference, target.name, result, receipt.remote_path
        )
        self._count(target, result)
        return result

    async def _send(
        self, transport: Transport, item: DeliveryItem, target: DeliveryTarget, secret: str
    ) -> Receipt | None:
        if item.kind is DeliveryKind.RECORDING:
            async with self._payloads.payload(item, target) as payload:
                return await transport.send(target, secret, item, payload)
        copy = await self._outbox.copy_of(item)
        if copy is None or copy.status is not DeliveryStatus.DELIVERED or not copy.remote_path:
            return None
        return await transport.notify(target, secret, item, await self._payloads.notice(item, copy))

    async def _failed(
        self, item: DeliveryItem, target: DeliveryTarget | None, error: str, retryable: bool
    ) -> str:
        if retryable:
            wait = retry_delay(max(item.failures, 1), self._jitter())
            status = await self._outbox.retry(item, error, self._clock() + wait)
        else:
            status = await self._outbox.dead(item, error)
        result = {None: "lost", DeliveryStatus.PENDING: "retry", DeliveryStatus.DEAD: "dead"}[status]
        where = item.target_id if target is None else target.name
        log.warning("%s %s to %s: %s: %s", item.kind.value, item.reference, where, result, error)
        if target is not None:
            self._count(target, result)
        return result

    def _count(self, target: DeliveryTarget, result: str) -> None:
        if self._metrics is not None:
            self._metrics.deliveries.labels(kind=target.kind.value, result=result).inc()

    async def _close_transports(self) -> None:
        for transport in self._transports.values():
            if isinstance(transport, ClosableTransport):
                try:
                    await transport.aclose()
                except Exception:
                    log.exception("closing the %s transport's connections failed", type(transport).__name__)

    async def _refresh_backlog(self) -> None:
        if self._metrics is None:
            return
        try:
            waiting, oldest = await self._outbox.backlog()
        except CatalogueError as exc:
            log.warning("cannot measure the delivery backlog: %s", exc)
            return
        self._metrics.backlog_is(waiting, oldest)
