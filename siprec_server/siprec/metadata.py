"""RFC 7865 recording metadata, read tolerantly into one normalised model (design guide §2.1).

SRCs speak several dialects of the same model; none of them is refused for being odd. The reader works in
three steps, so a dialect is added by touching only the step it differs in:

1. `_load`: defused XML parsing (no DTD, no entities, no external references, at most 256 KiB and 64
   levels), retried as text for documents that misdeclare their encoding. Only this step raises
   `MetadataError`; the caller then records the call without metadata.
2. `_to_nodes`: a namespace-free view. Names are lowercased local names, so any prefix (`tns:recording`),
   `datamode`/`dataMode` and `nameID`/`nameid` read alike; elements of foreign namespaces (vendor extension
   blocks such as Acme's `apkt:` data or Cisco's) are dropped, so their element names cannot be mistaken.
3. `_Reader`: one handler per element name in `_HANDLERS`, found at any depth. Identifiers are read from
   the RFC 7865 attributes (`participant_id`, `stream_id`, `session_id`, `group_id`) or the draft-era bare
   `id`/`session`; `<send>`/`<recv>` are taken inside `<participant>` (draft era, Oracle/Acme) and inside
   `<participantstreamassoc>` (RFC 7865 §6.6), as text or as an `<id>` child; names come from
   `<nameID aor=…><name>…</name></nameID>` or from `<aor>`/`<name>` children; a participant's time from
   `<participantsessionassoc>` or its own `<associate-time>`/`<start-time>`.

Oddities become `warnings` (one line each, for a log line and a metric) instead of errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DefusedElementTree
from defusedxml import DefusedXmlException

from .errors import MetadataError

__all__ = [
    "MAX_METADATA_BYTES",
    "RECORDING_NAMESPACES",
    "Participant",
    "RecordingMetadata",
    "StreamInfo",
    "parse_metadata",
    "parse_timestamp",
]

MAX_METADATA_BYTES = 256 * 1024
_MAX_DEPTH = 64
RECORDING_NAMESPACES = frozenset({"urn:ietf:params:xml:ns:recording:1", "urn:ietf:params:xml:ns:recording"})
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
# SRCs without a clock send 1970 dates; such a time says nothing about who joined first.
_EARLIEST_CREDIBLE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Participant:
    """A party of the recorded call; `send`/`recv` are stream ids."""

    id: str
    aor: str | None
    name: str | None
    send: list[str]
    recv: list[str]
    associate_time: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamInfo:
    """A recorded stream; `label` matches the SDP `a=label` of its m-line (RFC 7865 §6.5)."""

    id: str
    label: str | None
    session_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingMetadata:
    """The normalised metadata of one document; `datamode` is `complete` or `partial` (RFC 7865 §6.1).

    `start_time` is the communication session's `start-time`, else the recording association's time.
    """

    datamode: str
    session_ids: list[str]
    group_ids: list[str]
    participants: list[Participant]
    streams: list[StreamInfo]
    warnings: list[str]
    start_time: str | None = None

    def stream_for_label(self, label: str) -> StreamInfo | None:
        return next((stream for stream in self.streams if stream.label == label.strip()), None)

    def senders_of(self, stream_id: str) -> list[Participant]:
        return [participant for participant in self.participants if stream_id in participant.send]


def parse_metadata(xml: bytes) -> RecordingMetadata:
    """Read one rs-metadata document; raises `MetadataError` only for hostile or unreadable XML."""
    warnings: list[str] = []
    root = _to_nodes(_load(xml, warnings))
    if root.name not in ("recording",):
        warnings.append(f"root element <{root.name}> is not <recording>")
    if root.namespace not in RECORDING_NAMESPACES:
        warnings.append(f"unknown metadata namespace {root.namespace or '(none)'!r}")
    return _Reader(warnings).read(root)


def parse_timestamp(value: str | None) -> datetime | None:
    """An RFC 3339 time as sent in metadata, as an aware datetime; None if absent, unreadable or before 2000.

    A time without zone is taken as UTC.
    """
    if not value:
        return None
    text = value.strip().replace(" ", "T", 1)
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment if moment >= _EARLIEST_CREDIBLE else None


def _load(xml: bytes, warnings: list[str]) -> Element:
    if len(xml) > MAX_METADATA_BYTES:
        raise MetadataError(f"metadata of {len(xml)} bytes exceeds {MAX_METADATA_BYTES}")
    data = xml.strip()
    if not data:
        raise MetadataError("empty metadata")
    try:
        return _defused_parse(data)
    except (ParseError, LookupError) as error:  # LookupError: an encoding Python does not know
        original = error
    # Documents that misdeclare their encoding (Latin-1 bytes declared or defaulted to UTF-8, a misspelt
    # encoding name): retry as text without the declaration.
    try:
        text, charset = data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        text, charset = data.decode("latin-1"), "Latin-1"
    if isinstance(original, ParseError) and charset == "UTF-8":
        raise MetadataError(f"metadata is not well-formed XML: {original}") from original
    root = _defused_parse(_XML_DECLARATION.sub("", text, count=1), original)
    warnings.append(f"metadata encoding misdeclared, read as {charset}")
    return root


def _defused_parse(data: bytes | str, original: Exception | None = None) -> Element:
    try:
        root: Element = DefusedElementTree.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as error:
        raise MetadataError(f"metadata refused: {type(error).__name__}") from error
    except ParseError as error:
        if original is None:
            raise
        raise MetadataError(f"metadata is not well-formed XML: {original}") from error
    return root


@dataclass(slots=True)
class _Node:
    name: str
    namespace: str
    attrs: dict[str, str]
    text: str
    children: list[_Node] = field(default_factory=list)

    def child(self, *names: str) -> _Node | None:
        return next((child for child in self.children if child.name in names), None)

    def child_text(self, *names: str) -> str | None:
        for child in self.children:
            if child.name in names and child.text:
                return child.text
        return None

    def attr(self, *names: str) -> str | None:
        for name in names:
            value = self.attrs.get(name, "").strip()
            if value:
                return value
        return None


def _split_name(tag: str) -> tuple[str, str]:
    namespace, _, local = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, local.lower()


def _make_node(element: Element) -> _Node:
    namespace, name = _split_name(element.tag)
    attrs = {_split_name(key)[1]: value for key, value in element.attrib.items()}
    return _Node(name=name, namespace=namespace, attrs=attrs, text=(element.text or "").strip())


def _to_nodes(root: Element) -> _Node:
    top = _make_node(root)
    ours = {top.namespace, "", *RECORDING_NAMESPACES}
    stack: list[tuple[Element, _Node, int]] = [(root, top, 1)]
    while stack:  # iterative: a 256 KiB document can nest far deeper than Python recursion allows
        element, node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise MetadataError(f"metadata nested deeper than {_MAX_DEPTH} levels")
        for child_element in element:
            child = _make_node(child_element)
            if child.namespace not in ours:
                continue  # a vendor extension block
            node.children.append(child)
            stack.append((child_element, child, depth + 1))
    return top


@dataclass(slots=True)
class _Association:
    participant: str
    send: list[str]
    recv: list[str]
    time: str | None


@dataclass(slots=True)
class _ParticipantDraft:
    id: str
    aor: str | None
    name: str | None
    send: list[str]
    recv: list[str]
    time: str | None
    assoc_time: str | None = None


class _Reader:
    """Collects the model from the namespace-free tree; one method per element name (see `_HANDLERS`)."""

    def __init__(self, warnings: list[str]) -> None:
        self.warnings = warnings
        self.datamode: str | None = None
        self.session_ids: list[str] = []
        self.group_ids: list[str] = []
        self.participants: list[_ParticipantDraft] = []
        self.streams: list[StreamInfo] = []
        self.stream_assocs: list[_Association] = []
        self.session_assocs: list[_Association] = []
        self.session_start: str | None = None
        self.recording_time: str | None = None

    def read(self, root: _Node) -> RecordingMetadata:
        pending = list(reversed(root.children))
        while pending:
            node = pending.pop()
            handler = _HANDLERS.get(node.name)
            if handler is not None:
                handler(self, node)
            pending.extend(reversed(node.children))
        return self._finish()

    def datamode_element(self, node: _Node) -> None:
        if self.datamode is None:
            self.datamode = node.text.lower()

    def group(self, node: _Node) -> None:
        _append_unique(self.group_ids, node.attr("group_id", "id"))

    def session(self, node: _Node) -> None:
        session_id = node.attr("session_id", "id")
        if session_id is None:
            self.warnings.append("<session> without an id")
        _append_unique(self.session_ids, session_id)
        _append_unique(self.group_ids, node.child_text("group-ref") or node.attr("group", "group_ref"))
        self.session_start = self.session_start or node.child_text("start-time", "associate-time")

    def participant(self, node: _Node) -> None:
        participant_id = node.attr("participant_id", "id")
        if participant_id is None:
            participant_id = f"participant-{len(self.participants) + 1}"
            self.warnings.append(f"<participant> without an id, called {participant_id}")
        name_id = node.child("nameid")
        aor = name_id.attr("aor") or name_id.child_text("aor") if name_id is not None else None
        aor = aor or node.child_text("aor")
        name = name_id.child_text("name") if name_id is not None else None
        name = name or node.child_text("name") or node.attr("name")
        send, recv = _stream_refs(node, "send"), _stream_refs(node, "recv")
        time = node.child_text("associate-time", "start-time")
        known = next((draft for draft in self.participants if draft.id == participant_id), None)
        if known is not None:
            self.warnings.append(f"participant {participant_id} listed twice, merged")
            known.aor, known.name, known.time = known.aor or aor, known.name or name, known.time or time
            for stream_id in send:
                _append_unique(known.send, stream_id)
            for stream_id in recv:
                _append_unique(known.recv, stream_id)
            return
        draft = _ParticipantDraft(id=participant_id, aor=aor, name=name, send=send, recv=recv, time=time)
        self.participants.append(draft)

    def stream(self, node: _Node) -> None:
        stream_id = node.attr("stream_id", "id")
        if stream_id is None:
            self.warnings.append("<stream> without an id ignored")
            return
        label = node.child_text("label") or node.attr("label")
        if label is None:
            self.warnings.append(f"stream {stream_id} has no label")
        self.streams.append(
            StreamInfo(id=stream_id, label=label, session_id=node.attr("session_id", "session"))
        )

    def participant_stream_assoc(self, node: _Node) -> None:
        participant = node.attr("participant_id", "participant", "id")
        if participant is None:
            self.warnings.append("<participantstreamassoc> without a participant_id ignored")
            return
        send, recv = _stream_refs(node, "send"), _stream_refs(node, "recv")
        self.stream_assocs.append(_Association(participant=participant, send=send, recv=recv, time=None))

    def participant_session_assoc(self, node: _Node) -> None:
        participant = node.attr("participant_id", "participant", "id")
        time = node.child_text("associate-time", "start-time")
        if participant is not None:
            self.session_assocs.append(_Association(participant=participant, send=[], recv=[], time=time))

    def session_recording_assoc(self, node: _Node) -> None:
        self.recording_time = self.recording_time or node.child_text("associate-time", "start-time")

    def _finish(self) -> RecordingMetadata:
        by_id = {draft.id: draft for draft in self.participants}
        for assoc in self.stream_assocs:
            draft = by_id.get(assoc.participant)
            if draft is None:
                self.warnings.append(f"participantstreamassoc names unknown participant {assoc.participant}")
                continue
            for stream_id in assoc.send:
                _append_unique(draft.send, stream_id)
            for stream_id in assoc.recv:
                _append_unique(draft.recv, stream_id)
        for assoc in self.session_assocs:
            if assoc.participant in by_id and assoc.time:
                by_id[assoc.participant].assoc_time = by_id[assoc.participant].assoc_time or assoc.time
        datamode = self.datamode or "complete"  # RFC 7865 §6.1: complete unless said otherwise
        if datamode not in ("complete", "partial"):
            self.warnings.append(f"unknown datamode {datamode!r}, taken as complete")
            datamode = "complete"
        if datamode == "complete":
            self._check_references()
        participants = [
            Participant(
                id=draft.id,
                aor=draft.aor,
                name=draft.name,
                send=draft.send,
                recv=draft.recv,
                associate_time=draft.assoc_time or draft.time,
            )
            for draft in self.participants
        ]
        return RecordingMetadata(
            datamode=datamode,
            session_ids=self.session_ids,
            group_ids=self.group_ids,
            participants=participants,
            streams=self.streams,
            warnings=self.warnings,
            start_time=self.session_start or self.recording_time,
        )

    def _check_references(self) -> None:
        known = {stream.id for stream in self.streams}
        for draft in self.participants:
            for stream_id in [*draft.send, *draft.recv]:
                if stream_id not in known:
                    self.warnings.append(f"participant {draft.id} refers to unknown stream {stream_id}")
        if not self.participants:
            self.warnings.append("complete metadata without participants")


# Element name (lowercased local name) -> handler. Dialects add names here.
_HANDLERS: dict[str, Callable[[_Reader, _Node], None]] = {
    "datamode": _Reader.datamode_element,
    "group": _Reader.group,
    "session": _Reader.session,
    "participant": _Reader.participant,
    "stream": _Reader.stream,
    "participantstreamassoc": _Reader.participant_stream_assoc,
    "participantsessionassoc": _Reader.participant_session_assoc,
    "sessionrecordingassoc": _Reader.session_recording_assoc,
}


def _stream_refs(node: _Node, kind: str) -> list[str]:
    refs: list[str] = []
    for child in node.children:
        if child.name == kind:
            # RFC 7865: the stream id is the element's text; BroadWorks wraps it in <id>.
            _append_unique(refs, child.text or child.child_text("id"))
    return refs


def _append_unique(values: list[str], value: str | None) -> None:
    if value and value not in values:
        values.append(value)
