"""``GET /api/v1/deliveries/{delivery_id}/audio``: the audio behind a webhook's signed download link.

No login: the link itself is the credential, and it opens one delivered recording until it expires
(:mod:`siprec_server.delivery.link_signing`). A missing, malformed, tampered or expired link is 403; a
delivery that is not a recording's is 404; a recording erased since (its row gone, or its data key destroyed)
is 410 Gone. The audio is the decrypted plaintext, as the recordings API plays it (:mod:`storage.audio_range`),
with byte ranges (RFC 9110 §14). Each download is audited as ``recording.download`` with the actor
``delivery:<target name>`` (once per download: not again for a range that does not start at 0).

Mount the router that :func:`build_router` makes under the API prefix, with the server's :class:`LinkSigner`.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from storage.audio_range import AudioStream, RangeNotSatisfiableError, parse_range
from storage.audit import Actor, AuditEntry
from storage.errors import KeyUnavailableError, translated
from storage.models import Recording

from ..api.audio_response import audio_response, open_recording_audio
from ..api.deps import client_origin, services
from ..api.problems import PROBLEM_JSON, ApiProblem
from ..api.services import ApiServices
from .link_signing import LinkCheck, LinkSigner

__all__ = ["build_router"]

log = logging.getLogger(__name__)

Api = Annotated[ApiServices, Depends(services)]

_LINK = """
    SELECT d.tenant_id, d.recording_id, d.reference, d.kind, d.target_id, t.name AS target_name
    FROM deliveries d JOIN delivery_targets t ON t.id = d.target_id
    WHERE d.id = $1
"""
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}, "description": "a problem document (RFC 9457)"}
_AUDIO: dict[str, Any] = {"content": {t: {} for t in ("audio/flac", "audio/wav", "audio/ogg", "audio/mpeg")}}
_REFUSED = {
    LinkCheck.MISSING: "the download link lacks its expires and sig parameters",
    LinkCheck.MALFORMED: "the download link is not valid",
    LinkCheck.BAD_SIGNATURE: "the download link is not valid",
    LinkCheck.TOO_FAR: "the download link is not valid",
    LinkCheck.EXPIRED: "the download link has expired; ask for the recording to be delivered again",
}


def build_router(signer: LinkSigner) -> APIRouter:
    """The download route, checking links with ``signer``."""
    router = APIRouter(tags=["deliveries"])

    @router.get(
        "/deliveries/{delivery_id}/audio",
        response_class=StreamingResponse,
        responses={
            200: _AUDIO,
            206: {**_AUDIO, "description": "the requested range"},
            **dict.fromkeys((403, 404, 410, 416), _PROBLEM),
        },
    )
    async def delivery_audio(
        api: Api,
        request: Request,
        delivery_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
        expires: Annotated[str | None, Query(max_length=20, description="unix time the link expires")] = None,
        sig: Annotated[str | None, Query(max_length=128, description="the link's signature")] = None,
    ) -> Response:
        """A delivered recording's audio, for the holder of a webhook's signed, expiring download link."""
        verdict = signer.check(delivery_id, expires, sig, api.now())
        if verdict is not LinkCheck.VALID:
            raise ApiProblem(403, _REFUSED[verdict], title="Download link refused")
        with translated("look up a delivery"):
            row = await api.pool.fetchrow(_LINK, delivery_id)
        if row is None or row["kind"] != "recording":
            raise ApiProblem(404, "no such delivery")
        recording = await api.catalogue.get(UUID(str(row["recording_id"])))
        if recording is None or recording.tenant_id != row["tenant_id"] or not recording.file_path:
            raise ApiProblem(410, f"recording {row['reference']} was erased")
        stream = await _open(api, recording)
        try:
            byte_range = parse_range(request.headers.get("range"), stream.size)
            if byte_range is None or byte_range.start == 0:
                await _audit(api, request, recording, row)
        except RangeNotSatisfiableError as exc:
            stream.close()
            raise ApiProblem(416, str(exc), headers={"Content-Range": f"bytes */{exc.size}"}) from None
        except BaseException:
            stream.close()
            raise
        return audio_response(stream, byte_range, sha256=recording.sha256)

    return router


async def _open(api: ApiServices, recording: Recording) -> AudioStream:
    try:
        return await open_recording_audio(api, recording)
    except KeyUnavailableError:
        raise ApiProblem(410, f"recording {recording.reference} was erased") from None


async def _audit(api: ApiServices, request: Request, recording: Recording, row: Any) -> None:
    entry = AuditEntry(
        actor=Actor(name=f"delivery:{row['target_name']}", origin=client_origin(request)),
        action="recording.download",
        tenant_id=row["tenant_id"],
        object_kind="recording",
        object_id=str(recording.id),
        details={
            "reference": recording.reference,
            "format": recording.format,
            "via": "webhook link",
            "target_id": str(row["target_id"]),
        },
    )
    await api.audit.record(api.pool, entry)
