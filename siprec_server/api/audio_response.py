"""A recording's audio as an HTTP response: opened off the event loop, streamed in pieces, Range-aware.

Shared by the API's audio and download endpoints and the signed download links of CRM deliveries. The audio is
the decrypted recording as stored (``storage.audio_range``); nothing is cached on the way (``no-store``: personal
data). ``ETag`` is the audio's SHA-256 and ``Repr-Digest`` (RFC 9530 §3) lets the client check what it saved.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Mapping

from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from storage.audio_range import AudioStream, ByteRange, open_audio
from storage.models import Recording, RecordingStatus

from .problems import ApiProblem
from .services import ApiServices

__all__ = ["NO_STORE", "audio_response", "open_recording_audio"]

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}  # personal data: kept by no cache, the browser's included


async def open_recording_audio(api: ApiServices, r: Recording) -> AudioStream:
    """The recording's audio, opened in a worker thread (the opener blocks while it fetches the key). A
    destroyed key raises ``KeyUnavailableError``, which the problem handlers answer with 410."""
    if r.status is RecordingStatus.RECORDING:
        raise ApiProblem(
            409, f"recording {r.reference} is still being recorded; its audio follows at the end"
        )
    if api.audio is None or not r.file_path:
        raise ApiProblem(404, f"recording {r.reference} has no audio ({r.status.value})")
    try:
        return await asyncio.to_thread(open_audio, api.audio, r)
    except FileNotFoundError:
        log.error("recording %s: its audio file %s is missing", r.reference, r.file_path)
        raise ApiProblem(404, f"the audio of recording {r.reference} is missing from storage") from None


def audio_response(
    stream: AudioStream,
    byte_range: ByteRange | None,
    *,
    sha256: str | None,
    ranges: bool = True,
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """200 with the whole audio, or 206 with ``byte_range`` (RFC 9110 §14); the response closes ``stream``.
    ``ranges``: the endpoint honours Range requests (``Accept-Ranges: bytes``)."""
    out = {**NO_STORE, **(headers or {})}
    if ranges:
        out["Accept-Ranges"] = "bytes"
    if sha256 is not None:
        out["ETag"] = f'"{sha256}"'
        out["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(sha256)).decode()}:"
    if byte_range is None:
        out["Content-Length"] = str(stream.size)
    else:
        out["Content-Length"] = str(byte_range.length)
        out["Content-Range"] = byte_range.content_range(stream.size)
    return StreamingResponse(
        _pieces(stream, byte_range),
        status_code=200 if byte_range is None else 206,
        media_type=stream.content_type,
        headers=out,
        background=BackgroundTask(stream.close),
    )


async def _pieces(stream: AudioStream, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
    pieces = stream.pieces(byte_range)
    try:
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            yield piece
    finally:
        stream.close()
