"""A recording session offer (RFC 7866 §8.1): the body of an INVITE, re-INVITE or UPDATE, split and read.

The SDP must be there and readable (else `SiprecBodyError` → 400, `SdpError` → 488). The metadata may be
missing or unreadable: the call is recorded all the same (design guide §2.1), so a metadata failure is kept
in `metadata_error` with the raw bytes, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from .detect import find_metadata, find_sdp
from .errors import MetadataError, SiprecBodyError
from .metadata import RecordingMetadata, parse_metadata
from .multipart import BodyPart, split_body
from .sdp import SessionDescription, parse_sdp

__all__ = ["RecordingOffer", "parse_offer"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingOffer:
    sdp: SessionDescription
    metadata: RecordingMetadata | None
    metadata_raw: bytes | None
    metadata_error: str | None
    parts: list[BodyPart]

    @property
    def labels(self) -> list[str | None]:
        """The `a=label` of each offered m-line, in m-line order."""
        return [media.label for media in self.sdp.media]


def parse_offer(content_type: str, body: bytes) -> RecordingOffer:
    """Split and read a request body sent with Content-Type `content_type`."""
    parts = split_body(content_type, body)
    sdp_part = find_sdp(parts)
    if sdp_part is None:
        found = ", ".join(part.content_type for part in parts) or "an empty body"
        raise SiprecBodyError(f"no application/sdp part in {found}")
    sdp = parse_sdp(sdp_part.body)
    metadata_part = find_metadata(parts)
    metadata: RecordingMetadata | None = None
    metadata_error: str | None = None
    if metadata_part is not None:
        try:
            metadata = parse_metadata(metadata_part.body)
        except MetadataError as error:
            metadata_error = str(error)
    return RecordingOffer(
        sdp=sdp,
        metadata=metadata,
        metadata_raw=metadata_part.body if metadata_part is not None else None,
        metadata_error=metadata_error,
        parts=parts,
    )
