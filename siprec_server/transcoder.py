"""The rendition pool: WAV, Ogg/Opus and MP3 copies of finished recordings, encoded off the event loop.

The receive path writes only the FLAC master. When a recording is finalised, :meth:`TranscodePool.request`
(the call manager's hook) adds a pending rendition row for the recording's format; the row is the job, so it
survives a crash or restart and any node may take it. The pool keeps at most ``workers`` jobs in hand: each
holds one connection of the pool's own database pool, with a transaction that claimed its row
(``FOR UPDATE SKIP LOCKED``) and stays open while a worker process encodes. More jobs wait as pending rows,
never in memory; they are claimed when a worker is free, when a new one is requested, and every
``poll_interval`` seconds (rows other nodes added, retries coming due).

Workers are processes (``spawn``) at a lower CPU priority (``os.nice``), so on a busy core the receive path
wins. An attempt that fails for a reason that may pass (disk full, a worker that crashed) is retried after a
back-off; one that cannot succeed (a damaged or missing master, five channels as MP3) fails at once.

With ``keep_master = false`` a finished rendition becomes the recording's file (path, format, size, SHA-256)
in the transaction that records it; only after that commit is the master removed from disk, and the removal is
recorded, so a crash in between is finished at the next start.

Encryption at rest: the rendition of an encrypted recording is encrypted with the recording's data key, in the
same container (``<recording uuid>.<ext>.sealed``), so destroying that one key erases both. The worker gets
the key with its job, checks the master's plaintext against the catalogue's SHA-256 and encodes from and to
the sealed files; no plaintext reaches the disk. The rendition's SHA-256 is of its plaintext, its size that of
the stored file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from media.transcode import EncodeSettings, OutputFormat, TranscodeError, TranscodeResult, transcode
from storage import CatalogueError, FileBlobStore
from storage.catalogue import Catalogue
from storage.errors import IntegrityError
from storage.renditions import CompletedRendition, RenditionJob, Renditions
from storage.sealed import open_plain

from .config import Config
from .metrics import Metrics
from .sealing import SEALED_SUFFIX, RecordingCrypto, file_access

__all__ = ["TranscodePool", "encode_settings"]

log = logging.getLogger(__name__)

WORKER_NICENESS = 10  # added to the workers' nice value: the receive path runs first on a busy core
_RETRY_DELAYS = (30.0, 300.0)  # back-off before the 2nd and 3rd attempt; the 3rd failure is final


def encode_settings(config: Config) -> EncodeSettings:
    return EncodeSettings(
        opus_bitrate=config.opus_bitrate,
        opus_complexity=config.opus_complexity,
        mp3_bitrate=config.mp3_bitrate,
    )


class TranscodePool:
    def __init__(
        self,
        *,
        db: Any,
        blobs: FileBlobStore,
        metrics: Metrics,
        settings: EncodeSettings,
        workers: int = 1,
        default_format: str = OutputFormat.FLAC.value,
        keep_master: bool = True,
        poll_interval: float = 10.0,
        retry_delays: Sequence[float] = _RETRY_DELAYS,
        stop_timeout: float = 10.0,
        crypto: RecordingCrypto | None = None,
    ) -> None:
        """``db``: an asyncpg pool of its own, with room for ``workers`` + 2 connections (each job in hand
        holds one for the length of its encode). ``crypto``: the data keys of encrypted recordings (None:
        every recording is taken to be a plain file)."""
        if workers < 1:
            raise ValueError("a transcode pool needs at least one worker")
        self._db = db
        self._blobs = blobs
        self._metrics = metrics
        self._settings = settings
        self._workers = workers
        self._default_format = OutputFormat(default_format)
        self._keep_master = keep_master
        self._poll_interval = poll_interval
        self._retry_delays = tuple(retry_delays)
        self._stop_timeout = stop_timeout
        self._crypto = crypto
        self._executor: ProcessPoolExecutor | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._backlog = 0

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        db: Any,
        blobs: FileBlobStore,
        metrics: Metrics,
        crypto: RecordingCrypto | None = None,
    ) -> TranscodePool:
        return cls(
            db=db,
            blobs=blobs,
            metrics=metrics,
            settings=encode_settings(config),
            workers=config.transcode_workers,
            default_format=config.recording_format,
            keep_master=config.keep_master,
            crypto=crypto,
        )

    @property
    def backlog(self) -> int:
        """Pending renditions on every node, as of the last count."""
        return self._backlog

    @property
    def running(self) -> int:
        return len(self._jobs)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Finish removals a crash interrupted, then take pending jobs (a previous run's included)."""
        self._executor = self._new_executor()
        if self._default_format is not OutputFormat.FLAC:
            # Start the workers now (a spawned interpreter importing the codecs takes a second or more at
            # their low priority), so the first recording's rendition does not wait for that.
            self._executor.submit(os.getpid)
        try:
            await self._remove_replaced_masters()
        except CatalogueError as exc:
            log.warning("cannot look for replaced masters to remove: %s", exc)
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    async def stop(self) -> None:
        """Stop claiming; let jobs in hand finish for ``stop_timeout`` seconds, then abandon the rest (their rows
        roll back to pending, for the next start or another node) and stop the workers."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        if self._jobs:
            _, late = await asyncio.wait(list(self._jobs), timeout=self._stop_timeout)
            for task in late:
                task.cancel()
            if late:
                log.info("abandoned %d rendition(s) in progress; they stay pending", len(late))
                await asyncio.wait(late)
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(_stop_executor, executor)

    # -- the hook ------------------------------------------------------------------------------------------------
    async def request(self, recording_id: UUID, format: str | None = None) -> None:
        """A finished recording wants ``format`` (None: the configured default); FLAC needs nothing.

        Never raises: a recording is finished whether or not its rendition could be queued."""
        fmt = OutputFormat(format) if format else self._default_format
        if fmt is OutputFormat.FLAC:
            return
        try:
            await Renditions(self._db).request(
                recording_id, fmt.value, now=datetime.now(UTC), replaces_master=not self._keep_master
            )
        except CatalogueError:
            log.exception("recording %s: could not queue its %s rendition", recording_id, fmt.value)
            return
        self._backlog += 1
        self._metrics.transcode_backlog.set(self._backlog)
        self._wake.set()

    # -- dispatching ---------------------------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._fill()
                await self._count_backlog()
            except CatalogueError as exc:
                log.warning(
                    "rendition queue unavailable (trying again in %.0f s): %s", self._poll_interval, exc
                )
            except Exception:  # the dispatcher must outlive any one failure
                log.exception("rendition dispatcher error (trying again in %.0f s)", self._poll_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def _fill(self) -> None:
        """Claim jobs until every worker has one or nothing is due."""
        loop = asyncio.get_running_loop()
        while len(self._jobs) < self._workers:
            claimed: asyncio.Future[bool] = loop.create_future()
            task = loop.create_task(self._job(claimed))
            self._jobs.add(task)
            task.add_done_callback(self._job_done)
            if not await claimed:
                await asyncio.wait([task])  # its transaction ended: it no longer takes up a worker's place
                return

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._jobs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("rendition job failed", exc_info=task.exception())

    async def _count_backlog(self) -> None:
        self._backlog = await Renditions(self._db).backlog()
        self._metrics.transcode_backlog.set(self._backlog)

    async def _job(self, claimed: asyncio.Future[bool]) -> None:
        """Claim one rendition and see it through; a worker freed (and only then) wakes the dispatcher."""
        completed: CompletedRendition | None = None
        job: RenditionJob | None = None
        try:
            async with self._db.acquire() as conn, conn.transaction():
                renditions = Renditions(conn)
                job = await renditions.claim_next(now=datetime.now(UTC))
                if not claimed.done():  # cancelled when the dispatcher stopped waiting for it
                    claimed.set_result(job is not None)
                if job is None:
                    return
                completed = await self._run(renditions, job)
        finally:
            if not claimed.done():
                claimed.set_result(False)
            if job is not None:
                self._wake.set()
        if completed is not None and completed.master_to_remove:
            await self._remove_master(completed.rendition.id, completed.master_to_remove)

    async def _run(self, renditions: Renditions, job: RenditionJob) -> CompletedRendition | None:
        """Encode one claimed rendition and record the outcome in the claiming transaction."""
        rendition = job.rendition
        fmt = OutputFormat(rendition.format)
        failure: str | None = None
        final = False
        executor = self._executor_now()
        target: Path | None = None
        try:
            if job.source_path is None:
                raise TranscodeError("the recording has no audio file")
            data_key = await self._data_key(rendition.recording_id)
            target = await asyncio.to_thread(
                self._blobs.path_for, rendition.recording_id, job.recording_started_at, fmt.extension
            )
            if data_key is not None:
                target = target.with_name(target.name + SEALED_SUFFIX)
            result, seconds = await asyncio.get_running_loop().run_in_executor(
                executor,
                _encode_job,
                # A master still on this node's disk: the object store's uploader waits for renditions.
                str(self._blobs.resolve(job.source_path)),
                job.source_sha256,
                str(target),
                fmt,
                self._settings,
                data_key,
            )
        except TranscodeError as exc:
            failure, final = str(exc), True
        except BrokenProcessPool:
            failure = "the encoding worker process died"
            if self._executor is executor:  # the first of its jobs to notice replaces it
                self._replace_executor()
        except Exception as exc:  # disk full, a worker killed: worth another attempt
            failure = f"{type(exc).__name__}: {exc}"
        if failure is not None and target is not None:
            await asyncio.to_thread(_remove_partials, target)  # a worker killed mid-file left one behind
        now = datetime.now(UTC)
        if failure is not None:
            attempt = rendition.attempts + 1
            if not final and attempt <= len(self._retry_delays):
                retry_at = now + timedelta(seconds=self._retry_delays[attempt - 1])
            else:
                retry_at = None
            await renditions.fail(rendition.id, error=failure, now=now, retry_at=retry_at)
            result_label = "retry" if retry_at else "failed"
            self._metrics.transcode_jobs.labels(fmt.value, result_label).inc()
            log.log(
                logging.WARNING if retry_at else logging.ERROR,
                "recording %s: %s rendition attempt %d failed%s: %s",
                rendition.recording_id,
                fmt.value,
                attempt,
                f"; retrying after {retry_at:%H:%M:%S}" if retry_at else ", giving up",
                failure,
            )
            return None
        master = job.source_path if rendition.replaces_master and job.source_format == "flac" else None
        completed = await renditions.complete(
            rendition.id,
            file_path=result.path,
            size_bytes=result.size_bytes,
            sha256=result.sha256,
            now=now,
            master_path=master,
        )
        self._metrics.transcode_jobs.labels(fmt.value, "done").inc()
        self._metrics.transcode_seconds.labels(fmt.value).observe(seconds)
        log.info(
            "recording %s: %s rendition written (%.1f s of audio in %.2f s, %d bytes)%s",
            rendition.recording_id,
            fmt.value,
            result.duration,
            seconds,
            result.size_bytes,
            "; it replaces the master" if completed.master_to_remove else "",
        )
        return completed

    async def _data_key(self, recording_id: UUID) -> bytes | None:
        """The recording's data key for the worker; None for a plain recording."""
        if self._crypto is None:
            return None
        recording = await Catalogue(self._db).get(recording_id)
        if recording is None:
            raise TranscodeError("the recording was deleted")
        return await self._crypto.data_key(recording)

    # -- workers -------------------------------------------------------------------------------------------------
    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_lower_priority,
            initargs=(WORKER_NICENESS,),
        )

    def _executor_now(self) -> ProcessPoolExecutor:
        if self._executor is None:
            raise RuntimeError("TranscodePool used before start()")
        return self._executor

    def _replace_executor(self) -> None:
        """A worker died (a crash in a codec library): every future of that executor fails; start afresh."""
        broken, self._executor = self._executor, self._new_executor()
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)

    # -- replaced masters ----------------------------------------------------------------------------------------
    async def _remove_master(self, rendition_id: int, path: str) -> None:
        try:
            await asyncio.to_thread(self._unlink_inside, path)
            await Renditions(self._db).master_removed(rendition_id, now=datetime.now(UTC))
        except (OSError, ValueError, CatalogueError) as exc:
            log.error("could not remove the replaced master %s (kept for the next start): %s", path, exc)
        else:
            log.info("removed master %s: its rendition replaces it", path)

    async def _remove_replaced_masters(self) -> None:
        for rendition_id, path in await Renditions(self._db).masters_left():
            await self._remove_master(rendition_id, path)

    def _unlink_inside(self, path: str) -> None:
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self._blobs.root.resolve()):
            raise ValueError(f"{path} is outside the recordings directory")
        resolved.unlink(missing_ok=True)


