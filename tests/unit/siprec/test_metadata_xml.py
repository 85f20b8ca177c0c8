"""Hostile, unreadable and oddly encoded metadata documents, and the timestamps inside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from siprec_server.siprec import MetadataError
from siprec_server.siprec.metadata import parse_metadata, parse_timestamp

from .test_metadata import document, kinds, texts
from .traffic import fixture


def test_latin1_document_declared_utf8() -> None:
    xml = document(
        '<participant participant_id="cDE="><nameID aor="sip:a@example.com"><name>Kovács Ödön</name>'
    )
    latin1 = xml.decode().replace("</recording>", "</nameID></participant></recording>").encode("latin-1")
    metadata = parse_metadata(latin1)
    assert metadata.participants[0].name == "Kovács Ödön"
    assert texts(metadata) == ["metadata encoding misdeclared, read as Latin-1"]
    assert kinds(metadata) == ["encoding_misdeclared"]


def test_leading_whitespace_before_the_declaration() -> None:
    metadata = parse_metadata(b"\r\n  " + document('<participant participant_id="cDE="/>'))
    assert [p.id for p in metadata.participants] == ["cDE="]


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (fixture("billion_laughs.xml"), "DTDForbidden"),
        (fixture("external_entity.xml"), "DTDForbidden"),
        (b'<?xml version="1.0"?><!DOCTYPE recording><recording/>', "DTDForbidden"),
        (document("<participant>" + "x" * (256 * 1024) + "</participant>"), "exceeds 262144"),
        (document("<a>" * 100 + "</a>" * 100), "nested deeper than 64"),
        (document("<participant>"), "not well-formed"),
        (b"\xff\xfe<recording", "not well-formed"),
        (b"   \r\n", "empty"),
    ],
)
def test_hostile_or_unreadable_metadata_raises(xml: bytes, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        parse_metadata(xml)


def test_timestamps() -> None:
    assert parse_timestamp("2010-12-16T23:41:07Z") == datetime(2010, 12, 16, 23, 41, 7, tzinfo=UTC)
    assert parse_timestamp("2024-03-11T09:14:52") == datetime(2024, 3, 11, 9, 14, 52, tzinfo=UTC)
    assert parse_timestamp("2016-06-22T10:44:43+01:00") == datetime(
        2016, 6, 22, 10, 44, 43, tzinfo=timezone(timedelta(hours=1))
    )
    assert parse_timestamp("2016-05-06T07:57:48.526Z") == datetime(2016, 5, 6, 7, 57, 48, 526000, tzinfo=UTC)
    assert parse_timestamp("1970-01-01T00:00:00Z") is None
    assert parse_timestamp("yesterday") is None
    assert parse_timestamp("") is None
    assert parse_timestamp(None) is None


def test_undeclared_prefixes_are_declared_and_read() -> None:
    xml = (
        b'<?xml version="1.0"?>\n<recording xmlns="urn:ietf:params:xml:ns:recording:1">'
        b'<session session_id="s1"><apkt:ucid>00FA080019001038F725B3;encoding=hex</apkt:ucid>'
        b'<ac:GenesysUUID xmlns="urn:ietf:params:xml:ns:Genesys">4BOKLLA3VH66</ac:GenesysUUID></session>'
        b'<participant participant_id="p"><nameID aor="sip:+3612345678@pbx"/></participant></recording>'
    )
    metadata = parse_metadata(xml)
    assert texts(metadata) == ["namespace prefix ac, apkt used without a declaration"]
    assert [(e.vendor.value, e.parent, dict(e.fields)) for e in metadata.extensions] == [
        ("oracle", "session", {"ucid": "00FA080019001038F725B3;encoding=hex"}),
        ("audiocodes", "session", {"GenesysUUID": "4BOKLLA3VH66"}),
    ]
    assert {kind: fact.value for kind, fact in metadata.call.ids.items()} == {
        "ucid": "00FA080019001038F725B3",
        "genesys_uuid": "4BOKLLA3VH66",
    }


def test_undeclared_prefix_on_the_root() -> None:
    metadata = parse_metadata(b'<rec:recording><rec:participant participant_id="p"/></rec:recording>')
    assert kinds(metadata) == ["unbound_prefix", "unknown_namespace"]
    assert [p.id for p in metadata.participants] == ["p"]


@pytest.mark.parametrize(
    "xml",
    [
        # A deep vendor block counts towards the depth limit like any other element.
        document(
            '<participant participant_id="p"><v:x xmlns:v="urn:v">'
            + "<v:x>" * 70
            + "</v:x>" * 71
            + "</participant>"
        ),
        # An undeclared prefix does not open a way around the DTD refusal.
        fixture("billion_laughs.xml")
        .replace(b"<participant", b"<apkt:participant")
        .replace(b"</participant>", b"</apkt:participant>"),
        # Nor around the size limit.
        b"<recording><apkt:x>" + b"a" * (256 * 1024) + b"</apkt:x></recording>",
    ],
    ids=["deep-vendor-block", "dtd-with-unbound-prefix", "huge-with-unbound-prefix"],
)
def test_hostile_documents_stay_refused(xml: bytes) -> None:
    with pytest.raises(MetadataError):
        parse_metadata(xml)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-11T09:14:52+0100", datetime(2024, 3, 11, 8, 14, 52, tzinfo=UTC)),
        ("2024-03-11t09:14:52z", datetime(2024, 3, 11, 9, 14, 52, tzinfo=UTC)),
        ("2024-03-11 09:14:52", datetime(2024, 3, 11, 9, 14, 52, tzinfo=UTC)),
        ("2016-05-06T07:57:48.5261234Z", datetime(2016, 5, 6, 7, 57, 48, 526123, tzinfo=UTC)),
        (" 2019-11-12T15:57:37 ", datetime(2019, 11, 12, 15, 57, 37, tzinfo=UTC)),
        ("1999-12-31T23:59:59Z", None),
        ("2024-13-01T00:00:00Z", None),
    ],
)
def test_timestamp_variants(value: str, expected: datetime | None) -> None:
    assert parse_timestamp(value) == expected


def test_too_many_elements_are_refused_and_a_real_conference_is_not() -> None:
    flood = document('<v:x xmlns:v="urn:v">' + "<v:a/>" * 6000 + "</v:x>")
    with pytest.raises(MetadataError, match="more than 5000 elements"):
        parse_metadata(flood)
    party = (
        '<participant participant_id="p{0}"><nameID aor="sip:+3630100{0:04d}@pbx"><name>P{0}</name></nameID>'
        "</participant>"
    )
    conference = document("".join(party.format(index) for index in range(100)))
    assert len(parse_metadata(conference).participants) == 100
