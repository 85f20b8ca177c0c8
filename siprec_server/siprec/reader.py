"""Reading the namespace-free metadata tree (`xmltree.Node`) into the model, whatever the dialect.

One handler per element name (`_HANDLERS`), found at any depth. Identifiers are read from the RFC 7865
attributes (`participant_id`, `stream_id`, `session_id`, `group_id`) or the draft-era bare `id`/`session`;
`<send>`/`<recv>` are taken inside `<participant>` (draft era, Oracle/Acme, BroadWorks) and inside
`<participantstreamassoc>` (RFC 7865), as text or as an `<id>` child (BroadWorks); names come from
`<nameID aor=…><name>…</name></nameID>` or from `<aor>`/`<name>` children; a participant's time from
`<participantsessionassoc>` or its own `<associate-time>`/`<start-time>`, its leaving from a
`disassociate-time` in either place (Ribbon puts it in `<participant>`). Vendor blocks (`Node.foreign`) are
kept with the element they belong to: the enclosing session, participant, stream or group, or the one an
`<extensiondata parent="…">` names.

Oddities become `MetadataWarning`s (for a log line and a metric) instead of errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .addresses import parse_address
from .attribution import derive_call_facts
from .dialects import DialectInfo
from .model import Participant, RecordingMetadata, StreamInfo
from .numbers import normalise_number
from .timestamps import parse_timestamp
from .vendor import Vendor, VendorExtension, build_extensions, is_placeholder
from .warning_kinds import MetadataWarning, WarningKind
from .xmltree import Node

__all__ = ["read_metadata"]

_ENTITIES = ("session", "participant", "stream", "group")
_ID_ATTRS = {
    "session": ("session_id", "id"),
    "participant": ("participant_id", "id"),
    "stream": ("stream_id", "id"),
    "group": ("group_id", "id"),
}
_TIME_ELEMENTS = ("associate-time", "start-time")
_LEAVE_ELEMENTS = ("disassociate-time", "stop-time")


def read_metadata(root: Node, warnings: list[MetadataWarning]) -> RecordingMetadata:
    """The model of the document whose root is `root`; `warnings` already holds the parser's."""
    return _Reader(warnings).read(root)


@dataclass(slots=True)
class _Association:
    participant: str
    send: dict[str, None]
    recv: dict[str, None]
    time: str | None
    left: str | None = None


@dataclass(slots=True)
class _ParticipantDraft:
    id: str
    aor: str | None
    name: str | None
    send: dict[str, None]  # ordered sets of stream ids
    recv: dict[str, None]
    time: str | None
    left: str | None
    assoc_time: str | None = None


@dataclass(slots=True)
class _Foreign:
    kind: str  # an entity name, "recording", or "ref" (an <extensiondata parent="…">)
    id: str | None
    nodes: list[Node]


