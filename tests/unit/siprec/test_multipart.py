"""RFC 2046 multipart splitting against SRC traffic and broken bodies."""

from __future__ import annotations

import pytest

from siprec_server.siprec import SiprecBodyError, parse_content_type, split_body

from .traffic import load_invite

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
XML = b'<?xml version="1.0"?><recording xmlns="urn:ietf:params:xml:ns:recording:1"/>'


def multipart(boundary: str, *parts: bytes, close: bool = True) -> bytes:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + boundary.encode() + b"--\r\n" if close else b"")


def test_acme_metadata_part_comes_before_the_sdp() -> None:
    invite = load_invite("acme_invite.sip")
    parts = split_body(invite.header("content-type"), invite.body)
    assert [p.content_type for p in parts] == ["application/rs-metadata+xml", "application/sdp"]
    metadata, sdp = parts
    assert metadata.disposition == "recording-session"
    assert metadata.body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\r\n<recording")
    assert metadata.body.endswith(b"</recording>")
    # The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
    assert sdp.body.startswith(b"v=0\r\n") and sdp.body.endswith(b"a=label:2\r\na=sendonly")
    assert sdp.disposition is None and sdp.headers == {"content-type": "application/sdp"}


def test_cisco_padded_delimiters_and_disposition_parameters() -> None:
    invite = load_invite("cisco_cube_invite.sip")
    parts = split_body(invite.header("content-type"), invite.body)
    assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]
    sdp = parts[0]
    assert sdp.disposition == "session"
    assert sdp.headers["content-disposition"] == "session;handling=required"
    assert sdp.params == {}
    assert sdp.body.startswith(b"v=0\r\no=CiscoSystemsSIP-GW-UserAgent")
    assert parts[1].body.rstrip().endswith(b"</recording>")


def test_broadworks_part_headers_without_space_after_colon() -> None:
    invite = load_invite("broadworks_invite.sip")
    parts = split_body(invite.header("content-type"), invite.body)
    metadata, sdp = parts
    assert metadata.content_type == "application/rs-metadata+xml"
    assert metadata.disposition == "recording-session"
    assert metadata.headers["content-length"] == str(len(metadata.body.rstrip(b"\r\n")))
    assert sdp.content_type == "application/sdp"
    assert b"m=audio 58014 RTP/AVP 8 101" in sdp.body


def test_third_gtd_part_is_kept_in_order() -> None:
    invite = load_invite("ribbon_gtd_invite.sip")
    parts = split_body(invite.header("content-type"), invite.body)
    assert [p.content_type for p in parts] == [
        "application/sdp",
        "application/gtd",
        "application/rs-metadata+xml",
    ]
    gtd = parts[1]
    assert gtd.disposition == "signal"
    assert gtd.body.startswith(b"IAM,\r\nPRN,isdn*,,ETSI,")
    assert parts[0].disposition == "session"


def test_bare_lf_line_ends() -> None:
    invite = load_invite("lf_only_invite.sip")
    parts = split_body(invite.header("content-type"), invite.body)
    assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]
    assert all(b"\r" not in p.body for p in parts)
    assert parts[0].body.endswith(b"a=label:1\na=sendonly")
    assert parts[1].body.endswith(b"</recording>")


def test_quoted_boundary_with_preamble_epilogue_and_header_case() -> None:
    invite = load_invite("quoted_boundary_invite.sip")
    mime, params = parse_content_type(invite.header("content-type"))
    assert mime == "multipart/mixed"
    assert params["boundary"] == "----=_Part_4_1413227913.1710159600250"
    parts = split_body(invite.header("content-type"), invite.body)
    assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]
    assert parts[1].params == {"charset": "UTF-8"}
    assert parts[1].disposition == "recording-session"
    assert b"multi-part message" not in parts[0].body
    assert b"Epilogue" not in parts[1].body


def test_non_multipart_body_is_one_part() -> None:
    parts = split_body("application/sdp", SDP)
    assert len(parts) == 1
    assert parts[0].content_type == "application/sdp"
    assert parts[0].body == SDP
    assert parts[0].headers == {"content-type": "application/sdp"}
    assert parts[0].disposition is None