def _lower_priority(increment: int) -> None:
    """Worker start: a lower CPU priority, and SIGTERM (a stop that could not wait) unwinds the encode so it
    removes its temporary file instead of leaving it behind."""
    os.nice(increment)
    signal.signal(signal.SIGTERM, _exit_on_terminate)


def _exit_on_terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _encode_job(
    source: str,
    expected_sha256: str | None,
    target: str,
    fmt: OutputFormat,
    settings: EncodeSettings,
    data_key: bytes | None = None,
) -> tuple[TranscodeResult, float]:
    """In a worker process: check the master (its plaintext, with ``data_key``) against the catalogue's
    SHA-256, encode (sealed with ``data_key``); wall seconds taken."""
    started = time.monotonic()
    if expected_sha256 is not None:
        digest = hashlib.sha256()
        try:
            with open_plain(source, data_key) as master:
                while chunk := master.read(1 << 20):
                    digest.update(chunk)
        except FileNotFoundError:
            raise TranscodeError(f"the master {source} does not exist") from None
        except IntegrityError as exc:
            raise TranscodeError(f"the master {source} fails its integrity check: {exc}") from None
        if digest.hexdigest() != expected_sha256:
            raise TranscodeError(f"the master {source} fails its integrity check (SHA-256 differs)")
    files = None if data_key is None else file_access(data_key)
    result = transcode(source, target, fmt, settings, files=files)
    return result, time.monotonic() - started


def _remove_partials(target: Path) -> None:
    """Temporary files of ``target`` (media.transcode names them ``.<name>.<random>.part`` beside it)."""
    for partial in target.parent.glob(f".{target.name}.*.part"):
        partial.unlink(missing_ok=True)


def _stop_executor(executor: ProcessPoolExecutor) -> None:
    """Shut the pool down without waiting for an encode nobody waits for any more (its row rolled back)."""
    processes = list(getattr(executor, "_processes", {}).values())  # not public API: the worker processes
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(5)
