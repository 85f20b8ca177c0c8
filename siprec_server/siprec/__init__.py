"""The SIPREC layer's pure pieces: body splitting, detection, SDP offer/answer, RFC 7865 metadata, layout."""

from .detect import METADATA_CONTENT_TYPES, find_metadata, find_sdp, is_recording_session
from .errors import MetadataError, SdpError, SiprecBodyError, SiprecError
from .layout import ChannelLayout, assign_channels
from .metadata import (
    MAX_METADATA_BYTES,
    RECORDING_NAMESPACES,
    Participant,
    RecordingMetadata,
    StreamInfo,
    parse_metadata,
    parse_timestamp,
)
from .multipart import BodyPart, parse_content_type, split_body
from .offer import RecordingOffer, parse_offer
from .sdp import (
    STATIC_PAYLOAD_TYPES,
    MediaDescription,
    NegotiatedStream,
    Origin,
    RtpMap,
    SdpAnswer,
    SessionDescription,
    build_answer,
    parse_sdp,
)

__all__ = [
    "MAX_METADATA_BYTES",
    "METADATA_CONTENT_TYPES",
    "RECORDING_NAMESPACES",
    "STATIC_PAYLOAD_TYPES",
    "BodyPart",
    "ChannelLayout",
    "MediaDescription",
    "MetadataError",
    "NegotiatedStream",
    "Origin",
    "Participant",
    "RecordingMetadata",
    "RecordingOffer",
    "RtpMap",
    "SdpAnswer",
    "SdpError",
    "SessionDescription",
    "SiprecBodyError",
    "SiprecError",
    "StreamInfo",
    "assign_channels",
    "build_answer",
    "find_metadata",
    "find_sdp",
    "is_recording_session",
    "parse_content_type",
    "parse_metadata",
    "parse_offer",
    "parse_sdp",
    "parse_timestamp",
    "split_body",
]
