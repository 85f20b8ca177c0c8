"""The FTPS transport: a recording and its metadata to the tenant's own FTP server over explicit TLS, exactly once.

Trust: TLS before anything else (``AUTH TLS``, RFC 4217 §4), the server's certificate verified against the
system's trust or the target's own CA certificates (``settings.ca_certificates``) and its name against the
target's host; data connections encrypted too (``PROT P``). A server without TLS, or a certificate that does not
verify, is refused before the password or any audio leaves (a non-retryable :class:`TransportError` saying what
to do); plain FTP is never used. Login is by password (``settings.auth``), decrypted just for the call.
:mod:`.ftps_client` holds the connection.

One recording, in this order (as over SFTP, :mod:`.sftp`):

1. ``<dir>/<name>.<ext>`` already there (``SIZE``, RFC 3659 §4) with the recording's size and SHA-256 (the
   server's ``HASH``, or the file read back): an earlier attempt renamed it and died before the outbox knew; it
   counts as delivered, no second copy. A different file under that name is never overwritten (non-retryable).
2. Otherwise a leftover ``<name>.<ext>.part`` of a dead attempt is deleted, the audio is stored as ``.part``,
   hashed as it is read, its size checked with ``SIZE`` (and its hash with ``HASH`` where the server offers
   SHA-256), the hash compared with the catalogue's, then renamed (``RNFR``/``RNTO``, RFC 959 §4.1.3) to the
   final name. A partial file never carries the final name.
3. The metadata JSON sidecar ``<name>.json`` the same way (``.part``, rename): written again on a repeat.

A notice goes beside the copy it is about: ``<name>.erased.json``, ``.restricted.json``, ``.unrestricted.json``.

ftplib blocks: each call runs in a worker thread, one connection per call at a time. Connections are kept per
target (and credentials) for the calls of one worker pass and closed by :meth:`FtpsTransport.aclose`; a server
that could not be reached (or refused TLS or the login) is not tried again by the other items of the pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import hashlib
import io
import json
import logging
import posixpath
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any, BinaryIO

from storage.delivery_items import DeliveryItem
from storage.delivery_targets import DeliveryTarget

from .ftps_client import FtpsClient
from .names import notice_path, render_name
from .transport import Notice, Payload, Receipt, TransportError

__all__ = ["FtpsTransport"]

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024
_Key = tuple[Any, ...]


class FtpsTransport:
    """A :class:`~siprec_server.delivery.transport.Transport` (and ``ClosableTransport``) for ``ftps`` targets.

    ``timeout`` bounds each connect and each read or write on a connection (not a whole transfer)."""

    def __init__(self, *, timeout: float = 30.0, chunk_size: int = _CHUNK) -> None:
        self._timeout = timeout
        self._chunk = chunk_size
        self._idle: dict[_Key, list[FtpsClient]] = {}
        self._locks: dict[_Key, asyncio.Lock] = {}
        # A server found unreachable stays so until aclose(): the other items of the pass fail fast.
        self._unreachable: dict[_Key, TransportError] = {}

    async def send(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, payload: Payload
    ) -> Receipt:
        settings = target.settings
        directory = _directory(settings)
        base = render_name(str(settings["name_template"]), payload.names)
        final = posixpath.join(directory, f"{base}.{payload.extension}")
        sidecar = None
        if settings.get("sidecar", True):
            document = dict(payload.metadata)
            document["audio"] = {**dict(payload.metadata.get("audio", {})), "file": posixpath.basename(final)}
            sidecar = (posixpath.join(directory, f"{base}.json"), _json(document))
        async with self._client(target, secret) as client:
            size, digest = await asyncio.to_thread(
                _deliver, client, directory, final, payload, sidecar, self._chunk
            )
        return Receipt(remote_path=final, bytes=size, sha256=digest)

    async def notify(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, notice: Notice
    ) -> Receipt:
        settings = target.settings
        path, copy = notice_path(notice, _directory(settings), str(settings["name_template"]))
        data = _json({**notice.to_json(), "file": copy})
        async with self._client(target, secret) as client:
            await asyncio.to_thread(_write, client, path, data)
        return Receipt(remote_path=path, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

    async def aclose(self) -> None:
        self._unreachable.clear()
        clients = [client for idle in self._idle.values() for client in idle]
        self._idle = {}
        if clients:
            await asyncio.to_thread(_close_all, clients)

    # -- connections --
    @contextlib.asynccontextmanager
    async def _client(self, target: DeliveryTarget, secret: str) -> AsyncIterator[FtpsClient]:
        settings = target.settings
        where = f"{settings['host']}:{settings['port']}"
        key = (
            target.id,
            settings["host"],
            settings["port"],
            settings["username"],
            settings.get("ca_certificates"),
            settings.get("ca_file"),
            hashlib.sha256(secret.encode()).hexdigest(),
        )
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key in self._unreachable:
                known = self._unreachable[key]
                raise TransportError(str(known), retryable=known.retryable)
            idle = self._idle.get(key)
            if idle:
                client = idle.pop()
            else:
                try:
                    client = await self._connect(settings, secret)
                except TransportError as exc:
                    self._unreachable[key] = exc
                    raise
                except (ftplib.Error, OSError, EOFError) as exc:
                    raise _translated(exc, where) from exc
        try:
            yield client
        except BaseException as exc:
            # A connection left mid-transfer (an error, or a timeout cancelled the call) is not used again.
            client.discard()
            if isinstance(exc, (ftplib.Error, OSError, EOFError)):
                raise _translated(exc, where) from exc
            raise
        self._idle.setdefault(key, []).append(client)

    async def _connect(self, settings: Mapping[str, Any], secret: str) -> FtpsClient:
        loop = asyncio.get_running_loop()
        opening = loop.run_in_executor(None, lambda: FtpsClient.open(settings, secret, timeout=self._timeout))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The thread cannot be stopped: the connection it makes is dropped when it is made.
            opening.add_done_callback(_discard_opened)
            raise


def _deliver(
    client: FtpsClient,
    directory: str,
    final: str,
    payload: Payload,
    sidecar: tuple[str, bytes] | None,
    chunk: int,
) -> tuple[int, str]:
    client.makedirs(directory)
    existing = client.size(final)
    if existing is None:
        size, digest = _upload(client, final, payload, chunk)
    else:
        size, digest = _already_there(client, final, existing, payload, chunk)
    if sidecar is not None:
        _write(client, *sidecar)
    return size, digest


def _upload(client: FtpsClient, final: str, payload: Payload, chunk: int) -> tuple[int, str]:
    part = f"{final}.part"
    client.delete_if_present(part)  # what a dead attempt left: the upload restarts cleanly
    with payload.open() as source:
        reader = _Hashing(source)
        client.store(part, reader, chunk)
    stored = client.size(part)
    if stored != reader.count or reader.count != payload.size:
        raise TransportError(
            f"{part} holds {stored} bytes after writing {reader.count} of {payload.size}; it is uploaded again",
            retryable=True,
        )
    digest = reader.hexdigest()
    if digest != payload.sha256:
        client.delete_if_present(part)
        raise TransportError(
            f"the audio of {payload.reference} does not match the catalogue's SHA-256; not delivered",
            retryable=False,
        )
    if client.offers_hash and client.sha256_of(part, chunk) != digest:
        raise TransportError(
            f"the server's SHA-256 of {part} differs from what was sent; it is uploaded again", retryable=True
        )
    client.rename(part, final)
    return reader.count, digest


def _already_there(
    client: FtpsClient, final: str, size: int, payload: Payload, chunk: int
) -> tuple[int, str]:
    """The final file exists: an earlier attempt's (same size and hash), or a stranger's (refused)."""
    if size == payload.size and client.sha256_of(final, chunk) == payload.sha256:
        log.info("%s: %s is already complete on the server; not sent again", payload.reference, final)
        return size, payload.sha256
    raise TransportError(
        f"a different file already has the name {final} on the server; it is left alone and "
        f"{payload.reference} is not sent (move that file away, then replay this delivery)",
        retryable=False,
    )


def _write(client: FtpsClient, path: str, data: bytes) -> None:
    """A small file (sidecar, notice) through ``.part`` and a rename that replaces an older one."""
    part = f"{path}.part"
    client.store(part, io.BytesIO(data), _CHUNK)
    client.rename(part, path, replace=True)


class _Hashing:
    """The audio as ``STOR`` reads it, hashed and counted on the way."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._digest = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._source.read(size)
        self._digest.update(chunk)
        self.count += len(chunk)
        return chunk

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _directory(settings: Mapping[str, Any]) -> str:
    directory = str(settings["remote_dir"])
    if "\r" in directory or "\n" in directory:  # RFC 959 §4.1: a line break would end the command
        raise TransportError("settings.remote_dir holds a line break; an FTP path cannot", retryable=False)
    return directory


def _json(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _close_all(clients: list[FtpsClient]) -> None:
    for client in clients:
        client.close()


def _discard_opened(opening: asyncio.Future[FtpsClient]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().discard()


def _translated(exc: BaseException, where: str) -> TransportError:
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransportError(
            f"the FTPS server at {where} presented a certificate that does not verify on a data connection "
            f"({exc.verify_message or exc.reason}); nothing more was sent",
            retryable=False,
        )
    if isinstance(exc, ftplib.error_perm):
        reply = _reason(exc)
        if reply.startswith("552"):  # RFC 959: exceeded storage allocation
            return TransportError(f"the FTPS server at {where} is out of space: {reply}", retryable=True)
        if reply[:3] in ("522", "534", "536"):  # RFC 4217 §§ 9-10, RFC 2228: protection refused
            return TransportError(
                f"the FTPS server at {where} refused the encrypted data connection: {reply}", retryable=False
            )
        return TransportError(
            f"the FTPS server at {where} refused: {reply} (check remote_dir and the account's rights)",
            retryable=False,
        )
    return TransportError(f"FTPS to {where} failed: {_reason(exc)}", retryable=True)


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__
