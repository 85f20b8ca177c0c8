import pytest

from siprec_server.sip import (
    Headers,
    NameAddr,
    SipParseError,
    SipRequest,
    SipResponse,
    make_response,
    option_tags,
    parse_content_type,
    parse_message,
)

from .traffic import RFC4475_WSINV, SIPREC_BODY, oracle_siprec_invite, request

DIALOG_HEADERS = [
    ("Via", "SIP/2.0/UDP 198.51.100.7:5060;rport;branch=z9hG4bKPj3b1c0e"),
    ("From", '"PBX" <sip:rec@pbx.example.hu>;tag=a8f30e'),
    ("To", "<sip:srs@192.0.2.50>"),
    ("Call-ID", "4a9e7c1d-0b3f-4c55-9e0e-3f4d1c2b7a60"),
    ("CSeq", "102 INVITE"),
    ("Contact", "<sip:rec@198.51.100.7:5060>;+sip.src"),
]


def _parse_request(data: bytes) -> SipRequest:
    message = parse_message(data)
    assert isinstance(message, SipRequest)
    return message


def test_oracle_siprec_invite() -> None:
    invite = _parse_request(oracle_siprec_invite())
    assert invite.method == "INVITE"
    assert invite.uri == "sip:srs@10.20.30.40:5060;transport=udp"
    assert invite.call_id == "1d6c5e60b1b5a1c29c9e0f8b3a7d2e4f@10.20.30.10"
    assert (invite.cseq.number, invite.cseq.method) == (1, "INVITE")
    assert invite.from_addr.tag == "5c8e0a3a2d1e0d41fa0e1b6c" and invite.to_addr.tag is None
    assert invite.top_via.branch == "z9hG4bK0g4a9k20a8u1lfa0h3f0.1"
    contact = NameAddr.parse(invite.headers.get("m") or "")
    assert contact.uri == "sip:SRC@10.20.30.10:5060;transport=udp" and "+sip.src" in contact.params
    assert option_tags(invite.headers, "Require") == ["siprec"]
    assert invite.headers.get_all("Supported") == ["timer", "replaces"]
    assert "PRACK" in invite.headers.get_all("Allow")
    assert parse_content_type(invite.headers.get("Content-Type") or "") == (
        "multipart/mixed",
        {"boundary": "unique-boundary-1"},
    )
    assert invite.body == SIPREC_BODY
    assert "Kovács Éva".encode() in invite.body


