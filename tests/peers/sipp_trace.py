"""What SIPp leaves behind, parsed: the ``-trace_msg`` message log (every SIP message with its time
stamp, for retransmission checks) and the ``<log>`` lines of ``-trace_logs`` (values the scenario
captured, such as the answered media ports). ``sdp_media`` reads the m-lines of an SDP body, so a test can
check the shape of each answer (ports, direction, label) the SRS gave.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """Media address of the SRS's 200 OK, as captured by the scenario's ``<ereg>``: one port per m-line."""

    ip: str
    ports: tuple[int, ...]

    @property
    def port1(self) -> int:
        return self.ports[0]

    @property
    def port2(self) -> int:
        return self.ports[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class SdpMedia:
    """One m-line of an SDP body, with the session-level defaults applied (RFC 4566 §5)."""

    media: str
    port: int
    formats: tuple[str, ...]
    connection: str | None  # the c= address in force for this m-line
    direction: str  # sendrecv (RFC 4566 §6 default), sendonly, recvonly or inactive
    label: str | None  # RFC 4574 a=label
    rtpmap: tuple[str, ...]  # a=rtpmap values, e.g. "8 PCMA/8000"


_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


def sdp_media(body: str) -> list[SdpMedia]:
    """The m-lines of an SDP body (CRLF or LF lines); an empty list if it has none."""
    lines = [line.strip() for line in body.replace("\r\n", "\n").split("\n") if line.strip()]
    session_connection: str | None = None
    session_direction = "sendrecv"
    blocks: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
        elif line.startswith("c="):
            session_connection = line.split()[-1]
        elif line[2:] in _DIRECTIONS:
            session_direction = line[2:]
    media = []
    for block in blocks:
        kind, port, _proto, *formats = block[0][2:].split()
        attributes = [line[2:] for line in block[1:] if line.startswith("a=")]
        connection = next((line.split()[-1] for line in block[1:] if line.startswith("c=")), None)
        label = next((a.split(":", 1)[1] for a in attributes if a.startswith("label:")), None)
        media.append(
            SdpMedia(
                media=kind,
                port=int(port),
                formats=tuple(formats),
                connection=connection or session_connection,
                direction=next((a for a in attributes if a in _DIRECTIONS), session_direction),
                label=label,
                rtpmap=tuple(a.split(":", 1)[1] for a in attributes if a.startswith("rtpmap:")),
            )
        )
    return media


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceMessage:
    at: float  # POSIX time stamp written by SIPp
    sent: bool
    transport: str
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\r\n", 1)[0].split("\n", 1)[0]

    @property
    def status(self) -> int | None:
        match = re.match(r"SIP/2\.0 (\d{3}) ", self.first_line)
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str | None:
        return None if self.first_line.startswith("SIP/2.0") else self.first_line.split(" ", 1)[0]

    @property
    def cseq_method(self) -> str | None:
        match = re.search(r"(?im)^CSeq\s*:\s*\d+\s+(\S+)", self.text)
        return match.group(1).upper() if match else None

    @property
    def body(self) -> str:
        for separator in ("\r\n\r\n", "\n\n"):
            if separator in self.text:
                return self.text.split(separator, 1)[1]
        return ""

    @property
    def head(self) -> str:
        for separator in ("\r\n\r\n", "\n\n"):
            if separator in self.text:
                return self.text.split(separator, 1)[0]
        return self.text

    def headers(self, name: str, compact: str | None = None) -> list[str]:
        """Every value of a header (by its full or compact name, case-insensitive), in order."""
        names = {name.lower()} | ({compact.lower()} if compact else set())
        values = []
        for line in self.head.replace("\r\n", "\n").split("\n")[1:]:
            key, colon, value = line.partition(":")
            if colon and key.strip().lower() in names:
                values.append(value.strip())
        return values

    def header(self, name: str, compact: str | None = None) -> str | None:
        values = self.headers(name, compact)
        return values[0] if values else None

    @property
    def content_type(self) -> str | None:
        value = self.header("Content-Type", "c")
        return value.split(";", 1)[0].strip().lower() if value else None

    @property
    def sdp(self) -> list[SdpMedia]:
        """The m-lines of the body when it is a plain SDP body (what an SRS answers), else []."""
        return sdp_media(self.body) if self.content_type == "application/sdp" else []


_TRACE_HEADER = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n", re.MULTILINE)
_TRACE_KIND = re.compile(r"^(\w+) message (sent|received)\b[^\n]*\n\n?")


def parse_message_trace(text: str) -> list[TraceMessage]:
    """Split SIPp's ``-trace_msg`` file into messages (separator line with a local time stamp, a
    ``UDP message sent (N bytes):`` line, a blank line, the message)."""
    messages = []
    parts = _TRACE_HEADER.split(text)
    for stamp, chunk in zip(parts[1::2], parts[2::2], strict=True):
        kind = _TRACE_KIND.match(chunk)
        if not kind:
            continue
        body = chunk[kind.end() :].rstrip("\n")
        at = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        messages.append(TraceMessage(at=at, sent=kind.group(2) == "sent", transport=kind.group(1), text=body))
    return messages


def parse_log_events(text: str) -> list[tuple[str, dict[str, str]]]:
    """``<log message="TAG k=v k2=v2"/>`` lines as ``(TAG, {k: v})``."""
    events = []
    for line in text.splitlines():
        tag, _, rest = line.strip().partition(" ")
        if tag:
            events.append((tag, dict(pair.split("=", 1) for pair in rest.split() if "=" in pair)))
    return events


def answer_from(events: Sequence[tuple[str, dict[str, str]]]) -> Answer | None:
    """The first ``ANSWER ip=... port1=... [port2=... ...]`` line."""
    for tag, values in events:
        if tag == "ANSWER":
            ports: list[int] = []
            while f"port{len(ports) + 1}" in values:
                ports.append(int(values[f"port{len(ports) + 1}"]))
            return Answer(ip=values["ip"], ports=tuple(ports))
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class SippResult:
    returncode: int  # SIPp: 0 all calls passed, 1 some failed, 99 none processed, 255/254 fatal
    timed_out: bool
    command: tuple[str, ...]
    workdir: Path
    output: str  # SIPp's screen (stdout and stderr)
    errors: str  # -trace_err file
    log: str  # -trace_logs file
    messages: tuple[TraceMessage, ...]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def events(self) -> list[tuple[str, dict[str, str]]]:
        return parse_log_events(self.log)

    @property
    def answer(self) -> Answer | None:
        return answer_from(self.events)

    @property
    def call_id(self) -> str:
        """The Call-ID of the first message SIPp sent (one call per run)."""
        for message in self.messages:
            if message.sent and (call_id := message.header("Call-ID", "i")):
                return call_id
        raise ValueError("SIPp sent no message with a Call-ID")

    def exchanges(self, method: str) -> list[tuple[TraceMessage, TraceMessage | None]]:
        """Each distinct request of ``method`` SIPp sent (retransmissions folded, by CSeq) with the final
        response it received for it (None if none came)."""
        pairs: dict[str, tuple[TraceMessage, TraceMessage | None]] = {}
        for message in self.messages:
            cseq = message.header("CSeq")
            if cseq is None or cseq.split()[-1].upper() != method.upper():
                continue
            if message.sent and message.method == method and cseq not in pairs:
                pairs[cseq] = (message, None)
            elif not message.sent and (message.status or 0) >= 200 and cseq in pairs:
                request, answered = pairs[cseq]
                pairs[cseq] = (request, answered or message)
        return list(pairs.values())

    def received(
        self, *, status: int | None = None, method: str | None = None, cseq: str | None = None
    ) -> list[TraceMessage]:
        return self._select(False, status, method, cseq)

    def sent(
        self, *, status: int | None = None, method: str | None = None, cseq: str | None = None
    ) -> list[TraceMessage]:
        return self._select(True, status, method, cseq)

    def _select(
        self, sent: bool, status: int | None, method: str | None, cseq: str | None
    ) -> list[TraceMessage]:
        return [
            m
            for m in self.messages
            if m.sent == sent
            and (status is None or m.status == status)
            and (method is None or m.method == method)
            and (cseq is None or m.cseq_method == cseq)
        ]

    def describe(self) -> str:
        """A short summary for assertion messages."""
        lines = [
            f"sipp exit {self.returncode}{' (timed out)' if self.timed_out else ''}: {' '.join(self.command)}"
        ]
        lines += [f"  {'>' if m.sent else '<'} {m.first_line}" for m in self.messages]
        if self.errors.strip():
            lines.append("  errors: " + self.errors.strip()[-1500:])
        return "\n".join(lines)
