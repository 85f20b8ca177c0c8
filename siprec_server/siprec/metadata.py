"""RFC 7865 recording metadata, read tolerantly into one normalised model (design guide §2.1).

SRCs speak several dialects of the same model (the table is in `dialects`); none of them is refused for
being odd. Reading is split so that a dialect is added by touching only the step it differs in:

1. `xmltree.load_tree`: hardened parsing (no DTD or entities, size and depth limits, misdeclared
   encodings and undeclared prefixes tolerated) into a namespace-free tree; vendor blocks set aside. Only
   this step raises `MetadataError`; the caller then records the call without metadata.
2. `reader.read_metadata`: one handler per element name into `model.RecordingMetadata`, whatever the
   dialect's ids, nesting or name shapes; AORs cleaned (`addresses`) and read as numbers (`numbers`).
3. `attribution.derive_call_facts`: calling and called number, direction, tenant and correlation ids, each
   with its provenance, from the vendor blocks (`vendor`) and the participants.

`merge_metadata` folds an RFC 7865 `partial` update into what is known of the session (see `merge`).
"""

from __future__ import annotations

from .dialects import RECORDING_NAMESPACES, SIPREC_NAMESPACES, DialectInfo, is_known_dialect
from .facts import Attributed, CallFacts, Direction
from .merge import merge_metadata
from .model import Participant, RecordingMetadata, StreamInfo
from .reader import read_metadata
from .timestamps import parse_timestamp
from .vendor import Vendor, VendorExtension
from .warning_kinds import MetadataWarning, WarningKind
from .xmltree import MAX_METADATA_BYTES, load_tree

__all__ = [
    "MAX_METADATA_BYTES",
    "RECORDING_NAMESPACES",
    "Attributed",
    "CallFacts",
    "DialectInfo",
    "Direction",
    "MetadataWarning",
    "Participant",
    "RecordingMetadata",
    "StreamInfo",
    "Vendor",
    "VendorExtension",
    "WarningKind",
    "merge_metadata",
    "parse_metadata",
    "parse_timestamp",
]


def parse_metadata(xml: bytes) -> RecordingMetadata:
    """Read one rs-metadata document; raises `MetadataError` only for hostile or unreadable XML."""
    warnings: list[MetadataWarning] = []

    def warn(kind: WarningKind, message: str) -> None:
        warnings.append(MetadataWarning(kind=kind, message=message))

    root = load_tree(xml, warn)
    if root.namespace not in SIPREC_NAMESPACES:
        warn(WarningKind.UNKNOWN_NAMESPACE, f"unknown metadata namespace {root.namespace or '(none)'!r}")
        if root.name not in ("recording", "recording_metadata"):
            warn(WarningKind.UNKNOWN_ROOT, f"root element <{root.local}> is not <recording>")
    elif not is_known_dialect(root.namespace, root.name):
        warn(WarningKind.UNKNOWN_ROOT, f"root element <{root.local}> is unusual in {root.namespace}")
    return read_metadata(root, warnings)
