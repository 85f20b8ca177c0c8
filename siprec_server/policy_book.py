"""The recording policies as the server holds them: one in-memory snapshot, decided against per INVITE.

Deciding reads no database: :func:`storage.decision.decide` runs on a :class:`storage.PolicySnapshot` loaded
in one consistent read. Every change made through :class:`storage.policies.PolicyStore` or the tenant store
sends ``NOTIFY hangtar_policies`` in its transaction; the book LISTENs on a connection of its own and reloads
(coalescing bursts), and also reloads every ``refresh`` seconds in case a notification was missed (a dropped
connection). Until the first load succeeds the server does not start: no call is decided without a policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from storage.attribution import CallContext
from storage.decision import Decision, decide
from storage.policies import POLICY_CHANNEL, PolicyStore
from storage.policy_snapshot import PolicySnapshot

__all__ = ["PolicyBook"]

log = logging.getLogger(__name__)


class PolicyBook:
    def __init__(self, pool: Any, store: PolicyStore, *, refresh: float = 60.0) -> None:
        self._pool = pool
        self._store = store
        self._refresh = refresh
        self._snapshot: PolicySnapshot | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None

    @property
    def snapshot(self) -> PolicySnapshot:
        if self._snapshot is None:
            raise RuntimeError("PolicyBook used before start()")
        return self._snapshot

    def decide(self, context: CallContext) -> Decision:
        return decide(self.snapshot, context)

    async def start(self) -> None:
        await self.reload()
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(POLICY_CHANNEL, self._notified)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="policy-book")

    async def reload(self) -> None:
        self._snapshot = await self._store.snapshot()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(POLICY_CHANNEL, self._notified)
            await self._pool.release(self._listener)
            self._listener = None

    def _notified(self, *_: object) -> None:
        self._changed.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._refresh)
            await asyncio.sleep(0.2)  # one reload for a burst of changes (a script adding 100 numbers)
            self._changed.clear()
            try:
                await self.reload()
            except Exception:
                log.exception("could not reload the recording policies; deciding with the previous ones")
