"""What a delivery transport implements, and the values it is given and returns.

A transport moves one thing to one target per call: a recording (:meth:`Transport.send`, a :class:`Payload`) or
a notice about a recording already delivered (:meth:`Transport.notify`, a :class:`Notice`). The worker
(:mod:`siprec_server.delivery.worker`) claims outbox rows, builds payloads and notices, calls the transport for
the target's kind, and records the :class:`Receipt` or the failure. Contract for an implementation:

- **Idempotent.** The same item may be handed over again after a crash, on another node: after the remote side
  already took it, or part of it. A repeat must not make a second copy: recognise what is already there (the
  SFTP transport compares an existing final file's size and SHA-256; a webhook sends ``item.idempotency_key``
  so the receiver can drop a repeat) and report it as delivered.
- **Confirmed.** Return a :class:`Receipt` only once the remote side holds the whole thing under its final
  name or has acknowledged it; ``bytes`` and ``sha256`` say what it holds (``sha256`` None where it cannot be
  known). Never leave a partial file under a final name.
- **Failures are** :class:`TransportError`: ``retryable=True`` for what may pass (connection refused, timeout,
  a 5xx), ``False`` for what a retry cannot fix (a host key that is not the pinned one, a refused login, a 4xx):
  the item is then dead at once, with the message as its reason. Messages are for operators: say what failed
  and what to do; never include the secret.
- **Secrets** arrive as ``secret`` (password, private key or signing secret, already decrypted): use it for this
  call only, never log or store it.
- **Blocking** work (reading the audio through :attr:`Payload.open`) goes to a thread
  (``asyncio.to_thread``); the event loop carries SIP and RTP.
- **Time**: the worker bounds each call (``asyncio.timeout``) below the item's lease; a transport needs no
  overall timeout of its own, only connect/read timeouts that fail fast.

A transport may hold connections between calls; if it does, it also implements :class:`ClosableTransport`
and the worker closes it after each pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Protocol, runtime_checkable
from uuid import UUID

from storage.delivery_items import DeliveryItem, DeliveryKind
from storage.delivery_targets import DeliveryTarget
from storage.models import format_timestamp

__all__ = [
    "ClosableTransport",
    "DeliveryFailure",
    "NameFields",
    "Notice",
    "Payload",
    "Receipt",
    "Transport",
    "TransportError",
]


class DeliveryFailure(Exception):
    """Sending an item failed; ``retryable`` says whether a later attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class TransportError(DeliveryFailure):
    """The transport could not deliver to the target (see the module docstring for ``retryable``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NameFields:
    """The values a target's file-name template may use (:data:`storage.delivery_settings.TEMPLATE_FIELDS`),
    unsanitised: a transport makes them safe for its names (:func:`siprec_server.delivery.names.render_name`)."""

    date: str  # "2026-11-28": the call's start, UTC
    time: str  # "140307": HHMMSS, UTC
    reference: str  # "HT-7K3M-Q9RX"
    caller: str  # "+3612345678", or "unknown"
    callee: str
    direction: str  # "inbound" | "outbound" | "unknown"

    def as_dict(self) -> dict[str, str]:
        return {
            "date": self.date,
            "time": self.time,
            "reference": self.reference,
            "caller": self.caller,
            "callee": self.callee,
            "direction": self.direction,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    """A recording to send: its metadata and its decrypted audio in the target's format."""

    recording_id: UUID
    reference: str
    names: NameFields
    # The JSON document a recipient gets beside the audio (the SFTP sidecar, the webhook body): reference,
    # times, parties, numbers, direction, legal basis, retention, and "audio": {format, channels, sample_rate,
    # bytes, sha256}. JSON-ready (strings, numbers, lists, dicts).
    metadata: Mapping[str, Any] = field(hash=False)
    format: str  # "flac" | "wav" | "opus" | "mp3": what `open` yields
    size: int  # octets of the audio
    sha256: str  # hex SHA-256 of the audio, as the catalogue vouches for it
    # The audio's plaintext as a binary file; blocking: call it (and read it) from a worker thread.
    open: Callable[[], contextlib.AbstractContextManager[BinaryIO]] = field(hash=False, compare=False)

    @property
    def extension(self) -> str:
        return self.format


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """A delivered recording was erased, restricted or unrestricted (GDPR Art. 19)."""

    kind: DeliveryKind  # ERASED, RESTRICTED or UNRESTRICTED
    recording_id: UUID
    reference: str
    at: datetime  # when it happened
    reason: str  # erasure_request | consent_withdrawn | consent_refused | legal_hold | hold_released | ...
    copy_path: str | None  # where the recording was delivered to this target (remote path or URL), if known
    names: NameFields | None = None  # for a transport that names the notice after the copy and has no path

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "hangtar-notice",
            "version": 1,
            "event": self.kind.value,
            "recording_id": str(self.recording_id),
            "reference": self.reference,
            "at": format_timestamp(self.at),
            "reason": self.reason,
            "copy": self.copy_path,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """What the remote side now holds."""

    remote_path: str  # the final path of the file, or the URL it was posted to
    bytes: int
    sha256: str | None  # of what it holds; None where the transport cannot know it


class Transport(Protocol):
    async def send(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, payload: Payload
    ) -> Receipt:
        """Deliver the recording; idempotent (see the module docstring)."""
        ...

    async def notify(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, notice: Notice
    ) -> Receipt:
        """Deliver the notice about a copy this target holds; idempotent."""
        ...


@runtime_checkable
class ClosableTransport(Protocol):
    async def aclose(self) -> None:
        """Close connections kept between calls; the transport stays usable."""
        ...
