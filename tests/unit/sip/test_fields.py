import pytest

from siprec_server.sip import (
    CSeq,
    Headers,
    NameAddr,
    SipParseError,
    SipUri,
    Via,
    option_tags,
    parse_content_type,
)


def test_name_addr_with_quoted_display_name_uri_params_and_header_params() -> None:
    address = NameAddr.parse('"Kovács, Éva" <sip:+3612345678@pbx.example.hu;user=phone>;tag=a8f3;+sip.src')
    assert address.display_name == "Kovács, Éva"
    assert address.uri == "sip:+3612345678@pbx.example.hu;user=phone"
    assert address.tag == "a8f3"
    assert "+sip.src" in address.params and address.params["+sip.src"] is None


def test_name_addr_bare_form_params_belong_to_the_header() -> None:
    address = NameAddr.parse("sip:SRC@10.20.30.10:5060;tag=5c8e0a3a")
    assert address.uri == "sip:SRC@10.20.30.10:5060"
    assert address.display_name is None
    assert address.tag == "5c8e0a3a"


def test_name_addr_unquoted_display_name_and_quoted_param_value() -> None:
    address = NameAddr.parse('Alice Smith <sip:alice@example.com>;+sip.instance="<urn:uuid:0C67446E-F1A1>"')
    assert address.display_name == "Alice Smith"
    assert address.params["+sip.instance"] == "<urn:uuid:0C67446E-F1A1>"
    assert str(address) == '"Alice Smith" <sip:alice@example.com>;+sip.instance="<urn:uuid:0C67446E-F1A1>"'


def test_name_addr_round_trips_and_with_param_adds_a_tag() -> None:
    address = NameAddr.parse("<sip:srs@10.20.30.40:5060>")
    tagged = address.with_param("tag", "9f3c")
    assert str(tagged) == "<sip:srs@10.20.30.40:5060>;tag=9f3c"
    assert NameAddr.parse(str(tagged)) == tagged
    assert address.tag is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        '"Mr. J. User <sip:j.user@example.com>',
        "<sip:unclosed@example.com",
        "just text",
        "<>",
        "<sip:a@b> junk",
    ],
)
def test_name_addr_rejects_malformed_values(value: str) -> None:
    with pytest.raises(SipParseError) as caught:
        NameAddr.parse(value)
    assert caught.value.status == 400


def test_via_fields() -> None:
    via = Via.parse("SIP/2.0/udp 10.20.30.10:5062;branch=z9hG4bK776asdhds;received=192.0.2.7;rport=41234")
    assert (via.transport, via.host, via.port) == ("UDP", "10.20.30.10", 5062)
    assert via.branch == "z9hG4bK776asdhds"
    assert via.received == "192.0.2.7"
    assert via.rport == 41234 and via.rport_requested
    assert via.sent_by == "10.20.30.10:5062"


def test_via_ipv6_default_ports_and_flag_rport() -> None:
    via = Via.parse("SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKx;rport")
    assert via.host == "[2001:db8::9]" and via.port == 5061
    assert via.rport_requested and via.rport is None
    assert Via.parse("SIP/2.0/TLS pbx.example.hu;branch=z9hG4bKy").sent_by == "pbx.example.hu:5061"
    assert Via.parse("SIP/2.0/UDP PBX.example.hu;branch=z9hG4bKy").sent_by == "pbx.example.hu:5060"


def test_via_round_trips_with_added_params() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKab;rport")
    stamped = via.with_param("received", "203.0.113.9").with_param("rport", "40123")
    assert str(stamped) == "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKab;rport=40123;received=203.0.113.9"
    assert Via.parse(str(stamped)) == stamped


@pytest.mark.parametrize(
    "value", ["SIP/2.0/UDP", "SIP/2.0 10.0.0.1", "SIP/2.0/UDP 10.0.0.1:99999", "SIP/2.0/UDP host;branch=a b"]
)
def test_via_rejects_malformed_values(value: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(value)


def test_cseq() -> None:
    assert CSeq.parse("  0009   INVITE ") == CSeq(number=9, method="INVITE")
    assert str(CSeq.parse("4711 BYE")) == "4711 BYE"


@pytest.mark.parametrize(
    "value", ["INVITE", "abc INVITE", "1", "36893488147419103232 INVITE", "2147483648 BYE"]
)
def test_cseq_rejects_non_numeric_and_too_large_numbers(value: str) -> None:
    with pytest.raises(SipParseError, match="Bad CSeq"):
        CSeq.parse(value)


def test_content_type() -> None:
    assert parse_content_type('Multipart/Mixed ; boundary="unique-boundary-1"') == (
        "multipart/mixed",
        {"boundary": "unique-boundary-1"},
    )
    assert parse_content_type("application/SDP") == ("application/sdp", {})
    with pytest.raises(SipParseError):
        parse_content_type("sdp")


def test_option_tags_from_several_header_lines() -> None:
    headers = Headers([("Require", "siprec"), ("Supported", "timer , replaces"), ("k", "100rel")])
    assert option_tags(headers, "Require") == ["siprec"]
    assert option_tags(headers, "Supported") == ["timer", "replaces", "100rel"]
    assert option_tags(headers, "Proxy-Require") == []


def test_sip_uri_parts() -> None:
    uri = SipUri.parse("sip:SRC@10.20.30.10:5060;transport=TCP;lr")
    assert (uri.scheme, uri.user, uri.host, uri.port) == ("sip", "SRC", "10.20.30.10", 5060)
    assert uri.transport == "tcp" and uri.loose_route
    ipv6 = SipUri.parse("sips:[2001:db8::1]")
    assert (ipv6.scheme, ipv6.host, ipv6.port, ipv6.transport) == ("sips", "[2001:db8::1]", None, None)
    with pytest.raises(SipParseError):
        SipUri.parse("tel:+3612345678")
