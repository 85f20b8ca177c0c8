"""A delivery target's secret (password, private key, webhook signing secret), stored only encrypted.

The secret is encrypted like a recording (GDPR Art. 32(1)(a)): a fresh random AES-256 data key encrypts it
(AES-GCM, bound to the target's id, so a stored secret cannot be moved to another target), and the data key is
stored only wrapped by the tenant's key (:class:`storage.keys.KeyProvider`). Stored value::

    secret_ref      the key reference the provider wrapped with ("keyfile:<tenant>:<version>")
    secret_wrapped  u16 length of the wrapped key | wrapped key | 12-octet nonce | ciphertext + tag

A rotated tenant key still unwraps the older versions, so stored secrets stay readable. Provider calls may block
(file locks, a KMS): these functions are for a worker thread.
"""

from __future__ import annotations

import os
import struct
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import KeyUnavailableError
from .keys import KeyProvider

__all__ = ["open_secret", "seal_secret"]

_LABEL = b"hangtar delivery secret\x00"
_NONCE = 12
_MAX_SECRET = 64 * 1024  # a private key in PEM is a few kB


def seal_secret(provider: KeyProvider, tenant_id: UUID, target_id: UUID, secret: str) -> tuple[str, bytes]:
    """(key reference, stored bytes) of ``secret`` for the target. Blocking."""
    plain = secret.encode("utf-8")
    if not plain or len(plain) > _MAX_SECRET:
        raise ValueError(f"a secret is 1 to {_MAX_SECRET} octets")
    data_key = AESGCM.generate_key(bit_length=256)
    key_ref, wrapped = provider.wrap(tenant_id, data_key)
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(data_key).encrypt(nonce, plain, _LABEL + target_id.bytes)
    return key_ref, struct.pack(">H", len(wrapped)) + wrapped + nonce + sealed


def open_secret(provider: KeyProvider, key_ref: str, stored: bytes, target_id: UUID) -> str:
    """The secret; :class:`KeyUnavailableError` when the tenant key is gone or the bytes are not this target's
    secret. Blocking."""
    try:
        (length,) = struct.unpack(">H", stored[:2])
        wrapped = stored[2 : 2 + length]
        nonce = stored[2 + length : 2 + length + _NONCE]
        sealed = stored[2 + length + _NONCE :]
        data_key = provider.unwrap(key_ref, wrapped)
        return AESGCM(data_key).decrypt(nonce, sealed, _LABEL + target_id.bytes).decode("utf-8")
    except (struct.error, InvalidTag, ValueError) as exc:
        raise KeyUnavailableError(
            f"the stored secret of delivery target {target_id} does not decrypt"
        ) from exc
