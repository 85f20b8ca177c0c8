"""What the metadata reader tolerated: one `MetadataWarning` per oddity, with a short machine `kind`.

The kind is a bounded set (a metric label: `hangtar_metadata_problems_total{kind}`); the message is for the
log line and names the element or value concerned. `str(warning)` is the message, so code that logged the
former plain-string warnings keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["MetadataWarning", "WarningKind"]


class WarningKind(StrEnum):
    ENCODING_MISDECLARED = "encoding_misdeclared"  # bytes not in the declared encoding, read as Latin-1
    UNBOUND_PREFIX = "unbound_prefix"  # `apkt:ucid` without an `xmlns:apkt`, declared for the SRC
    UNKNOWN_ROOT = "unknown_root"  # root element neither <recording> nor <recording_metadata>
    UNKNOWN_NAMESPACE = "unknown_namespace"  # root in no SIPREC namespace (or in none)
    UNKNOWN_DATAMODE = "unknown_datamode"  # <datamode> neither complete nor partial
    MISSING_ID = "missing_id"  # <session>/<participant>/<stream>/association without its id
    MISSING_LABEL = "missing_label"  # <stream> without <label>: cannot be matched to an m-line
    PARTICIPANT_MERGED = "participant_merged"  # the same participant id listed twice
    UNKNOWN_PARTICIPANT = "unknown_participant"  # an association names no listed participant
    UNKNOWN_STREAM = "unknown_stream"  # a participant sends/receives a stream the document lacks
    NO_PARTICIPANTS = "no_participants"  # complete metadata without any participant
    NO_STREAM_ASSOCIATION = "no_stream_association"  # streams and participants, but nobody sends anything
    AOR_REPAIRED = "aor_repaired"  # brackets, display name or whitespace removed from an AOR
    BOGUS_TIME = "bogus_time"  # a timestamp that is unreadable or before 2000 (1970 from clockless SRCs)
    PLACEHOLDER_PARTICIPANT = "placeholder_participant"  # Avaya SBCE's stand-in, real one follows
    PARTIAL_WITHOUT_BASE = "partial_without_base"  # a partial update with nothing to merge it into


@dataclass(frozen=True, slots=True, kw_only=True)
class MetadataWarning:
    kind: WarningKind
    message: str

    def __str__(self) -> str:
        return self.message
