"""Responses and requests shaped as Hangtár sends them (captured from a running server, addresses kept)."""

from __future__ import annotations

SRS = ("127.0.0.1", 48322)
LOCAL = ("127.0.0.1", 44040)

ANSWER_SDP = (
    "v=0\r\n"
    "o=hangtar 1691350678 1 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 36732 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=label:1\r\n"
    "a=recvonly\r\n"
    "m=audio 36734 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=label:2\r\n"
    "a=recvonly\r\n"
)


def response(
    invite: bytes, status: int, reason: str, *, to_tag: str | None, extra: str = "", body: str = ""
) -> bytes:
    """A response to our request: Via, From, To, Call-ID and CSeq copied as the server copies them."""
    head = invite.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    copied = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name in ("Via", "From", "To", "Call-ID", "CSeq"):
            copied[name] = value.strip()
    via = copied["Via"].replace(";rport", f";rport={LOCAL[1]};received={LOCAL[0]}")
    to = copied["To"] + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"SIP/2.0 {status} {reason}",
        f"Via: {via}",
        f"From: {copied['From']}",
        f"To: {to}",
        f"Call-ID: {copied['Call-ID']}",
        f"CSeq: {copied['CSeq']}",
        "Server: Hangtar/0.1.0",
    ]
    lines += [line for line in extra.split("\n") if line]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def ok_to_invite(invite: bytes) -> bytes:
    return response(
        invite,
        200,
        "OK",
        to_tag="f4bf8a03fa4de388",
        extra=(
            "Supported: siprec, timer\n"
            f"Contact: <sip:{SRS[0]}:{SRS[1]};transport=udp>\n"
            "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
        ),
        body=ANSWER_SDP,
    )


def bye_from_srs(call_id: str, from_tag: str, to: str) -> bytes:
    """The server ending the session (shutdown): its From is our To, its To our From."""
    return (
        f"BYE sip:src@{LOCAL[0]}:{LOCAL[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {SRS[0]}:{SRS[1]};branch=z9hG4bK7d1c0e5a4b3f2e10;rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:srs@{SRS[0]}>;tag=f4bf8a03fa4de388\r\n"
        f"To: {to};tag={from_tag}\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 BYE\r\n"
        'Reason: SIP;cause=200;text="server shutting down"\r\n'
        "Content-Length: 0\r\n\r\n"
    ).encode()
