"""Recording files in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph RGW), over aiobotocore.

A recording is written to local disk during the call and uploaded once finished: :meth:`S3Store.put_file`
returns only after reading the object back (HEAD) confirmed its size and SHA-256, so a caller that marks the
recording complete on return never marks one the store does not hold (fail closed). Playback and export read
ranges (:meth:`S3Store.read_range`) or a seekable file object (:meth:`S3Store.open_reader`) that decoders and
the sealed-file reader use from a worker thread.

Invariants:
- One client per store, created by :meth:`S3Store.open` on the event loop that then owns the store; every
  coroutine must run on that loop, and blocking readers hand their requests to it.
- A multipart upload that fails or is cancelled is aborted before the error propagates, so no parts are left
  behind; when even the abort fails (the store is unreachable), the error carries a note naming the upload, and
  :meth:`S3Store.abort_stale_uploads` removes it later.
- Client library errors leave the store only as :class:`S3Error`; messages name the operation, key and S3 error
  code, never credentials.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import io
import logging
import os
import re
import time
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, TypeVar, cast

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    ReadTimeoutError,
)

from .errors import IntegrityError
from .s3_config import S3Observer, S3Result, S3Settings, StoredObject
from .s3_errors import BlobStoreError, S3Error, UnconfirmedUploadError
from .s3_reader import S3ObjectReader

__all__ = ["S3Store"]

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_META_SHA256 = "sha256"  # user metadata, sent as x-amz-meta-sha256
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_FAILURES = (ClientError, BotoCoreError, aiohttp.ClientError, OSError, TimeoutError)
_BACKOFF_ALLOWANCE = 20.0  # seconds: the client's longest back-off between two attempts
_T = TypeVar("_T")


class S3Store:
    """Uploads, confirms, reads and deletes recording objects under ``settings.prefix`` in one bucket.

    Use ``async with S3Store(settings) as store`` (or ``await store.open()`` ... ``await store.aclose()``).
    ``observe`` is called after every request (see :data:`~storage.s3_config.S3Observer`)."""

    def __init__(self, settings: S3Settings, *, observe: S3Observer | None = None) -> None:
        self._settings = settings
        self._observe = observe
        self._exit_stack: AsyncExitStack | None = None
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def settings(self) -> S3Settings:
        return self._settings

    async def open(self) -> None:
        """Create the client (no request is made: a wrong endpoint or key shows at the first operation)."""
        if self._exit_stack is not None:
            raise RuntimeError("the S3 store is already open")
        settings = self._settings
        config = AioConfig(
            region_name=settings.region,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            retries={"mode": "standard", "max_attempts": settings.max_attempts},
            s3={"addressing_style": "path" if settings.path_style else "auto"},
        )
        stack = AsyncExitStack()
        self._client = await stack.enter_async_context(
            AioSession().create_client(
                "s3",
                endpoint_url=settings.endpoint_url,
                aws_access_key_id=settings.access_key_id,
                aws_secret_access_key=settings.secret_access_key,
                verify=settings.ca_bundle,
                config=config,
            )
        )
        self._exit_stack = stack
        self._loop = asyncio.get_running_loop()

    async def aclose(self) -> None:
        """Close the client and its connections; idempotent."""
        stack, self._exit_stack, self._client = self._exit_stack, None, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> S3Store:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def put_file(self, key: str, path: Path, *, sha256: str | None = None) -> StoredObject:
        """Upload the file at ``path`` as ``key`` (replacing any object there) and confirm it.

        Files larger than ``part_size`` go up in parts. ``sha256`` (hex), when given, is stored as the
        object's metadata, and the bytes sent must hash to it: :class:`~storage.errors.IntegrityError` (and
        nothing stored) when the file no longer matches. :class:`S3Error` when a request fails,
        :class:`UnconfirmedUploadError` when the object read back is missing or differs, :class:`BlobStoreError`
        when the file changes size during the upload, ``OSError`` when it cannot be read: in every case the
        recording is not stored."""
        full_key = self._full_key(key)
        if sha256 is not None:
            sha256 = sha256.lower()
            if not _SHA256.match(sha256):
                raise ValueError(f"not a hex SHA-256: {sha256!r}")
        source = await asyncio.to_thread(_Source, Path(path))
        try:
            if source.size > self._settings.max_object_size:
                raise BlobStoreError(
                    f"{path} ({source.size} octets) exceeds {self._settings.max_object_size} octets, the most "
                    f"10,000 parts of {self._settings.part_size} can hold"
                )
            metadata = {_META_SHA256: sha256} if sha256 else {}
            if source.size <= self._settings.part_size:
                body = await asyncio.to_thread(source.read, source.size)
                await asyncio.to_thread(source.check_complete, sha256)
                await self._call(
                    "put_object", key, Key=full_key, Body=body, ContentLength=len(body), Metadata=metadata
                )
            else:
                await self._put_parts(key, full_key, source, sha256, metadata)
        finally:
            source.close()
        return await self._confirm(key, source.size, sha256)

    async def head(self, key: str) -> StoredObject | None:
        """The object as stored, or ``None`` when there is none (a missing bucket also answers 404 here)."""
        try:
            answer = await self._call("head_object", key, Key=self._full_key(key))
        except S3Error as exc:
            if exc.code in _NOT_FOUND:
                return None
            raise
        metadata = answer.get("Metadata") or {}
        return StoredObject(
            key=key,
            size=int(answer["ContentLength"]),
            etag=str(answer.get("ETag", "")).strip('"'),
            sha256=metadata.get(_META_SHA256),
        )

    async def delete(self, key: str) -> None:
        """Remove the object; deleting one that is already gone succeeds (a retried erasure)."""
        await self._call("delete_object", key, Key=self._full_key(key))

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        """Octets ``start`` to ``end`` (exclusive) of the object, fewer only where the object ends first.
        :class:`S3Error` with code ``NoSuchKey`` for a missing object, ``InvalidRange`` when ``start`` is at or
        past its end."""
        if not 0 <= start <= end:
            raise ValueError(f"invalid range {start}..{end}")
        if start == end:
            return b""
        # RFC 9110 §14.1.2: a byte range names its last octet, inclusive.
        answer = await self._call(
            "get_object", key, read_body=True, Key=self._full_key(key), Range=f"bytes={start}-{end - 1}"
        )
        data: bytes = answer["Body"]
        if "ContentRange" not in answer:  # a server that ignored the range sent the whole object
            data = data[start:end]
        return data

    def open_reader(self, key: str, size: int) -> S3ObjectReader:
        """A synchronous, seekable, read-only file object over the object of ``size`` octets (its size from
        the catalogue or :meth:`head`). Only for worker threads: its reads block on requests run on the
        store's event loop, and raise ``RuntimeError`` if made on that loop (they would deadlock it)."""
        self._full_key(key)
        return S3ObjectReader(
            lambda start, end: self._read_blocking(key, start, end),
            size=size,
            name=key,
            read_ahead=self._settings.read_ahead,
        )

    async def abort_stale_uploads(self, *, initiated_before: datetime) -> int:
        """Abort the unfinished multipart uploads under the prefix started before ``initiated_before``
        (timezone-aware), left by a process that died or lost the store mid-upload; how many it aborted.
        Run it with a cut-off older than the longest upload, so no upload in progress is hit."""
        if initiated_before.utcoffset() is None:
            raise ValueError("initiated_before must be timezone-aware")
        stale: list[tuple[str, str]] = []
        params: dict[str, Any] = {"Prefix": self._settings.prefix}
        while True:
            answer = await self._call("list_multipart_uploads", "", **params)
            for upload in answer.get("Uploads") or ():
                if upload["Initiated"] < initiated_before:
                    stale.append((upload["Key"], upload["UploadId"]))
            if not answer.get("IsTruncated"):
                break
            params = {
                "Prefix": self._settings.prefix,
                "KeyMarker": answer.get("NextKeyMarker", ""),
                "UploadIdMarker": answer.get("NextUploadIdMarker", ""),
            }
        for full_key, upload_id in stale:
            key = full_key.removeprefix(self._settings.prefix)
            await self._call("abort_multipart_upload", key, Key=full_key, UploadId=upload_id)
            log.info("aborted the stale multipart upload %s of %s", upload_id, key)
        return len(stale)

    async def _put_parts(
        self, key: str, full_key: str, source: _Source, sha256: str | None, metadata: dict[str, str]
    ) -> None:
        created = await self._call("create_multipart_upload", key, Key=full_key, Metadata=metadata)
        upload_id: str = created["UploadId"]
        try:
            parts = []
            remaining, number = source.size, 1
            while remaining:
                body = await asyncio.to_thread(source.read, min(self._settings.part_size, remaining))
                answer = await self._call(
                    "upload_part",
                    key,
                    Key=full_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=len(body),
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                remaining -= len(body)
                number += 1
            await asyncio.to_thread(source.check_complete, sha256)
            await self._call(
                "complete_multipart_upload",
                key,
                Key=full_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException as exc:
            await self._abort(key, full_key, upload_id, exc)
            raise

    async def _abort(self, key: str, full_key: str, upload_id: str, cause: BaseException) -> None:
        try:
            await self._call("abort_multipart_upload", key, Key=full_key, UploadId=upload_id)
        except S3Error as exc:
            if exc.code in ("NoSuchUpload", "NoSuchBucket"):  # completed, aborted or removed already
                return
            note = (
                f"the multipart upload {upload_id} of {key} could not be aborted ({exc.code}); "
                "abort_stale_uploads() removes it later"
            )
            cause.add_note(note)
            log.warning("%s", note)

    async def _confirm(self, key: str, size: int, sha256: str | None) -> StoredObject:
        try:
            stored = await self.head(key)
        except S3Error as exc:
            raise UnconfirmedUploadError(
                f"the upload of {key} could not be confirmed: {exc}",
                operation=exc.operation,
                key=key,
                code=exc.code,
            ) from exc
        if stored is None:
            problem = "the object is missing"
        elif stored.size != size:
            problem = f"it holds {stored.size} octets instead of {size}"
        elif sha256 is not None and stored.sha256 != sha256:
            problem = f"its SHA-256 metadata is {stored.sha256!r}, not {sha256}"
        else:
            return stored
        raise UnconfirmedUploadError(
            f"the upload of {key} was not confirmed: {problem}",
            operation="head_object",
            key=key,
            code="Unconfirmed",
        )

    def open_object(self, key: str) -> BinaryIO:
        """:meth:`open_reader` with the object's size read from the store (one HEAD), as a buffered binary file;
        ``FileNotFoundError`` when there is no such object. Blocks: for worker threads only
        (:class:`storage.blobs.RemoteObjects`)."""
        size = self.object_size(key)
        if size is None:
            raise FileNotFoundError(f"no object {key} in the S3 bucket {self._settings.bucket}")
        return cast(BinaryIO, io.BufferedReader(self.open_reader(key, size), buffer_size=64 * 1024))

    def object_size(self, key: str) -> int | None:
        """The object's size, None when there is none. Blocks: for worker threads only."""
        stored = self._blocking(self.head(key), "head_object", key)
        return None if stored is None else stored.size

    def _read_blocking(self, key: str, start: int, end: int) -> bytes:
        return self._blocking(self.read_range(key, start, end), "get_object", key)

    def _blocking(self, request: Coroutine[Any, Any, _T], operation: str, key: str) -> _T:
        """Run ``request`` on the store's event loop and wait for it from this (worker) thread."""
        loop = self._loop
        if loop is None or self._client is None or loop.is_closed():
            request.close()
            raise BlobStoreError("the S3 store is closed")
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            request.close()
            raise RuntimeError("an S3 object reader blocks: use it from a worker thread, not the event loop")
        try:
            future = asyncio.run_coroutine_threadsafe(request, loop)
        except RuntimeError:  # the loop closed in the meantime
            request.close()
            raise BlobStoreError("the S3 store is closed") from None
        settings = self._settings
        limit = (
            settings.connect_timeout + settings.read_timeout + _BACKOFF_ALLOWANCE
        ) * settings.max_attempts
        try:
            return future.result(timeout=limit)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise S3Error(
                f"S3 {operation} of {key} got no answer within {limit:.0f} s (is the event loop blocked?)",
                operation=operation,
                key=key,
                code="Timeout",
            ) from None

    async def _call(self, operation: str, key: str, *, read_body: bool = False, **params: Any) -> Any:
        """One S3 request (the client retries it), timed for the observer, its errors translated."""
        client = self._client
        if client is None:
            raise BlobStoreError("the S3 store is not open")
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("the S3 store is used from an event loop other than the one that opened it")
        started = time.monotonic()
        result = S3Result.CONNECTION_ERROR
        try:
            answer = await getattr(client, operation)(Bucket=self._settings.bucket, **params)
            if read_body:
                async with answer["Body"] as body:
                    answer["Body"] = await body.read()
            result = S3Result.OK
            return answer
        except asyncio.CancelledError:
            result = S3Result.CANCELLED
            raise
        except _FAILURES as exc:
            error, result = self._translate(operation, key, exc)
            raise error from exc
        finally:
            self._report(operation, result, time.monotonic() - started)

    def _translate(self, operation: str, key: str, exc: BaseException) -> tuple[S3Error, S3Result]:
        if isinstance(exc, ClientError):
            details = exc.response.get("Error") or {}
            status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
            code = str(details.get("Code") or status)
            detail = str(details.get("Message") or f"HTTP {status}")
            if status == 404:
                result = S3Result.NOT_FOUND
            elif status >= 500:
                result = S3Result.SERVER_ERROR
            else:
                result = S3Result.CLIENT_ERROR
        else:
            code, detail = type(exc).__name__, str(exc)
            timed_out = isinstance(exc, (ConnectTimeoutError, ReadTimeoutError, TimeoutError))
            result = S3Result.TIMEOUT if timed_out else S3Result.CONNECTION_ERROR
        secret = self._settings.secret_access_key
        detail = detail.replace(secret, "[secret]")
        target = f"{key} in" if key else "bucket"
        message = f"S3 {operation} of {target} {self._settings.bucket} failed: {code}: {detail}"
        return S3Error(message, operation=operation, key=key, code=code), result

    def _report(self, operation: str, result: S3Result, seconds: float) -> None:
        if self._observe is None:
            return
        try:
            self._observe(operation, result.value, seconds)
        except Exception:
            log.exception("the S3 request observer failed")

    def _full_key(self, key: str) -> str:
        # S3 keys are at most 1024 octets of UTF-8; a leading slash or an empty key is always a caller's slip.
        if not key or key.startswith("/") or len((self._settings.prefix + key).encode()) > 1024:
            raise ValueError(f"unusable object key {key!r}")
        return self._settings.prefix + key


class _Source:
    """The file being uploaded: read in order, hashed as it goes, checked against its size at the start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = path.open("rb")
        self.size = os.fstat(self._file.fileno()).st_size
        self._digest = hashlib.sha256()
        self._read = 0

    def read(self, count: int) -> bytes:
        data = self._file.read(count)
        if len(data) != count:
            raise BlobStoreError(f"{self.path} shrank while it was uploaded")
        self._digest.update(data)
        self._read += count
        return data

    def check_complete(self, sha256: str | None) -> None:
        if self._read != self.size or self._file.read(1):
            raise BlobStoreError(f"{self.path} grew while it was uploaded")
        if sha256 is not None and self._digest.hexdigest() != sha256:
            raise IntegrityError(f"{self.path} does not match its SHA-256 {sha256}: it changed since")

    def close(self) -> None:
        self._file.close()