class _Reader:
    """Collects the model from the tree; one method per element name (see `_HANDLERS`)."""

    def __init__(self, warnings: list[MetadataWarning]) -> None:
        self.warnings = warnings
        self.datamode: str | None = None
        # Ordered sets (dicts with None values) and an id index: a hostile document may list thousands.
        self.session_ids: dict[str, None] = {}
        self.sip_session_ids: dict[str, None] = {}
        self.group_ids: dict[str, None] = {}
        self.participants: dict[str, _ParticipantDraft] = {}
        self.streams: list[StreamInfo] = []
        self.stream_assocs: list[_Association] = []
        self.session_assocs: list[_Association] = []
        self.session_start: str | None = None
        self.recording_time: str | None = None
        self.foreign: list[_Foreign] = []
        self.times: list[str] = []

    def warn(self, kind: WarningKind, message: str) -> None:
        self.warnings.append(MetadataWarning(kind=kind, message=message))

    def read(self, root: Node) -> RecordingMetadata:
        if root.foreign:
            self.foreign.append(_Foreign("recording", None, root.foreign))
        top: tuple[str, str | None] = ("recording", None)
        pending = [(child, top) for child in reversed(root.children)]
        while pending:
            node, context = pending.pop()
            handler = _HANDLERS.get(node.name)
            if handler is not None:
                handler(self, node)
            context = _context_of(node, context)
            if node.foreign:
                self.foreign.append(_Foreign(context[0], context[1], node.foreign))
            pending.extend((child, context) for child in reversed(node.children))
        return self._finish(root)

    def datamode_element(self, node: Node) -> None:
        if self.datamode is None:
            self.datamode = node.text.lower()

    def group(self, node: Node) -> None:
        _add(self.group_ids, node.attr("group_id", "id"))

    def session(self, node: Node) -> None:
        session_id = node.attr("session_id", "id")
        if session_id is None:
            self.warn(WarningKind.MISSING_ID, "<session> without an id")
        _add(self.session_ids, session_id)
        _add(self.group_ids, node.child_text("group-ref") or node.attr("group", "group_ref"))
        _add(self.sip_session_ids, _compact(node.child_text("sipsessionid")))
        self.session_start = self.session_start or self._time(node.child_text("start-time", "associate-time"))

    def participant(self, node: Node) -> None:
        participant_id = node.attr("participant_id", "id")
        if participant_id is None:
            participant_id = f"participant-{len(self.participants) + 1}"
            self.warn(WarningKind.MISSING_ID, f"<participant> without an id, called {participant_id}")
        name_id = node.child("nameid")
        aor = name_id.attr("aor") or name_id.child_text("aor") if name_id is not None else None
        aor = aor or node.child_text("aor")
        name = name_id.child_text("name") if name_id is not None else None
        name = name or node.child_text("name") or node.attr("name")
        send, recv = _stream_refs(node, "send"), _stream_refs(node, "recv")
        time = self._time(node.child_text(*_TIME_ELEMENTS))
        left = self._time(node.child_text(*_LEAVE_ELEMENTS))
        known = self.participants.get(participant_id)
        if known is None:
            draft = _ParticipantDraft(
                id=participant_id, aor=aor, name=name, send=send, recv=recv, time=time, left=left
            )
            self.participants[participant_id] = draft
            return
        self.warn(WarningKind.PARTICIPANT_MERGED, f"participant {participant_id} listed twice, merged")
        known.aor, known.name = known.aor or aor, known.name or name
        known.time, known.left = known.time or time, known.left or left
        known.send.update(send)
        known.recv.update(recv)

    def stream(self, node: Node) -> None:
        stream_id = node.attr("stream_id", "id")
        if stream_id is None:
            self.warn(WarningKind.MISSING_ID, "<stream> without an id ignored")
            return
        label = node.child_text("label") or node.attr("label")
        if label is None:
            self.warn(WarningKind.MISSING_LABEL, f"stream {stream_id} has no label")
        self.streams.append(
            StreamInfo(id=stream_id, label=label, session_id=node.attr("session_id", "session"))
        )

    def participant_stream_assoc(self, node: Node) -> None:
        participant = node.attr("participant_id", "participant", "id")
        if participant is None:
            self.warn(WarningKind.MISSING_ID, "<participantstreamassoc> without a participant_id ignored")
            return
        send, recv = _stream_refs(node, "send"), _stream_refs(node, "recv")
        self.stream_assocs.append(_Association(participant=participant, send=send, recv=recv, time=None))

    def participant_session_assoc(self, node: Node) -> None:
        participant = node.attr("participant_id", "participant", "id")
        time = self._time(node.child_text(*_TIME_ELEMENTS))
        left = self._time(node.child_text(*_LEAVE_ELEMENTS))
        if participant is not None:
            association = _Association(participant=participant, send={}, recv={}, time=time, left=left)
            self.session_assocs.append(association)

    def session_recording_assoc(self, node: Node) -> None:
        self.recording_time = self.recording_time or self._time(node.child_text(*_TIME_ELEMENTS))

    def _time(self, value: str | None) -> str | None:
        if value is not None:
            self.times.append(value)
        return value

    def _finish(self, root: Node) -> RecordingMetadata:
        datamode = self.datamode or "complete"  # RFC 7865 §6.1: complete unless said otherwise
        if datamode not in ("complete", "partial"):
            self.warn(WarningKind.UNKNOWN_DATAMODE, f"unknown datamode {datamode!r}, taken as complete")
            datamode = "complete"
        self._apply_associations(partial=datamode == "partial")
        if datamode == "complete":
            self._check_references()
        self._check_times()
        participants = [self._participant(draft) for draft in self.participants.values()]
        extensions = self._extensions()
        vendors: dict[str, None] = {}
        for vendor in [*(extension.vendor for extension in extensions), *self._placeholders(participants)]:
            _add(vendors, vendor.value)
        return RecordingMetadata(
            datamode=datamode,
            session_ids=list(self.session_ids),
            group_ids=list(self.group_ids),
            participants=participants,
            streams=self.streams,
            warnings=self.warnings,
            start_time=self.session_start or self.recording_time,
            sip_session_ids=list(self.sip_session_ids),
            extensions=extensions,
            call=derive_call_facts(
                participants=participants,
                extensions=extensions,
                session_ids=list(self.session_ids),
                sip_session_ids=list(self.sip_session_ids),
            ),
            dialect=DialectInfo(namespace=root.namespace, root=root.name, vendors=list(vendors)),
        )

    def _apply_associations(self, *, partial: bool) -> None:
        by_id = self.participants
        for assoc in [*self.stream_assocs, *self.session_assocs] if partial else []:
            if assoc.participant not in by_id:
                # A partial update may associate a participant an earlier document described (RFC 7865 §6.1).
                stub = _ParticipantDraft(
                    id=assoc.participant, aor=None, name=None, send={}, recv={}, time=None, left=None
                )
                by_id[stub.id] = stub
        for assoc in self.stream_assocs:
            draft = by_id.get(assoc.participant)
            if draft is None:
                message = f"participantstreamassoc names unknown participant {assoc.participant}"
                self.warn(WarningKind.UNKNOWN_PARTICIPANT, message)
                continue
            draft.send.update(assoc.send)
            draft.recv.update(assoc.recv)
        for assoc in self.session_assocs:
            draft = by_id.get(assoc.participant)
            if draft is not None:
                draft.assoc_time = draft.assoc_time or assoc.time
                draft.left = draft.left or assoc.left

    def _participant(self, draft: _ParticipantDraft) -> Participant:
        address = parse_address(draft.aor)
        if address is not None and address.repairs:
            repairs = ", ".join(address.repairs)
            self.warn(
                WarningKind.AOR_REPAIRED, f"participant {draft.id} AOR {draft.aor!r} cleaned ({repairs})"
            )
        return Participant(
            id=draft.id,
            aor=draft.aor,
            name=draft.name or (address.display_name if address is not None else None),
            send=list(draft.send),
            recv=list(draft.recv),
            associate_time=draft.assoc_time or draft.time,
            uri=address.uri if address is not None else None,
            number=normalise_number(address.user) if address is not None and address.user else None,
            left_at=draft.left,
        )

    def _placeholders(self, participants: list[Participant]) -> list[Vendor]:
        vendors = []
        for participant in participants:
            if is_placeholder(participant.uri):
                message = (
                    f"participant {participant.id} {participant.aor!r} is a placeholder for a party to come"
                )
                self.warn(WarningKind.PLACEHOLDER_PARTICIPANT, message)
                vendors.append(Vendor.AVAYA)
        return vendors

    def _extensions(self) -> list[VendorExtension]:
        kinds = dict.fromkeys(self.session_ids, "session")
        kinds.update(dict.fromkeys(self.participants, "participant"))
        kinds.update({stream.id: "stream" for stream in self.streams})
        kinds.update(dict.fromkeys(self.group_ids, "group"))
        extensions = []
        for found in self.foreign:
            kind = kinds.get(found.id or "", "extensiondata") if found.kind == "ref" else found.kind
            extensions.extend(build_extensions(kind, found.id, found.nodes))
        return extensions

    def _check_references(self) -> None:
        known = {stream.id for stream in self.streams}
        for draft in self.participants.values():
            for stream_id in [*draft.send, *draft.recv]:
                if stream_id not in known:
                    message = f"participant {draft.id} refers to unknown stream {stream_id}"
                    self.warn(WarningKind.UNKNOWN_STREAM, message)
        if not self.participants:
            self.warn(WarningKind.NO_PARTICIPANTS, "complete metadata without participants")
        elif self.streams and not any(draft.send for draft in self.participants.values()):
            message = "no participant is said to send any stream; streams map to parties by m-line order"
            self.warn(WarningKind.NO_STREAM_ASSOCIATION, message)

    def _check_times(self) -> None:
        bogus = sorted({value for value in self.times if parse_timestamp(value) is None})
        if bogus:
            message = f"timestamps ignored (unreadable or before 2000): {', '.join(bogus)}"
            self.warn(WarningKind.BOGUS_TIME, message)


