"""The webhook transport (httpx): each finished recording POSTed to the tenant's CRM, signed, exactly once.

One request per recording to the target's ``settings.url`` (HTTPS; plain ``http://`` only to a loopback host,
:mod:`storage.delivery_settings`), in the target's mode:

- ``link``: a JSON body, the recording's metadata document (:func:`~siprec_server.delivery.payload
  .recording_metadata`) whose ``audio`` gains ``url`` (a signed download link,
  :mod:`siprec_server.delivery.link_signing`) and ``url_expires_at``. The receipt holds the body's size and
  SHA-256: that is what the CRM holds; the audio's hash is in it.
- ``inline``: ``multipart/form-data`` with a ``metadata`` part (the same document, ``audio.file`` naming the
  other part) and an ``audio`` part (the decrypted audio, streamed; its SHA-256 checked against the catalogue's
  before anything is sent). The receipt holds the audio's size and SHA-256.

Headers (the receiver's check is in docs/delivery.md, "CRM webhook"):

- ``Hangtar-Signature: t=<unix>,v1=<hex>``: HMAC-SHA256 under the target's secret of ``f"{t}.{body}"`` (the
  raw body octets), as Stripe signs; the receiver recomputes it in constant time and rejects an old ``t``;
- ``Hangtar-Idempotency-Key``: the same for every sending of one item (a retry, a replay, another node after a
  crash), so the receiver drops a repeat;
- ``Hangtar-Event``: ``recording.finished``, ``recording.erased``, ``recording.restricted`` or
  ``recording.unrestricted``. A notice (:meth:`WebhookTransport.notify`) goes to the same URL, its body
  :meth:`Notice.to_json`.

Answers: 2xx is delivered; 408, 429, 5xx and a connection that fails or times out are retried; any other
status (a 4xx, a redirect: never followed, the body is not sent on to another address) and a certificate that
does not verify are not (the item is dead, with the status and the first line of the answer's body). The
secret goes only into the HMAC; no message carries it, nor the URL's query (where some CRMs put a token).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from storage.audio_range import content_type
from storage.delivery_items import DeliveryItem, DeliveryKind
from storage.delivery_settings import DEFAULT_NAME_TEMPLATE
from storage.delivery_targets import DeliveryTarget
from storage.models import format_timestamp

from .link_signing import MAX_LINK_TTL, LinkSigner
from .names import render_name
from .transport import Notice, Payload, Receipt, TransportError

__all__ = [
    "EVENTS",
    "EVENT_HEADER",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "WebhookTransport",
    "signature_header",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Hangtar-Signature"
IDEMPOTENCY_HEADER = "Hangtar-Idempotency-Key"
EVENT_HEADER = "Hangtar-Event"
EVENTS = {
    DeliveryKind.RECORDING: "recording.finished",
    DeliveryKind.ERASED: "recording.erased",
    DeliveryKind.RESTRICTED: "recording.restricted",
    DeliveryKind.UNRESTRICTED: "recording.unrestricted",
}
_CHUNK = 1 << 18
_EXCERPT = 200  # characters of an error answer's body kept in the delivery log
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_USER_AGENT = "Hangtar-Webhook/1"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``."""
    mac = _mac(secret, timestamp)
    mac.update(body)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _mac(secret: str, timestamp: int) -> hmac.HMAC:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii"), hashlib.sha256)


