"""The JSON report of ``pjsua_src.py`` and its exit codes; importable without pjsua2."""

from __future__ import annotations

import enum
import re
from dataclasses import asdict, dataclass, field
from typing import Any


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1  # our own failure (pjsua2 error, bad file, ...)
    USAGE = 2  # argparse's status for bad arguments
    REJECTED = 3  # final non-2xx answer
    NO_ANSWER = 4  # no final answer within --answer-timeout
    NO_MEDIA = 5  # answered, but an m-line sent no RTP
    BYE_FAILED = 6  # our BYE got no 2xx within --bye-timeout
    REMOTE_HANGUP = 7  # the SRS ended the call before --duration elapsed
    REINVITE_FAILED = 8  # the --reinvite-after re-INVITE got no 2xx within --answer-timeout


OUTCOMES = {
    ExitCode.OK: "ok",
    ExitCode.ERROR: "error",
    ExitCode.REJECTED: "rejected",
    ExitCode.NO_ANSWER: "no_answer",
    ExitCode.NO_MEDIA: "no_media",
    ExitCode.BYE_FAILED: "bye_failed",
    ExitCode.REMOTE_HANGUP: "remote_hangup",
    ExitCode.REINVITE_FAILED: "reinvite_failed",
}


_RX_BYE_RESPONSE = re.compile(r"RX \d+ bytes Response msg (\d{3})/BYE/")
_RX_BYE_REQUEST = re.compile(r"RX \d+ bytes Request msg BYE/")


def bye_results(log_text: str) -> tuple[int, bool]:
    """From a pjsua SIP message log: the final status our BYE got (0: none), and whether a BYE came in."""
    finals = [int(code) for code in _RX_BYE_RESPONSE.findall(log_text) if int(code) >= 200]
    return (finals[-1] if finals else 0), bool(_RX_BYE_REQUEST.search(log_text))


_RX_INVITE_RESPONSE = re.compile(
    r"RX \d+ bytes Response msg (\d{3})/INVITE/[^\n]*\n(.*?)\n--end msg--", re.DOTALL
)


def invite_final_response(log_text: str) -> str:
    """From a pjsua SIP message log: the first final response to our INVITE, as received ("" if none).

    pjsua2 reports a rejected INVITE's transaction to no callback, so its status and Warning are read here.
    """
    for code, message in _RX_INVITE_RESPONSE.findall(log_text):
        if int(code) >= 200:
            return str(message).replace("\r\n", "\n").replace("\n", "\r\n")
    return ""


def sdp_of(message: str) -> str:
    head, _, body = message.partition("\r\n\r\n")
    if re.search(r"(?im)^(content-type|c)\s*:\s*application/sdp", head):
        return body
    return ""


@dataclass(slots=True, kw_only=True)
class StreamReport:
    index: int
    label: str | None
    source: str
    media_status: str = "NONE"
    codec: str = ""
    proto: str = ""  # RTP profile in use: RTP/AVP, or RTP/SAVP with SRTP
    remote_rtp: str = ""
    packets_sent: int = 0
    bytes_sent: int = 0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "sent": self.packets_sent > 0}


@dataclass(slots=True, kw_only=True)
class Report:
    target: str
    transport: str
    srtp: str = "off"
    outcome: str = "error"
    exit_code: int = int(ExitCode.ERROR)
    call_id: str = ""
    status: int = 0
    reason: str = ""
    provisional: list[int] = field(default_factory=list)
    invite: str = ""
    offer_sdp: str = ""
    answer: str = ""
    answer_sdp: str = ""
    duration: float = 0.0
    # The mid-call re-INVITE (--reinvite-after): when it left (seconds after the answer), as sent, its final
    # status (0: none yet), and the SDP offered and answered in it.
    reinvite_at: float | None = None
    reinvite: str = ""
    reinvite_status: int = 0
    reinvite_reason: str = ""
    reinvite_offer_sdp: str = ""
    reinvite_answer: str = ""
    reinvite_answer_sdp: str = ""
    bye_status: int = 0
    ended_with: str = ""
    remote_hangup: bool = False
    streams: list[StreamReport] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "duration": round(self.duration, 3),
            "reinvite_at": None if self.reinvite_at is None else round(self.reinvite_at, 3),
            "streams": [stream.as_json() for stream in self.streams],
        }
