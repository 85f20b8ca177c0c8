"""The SIPREC offer of one generated call: RFC 7865 metadata, an SDP offer of two labelled sendonly streams,
and the multipart/mixed body that carries both (RFC 7866 §8, §9).

Call ``k`` records a caller and a callee with Hungarian numbers derived from ``k``; the caller sends the stream
labelled "1", the callee the one labelled "2" (RFC 7865 §6.5 ``participantstreamassoc``), so a correct SRS puts
the caller on the left channel.
"""

from __future__ import annotations

import base64
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from .profile import Codec

__all__ = [
    "CALLEE_LABEL",
    "CALLER_LABEL",
    "Party",
    "offer_body",
    "parties",
    "recording_metadata",
    "sdp_offer",
]

CALLER_LABEL = "1"
CALLEE_LABEL = "2"
PBX_DOMAIN = "pbx.example.hu"
_NAMES = (
    "Kovács Éva",
    "Szabó Ádám",
    "Tóth Zsófia",
    "Nagy Bence",
    "Horváth Réka",
    "Varga Levente",
    "Kiss Dóra",
    "Molnár Gergő",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    name: str
    number: str  # E.164, e.g. "+3612000042"

    @property
    def aor(self) -> str:
        return f"sip:{self.number}@{PBX_DOMAIN}"


def parties(index: int) -> tuple[Party, Party]:
    """Caller (a Budapest number) and callee (a mobile number) of call ``index``."""
    caller = Party(name=_NAMES[index % len(_NAMES)], number=f"+3612{index % 1_000_000:06d}")
    callee = Party(name=_NAMES[(index + 3) % len(_NAMES)], number=f"+3630{index % 10_000_000:07d}")
    return caller, callee


def _identifier(rng: random.Random) -> str:
    # RFC 7865 §6: identifiers are base64-encoded UUIDs.
    return base64.b64encode(uuid.UUID(int=rng.getrandbits(128), version=4).bytes).decode()


def recording_metadata(index: int, *, now: datetime, rng: random.Random) -> str:
    """A complete RFC 7865 document (the shape of its Appendix A) for call ``index``."""
    caller, callee = parties(index)
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    group, session = _identifier(rng), _identifier(rng)
    p_caller, p_callee = _identifier(rng), _identifier(rng)
    s_caller, s_callee = _identifier(rng), _identifier(rng)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <group group_id="{group}">
    <associate-time>{stamp}</associate-time>
  </group>
  <session session_id="{session}">
    <sipSessionID>{rng.getrandbits(64):016x}@{PBX_DOMAIN};remote={rng.getrandbits(64):016x}</sipSessionID>
    <group-ref>{group}</group-ref>
    <start-time>{stamp}</start-time>
  </session>
  <participant participant_id="{p_caller}">
    <nameID aor="{caller.aor}">
      <name xml:lang="hu">{caller.name}</name>
    </nameID>
  </participant>
  <participant participant_id="{p_callee}">
    <nameID aor="{callee.aor}">
      <name xml:lang="hu">{callee.name}</name>
    </nameID>
  </participant>
  <stream stream_id="{s_caller}" session_id="{session}">
    <label>{CALLER_LABEL}</label>
  </stream>
  <stream stream_id="{s_callee}" session_id="{session}">
    <label>{CALLEE_LABEL}</label>
  </stream>
  <sessionrecordingassoc session_id="{session}">
    <associate-time>{stamp}</associate-time>
  </sessionrecordingassoc>
  <participantsessionassoc participant_id="{p_caller}" session_id="{session}">
    <associate-time>{stamp}</associate-time>
  </participantsessionassoc>
  <participantsessionassoc participant_id="{p_callee}" session_id="{session}">
    <associate-time>{stamp}</associate-time>
  </participantsessionassoc>
  <participantstreamassoc participant_id="{p_caller}">
    <send>{s_caller}</send>
    <recv>{s_callee}</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="{p_callee}">
    <send>{s_callee}</send>
    <recv>{s_caller}</recv>
  </participantstreamassoc>
</recording>
"""


def sdp_offer(*, host: str, ports: tuple[int, int], codec: Codec, session_id: int) -> str:
    """Two sendonly audio m-lines labelled 1 and 2 (RFC 7866 §8.1.1, RFC 4574), one codec plus DTMF."""
    lines = [
        "v=0",
        f"o=- {session_id} {session_id} IN IP4 {host}",
        "s=SIPREC",
        f"c=IN IP4 {host}",
        "t=0 0",
    ]
    for label, port in zip((CALLER_LABEL, CALLEE_LABEL), ports, strict=True):
        lines += [
            f"m=audio {port} RTP/AVP {codec.payload_type} 101",
            f"a=rtpmap:{codec.payload_type} {codec.value}/{codec.clock_rate}",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            f"a=label:{label}",
            "a=sendonly",
        ]
    return "\r\n".join(lines) + "\r\n"


def offer_body(
    index: int, *, host: str, ports: tuple[int, int], codec: Codec, rng: random.Random, now: datetime
) -> tuple[bytes, str]:
    """The INVITE body and its Content-Type: SDP first, then the metadata (RFC 7866 §9.1)."""
    boundary = f"hangtar-loadgen-{rng.getrandbits(64):016x}"
    sdp = sdp_offer(host=host, ports=ports, codec=codec, session_id=rng.getrandbits(31))
    metadata = recording_metadata(index, now=now, rng=rng).replace("\n", "\r\n")
    body = (
        f"--{boundary}\r\n"
        "Content-Type: application/sdp\r\n\r\n"
        f"{sdp}"
        f"--{boundary}\r\n"
        "Content-Type: application/rs-metadata+xml\r\n"
        "Content-Disposition: recording-session\r\n\r\n"
        f"{metadata}"
        f"--{boundary}--\r\n"
    )
    return body.encode(), f"multipart/mixed;boundary={boundary}"
