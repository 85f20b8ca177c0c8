import pytest

from siprec_server.sip import Headers, SipProtocolError
from siprec_server.sip.headers import canonical_name, split_unquoted


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("f", "From"),
        ("t", "To"),
        ("v", "Via"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("e", "Content-Encoding"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("x", "Session-Expires"),
        ("u", "Allow-Events"),
        ("CALL-ID", "Call-ID"),
        ("cseq", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("MaX-fOrWaRdS", "Max-Forwards"),
        ("X-Genesys-CallUUID", "X-Genesys-CallUUID"),
    ],
)
def test_names_take_their_canonical_long_form(written: str, canonical: str) -> None:
    assert canonical_name(written) == canonical
    headers = Headers([(written, "value")])
    assert list(headers) == [(canonical, "value")]
    assert headers.get(canonical.upper()) == "value"


def test_lookup_ignores_case_and_compact_form_and_keeps_order() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("VIA", "SIP/2.0/TCP b;branch=z9hG4bK2")])
    headers.add("Via", "SIP/2.0/UDP c;branch=z9hG4bK3")
    assert headers.get_all("v") == [
        "SIP/2.0/UDP a;branch=z9hG4bK1",
        "SIP/2.0/TCP b;branch=z9hG4bK2",
        "SIP/2.0/UDP c;branch=z9hG4bK3",
    ]
    assert "via" in headers and "V" in headers and "Route" not in headers


def test_list_headers_split_on_commas_outside_quotes_and_brackets() -> None:
    headers = Headers(
        [
            ("Contact", '"Smith, John" <sip:john@example.com;x=a,b>;expires=60, <sip:alt@example.com>'),
            ("Supported", "timer, replaces,100rel"),
            ("Record-Route", "<sip:p1.example.com;lr>,<sip:p2.example.com;lr>"),
            ("Allow", "INVITE, ACK,BYE"),
        ]
    )
    assert headers.get_all("Contact") == [
        '"Smith, John" <sip:john@example.com;x=a,b>;expires=60',
        "<sip:alt@example.com>",
    ]
    assert headers.get("Contact") == '"Smith, John" <sip:john@example.com;x=a,b>;expires=60'
    assert headers.get_all("k") == ["timer", "replaces", "100rel"]
    assert headers.get_all("Record-Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert headers.get_all("Allow") == ["INVITE", "ACK", "BYE"]


def test_non_list_headers_keep_their_commas() -> None:
    headers = Headers(
        [
            ("From", '"Doe, Jane" <sip:jane@example.com>;tag=1'),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("User-Agent", "Acme, Inc. SBC 9.1"),
        ]
    )
    assert headers.get_all("From") == ['"Doe, Jane" <sip:jane@example.com>;tag=1']
    assert headers.get("Date") == "Sat, 13 Nov 2010 23:29:00 GMT"
    assert headers.get("User-Agent") == "Acme, Inc. SBC 9.1"


def test_escaped_quote_does_not_end_a_quoted_string() -> None:
    assert split_unquoted(r'"a \", b" <sip:x@y>, <sip:z@w>', ",") == [r'"a \", b" <sip:x@y>', " <sip:z@w>"]


def test_set_replaces_all_in_place_and_remove_drops_all() -> None:
    headers = Headers([("Via", "v1"), ("From", "f"), ("Via", "v2"), ("To", "t")])
    headers.set_all("Via", ["n1", "n2"])
    assert list(headers) == [("Via", "n1"), ("Via", "n2"), ("From", "f"), ("To", "t")]
    headers.set("x", "1800")
    assert headers.get("Session-Expires") == "1800"
    assert list(headers)[-1] == ("Session-Expires", "1800")
    headers.remove("VIA")
    assert headers.get("Via") is None and headers.get_all("Via") == []
    assert len(headers) == 3


def test_copy_is_independent() -> None:
    original = Headers([("Call-ID", "abc")])
    duplicate = original.copy()
    duplicate.add("CSeq", "1 INVITE")
    assert "CSeq" not in original and duplicate != original
    assert original == Headers([("i", "abc")])


@pytest.mark.parametrize(
    ("name", "value"),
    [("Bad Name", "x"), ("", "x"), ("X-Injected", "a\r\nVia: evil"), ("Subject", "nul\x00")],
)
def test_values_that_would_break_the_message_are_refused(name: str, value: str) -> None:
    with pytest.raises(SipProtocolError):
        Headers().add(name, value)
