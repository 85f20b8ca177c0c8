"""What a SIPREC SRC offers, shared by the pjsua2 and SIPp peers: RFC 7865 metadata, SDP labels, and
where to send from. Pure functions; no pjsua2 here, so importing it is cheap and safe.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import socket
import uuid

CALLER_AOR = "sip:+3612345678@pbx.example.hu"
CALLEE_AOR = "sip:+3619876543@pbx.example.hu"


def b64_id() -> str:
    # RFC 7865: identifiers are base64-encoded UUIDs.
    return base64.b64encode(uuid.uuid4().bytes).decode()


def build_metadata(labels: tuple[str, str] | None, *, now: dt.datetime | None = None) -> str:
    """RFC 7865 metadata (Appendix A shape): the caller sends ``labels[0]``, the callee ``labels[1]``.

    Without labels the streams cannot be named, so only the session and its participants are described.
    """
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    group, session = b64_id(), b64_id()
    caller, callee = b64_id(), b64_id()
    s_caller, s_callee = b64_id(), b64_id()
    streams = ""
    if labels is not None:
        streams = f"""  <stream stream_id="{s_caller}" session_id="{session}">
    <label>{labels[0]}</label>
  </stream>
  <stream stream_id="{s_callee}" session_id="{session}">
    <label>{labels[1]}</label>
  </stream>
"""
    stream_assoc = ""
    if labels is not None:
        stream_assoc = f"""  <participantstreamassoc participant_id="{caller}">
    <send>{s_caller}</send>
    <recv>{s_callee}</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="{callee}">
    <send>{s_callee}</send>
    <recv>{s_caller}</recv>
  </participantstreamassoc>
"""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <group group_id="{group}">
    <associate-time>{stamp}</associate-time>
  </group>
  <session session_id="{session}">
    <sipSessionID>{uuid.uuid4().hex};remote={uuid.uuid4().hex}</sipSessionID>
    <group-ref>{group}</group-ref>
    <start-time>{stamp}</start-time>
  </session>
  <participant participant_id="{caller}">
    <nameID aor="{CALLER_AOR}">
      <name xml:lang="hu">Kovács Éva</name>
    </nameID>
  </participant>
  <participant participant_id="{callee}">
    <nameID aor="{CALLEE_AOR}">
      <name xml:lang="hu">Szabó Ádám</name>
    </nameID>
  </participant>
{streams}  <sessionrecordingassoc session_id="{session}">
    <associate-time>{stamp}</associate-time>
  </sessionrecordingassoc>
  <participantsessionassoc participant_id="{caller}" session_id="{session}">
    <associate-time>{stamp}</associate-time>
  </participantsessionassoc>
  <participantsessionassoc participant_id="{callee}" session_id="{session}">
    <associate-time>{stamp}</associate-time>
  </participantsessionassoc>
{stream_assoc}</recording>
"""


def add_labels(sdp: str, labels: tuple[str, ...]) -> str:
    """Append ``a=label:N`` to the N-th m-line's block (RFC 4574), keeping the SDP's line ending."""
    eol = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.rstrip("\r\n").split(eol)
    out: list[str] = []
    index = -1
    for line in lines:
        if line.startswith("m="):
            if 0 <= index < len(labels):
                out.append(f"a=label:{labels[index]}")
            index += 1
        if not line.startswith("a=label:"):
            out.append(line)
    if 0 <= index < len(labels):
        out.append(f"a=label:{labels[index]}")
    return eol.join(out) + eol


def local_address_for(host: str, port: int) -> str:
    """The local IP the kernel would use to reach ``host`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


def parse_target(target: str) -> tuple[str, int]:
    match = re.fullmatch(r"sips?:(?:[^@;>]+@)?(\[[^\]]+\]|[^:;>]+)(?::(\d+))?(?:;.*)?", target)
    if not match:
        raise ValueError(f"not a SIP URI: {target!r}")
    host = match.group(1).strip("[]")
    return socket.gethostbyname(host), int(match.group(2) or 5060)