def test_rfc4475_tortuous_invite_is_accepted() -> None:
    invite = _parse_request(RFC4475_WSINV)
    assert invite.uri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert invite.to_addr.tag == "1918181833n"
    assert invite.from_addr.display_name == 'J Rosenberg \\"' and invite.from_addr.tag == "98asjd8"
    assert (invite.cseq.number, invite.cseq.method) == (9, "INVITE")
    assert [(via.transport, via.host, via.branch) for via in invite.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert invite.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert invite.headers.get("Subject") == ""
    contact = NameAddr.parse(invite.headers.get("Contact") or "")
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert len(invite.body) == 150 and invite.body.endswith(b"a=rtpmap:31 LPC\r\n")


def test_compact_forms_from_a_pbx() -> None:
    data = (
        b"INVITE sip:srs@192.0.2.50 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 198.51.100.7:5060;rport;branch=z9hG4bKPj3b1c0e\r\n"
        b'f: "Kov\xc3\xa1cs \xc3\x89va" <sip:+3612345678@pbx.example.hu>;tag=a8f30e\r\n'
        b"t: <sip:srs@192.0.2.50>\r\n"
        b"i: 4a9e7c1d-0b3f-4c55-9e0e-3f4d1c2b7a60\r\n"
        b"CSeq: 102 INVITE\r\n"
        b"m: <sip:rec@198.51.100.7:5060>;+sip.src\r\n"
        b"k: siprec, timer\r\n"
        b"c: application/sdp\r\n"
        b"l: 4\r\n"
        b"\r\n"
        b"v=0\r\n"
    )
    invite = _parse_request(data)
    assert invite.from_addr.display_name == "Kovács Éva"
    assert invite.call_id == "4a9e7c1d-0b3f-4c55-9e0e-3f4d1c2b7a60"
    assert invite.headers.get_all("Supported") == ["siprec", "timer"]
    assert invite.content_type == "application/sdp"
    assert invite.body == b"v=0\r"  # l: 4 cuts the datagram's extra bytes (§18.3)
    assert [name for name, _ in invite.headers][:4] == ["Via", "From", "To", "Call-ID"]


def test_folded_headers_are_joined() -> None:
    data = request(
        "OPTIONS",
        "sip:srs@192.0.2.50",
        [
            *DIALOG_HEADERS[:4],
            ("CSeq", "7 OPTIONS"),
            ("Subject", "I know you're there,\r\n pick up the phone\r\n\tand talk to me!"),
        ],
    )
    options = _parse_request(data)
    assert options.headers.get("Subject") == "I know you're there, pick up the phone and talk to me!"


def test_lf_only_line_endings() -> None:
    body = b"v=0\no=- 1 1 IN IP4 198.51.100.7\ns=-\n"
    invite = _parse_request(request("INVITE", "sip:srs@192.0.2.50", DIALOG_HEADERS, body, line_end="\n"))
    assert invite.body == body
    assert invite.cseq.number == 102


def test_leading_keepalive_crlfs_and_extra_whitespace() -> None:
    data = b"\r\n\r\n" + request("INVITE", "sip:srs@192.0.2.50", DIALOG_HEADERS).replace(
        b"INVITE sip:srs@192.0.2.50 SIP/2.0", b"INVITE   sip:srs@192.0.2.50  SIP/2.0 "
    ).replace(b"Call-ID: ", b"Call-ID   :    ")
    invite = _parse_request(data)
    assert invite.uri == "sip:srs@192.0.2.50"
    assert invite.call_id == "4a9e7c1d-0b3f-4c55-9e0e-3f4d1c2b7a60"


def test_missing_content_length_over_udp_takes_the_rest_of_the_datagram() -> None:
    invite = _parse_request(
        request("INVITE", "sip:srs@192.0.2.50", DIALOG_HEADERS, b"v=0\r\n", content_length=False)
    )
    assert invite.body == b"v=0\r\n"


def test_latin1_display_name_is_still_read() -> None:
    data = request("INVITE", "sip:srs@192.0.2.50", DIALOG_HEADERS).replace(
        b'"PBX"', '"Kovács"'.encode("latin-1")
    )
    assert _parse_request(data).from_addr.display_name == "Kovács"


def test_responses() -> None:
    ok = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKbye1\r\n"
        b"From: <sip:srs@192.0.2.50>;tag=9f3c\r\nTo: <sip:rec@pbx.example.hu>;tag=a8f30e\r\n"
        b"Call-ID: c-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(ok, SipResponse)
    assert (ok.status, ok.reason, ok.cseq.method, ok.to_addr.tag) == (200, "OK", "BYE", "a8f30e")
    ringing = parse_message(
        b"SIP/2.0 180\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\n"
        b"Call-ID: x\nCSeq: 1 INVITE\n\n"
    )
    assert isinstance(ringing, SipResponse) and ringing.reason == ""


def _without(name: str) -> list[tuple[str, str]]:
    return [(n, v) for n, v in DIALOG_HEADERS if n != name]


def _replace(name: str, value: str) -> list[tuple[str, str]]:
    return [(n, value if n == name else v) for n, v in DIALOG_HEADERS]


MALFORMED = [
    pytest.param(b"", 400, "Empty message", False, id="empty"),
    pytest.param(
        request("INVITE", "sip:srs@192.0.2.50", DIALOG_HEADERS).split(b"\r\n", 1)[1],
        400,
        "Malformed request line",
        True,  # read as far as possible, but without its Via it cannot be answered
        id="missing request line",
    ),
    pytest.param(
        request("INVITE", "sip:srs@192.0.2.50", DIALOG_HEADERS).replace(b" SIP/2.0\r\n", b"\r\n", 1),
        400,
        "Malformed request line",
        True,
        id="garbled request line",
    ),
    pytest.param(  # RFC 4475 §3.1.2.11 ltgtruri
        request("INVITE", "<sip:srs@192.0.2.50>", DIALOG_HEADERS),
        400,
        "Malformed request line",
        True,
        id="ltgtruri",
    ),
    pytest.param(  # RFC 4475 §3.1.2.15 badvers
        request("INVITE", "sip:srs@192.0.2.50", DIALOG_HEADERS).replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1),
        505,
        "Version Not Supported",
        True,
        id="badvers",
    ),
    pytest.param(request("INVITE", "sip:s@h", _without("Via")), 400, "Missing Via header", True, id="no Via"),
    pytest.param(
        request("INVITE", "sip:s@h", _without("From")), 400, "Missing From header", True, id="no From"
    ),
    pytest.param(request("INVITE", "sip:s@h", _without("To")), 400, "Missing To header", True, id="no To"),
    pytest.param(
        request("INVITE", "sip:s@h", _without("Call-ID")), 400, "Missing Call-ID header", True, id="no id"
    ),
    pytest.param(
        request("INVITE", "sip:s@h", _without("CSeq")), 400, "Missing CSeq header", True, id="no CSeq"
    ),
    pytest.param(
        request("INVITE", "sip:s@h", _replace("CSeq", "one INVITE")), 400, "Bad CSeq header", True, id="cseq"
    ),
    pytest.param(  # RFC 4475 §3.1.2.18 mismatch01
        request("INVITE", "sip:s@h", _replace("CSeq", "102 OPTIONS")),
        400,
        "CSeq method does not match request method",
        True,
        id="cseq method",
    ),
    pytest.param(  # RFC 4475 §3.1.2.7 quotbal
        request("INVITE", "sip:s@h", _replace("To", '"Mr. J. User <sip:j.user@example.com>')),
        400,
        "Bad To header",
        True,
        id="quotbal",
    ),
    pytest.param(
        request("INVITE", "sip:s@h", _replace("Via", "SIP/2.0/UDP")),
        400,
        "Bad Via header",
        True,
        id="bad Via",
    ),
    pytest.param(  # RFC 4475 §3.1.2.4 clerr
        request("INVITE", "sip:s@h", DIALOG_HEADERS, b"v=0\r\n", content_length=False).replace(
            b"\r\n\r\n", b"\r\nContent-Length: 9999\r\n\r\n", 1
        ),
        400,
        "Content-Length larger than body",
        True,
        id="clerr",
    ),
    pytest.param(  # RFC 4475 §3.1.2.2 ncl
        request("INVITE", "sip:s@h", [*DIALOG_HEADERS, ("Content-Length", "-999")], content_length=False),
        400,
        "Bad Content-Length header",
        True,
        id="ncl",
    ),
    pytest.param(  # RFC 4475 §3.1.2.13 mcl01
        request(
            "INVITE",
            "sip:s@h",
            [*DIALOG_HEADERS, ("Content-Length", "0"), ("l", "5")],
            b"v=0\r\n",
            content_length=False,
        ),
        400,
        "Conflicting Content-Length headers",
        True,
        id="mcl01",
    ),
    pytest.param(
        request("INVITE", "sip:s@h", [*DIALOG_HEADERS, ("Bogus header line", "x")]).replace(
            b"Bogus header line: x", b"this line has no colon"
        ),
        400,
        "Malformed header line",
        True,
        id="no colon",
    ),
]


