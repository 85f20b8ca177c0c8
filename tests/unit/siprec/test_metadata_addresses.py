"""Participant AORs as SRCs write them, cleaned into one URI."""

from __future__ import annotations

import pytest

from siprec_server.siprec.addresses import Address, parse_address


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "sip:+36301234567@sbc.example.hu",
            Address(uri="sip:+36301234567@sbc.example.hu", user="+36301234567", host="sbc.example.hu"),
        ),
        # No scheme (Ribbon, AudioCodes): a dialect, not damage.
        (
            "+36705550123@198.51.100.20",
            Address(uri="sip:+36705550123@198.51.100.20", user="+36705550123", host="198.51.100.20"),
        ),
        (
            "4058327108@10.105.190.136:5060",
            Address(uri="sip:4058327108@10.105.190.136:5060", user="4058327108", host="10.105.190.136:5060"),
        ),
        # Parameters and headers go; so do a password and the case of the scheme.
        (
            "sip:06705551234@voip.example.hu;user=phone",
            Address(uri="sip:06705551234@voip.example.hu", user="06705551234", host="voip.example.hu"),
        ),
        (
            "SIPS:bob@biloxi.com;transport=tls?subject=x",
            Address(uri="sips:bob@biloxi.com", user="bob", host="biloxi.com"),
        ),
        (
            "sip:user:secret@host.example",
            Address(uri="sip:user@host.example", user="user", host="host.example"),
        ),
        (
            "sip:+3630123;phone-context=example.hu@gw.example",
            Address(uri="sip:+3630123@gw.example", user="+3630123", host="gw.example"),
        ),
        (
            "sip:%2B36301234567@h.example",
            Address(uri="sip:+36301234567@h.example", user="+36301234567", host="h.example"),
        ),
        # tel: URIs keep their number (visual separators are the number normaliser's business).
        (
            "tel:+36-1-555-0100;phone-context=+36",
            Address(uri="tel:+36-1-555-0100", user="+36-1-555-0100", host=None),
        ),
        # BroadWorks: a user without host; an address that is only a host.
        ("sip:02077705371", Address(uri="sip:02077705371", user="02077705371", host=None)),
        ("sip:sub_00403715", Address(uri="sip:sub_00403715", user="sub_00403715", host=None)),
        ("sip:10.10.10.1", Address(uri="sip:10.10.10.1", user=None, host="10.10.10.1")),
        (
            "sip:[2001:db8::1]:5060",
            Address(uri="sip:[2001:db8::1]:5060", user=None, host="[2001:db8::1]:5060"),
        ),
        # Junk: name-addrs copied from headers, stray spaces.
        ("<sip:1001@pbx>", Address(uri="sip:1001@pbx", user="1001", host="pbx", repairs=("brackets",))),
        (
            '"Kovács Anna" <sip:+36209876543@10.10.20.5>;tag=gK0c3ab0a7',
            Address(
                uri="sip:+36209876543@10.10.20.5",
                user="+36209876543",
                host="10.10.20.5",
                display_name="Kovács Anna",
                repairs=("brackets",),
            ),
        ),
        (
            '"Anna" sip:2001@pbx',
            Address(
                uri="sip:2001@pbx", user="2001", host="pbx", display_name="Anna", repairs=("display_name",)
            ),
        ),
        (
            "sip: 7774442214 @10.104.54.52",
            Address(
                uri="sip:7774442214@10.104.54.52",
                user="7774442214",
                host="10.104.54.52",
                repairs=("whitespace",),
            ),
        ),
        ("  sip:2001@pbx\n", Address(uri="sip:2001@pbx", user="2001", host="pbx")),
    ],
)
def test_addresses(raw: str, expected: Address) -> None:
    assert parse_address(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "   ", "<>", "sip:", "tel:", "<sip:@>"])
def test_nothing_usable(raw: str | None) -> None:
    assert parse_address(raw) is None