class WebhookTransport:
    """A :class:`~siprec_server.delivery.transport.Transport` (and ``ClosableTransport``) for ``webhook``
    targets. ``signer`` and ``public_base`` (where the API is reached from outside, e.g.
    ``https://rec.example.hu``) make the links of ``link`` mode; a node without them leaves such items for
    another node (retryable). ``clock`` stamps signatures and links; ``verify`` is httpx's (True: the system's
    trusted certificates)."""

    def __init__(
        self,
        *,
        signer: LinkSigner | None = None,
        public_base: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        link_ttl: timedelta = MAX_LINK_TTL,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        verify: ssl.SSLContext | bool = True,
        chunk_size: int = _CHUNK,
    ) -> None:
        self._signer = signer
        self._public_base = public_base.rstrip("/") if public_base else None
        self._clock = clock
        self._link_ttl = min(link_ttl, MAX_LINK_TTL)
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._verify = verify
        self._chunk = chunk_size
        self._client: httpx.AsyncClient | None = None
        # An endpoint found unreachable stays so until aclose(): the other items of the pass fail fast.
        self._unreachable: dict[str, TransportError] = {}

    async def send(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, payload: Payload
    ) -> Receipt:
        mode = str(target.settings.get("mode", "link"))
        now = self._clock()
        if mode == "inline":
            return await self._send_inline(target, secret, item, payload, now)
        if target.delete_after_delivery:
            raise TransportError(
                f"webhook target {target.name!r} sends download links but deletes our copy after delivery: "
                "the link would lead nowhere; switch it to inline mode or stop deleting after delivery",
                retryable=False,
            )
        if self._signer is None or not self._public_base:
            raise TransportError(
                "this node has no public address for download links (the API's public URL): another node, "
                "or this one once configured, sends it",
                retryable=True,
            )
        expires = self._signer.expiry(now, self._link_ttl)
        audio = dict(payload.metadata.get("audio", {}))
        audio["url"] = self._signer.url(self._public_base, item.id, expires)
        audio["url_expires_at"] = format_timestamp(datetime.fromtimestamp(expires, UTC))
        body = _json({**payload.metadata, "audio": audio})
        timestamp = int(now.timestamp())
        headers = {
            SIGNATURE_HEADER: signature_header(secret, timestamp, body),
            "Content-Type": "application/json",
        }
        await self._post(target, secret, item, DeliveryKind.RECORDING, headers, body)
        return Receipt(remote_path=_shown(target), bytes=len(body), sha256=hashlib.sha256(body).hexdigest())

    async def notify(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, notice: Notice
    ) -> Receipt:
        body = _json(notice.to_json())
        timestamp = int(self._clock().timestamp())
        headers = {
            SIGNATURE_HEADER: signature_header(secret, timestamp, body),
            "Content-Type": "application/json",
        }
        await self._post(target, secret, item, notice.kind, headers, body)
        return Receipt(remote_path=_shown(target), bytes=len(body), sha256=hashlib.sha256(body).hexdigest())

    async def aclose(self) -> None:
        self._unreachable.clear()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- inline mode --
    async def _send_inline(
        self, target: DeliveryTarget, secret: str, item: DeliveryItem, payload: Payload, now: datetime
    ) -> Receipt:
        template = str(target.settings.get("name_template") or DEFAULT_NAME_TEMPLATE)
        filename = f"{render_name(template, payload.names)}.{payload.extension}"
        audio = {**dict(payload.metadata.get("audio", {})), "file": filename}
        boundary = f"hangtar-{secrets.token_hex(16)}"
        head, tail = _multipart_frame(
            boundary, _json({**payload.metadata, "audio": audio}), filename, content_type(payload.format)
        )
        timestamp = int(now.timestamp())
        # The signature covers the whole body and goes before it: a first pass over the audio signs it (and
        # checks it against the catalogue's hash), the request then streams it again.
        signature, size, digest = await asyncio.to_thread(
            self._sign_multipart, secret, timestamp, head, payload, tail
        )
        if size != payload.size or digest != payload.sha256:
            raise TransportError(
                f"the audio of {payload.reference} does not match the catalogue's size and SHA-256; not sent",
                retryable=False,
            )
        headers = {
            SIGNATURE_HEADER: f"t={timestamp},v1={signature}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        await self._post(
            target, secret, item, DeliveryKind.RECORDING, headers, self._stream(head, payload, tail)
        )
        return Receipt(remote_path=_shown(target), bytes=size, sha256=digest)

    def _sign_multipart(
        self, secret: str, timestamp: int, head: bytes, payload: Payload, tail: bytes
    ) -> tuple[str, int, str]:
        """Blocking: the body's signature, and the audio's size and SHA-256."""
        mac, digest, size = _mac(secret, timestamp), hashlib.sha256(), 0
        mac.update(head)
        with payload.open() as source:
            while chunk := source.read(self._chunk):
                mac.update(chunk)
                digest.update(chunk)
                size += len(chunk)
        mac.update(tail)
        return mac.hexdigest(), size, digest.hexdigest()

    async def _stream(self, head: bytes, payload: Payload, tail: bytes) -> AsyncIterator[bytes]:
        yield head
        opened = await asyncio.to_thread(payload.open)
        source = await asyncio.to_thread(opened.__enter__)
        try:
            while chunk := await asyncio.to_thread(source.read, self._chunk):
                yield chunk
        finally:
            await asyncio.to_thread(opened.__exit__, None, None, None)
        yield tail

    # -- the request --
    async def _post(
        self,
        target: DeliveryTarget,
        secret: str,
        item: DeliveryItem,
        kind: DeliveryKind,
        headers: Mapping[str, str],
        body: bytes | AsyncIterator[bytes],
    ) -> None:
        url = str(target.settings["url"])
        endpoint = _shown(target)
        if endpoint in self._unreachable:
            known = self._unreachable[endpoint]
            raise TransportError(str(known), retryable=known.retryable)
        sent = {**headers, IDEMPOTENCY_HEADER: item.idempotency_key, EVENT_HEADER: EVENTS[kind]}
        client = self._http()
        try:
            request = client.build_request("POST", url, headers=sent, content=body)
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            failure = _connection_failure(exc, target)
            if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                self._unreachable[endpoint] = failure
            raise failure from exc
        try:
            if response.is_success:
                return
            excerpt = await _excerpt(response, secret)
        finally:
            await response.aclose()
        raise _refusal(response, excerpt, target)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                verify=self._verify,
                follow_redirects=False,  # a redirect would carry recordings to an address nobody configured
                trust_env=False,  # no proxy or .netrc credentials from the environment
                headers={"User-Agent": _USER_AGENT},
            )
        return self._client