@pytest.mark.parametrize(("data", "status", "reason", "readable"), MALFORMED)
def test_malformed_messages(data: bytes, status: int, reason: str, readable: bool) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert (caught.value.status, caught.value.reason) == (status, reason)
    assert isinstance(caught.value.partial, SipRequest) is readable


def test_round_trip() -> None:
    for data in (oracle_siprec_invite(), RFC4475_WSINV):
        first = _parse_request(data)
        second = _parse_request(bytes(first))
        assert (second.method, second.uri, second.body) == (first.method, first.uri, first.body)
        assert _fields(second) == _fields(first)
        assert second.headers.get("Content-Length") == str(len(first.body))
        assert bytes(second) == bytes(first)


def _fields(message: SipRequest) -> list[tuple[str, str]]:
    return [(name, value) for name, value in message.headers if name != "Content-Length"]


def test_serialisation_always_writes_the_real_content_length() -> None:
    response = SipResponse(
        status=200, reason="OK", headers=Headers([("Content-Length", "999")]), body=b"v=0\r\n"
    )
    assert bytes(response) == b"SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nv=0\r\n"


def test_make_response_copies_what_8_2_6_2_requires() -> None:
    invite = _parse_request(
        request(
            "INVITE",
            "sip:srs@192.0.2.50",
            [
                (
                    "Via",
                    "SIP/2.0/UDP proxy.example.hu;branch=z9hG4bKp1, SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK1",
                ),
                *DIALOG_HEADERS[1:],
                ("Record-Route", "<sip:proxy.example.hu;lr>"),
                ("Timestamp", "54"),
            ],
        )
    )
    ok = make_response(
        invite, 200, to_tag="9f3c", body=b"v=0\r\n", content_type="application/sdp", server="Hangtar"
    )
    assert ok.headers.get_all("Via") == [
        "SIP/2.0/UDP proxy.example.hu;branch=z9hG4bKp1",
        "SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK1",
    ]
    assert ok.headers.get("From") == invite.headers.get("From")
    assert ok.headers.get("To") == "<sip:srs@192.0.2.50>;tag=9f3c"
    assert ok.headers.get("Call-ID") == invite.call_id and ok.headers.get("CSeq") == "102 INVITE"
    assert ok.headers.get("Record-Route") == "<sip:proxy.example.hu;lr>"
    assert ok.headers.get("Server") == "Hangtar" and ok.headers.get("Content-Type") == "application/sdp"
    assert ok.reason == "OK" and "Timestamp" not in ok.headers
    assert bytes(ok).endswith(b"Content-Length: 5\r\n\r\nv=0\r\n")

    trying = make_response(invite, 100, to_tag="9f3c")
    assert trying.headers.get("To") == "<sip:srs@192.0.2.50>" and trying.headers.get("Timestamp") == "54"
    assert "Record-Route" not in trying.headers

    rejected = make_response(invite, 488, "Not Acceptable Here", to_tag="9f3c")
    assert "Record-Route" not in rejected.headers and rejected.reason == "Not Acceptable Here"


def test_make_response_keeps_an_existing_to_tag() -> None:
    reinvite = _parse_request(
        request("INVITE", "sip:srs@192.0.2.50", _replace("To", "<sip:srs@192.0.2.50>;tag=9f3c"))
    )
    assert make_response(reinvite, 200, to_tag="other").headers.get("To") == "<sip:srs@192.0.2.50>;tag=9f3c"
