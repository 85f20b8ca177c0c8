"""Recognising a recording session and finding its SDP and metadata parts (RFC 7866 §6.1, design guide §2.2).

An INVITE opens a recording session if any of these holds, because SRCs are inconsistent about which they
send: a metadata part (`application/rs-metadata+xml`, or the draft-era `application/rs-metadata`); the
`+sip.src` feature tag (RFC 7866 §6.1.1) or a bare `;src` on any Contact, as a header parameter or inside the
URI brackets; the `siprec` option tag in Require (never answered with 420).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .multipart import BodyPart

__all__ = ["METADATA_CONTENT_TYPES", "find_metadata", "find_sdp", "is_recording_session"]

METADATA_CONTENT_TYPES = frozenset({"application/rs-metadata+xml", "application/rs-metadata"})
_SRC_FEATURE_TAGS = frozenset({"+sip.src", "src"})
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def is_recording_session(
    *, require: Sequence[str], contacts: Sequence[str], parts: Sequence[BodyPart]
) -> bool:
    """Whether a request opens (or continues) a recording session rather than an ordinary call.

    `require` and `contacts` are the raw header values (several tags or contacts per value allowed).
    """
    if find_metadata(parts) is not None:
        return True
    if any(tag.strip().lower() == "siprec" for value in require for tag in value.split(",")):
        return True
    return any(_has_src_tag(value) for value in contacts)


def find_sdp(parts: Sequence[BodyPart]) -> BodyPart | None:
    """The first `application/sdp` part."""
    return next((part for part in parts if part.content_type == "application/sdp"), None)


def find_metadata(parts: Sequence[BodyPart]) -> BodyPart | None:
    """The first recording metadata part.

    Found by content type; failing that, a part with `Content-Disposition: recording-session` (RFC 7866
    §9.1) sent with another XML type.
    """
    for part in parts:
        if part.content_type in METADATA_CONTENT_TYPES:
            return part
    for part in parts:
        if part.disposition == "recording-session" and part.content_type.endswith(("/xml", "+xml")):
            return part
    return None


def _has_src_tag(contact: str) -> bool:
    # Display names may hold anything, semicolons included: drop quoted strings first. Every
    # `;name[=value]` then counts, whether a header parameter or (a common SRC mistake) a URI parameter.
    unquoted = _QUOTED.sub("", contact)
    for param in unquoted.split(";")[1:]:
        name = param.split("=", 1)[0].split(">", 1)[0].split(",", 1)[0].strip().lower()
        if name in _SRC_FEATURE_TAGS:
            return True
    return False