# Element name (lowercased local name) -> handler. Dialects add names here.
_HANDLERS: dict[str, Callable[[_Reader, Node], None]] = {
    "datamode": _Reader.datamode_element,
    "group": _Reader.group,
    "session": _Reader.session,
    "participant": _Reader.participant,
    "stream": _Reader.stream,
    "participantstreamassoc": _Reader.participant_stream_assoc,
    "participantsessionassoc": _Reader.participant_session_assoc,
    "sessionrecordingassoc": _Reader.session_recording_assoc,
}


def _context_of(node: Node, inherited: tuple[str, str | None]) -> tuple[str, str | None]:
    if node.name in _ENTITIES:
        return node.name, node.attr(*_ID_ATTRS[node.name])
    if node.name == "extensiondata" and node.attr("parent"):
        return "ref", node.attr("parent")
    return inherited


def _stream_refs(node: Node, kind: str) -> dict[str, None]:
    refs: dict[str, None] = {}
    for child in node.children:
        if child.name == kind:
            # RFC 7865: the stream id is the element's text; BroadWorks wraps it in <id>.
            _add(refs, child.text or child.child_text("id"))
    return refs


def _compact(value: str | None) -> str | None:
    """A value with the whitespace SRCs fold into long element text removed (`…;\\n  remote=…`)."""
    return re.sub(r"\s+", "", value) if value else None


def _add(values: dict[str, None], value: str | None) -> None:
    if value:
        values.setdefault(value)
