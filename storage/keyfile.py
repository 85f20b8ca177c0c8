"""Key-encryption keys in a file, for a single node: one random AES-256 key per tenant and one for the calls no
tenant claims, each in numbered versions.

The file is JSON, created with mode 0600 on first use and refused when others may read it::

    {"format": "hangtar-keys", "version": 1,
     "keys": [{"scope": "system" | "<tenant uuid>", "version": 1, "created_at": "...Z", "key": "<base64>"}]}

A tenant's key is made when it is first needed; :meth:`KeyFileProvider.rotate` adds a newer version that
wraps from then on, while the older ones still unwrap. Keys are never removed or changed in place, and a file
that does not parse is never overwritten. Changes are read-modify-write under an exclusive ``flock`` on
``<file>.lock`` and land by an atomic rename after fsync, so the server and the CLI can share the file; a
process re-reads the file when it changed (so a rotation made by the CLI reaches the server), and refuses to
go on if a key it knew is missing from it (a file replaced by an older copy would otherwise lose keys).

Wrapping is AES-256-GCM under the key-encryption key, with the key reference as associated data: a wrapped key
only unwraps under the tenant key version that wrapped it. Key material is never logged and not in ``repr()``.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import KeyUnavailableError

if TYPE_CHECKING:
    from _typeshed import StrPath

__all__ = ["KeyFileProvider"]

_FORMAT = "hangtar-keys"
_VERSION = 1
_PREFIX = "keyfile"
_SYSTEM = "system"  # the scope of calls no tenant claims
_KEY_SIZE = 32
_NONCE_SIZE = 12
_WRAP_LABEL = b"hangtar data key\x00"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Kek:
    scope: str
    version: int
    created_at: str
    key: bytes = field(repr=False)

    @property
    def ref(self) -> str:
        return f"{_PREFIX}:{self.scope}:{self.version}"


def _scope(tenant_id: UUID | None) -> str:
    return _SYSTEM if tenant_id is None else str(tenant_id)


def _parse_ref(key_ref: str) -> tuple[str, int]:
    prefix, _, rest = key_ref.partition(":")
    scope, _, version = rest.rpartition(":")
    if prefix != _PREFIX or not scope or not version.isdigit():
        raise KeyUnavailableError(f"{key_ref!r} is not a key of this node's key file")
    return scope, int(version)


class KeyFileProvider:
    """A :class:`storage.keys.KeyProvider` over a key file; thread-safe."""

    def __init__(self, path: StrPath, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        self._clock = clock
        self._mutex = threading.Lock()
        self._keys: dict[tuple[str, int], _Kek] | None = None  # loaded on first use
        self._signature: tuple[int, int, int] | None = None  # (inode, mtime, size) of the file as loaded

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        loaded = "not loaded" if self._keys is None else f"{len(self._keys)} keys"
        return f"KeyFileProvider({str(self._path)!r}, {loaded})"

    def key_ref(self, tenant_id: UUID | None) -> str:
        """The reference of the tenant's current key (made now if the tenant has none)."""
        with self._mutex:
            return self._current(_scope(tenant_id)).ref

    def wrap(self, tenant_id: UUID | None, data_key: bytes) -> tuple[str, bytes]:
        """``data_key`` wrapped by the tenant's current key: (key reference, nonce + ciphertext + tag)."""
        if len(data_key) != _KEY_SIZE:
            raise ValueError(f"a data key has {_KEY_SIZE} octets")
        with self._mutex:
            kek = self._current(_scope(tenant_id))
        nonce = os.urandom(_NONCE_SIZE)
        return kek.ref, nonce + AESGCM(kek.key).encrypt(nonce, data_key, _WRAP_LABEL + kek.ref.encode())

    def unwrap(self, key_ref: str, wrapped: bytes) -> bytes:
        """The data key; :class:`KeyUnavailableError` if the key is unknown or ``wrapped`` is not its work."""
        scope, version = _parse_ref(key_ref)
        with self._mutex:
            kek = self._refresh().get((scope, version))
        if kek is None:
            raise KeyUnavailableError(f"the key file {self._path} holds no key {key_ref}")
        try:
            return AESGCM(kek.key).decrypt(
                wrapped[:_NONCE_SIZE], wrapped[_NONCE_SIZE:], _WRAP_LABEL + key_ref.encode()
            )
        except (InvalidTag, ValueError):
            raise KeyUnavailableError(f"the wrapped data key does not unwrap with {key_ref}") from None

    def rotate(self, tenant_id: UUID | None) -> str:
        """Add a new version of the tenant's key, used for wrapping from now on; its reference."""
        with self._mutex:
            return self._add(_scope(tenant_id), rotate=True).ref

    def key_refs(self, tenant_id: UUID | None) -> list[str]:
        """The references of every version of the tenant's key, oldest first."""
        scope = _scope(tenant_id)
        with self._mutex:
            return [kek.ref for (s, _), kek in sorted(self._refresh().items()) if s == scope]

    def _refresh(self) -> dict[tuple[str, int], _Kek]:
        """The keys, re-read when another process changed the file since we last did."""
        if self._keys is None or self._stat() != self._signature:
            return self._load()
        return self._keys

    def _load(self) -> dict[tuple[str, int], _Kek]:
        signature = self._stat()
        keys = self._read()
        if self._keys:  # keys are only ever added: one we knew that is gone means the file was replaced
            lost = [kek.ref for ident, kek in self._keys.items() if keys.get(ident) != kek]
            if lost:
                raise KeyUnavailableError(
                    f"the key file {self._path} no longer holds {', '.join(lost)}: restore it from a backup"
                )
        self._keys, self._signature = keys, signature
        return keys

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            status = self._path.stat()
        except FileNotFoundError:
            return None
        return status.st_ino, status.st_mtime_ns, status.st_size

    def _current(self, scope: str) -> _Kek:
        versions = [kek for (s, _), kek in self._refresh().items() if s == scope]
        if versions:
            return max(versions, key=lambda kek: kek.version)
        return self._add(scope, rotate=False)

    def _add(self, scope: str, *, rotate: bool) -> _Kek:
        with self._exclusive():
            keys = dict(self._load())
            versions = [v for (s, v) in keys if s == scope]
            if versions and not rotate:  # another process made it meanwhile
                return keys[scope, max(versions)]
            kek = _Kek(
                scope=scope,
                version=max(versions, default=0) + 1,
                created_at=self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                key=AESGCM.generate_key(bit_length=256),
            )
            keys[scope, kek.version] = kek
            self._write(keys)
            self._keys, self._signature = keys, self._stat()
            return kek

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> dict[tuple[str, int], _Kek]:
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise KeyUnavailableError(f"cannot open the key file {self._path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode & 0o777
            if mode & 0o077:
                raise KeyUnavailableError(
                    f"the key file {self._path} is open to other users (mode {mode:04o}): chmod 600 it"
                )
            raw = file.read()
        try:
            return _parse(json.loads(raw))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise KeyUnavailableError(f"the key file {self._path} is damaged: {exc}") from None

    def _write(self, keys: dict[tuple[str, int], _Kek]) -> None:
        document = {
            "format": _FORMAT,
            "version": _VERSION,
            "keys": [
                {
                    "scope": kek.scope,
                    "version": kek.version,
                    "created_at": kek.created_at,
                    "key": base64.b64encode(kek.key).decode(),
                }
                for _, kek in sorted(keys.items())
            ],
        }
        temporary = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(json.dumps(document, indent=1).encode())
                file.flush()
                os.fsync(file.fileno())
            temporary.replace(self._path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(self._path.parent, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _parse(document: Any) -> dict[tuple[str, int], _Kek]:
    if document.get("format") != _FORMAT or document.get("version") != _VERSION:
        raise ValueError(f"not a {_FORMAT} version {_VERSION} document")
    keys: dict[tuple[str, int], _Kek] = {}
    for entry in document["keys"]:
        scope, version = entry["scope"], entry["version"]
        if scope != _SYSTEM:
            UUID(scope)
        if not isinstance(version, int) or version < 1:
            raise ValueError(f"bad key version {version!r}")
        key = base64.b64decode(entry["key"], validate=True)
        if len(key) != _KEY_SIZE:
            raise ValueError(f"key {scope}:{version} is not {_KEY_SIZE} octets")
        if (scope, version) in keys:
            raise ValueError(f"key {scope}:{version} appears twice")
        keys[scope, version] = _Kek(
            scope=scope, version=version, created_at=str(entry["created_at"]), key=key
        )
    return keys