def _multipart_frame(boundary: str, metadata: bytes, filename: str, media_type: str) -> tuple[bytes, bytes]:
    """The multipart/form-data body (RFC 7578) around the audio: (before it, after it)."""
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="metadata"\r\n'
        "Content-Type: application/json\r\n\r\n"
    ).encode("ascii")
    head += metadata + (
        f"\r\n--{boundary}\r\n"
        f'Content-Disposition: form-data; name="audio"; filename="{filename}"\r\n'
        f"Content-Type: {media_type}\r\n\r\n"
    ).encode("ascii")
    return head, f"\r\n--{boundary}--\r\n".encode("ascii")


def _json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _shown(target: DeliveryTarget) -> str:
    """The URL without its query or fragment (a token some CRMs take there stays out of logs)."""
    parts = urlsplit(str(target.settings["url"]))
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))


async def _excerpt(response: httpx.Response, secret: str) -> str:
    """The start of an error answer's body, on one line, the secret blanked should the receiver echo it."""
    received = b""
    async for chunk in response.aiter_bytes():
        received += chunk
        if len(received) >= 4 * _EXCERPT:
            break
    text = received.decode("utf-8", "replace")
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text[:_EXCERPT] + ("…" if len(text) > _EXCERPT else "")


def _refusal(response: httpx.Response, excerpt: str, target: DeliveryTarget) -> TransportError:
    status = response.status_code
    where = _shown(target)
    said = f"{status} {response.reason_phrase}".strip() + (f": {excerpt}" if excerpt else "")
    if status in _RETRYABLE_STATUS or status >= 500:
        return TransportError(f"the webhook at {where} answered {said}", retryable=True)
    if 300 <= status < 400:
        return TransportError(
            f"the webhook at {where} answered {said} (a redirect to {response.headers.get('location')!r}); "
            "redirects are not followed: set the target's URL to the final address, then replay",
            retryable=False,
        )
    return TransportError(
        f"the webhook at {where} refused the delivery: {said} (fix the receiver or the target's secret, "
        "then replay)",
        retryable=False,
    )


def _connection_failure(exc: httpx.HTTPError, target: DeliveryTarget) -> TransportError:
    where = _shown(target)
    if _certificate_failed(exc):
        return TransportError(
            f"the webhook at {where} presented a certificate that does not verify; nothing was sent "
            f"({_reason(exc)})",
            retryable=False,
        )
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return TransportError(f"the webhook URL {where} cannot be used: {_reason(exc)}", retryable=False)
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return TransportError(
            f"no answer in time from the webhook at {where}: {_reason(exc)}", retryable=True
        )
    return TransportError(f"cannot reach the webhook at {where}: {_reason(exc)}", retryable=True)


def _certificate_failed(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