def test_empty_body_has_no_parts() -> None:
    assert split_body("", b"") == []
    assert split_body("application/sdp", b"") == []


def test_quoted_boundary_holding_separators() -> None:
    body = multipart("a;b=c", b"Content-Type: application/sdp\r\n\r\n" + SDP)
    parts = split_body('multipart/mixed; boundary="a;b=c"; foo=bar', body)
    assert [p.content_type for p in parts] == ["application/sdp"]


def test_missing_close_delimiter_runs_the_last_part_to_the_end() -> None:
    body = multipart(
        "xyz",
        b"Content-Type: application/sdp\r\n\r\n" + SDP,
        b"Content-Type: application/rs-metadata+xml\r\n\r\n" + XML,
        close=False,
    )
    parts = split_body("multipart/mixed;boundary=xyz", body)
    assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]
    assert parts[1].body == XML + b"\r\n"


def test_part_without_headers_is_text_plain() -> None:
    parts = split_body("multipart/mixed;boundary=xyz", multipart("xyz", b"\r\nhello"))
    assert parts[0].content_type == "text/plain"
    assert parts[0].headers == {}
    assert parts[0].body == b"hello"


def test_line_that_only_starts_like_the_boundary_is_content() -> None:
    content = b"Content-Type: text/plain\r\n\r\nfirst\r\n--xyz2 is not a delimiter"
    parts = split_body("multipart/mixed;boundary=xyz", multipart("xyz", content))
    assert parts[0].body == b"first\r\n--xyz2 is not a delimiter"


def test_folded_part_header() -> None:
    content = b"Content-Type: application/rs-metadata+xml;\r\n charset=UTF-8\r\n\r\n" + XML
    parts = split_body("multipart/mixed;boundary=xyz", multipart("xyz", content))
    assert parts[0].content_type == "application/rs-metadata+xml"
    assert parts[0].params == {"charset": "UTF-8"}


def test_nested_multipart_is_flattened() -> None:
    inner = multipart(
        "inner",
        b"Content-Type: application/sdp\r\n\r\n" + SDP,
        b"Content-Type: application/rs-metadata+xml\r\n\r\n" + XML,
    )
    outer = multipart("outer", b'Content-Type: multipart/related; boundary="inner"\r\n\r\n' + inner)
    parts = split_body("multipart/mixed;boundary=outer", outer)
    assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("multipart/mixed", multipart("xyz", b"Content-Type: application/sdp\r\n\r\n" + SDP), "boundary"),
        ("multipart/mixed;boundary=", multipart("xyz", b"\r\nx"), "boundary"),
        ("multipart/mixed;boundary=other", multipart("xyz", b"\r\nx"), "--other"),
        ("multipart/mixed;boundary=xyz", b"--xyz--\r\n", "no parts"),
        ("multipart/mixed;boundary=xyz", b"", "empty body"),
        ("multipart/mixed;boundary=xyz", multipart("xyz", b"Content-Type: application/sdp\r\n" + SDP), "v=0"),
        (
            "multipart/mixed;boundary=xyz",
            multipart("xyz", b"Content-Type: sdp\r\n\r\n" + SDP),
            "Content-Type",
        ),
        ("", SDP, "without a Content-Type"),
        ("application", SDP, "malformed Content-Type"),
    ],
)
def test_malformed_bodies_are_answered_400(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(SiprecBodyError, match=message) as caught:
        split_body(content_type, body)
    assert caught.value.status_code == 400


def test_nesting_is_bounded() -> None:
    body = b"Content-Type: application/sdp\r\n\r\n" + SDP
    for level in range(5):
        body = b"Content-Type: multipart/mixed;boundary=b%d\r\n\r\n" % level + multipart(f"b{level}", body)
    content_type, _, inner = body.partition(b"\r\n\r\n")
    with pytest.raises(SiprecBodyError, match="nested deeper"):
        split_body(content_type.decode().split(": ", 1)[1], inner)
