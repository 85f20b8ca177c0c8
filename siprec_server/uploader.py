"""Finished recordings to the S3-compatible object store, and deleted recordings' objects out of it.

With ``[s3] bucket`` set, a call's recording is written to this node's disk as before; when it ends, the
catalogue row waits in status 'uploading' (:meth:`storage.catalogue.Catalogue.finish` with ``upload``). The
:class:`Uploader` then, for each such recording of this node whose renditions are settled:

1. uploads the recording's file and its renditions' files (multipart above the part size), each object named
   by its path under the recordings directory and carrying the SHA-256 of the stored octets;
2. has the store confirm each object (HEAD: size and SHA-256) — :meth:`storage.s3_store.S3Store.put_file`;
3. gives the recording its outcome ('complete', 'interrupted', ...) and the object's name in one statement,
   only if the row is still the one it uploaded (:meth:`storage.object_uploads.ObjectUploads.confirm`);
4. removes the local files.

A failure at 1 or 2 leaves the recording 'uploading' with its local file, the only copy, untouched: logged,
counted in ``hangtar_s3_upload_failures_total`` and tried again at the next pass (fail closed). A recording
erased meanwhile is not brought back: its fresh objects are deleted. A crash between 3 and 4 leaves a local copy
that readers prefer (the same octets); between 2 and 3, the next pass uploads again over the same name.

Deletions: a disposal queues its recording's objects in the transaction that destroys the data key; each pass
deletes what is queued and forgets it once the store confirmed (deleting a missing object succeeds), so an
erasure also removes the object even when the store was down at the time.

Passes run every ``interval`` seconds and at once when a call ends (:meth:`Uploader.wake`); a pass uploads up to
``concurrency`` recordings at a time, so a store far away (100 ms a request) still takes a node's peak of about
17 finished calls a second (1,000 calls of a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

from storage.blobs import FileBlobStore
from storage.models import Recording
from storage.object_uploads import ObjectUploads, RenditionFile
from storage.s3_config import S3Observer
from storage.s3_errors import BlobStoreError
from storage.s3_store import S3Store

__all__ = ["S3Metrics", "UploadReport", "Uploader"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_BATCH = 100  # recordings a pass takes from the catalogue at a time
_FAILURES = (BlobStoreError, OSError, ValueError)


class S3Metrics:
    """The conditional S3 metrics (docs/metrics.md), on the server's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = PromCounter(
            "hangtar_s3_requests",
            "Requests to the S3-compatible object store",
            ["operation", "result"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "hangtar_s3_request_seconds",
            "Latency of requests to the object store",
            ["operation"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.upload_failures = PromCounter(
            "hangtar_s3_upload_failures",
            "Recordings whose upload to the object store failed (the recording stays unfinished: fail closed)",
            registry=registry,
        )
        self.uploads_waiting = Gauge(
            "hangtar_s3_uploads_waiting",
            "Finished recordings waiting for their upload (status 'uploading'), all nodes",
            registry=registry,
        )
        self.deletions_queued = Gauge(
            "hangtar_s3_deletions_queued",
            "Objects of deleted recordings still to delete from the store",
            registry=registry,
        )

    def observer(self) -> S3Observer:
        """The :data:`~storage.s3_config.S3Observer` that counts and times every request."""

        def observe(operation: str, result: str, seconds: float) -> None:
            self.requests.labels(operation, result).inc()
            self.request_seconds.labels(operation).observe(seconds)

        return observe


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadReport:
    """What one pass did."""

    uploaded: int = 0
    failed: int = 0
    dropped: int = 0  # uploaded, but the recording was deleted meanwhile: its objects deleted again
    renditions: int = 0
    deleted: int = 0
    deletion_failures: int = 0


class Uploader:
    """Moves this node's finished recordings to the store and deletes disposed recordings' objects."""

    def __init__(
        self,
        pool: Any,
        store: S3Store,
        blobs: FileBlobStore,
        *,
        node: str | None,
        metrics: S3Metrics | None = None,
        interval: float = 10.0,
        concurrency: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uploads = ObjectUploads(pool)
        self._store = store
        self._blobs = blobs
        self._node = node
        self._metrics = metrics
        self._interval = interval
        self._wake = asyncio.Event()
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)

    def wake(self) -> None:
        """A recording finished: run a pass now rather than at the next interval."""
        self._wake.set()

    async def run(self) -> None:
        """Pass after pass until cancelled; a pass that fails (the database away) is logged and retried."""
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:
                log.exception("the object store pass failed; retrying in %.0f s", self._interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)

    async def run_once(self) -> UploadReport:
        outcomes: Counter[str] = Counter()
        while True:
            batch = await self._uploads.waiting(self._node, limit=_BATCH)
            done = await asyncio.gather(*(self._upload_bounded(recording) for recording in batch))
            outcomes.update(done)
            if len(batch) < _BATCH or "failed" in done:  # all caught up, or the store is in trouble
                break
        uploaded, failed, dropped = outcomes["uploaded"], outcomes["failed"], outcomes["dropped"]
        renditions = 0
        for rendition in await self._uploads.late_renditions():
            renditions += await self._upload_rendition(rendition)
        deleted, deletion_failures = await self.delete_queued()
        if self._metrics is not None:
            self._metrics.uploads_waiting.set(await self._uploads.waiting_count())
            self._metrics.deletions_queued.set(await self._uploads.queued_deletions())
        return UploadReport(
            uploaded=uploaded,
            failed=failed,
            dropped=dropped,
            renditions=renditions,
            deleted=deleted,
            deletion_failures=deletion_failures,
        )

    async def _upload_bounded(self, recording: Recording) -> str:
        async with self._slots:
            return await self.upload(recording)

    async def upload(self, recording: Recording) -> str:
        """One recording: 'uploaded', 'failed' (kept 'uploading' for the next pass), or 'dropped' (deleted
        meanwhile; its objects deleted again)."""
        started = self._clock()
        if recording.file_path is None:  # finish() never asks an upload without a file
            raise ValueError(f"recording {recording.reference} waits for an upload but has no file")
        paths = [recording.file_path]
        renditions: list[tuple[RenditionFile, str]] = []
        try:
            key = await self._put(recording.file_path)
            for rendition in await self._uploads.renditions_of(recording.id):
                if rendition.file_path != recording.file_path:
                    renditions.append((rendition, await self._put(rendition.file_path)))
                    paths.append(rendition.file_path)
        except _FAILURES as exc:
            if self._metrics is not None:
                self._metrics.upload_failures.inc()
            log.error(
                "recording %s: upload to the object store failed; it stays 'uploading' with its local file "
                "and is tried again: %s",
                recording.reference,
                exc,
            )
            return "failed"
        confirmed = await self._uploads.confirm(recording, key, renditions)
        if confirmed is None:
            for orphan in [key, *(k for _, k in renditions)]:
                await self._delete(orphan)
            log.warning(
                "recording %s was deleted during its upload; its objects are removed", recording.reference
            )
            return "dropped"
        await asyncio.to_thread(self._remove_local, paths)
        log.info(
            "recording %s: %s in the object store (%d file(s), %.2f s)",
            recording.reference,
            confirmed.status.value,
            len(paths),
            self._clock() - started,
        )
        return "uploaded"

    async def delete_queued(self) -> tuple[int, int]:
        """Delete the queued objects; (deleted, failed)."""
        deleted = failed = 0
        for key in await self._uploads.due_deletions():
            try:
                await self._store.delete(key)
            except BlobStoreError as exc:
                failed += 1
                await self._uploads.deletion_failed(key, str(exc))
                log.error("object %s of a deleted recording could not be deleted yet: %s", key, exc)
                continue
            await self._uploads.deleted(key)
            deleted += 1
        return deleted, failed

    async def _upload_rendition(self, rendition: RenditionFile) -> int:
        try:
            key = await self._put(rendition.file_path)
        except _FAILURES as exc:
            if self._metrics is not None:
                self._metrics.upload_failures.inc()
            log.error("rendition %s: upload to the object store failed: %s", rendition.file_path, exc)
            return 0
        if not await self._uploads.confirm_rendition(rendition, key):
            await self._delete(key)
            return 0
        await asyncio.to_thread(self._remove_local, [rendition.file_path])
        return 1

    async def _put(self, path: str) -> str:
        """Upload the file at ``path`` under its key and have the store confirm it; the key."""
        key = self._blobs.key_for(path)
        local = self._blobs.resolve(path)
        if not local.is_file():
            # Uploaded before, by a pass that died before its confirmation was recorded, or gone.
            stored = await self._store.head(key)
            if stored is None:
                raise BlobStoreError(f"{path} is neither on this node's disk nor in the object store")
            return key
        sha256 = await asyncio.to_thread(_sha256, local)
        await self._store.put_file(key, local, sha256=sha256)
        return key

    async def _delete(self, key: str) -> None:
        try:
            await self._store.delete(key)
        except BlobStoreError as exc:
            log.error("object %s could not be deleted: %s", key, exc)

    def _remove_local(self, paths: list[str]) -> None:
        for path in paths:
            try:
                self._blobs.remove(path)
            except (OSError, ValueError) as exc:
                log.warning("%s stays on disk after its upload: %s", path, exc)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while piece := source.read(_CHUNK):
            digest.update(piece)
    return digest.hexdigest()
