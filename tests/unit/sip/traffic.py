"""Field-shaped SIP traffic for the tests: a SIPREC INVITE as an Oracle SBC sends it, RFC 4475 torture
messages, and builders for the requests an SRC sends during a recording session."""

from __future__ import annotations

from collections.abc import Sequence

CRLF = "\r\n"

SIPREC_SDP = CRLF.join(
    [
        "v=0",
        "o=- 3818364524 3818364524 IN IP4 10.20.30.10",
        "s=-",
        "c=IN IP4 10.20.30.10",
        "t=0 0",
        "m=audio 20000 RTP/AVP 8 0 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=label:1",
        "a=sendonly",
        "m=audio 20002 RTP/AVP 8 0 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=label:2",
        "a=sendonly",
        "",
    ]
)

SIPREC_METADATA = CRLF.join(
    [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<recording xmlns='urn:ietf:params:xml:ns:recording'>",
        "  <datamode>complete</datamode>",
        '  <session id="hVpd7YQgRW2nD22h7q60JQ==">',
        "    <associate-time>2024-05-14T09:12:33</associate-time>",
        "  </session>",
        '  <participant id="srfBElmCRp2QB23b7Mpk0w==" session="hVpd7YQgRW2nD22h7q60JQ==">',
        '    <nameID aor="sip:+3612345678@pbx.example.hu">',
        '      <name xml:lang="hu">Kovács Éva</name>',
        "    </nameID>",
        "    <send>i1Pz3to5hGk8fuXl+PbwCw==</send>",
        "  </participant>",
        '  <participant id="zSfPoSvdSDCmU3A3TRDxAw==" session="hVpd7YQgRW2nD22h7q60JQ==">',
        '    <nameID aor="sip:+3619876543@10.20.30.10"/>',
        "    <send>8zc6e0lYTlWIINA6GR+3ag==</send>",
        "  </participant>",
        '  <stream id="i1Pz3to5hGk8fuXl+PbwCw==" session="hVpd7YQgRW2nD22h7q60JQ==">',
        "    <label>1</label>",
        "  </stream>",
        '  <stream id="8zc6e0lYTlWIINA6GR+3ag==" session="hVpd7YQgRW2nD22h7q60JQ==">',
        "    <label>2</label>",
        "  </stream>",
        "</recording>",
        "",
    ]
)

SIPREC_BODY = CRLF.join(
    [
        "--unique-boundary-1",
        "Content-Type: application/sdp",
        "",
        SIPREC_SDP,
        "--unique-boundary-1",
        "Content-Type: application/rs-metadata+xml",
        "Content-Disposition: recording-session",
        "",
        SIPREC_METADATA,
        "--unique-boundary-1--",
        "",
    ]
).encode()


def oracle_siprec_invite(*, content_length: int | None = None) -> bytes:
    """The initial INVITE of a recording session from an Oracle (Acme Packet) SBC acting as SRC."""
    length = len(SIPREC_BODY) if content_length is None else content_length
    head = CRLF.join(
        [
            "INVITE sip:srs@10.20.30.40:5060;transport=udp SIP/2.0",
            "Via: SIP/2.0/UDP 10.20.30.10:5060;branch=z9hG4bK0g4a9k20a8u1lfa0h3f0.1",
            "Max-Forwards: 70",
            "From: <sip:SRC@10.20.30.10:5060>;tag=5c8e0a3a2d1e0d41fa0e1b6c",
            "To: <sip:srs@10.20.30.40:5060>",
            "Call-ID: 1d6c5e60b1b5a1c29c9e0f8b3a7d2e4f@10.20.30.10",
            "CSeq: 1 INVITE",
            "Contact: <sip:SRC@10.20.30.10:5060;transport=udp>;+sip.src",
            "Require: siprec",
            "Supported: timer,replaces",
            "Session-Expires: 1800;refresher=uac",
            "Min-SE: 90",
            "Allow: INVITE,ACK,CANCEL,OPTIONS,BYE,PRACK,UPDATE,INFO",
            "Accept: application/sdp, application/rs-metadata+xml",
            "User-Agent: Oracle ESBC",
            "Content-Type: multipart/mixed;boundary=unique-boundary-1",
            "MIME-Version: 1.0",
            f"Content-Length: {length}",
        ]
    )
    return (head + CRLF + CRLF).encode() + SIPREC_BODY


# RFC 4475 §3.1.1.1 "A Short Tortuous INVITE" (wsinv): valid, and every line bends a rule.
RFC4475_WSINV = CRLF.join(
    [
        "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0",
        "TO :",
        " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
        'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>',
        "  ;",
        "  tag = 98asjd8",
        "MaX-fOrWaRdS: 0068",
        "Call-ID: wsinv.ndaksdj@192.0.2.1",
        "Content-Length   : 150",
        "cseq: 0009",
        "  INVITE",
        "Via  : SIP  /   2.0",
        " /UDP",
        "    192.0.2.2;branch=390skdjuw",
        "s :",
        "NewFangledHeader:   newfangled value",
        " continued newfangled value",
        "UnknownHeaderWithUnusualValue: ;;,,;;,;",
        "Content-Type: application/sdp",
        "Route:",
        " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
        "v:  SIP  / 2.0  / TCP     spindle.example.com   ;",
        "  branch  =   z9hG4bK9ikj8  ,",
        " SIP  /    2.0   / UDP  192.168.255.111   ; branch=",
        " z9hG4bK30239",
        'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =',
        "      newvalue ;",
        "  secondparam ; q = 0.33",
        "",
        "v=0",
        "o=mhandley 29739 7272939 IN IP4 192.0.2.3",
        "s=-",
        "c=IN IP4 192.0.2.4",
        "t=0 0",
        "m=audio 49217 RTP/AVP 0 12",
        "m=video 3227 RTP/AVP 31",
        "a=rtpmap:31 LPC",
        "",
    ]
).encode()


def request(
    method: str,
    uri: str,
    headers: Sequence[tuple[str, str]],
    body: bytes = b"",
    *,
    content_length: bool = True,
    line_end: str = CRLF,
) -> bytes:
    """Serialise a request the way a peer would, with a correct Content-Length unless told otherwise."""
    lines = [f"{method} {uri} SIP/2.0", *(f"{name}: {value}" for name, value in headers)]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return (line_end.join(lines) + line_end + line_end).encode() + body
