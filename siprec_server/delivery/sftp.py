"""The SFTP transport (asyncssh): a recording and its metadata to the tenant's own server, exactly once.

Trust: the server must present the host key pinned in the target (``settings.host_key``); the known hosts are
built from that key alone, never from ``~/.ssh`` or an agent, so an unknown or changed key is refused before a
password or any audio leaves (a non-retryable :class:`TransportError` saying what to do). Login is by private
key or password (``settings.auth``), the secret decrypted just for the call.

One recording, in this order (RFC draft-ietf-secsh-filexfer-02 operations; the rename is OpenSSH's
``posix-rename@openssh.com``, which replaces atomically):

1. ``<dir>/<name>.<ext>`` already there with the recording's size and SHA-256: an earlier attempt renamed it
   and died before the outbox knew; it counts as delivered, no second copy. A different file under that name
   is never overwritten (non-retryable).
2. Otherwise the audio is streamed to ``<name>.<ext>.part`` (a leftover ``.part`` of a dead attempt is
   truncated: the upload restarts cleanly), hashed as it is read, its size checked by ``stat`` once written,
   the hash compared with the catalogue's, then renamed to the final name. A partial file never carries the
   final name.
3. The metadata JSON sidecar ``<name>.json`` the same way (``.part``, rename): written again on a repeat, so a
   crash between the audio's rename and the sidecar's is mended.

A notice goes beside the copy it is about: ``<name>.erased.json``, ``.restricted.json``, ``.unrestricted.json``.

Connections are kept per target (and credentials) for the calls of one worker pass and closed by
:meth:`SftpTransport.aclose`; a server that could not be reached (or refused the key or login) is not tried
again by the other items of the same pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import posixpath
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import asyncssh

from storage.delivery_items import DeliveryItem
from storage.delivery_targets import DeliveryTarget

from .names import notice_path, render_name
from .transport import Notice, Payload, Receipt, TransportError

__all__ = ["SftpTransport"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # asyncssh splits a large write into parallel requests of the server's size
# AES-GCM first: one call per packet in the cryptography library, where ChaCha20-Poly1305 takes several.
_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr")


@dataclass(slots=True)
class _Session:
    connection: asyncssh.SSHClientConnection
    sftp: asyncssh.SFTPClient
    directories: set[str] = field(default_factory=set)  # made (or found) on this connection


class SftpTransport:
    """A :class:`~siprec_server.delivery.transport.Transport` (and ``ClosableTransport``) for ``sftp`` targets."""

    def __init__(self, *, connect_timeout: float = 15.0, chunk_size: int = _CHUNK) -> None:
        self._connect_timeout = connect_timeout
        self._chunk = chunk_size
        self._sessions: dict[tuple[Any, ...], _Session] = {}
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}
        # A server found unreachable stays so until aclose(): the other items of the pass fail fast.
        self._unreachable: dict[tuple[Any, ...], TransportError] = {}

    async def send(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, payload: Payload
    ) -> Receipt:
        settings = target.settings
        directory = str(settings["remote_dir"])
        base = render_name(str(settings["name_template"]), payload.names)
        final = posixpath.join(directory, f"{base}.{payload.extension}")
        async with self._session(target, secret) as session:
            await self._directory(session, directory)
            existing = await _size_of(session.sftp, final)
            if existing is None:
                size, digest = await self._upload(session.sftp, final, payload)
            else:
                size, digest = await self._already_there(session.sftp, final, existing, payload)
            if settings.get("sidecar", True):
                document = dict(payload.metadata)
                document["audio"] = {
                    **dict(payload.metadata.get("audio", {})),
                    "file": posixpath.basename(final),
                }
                await _write_json(session.sftp, posixpath.join(directory, f"{base}.json"), document)
        return Receipt(remote_path=final, bytes=size, sha256=digest)

    async def notify(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, notice: Notice
    ) -> Receipt:
        settings = target.settings
        path, copy = notice_path(notice, str(settings["remote_dir"]), str(settings["name_template"]))
        document = {**notice.to_json(), "file": copy}
        async with self._session(target, secret) as session:
            size, digest = await _write_json(session.sftp, path, document)
        return Receipt(remote_path=path, bytes=size, sha256=digest)

    async def aclose(self) -> None:
        self._unreachable.clear()
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            _close(session)
        await asyncio.gather(*(s.connection.wait_closed() for s in sessions), return_exceptions=True)

    # -- connections --
    @contextlib.asynccontextmanager
    async def _session(self, target: DeliveryTarget, secret: str) -> AsyncIterator[_Session]:
        settings = target.settings
        key = (
            target.id,
            settings["host"],
            settings["port"],
            settings["username"],
            settings["host_key"],
            settings["auth"],
            hashlib.sha256(secret.encode()).hexdigest(),
        )
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._unreachable:
                known = self._unreachable[key]
                raise TransportError(str(known), retryable=known.retryable)
            session = self._sessions.get(key)
            if session is None or session.connection.is_closed():
                try:
                    session = await self._connect(target, secret)
                except TransportError as exc:
                    self._unreachable[key] = exc
                    raise
                self._sessions[key] = session
        try:
            yield session
        except BaseException as exc:
            # A broken connection, or one left mid-request (a timeout cancelled the call): the next call makes
            # a new one. An SFTP status error (no such directory, permission denied) leaves it usable.
            if self._sessions.get(key) is session and not isinstance(exc, asyncssh.SFTPError):
                del self._sessions[key]
                _close(session)
            if isinstance(exc, (asyncssh.Error, OSError)):
                raise _translated(exc, target) from exc
            raise

    async def _connect(self, target: DeliveryTarget, secret: str) -> _Session:
        settings = target.settings
        where = f"{settings['host']}:{settings['port']}"
        try:
            pinned = asyncssh.import_public_key(str(settings["host_key"]))
            client_keys = [asyncssh.import_private_key(secret)] if settings["auth"] == "key" else None
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise TransportError(f"the target's key cannot be read: {exc}", retryable=False) from None
        known_hosts = asyncssh.import_known_hosts(f"* {pinned.export_public_key().decode().strip()}\n")
        try:
            connection = await asyncssh.connect(
                str(settings["host"]),
                int(settings["port"]),
                username=str(settings["username"]),
                known_hosts=known_hosts,
                client_keys=client_keys,
                password=secret if settings["auth"] == "password" else None,
                preferred_auth="publickey" if client_keys else "password,keyboard-interactive",
                agent_path=None,
                config=[],
                x509_trusted_certs=None,
                connect_timeout=self._connect_timeout,
                login_timeout=self._connect_timeout,
                keepalive_interval=30,
                encryption_algs=_CIPHERS,
            )
        except asyncssh.HostKeyNotVerifiable:
            raise TransportError(
                f"the SFTP server at {where} did not present the pinned host key ({pinned.get_algorithm()}); "
                "nothing was sent. If its key was changed on purpose, pin the new one (ssh-keyscan -p "
                f"{settings['port']} {settings['host']}); otherwise someone may be intercepting the connection",
                retryable=False,
            ) from None
        except asyncssh.PermissionDenied:
            raise TransportError(
                f"the SFTP server at {where} refused the login of {settings['username']!r} "
                f"by {settings['auth']}: check the target's credentials",
                retryable=False,
            ) from None
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise TransportError(
                f"cannot reach the SFTP server at {where}: {_reason(exc)}", retryable=True
            ) from exc
        try:
            sftp = await connection.start_sftp_client()
        except (asyncssh.Error, OSError) as exc:
            connection.close()
            raise TransportError(
                f"the server at {where} offers no SFTP: {_reason(exc)}", retryable=False
            ) from exc
        return _Session(connection=connection, sftp=sftp)

    async def _directory(self, session: _Session, directory: str) -> None:
        if directory in session.directories:
            return
        await session.sftp.makedirs(directory, exist_ok=True)
        session.directories.add(directory)

    # -- files --
    async def _upload(self, sftp: asyncssh.SFTPClient, final: str, payload: Payload) -> tuple[int, str]:
        part = f"{final}.part"
        digest = hashlib.sha256()
        written = 0
        opened = await asyncio.to_thread(payload.open)
        source = await asyncio.to_thread(opened.__enter__)
        try:
            async with sftp.open(part, "wb") as remote:  # truncates what a dead attempt left
                while chunk := await asyncio.to_thread(source.read, self._chunk):
                    digest.update(chunk)
                    await remote.write(chunk)
                    written += len(chunk)
        finally:
            await asyncio.to_thread(opened.__exit__, None, None, None)
        stored = (await sftp.stat(part)).size
        if stored != written or written != payload.size:
            raise TransportError(
                f"{part} holds {stored} bytes after writing {written} of {payload.size}; it is uploaded again",
                retryable=True,
            )
        if digest.hexdigest() != payload.sha256:
            await sftp.remove(part)
            raise TransportError(
                f"the audio of {payload.reference} does not match the catalogue's SHA-256; not delivered",
                retryable=False,
            )
        await sftp.posix_rename(part, final)
        return written, digest.hexdigest()

    async def _already_there(
        self, sftp: asyncssh.SFTPClient, final: str, size: int, payload: Payload
    ) -> tuple[int, str]:
        """The final file exists: an earlier attempt's (same size and hash), or a stranger's (refused)."""
        if size == payload.size:
            digest = hashlib.sha256()
            async with sftp.open(final, "rb") as remote:
                while chunk := await remote.read(self._chunk):
                    digest.update(cast(bytes, chunk))  # opened in binary mode
            if digest.hexdigest() == payload.sha256:
                log.info("%s: %s is already complete on the server; not sent again", payload.reference, final)
                return size, payload.sha256
        raise TransportError(
            f"a different file already has the name {final} on the server; it is left alone and "
            f"{payload.reference} is not sent (move that file away, then replay this delivery)",
            retryable=False,
        )


async def _write_json(sftp: asyncssh.SFTPClient, path: str, document: Mapping[str, Any]) -> tuple[int, str]:
    data = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    part = f"{path}.part"
    async with sftp.open(part, "wb") as remote:
        await remote.write(data)
    await sftp.posix_rename(part, path)
    return len(data), hashlib.sha256(data).hexdigest()


async def _size_of(sftp: asyncssh.SFTPClient, path: str) -> int | None:
    try:
        attrs = await sftp.stat(path)
    except asyncssh.SFTPNoSuchFile:
        return None
    return attrs.size


def _close(session: _Session) -> None:
    session.sftp.exit()
    session.connection.close()


def _translated(exc: BaseException, target: DeliveryTarget) -> TransportError:
    if isinstance(exc, TransportError):
        return exc
    where = f"{target.settings['host']}:{target.settings['port']}"
    if isinstance(exc, asyncssh.SFTPOpUnsupported):
        return TransportError(f"the SFTP server at {where} cannot rename atomically: {exc}", retryable=False)
    if isinstance(exc, (asyncssh.SFTPPermissionDenied, asyncssh.SFTPNoSuchFile, asyncssh.SFTPNotADirectory)):
        return TransportError(
            f"the SFTP server at {where} refused: {_reason(exc)} (check remote_dir and the account's rights)",
            retryable=False,
        )
    return TransportError(f"SFTP to {where} failed: {_reason(exc)}", retryable=True)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc or type(exc).__name__)
