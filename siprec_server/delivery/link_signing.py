"""Signed, expiring download links for webhook deliveries in ``link`` mode.

A CRM told of a recording gets ``{public_base}/api/v1/deliveries/{delivery_id}/audio?expires=<unix>&sig=<hex>``;
``sig`` is HMAC-SHA256, under a server secret, of the delivery id and the expiry. Whoever holds the link may
download that one recording until it expires (at most :data:`MAX_LINK_TTL` ahead), and no other: the link
carries no credential that opens anything else. Signing and checking are pure (``now`` is a parameter).

The secret is 32 random octets in ``<data_dir>/keys/delivery-link.key`` (hex, mode 0600), made on first use.
Nodes behind one public address must share the file: a link made on one node is checked on whichever node
answers the download. Replacing the file revokes every link issued so far.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

__all__ = [
    "KEY_FILE_NAME",
    "MAX_LINK_TTL",
    "LinkCheck",
    "LinkSigner",
    "download_path",
    "load_link_key",
]

KEY_FILE_NAME = "delivery-link.key"
MAX_LINK_TTL = timedelta(days=7)
_KEY_BYTES = 32
_LABEL = b"hangtar delivery link v1\x00"


class LinkCheck(enum.Enum):
    VALID = "valid"
    MISSING = "missing"  # no expires or sig
    MALFORMED = "malformed"
    EXPIRED = "expired"
    TOO_FAR = "too_far"  # expires more than MAX_LINK_TTL ahead: we never sign such a link
    BAD_SIGNATURE = "bad_signature"


def download_path(delivery_id: int) -> str:
    """The API path (under ``/api/v1``) a link points at."""
    return f"/deliveries/{delivery_id}/audio"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSigner:
    key: bytes = field(repr=False)
    max_ttl: timedelta = MAX_LINK_TTL

    def __post_init__(self) -> None:
        if len(self.key) < _KEY_BYTES:
            raise ValueError(f"a link signing key has at least {_KEY_BYTES} octets")
        if not timedelta(0) < self.max_ttl <= MAX_LINK_TTL:
            raise ValueError(f"a link lives at most {MAX_LINK_TTL.days} days")

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> LinkSigner:
        """The signer over ``<data_dir>/keys/delivery-link.key``, made now if missing. Blocking."""
        return cls(key=load_link_key(data_dir / "keys" / KEY_FILE_NAME))

    def signature(self, delivery_id: int, expires: int) -> str:
        message = _LABEL + f"{delivery_id}\x00{expires}".encode("ascii")
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def url(self, public_base: str, delivery_id: int, expires: int) -> str:
        """``public_base`` is where the API is reached from outside, e.g. ``https://rec.example.hu`` (the
        ``/api/v1`` prefix is added)."""
        query = urlencode({"expires": expires, "sig": self.signature(delivery_id, expires)})
        return f"{public_base.rstrip('/')}/api/v1{download_path(delivery_id)}?{query}"

    def expiry(self, now: datetime, ttl: timedelta | None = None) -> int:
        """The unix time a link made at ``now`` expires (``ttl`` capped at the maximum)."""
        chosen = self.max_ttl if ttl is None else min(ttl, self.max_ttl)
        return int((now + chosen).timestamp())

    def check(self, delivery_id: int, expires: str | None, sig: str | None, now: datetime) -> LinkCheck:
        """Whether a link's ``expires`` and ``sig`` (as they came in the query) open the delivery at ``now``;
        the signature is compared in constant time."""
        if not expires or not sig:
            return LinkCheck.MISSING
        if not expires.isascii() or not expires.isdigit() or len(expires) > 12 or len(sig) != 64:
            return LinkCheck.MALFORMED
        when = int(expires)
        if not hmac.compare_digest(self.signature(delivery_id, when), sig.lower()):
            return LinkCheck.BAD_SIGNATURE
        moment = now.timestamp()
        if when <= moment:
            return LinkCheck.EXPIRED
        if when > moment + MAX_LINK_TTL.total_seconds():
            return LinkCheck.TOO_FAR
        return LinkCheck.VALID


def load_link_key(path: Path) -> bytes:
    """The key in ``path`` (64 hex digits), made (0600) if there is none. Two processes making it at once end
    with the same key: it is written under a temporary name and linked into place, never overwritten. Blocking."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(_KEY_BYTES) + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs counts
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    text = path.read_text(encoding="ascii").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path} does not hold a link signing key (64 hex digits)") from None
    if len(key) < _KEY_BYTES:
        raise ValueError(f"{path} holds a key of {len(key)} octets; a link signing key has {_KEY_BYTES}")
    return key
