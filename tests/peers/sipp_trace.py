"""What SIPp leaves behind, parsed: the ``-trace_msg`` message log (every SIP message with its time
stamp, for retransmission checks) and the ``<log>`` lines of ``-trace_logs`` (values the scenario
captured, such as the answered media ports).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """Media address of the SRS's 200 OK, as captured by the scenario's ``<ereg>``."""

    ip: str
    port1: int
    port2: int


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
    for tag, values in events:
        if tag == "ANSWER":
            return Answer(ip=values["ip"], port1=int(values["port1"]), port2=int(values["port2"]))
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
