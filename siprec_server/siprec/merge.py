"""Folding metadata updates into what is known of a recording session (RFC 7865 §6.1, RFC 8068).

A `complete` document replaces everything known. A `partial` one carries only what changed:

- a participant or stream whose id is known updates it: a new AOR (with its URI and number) or name
  replaces the old one, streams it sends or receives are added to the ones it had (RFC 7865 gives no way to
  say "no longer sends" but a new association, so nothing is taken away);
- a participant or stream with a new id is added;
- a `disassociate-time` (in `<participantsessionassoc>`, or in `<participant>` as Ribbon sends it) marks a
  participant as gone: it is kept, with `left_at`; a later association without one brings it back. A stream
  a party that is gone sent or received and a present party now does (a transfer re-using the streams) is
  taken off the one that left, so that every stream keeps one current sender;
- session and group ids, `sipSessionID`s and vendor blocks accumulate; the call facts are derived again
  from the merged view, the update's vendor blocks first.

The merged model keeps the base's `datamode`; its `warnings` are the update's (the base's were reported
when it arrived) plus any about the merge itself. A `partial` update with nothing to merge into is taken as
the base, with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .attribution import derive_call_facts
from .dialects import DialectInfo
from .model import Participant, RecordingMetadata, StreamInfo
from .warning_kinds import MetadataWarning, WarningKind

__all__ = ["merge_metadata"]


def merge_metadata(current: RecordingMetadata | None, update: RecordingMetadata) -> RecordingMetadata:
    """The session's metadata once `update` (just received) is applied to `current` (known so far)."""
    if update.datamode != "partial":
        return update
    if current is None:
        warning = MetadataWarning(
            kind=WarningKind.PARTIAL_WITHOUT_BASE, message="partial metadata update without earlier metadata"
        )
        return replace(update, warnings=[*update.warnings, warning])
    participants = _release_streams(_merge_participants(current.participants, update.participants))
    known = {(e.vendor, e.parent, e.parent_id, e.xml) for e in current.extensions}
    extensions = [
        *current.extensions,
        *(e for e in update.extensions if (e.vendor, e.parent, e.parent_id, e.xml) not in known),
    ]
    session_ids = _union(current.session_ids, update.session_ids)
    sip_session_ids = _union(current.sip_session_ids, update.sip_session_ids)
    return RecordingMetadata(
        datamode=current.datamode,
        session_ids=session_ids,
        group_ids=_union(current.group_ids, update.group_ids),
        participants=participants,
        streams=_merge_streams(current.streams, update.streams),
        warnings=list(update.warnings),
        start_time=current.start_time or update.start_time,
        sip_session_ids=sip_session_ids,
        extensions=extensions,
        call=derive_call_facts(
            participants=participants,
            extensions=[*update.extensions, *current.extensions],
            session_ids=session_ids,
            sip_session_ids=sip_session_ids,
        ),
        dialect=DialectInfo(
            namespace=update.dialect.namespace,
            root=update.dialect.root,
            vendors=_union(current.dialect.vendors, update.dialect.vendors),
        ),
    )


def _merge_participants(current: Sequence[Participant], update: Sequence[Participant]) -> list[Participant]:
    merged = {participant.id: participant for participant in current}
    for new in update:
        old = merged.get(new.id)
        merged[new.id] = new if old is None else _merge_participant(old, new)
    return list(merged.values())


def _merge_participant(old: Participant, new: Participant) -> Participant:
    address = new if new.aor else old
    if new.left_at:
        left_at: str | None = new.left_at
    elif new.associate_time and old.left_at:
        left_at = None  # associated again after leaving
    else:
        left_at = old.left_at
    return Participant(
        id=old.id,
        aor=address.aor,
        name=new.name or old.name,
        send=_union(old.send, new.send),
        recv=_union(old.recv, new.recv),
        associate_time=old.associate_time or new.associate_time,
        uri=address.uri,
        number=address.number,
        left_at=left_at,
    )


def _release_streams(participants: list[Participant]) -> list[Participant]:
    present = [participant for participant in participants if participant.left_at is None]
    sent = {stream for participant in present for stream in participant.send}
    received = {stream for participant in present for stream in participant.recv}
    return [
        participant
        if participant.left_at is None
        else replace(
            participant,
            send=[stream for stream in participant.send if stream not in sent],
            recv=[stream for stream in participant.recv if stream not in received],
        )
        for participant in participants
    ]


def _merge_streams(current: Sequence[StreamInfo], update: Sequence[StreamInfo]) -> list[StreamInfo]:
    merged = {stream.id: stream for stream in current}
    for new in update:
        old = merged.get(new.id)
        if old is None:
            merged[new.id] = new
        else:
            merged[new.id] = StreamInfo(
                id=old.id, label=new.label or old.label, session_id=new.session_id or old.session_id
            )
    return list(merged.values())


def _union(first: Sequence[str], second: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))
