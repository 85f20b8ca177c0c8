"""Vendor extension blocks: recognised by namespace, kept raw, read into call facts with provenance."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from siprec_server.siprec import find_metadata, split_body
from siprec_server.siprec.dialects import DialectInfo, NamespaceKind
from siprec_server.siprec.metadata import Direction, RecordingMetadata, Vendor, parse_metadata
from siprec_server.siprec.vendor import vendor_of

from .traffic import load_invite


def metadata_of(name: str) -> bytes:
    message = load_invite(name)
    part = find_metadata(split_body(message.header("content-type"), message.body))
    assert part is not None
    return part.body


def parse(
    body: str, *, namespace: str = "urn:ietf:params:xml:ns:recording:1", extra: str = ""
) -> RecordingMetadata:
    return parse_metadata(f'<recording xmlns="{namespace}"{extra}>{body}</recording>'.encode())


TWO_PARTIES = (
    '<participant participant_id="a"><nameID aor="sip:+36301234567@sbc"/></participant>'
    '<participant participant_id="b"><nameID aor="sip:2001@pbx"/></participant>'
)


@pytest.mark.parametrize(
    ("namespace", "vendor"),
    [
        ("http://acmepacket.com/siprec/extensiondata", Vendor.ORACLE),
        ("http:/acmepacket.com/siprec/extensiondata", Vendor.ORACLE),  # Oracle's own misspelling
        ("http://schema.broadsoft.com/broadworksCallRecording", Vendor.BROADWORKS),
        ("urn:ietf:params:xml:ns:callData", Vendor.RIBBON),
        ("http://AudioCodes", Vendor.AUDIOCODES),
        ("urn:ietf:params:xml:ns:Genesys", Vendor.AUDIOCODES),
        ("urn:ietf:params:xml:ns:Avaya", Vendor.AUDIOCODES),
        ("http://www.metaswitch.com/cfs/siprec/1.0", Vendor.METASWITCH),
        ("http://netsapiens.com/siprec/1.0", Vendor.NETSAPIENS),
        ("urn:hangtar:unbound:apkt", Vendor.ORACLE),
        ("urn:hangtar:unbound:ac", Vendor.AUDIOCODES),
        ("urn:hangtar:unbound:zz", Vendor.OTHER),
        ("urn:ietf:params:xml:ns:callcenter", Vendor.OTHER),
        ("", Vendor.OTHER),
    ],
)
def test_vendor_by_namespace(namespace: str, vendor: Vendor) -> None:
    assert vendor_of(namespace) == vendor


def test_raw_block_is_well_formed_and_keeps_every_value() -> None:
    metadata = parse_metadata(metadata_of("acme_invite.sip"))
    session = metadata.extensions[0]
    wrapped = ElementTree.fromstring(f"<raw>{session.xml}</raw>")
    assert [(child.tag, child.text) for child in wrapped] == [
        ("{http:/acmepacket.com/siprec/extensiondata}ucid", "00FA08001A2B3C65EEC4D1;encoding=hex"),
        ("{http:/acmepacket.com/siprec/extensiondata}callerOrig", "true"),
    ]
    assert dict(session.fields) == {"ucid": "00FA08001A2B3C65EEC4D1;encoding=hex", "callerOrig": "true"}


def test_oracle_headers_and_calling_party() -> None:
    block = (
        '<extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">'
        "<apkt:callingParty>false</apkt:callingParty><apkt:realm>Avaya-GR-REC</apkt:realm>"
        '<apkt:header label="P-Asserted-Identity"><value>sip:mike@acme.com</value>'
        "<value>sip:bob@cisco.com</value></apkt:header>"
        '<apkt:header label="Call-ID"><value>134485702_44821128@10.10.128.62</value></apkt:header>'
        "</extensiondata>"
    )
    metadata = parse(TWO_PARTIES.replace("</participant>", block + "</participant>", 1))
    (block_read,) = metadata.extensions
    assert (block_read.parent, block_read.parent_id) == ("participant", "a")
    assert dict(block_read.fields) == {
        "callingParty": "false",
        "realm": "Avaya-GR-REC",
        "header[P-Asserted-Identity]/value": "sip:mike@acme.com",
        "header[P-Asserted-Identity]/value#2": "sip:bob@cisco.com",
        "header[Call-ID]/value": "134485702_44821128@10.10.128.62",
    }
    call = metadata.call
    # Participant a is said not to be the calling party: it is the called one, the other calls.
    assert call.called_number is not None and call.calling_number is not None
    assert (call.called_number.value, call.called_number.source) == ("+36301234567", "apkt:callingParty")
    assert (call.calling_number.value, call.calling_number.source) == ("2001", "participant[1].aor")
    assert call.ids["call_id"].value == "134485702_44821128@10.10.128.62"


@pytest.mark.parametrize(
    ("block", "tenant", "direction"),
    [
        (
            "<serviceProviderID>SP1</serviceProviderID><callType><origCall/></callType>",
            ("SP1", "broadworks:serviceProviderID"),
            "outbound",
        ),
        (
            "<groupID>Iroda</groupID><callType><termCall/></callType>",
            ("Iroda", "broadworks:groupID"),
            "inbound",
        ),
        ("<callType><redirectCall/></callType>", None, None),
    ],
)
def test_broadworks_partial_blocks(block: str, tenant: tuple[str, str] | None, direction: str | None) -> None:
    body = (
        TWO_PARTIES + '<extensiondata parent="nowhere"><broadWorksRecordingMetadata '
        f'xmlns="http://schema.broadsoft.com/broadworksCallRecording">{block}</broadWorksRecordingMetadata>'
        "</extensiondata>"
    )
    metadata = parse(body, namespace="urn:ietf:params:xml:ns:siprec")
    assert metadata.extensions[0].parent == "extensiondata"  # its parent attribute names nothing known
    call = metadata.call
    assert (None if call.tenant_hint is None else (call.tenant_hint.value, call.tenant_hint.source)) == tenant
    assert (None if call.direction is None else call.direction.value) == direction


@pytest.mark.parametrize(
    ("direction", "expected", "calling", "called"),
    [
        ("originating", Direction.OUTBOUND, "+3613334444", "+36309876543"),
        ("Terminating", Direction.INBOUND, "+36309876543", "+3613334444"),
        ("forwarded", None, "+36301234567", "2001"),
    ],
)
def test_metaswitch_direction_decides_who_called(
    direction: str, expected: Direction | None, calling: str, called: str
) -> None:
    block = (
        '<extensiondata xmlns:msw="http://www.metaswitch.com/cfs/siprec/1.0">'
        "<msw:subscriberDN>+3613334444</msw:subscriberDN><msw:otherPartyDN>06309876543</msw:otherPartyDN>"
        f"<msw:callDirection>{direction}</msw:callDirection></extensiondata>"
    )
    metadata = parse(f'<session session_id="s">{block}</session>' + TWO_PARTIES)
    call = metadata.call
    assert (None if call.direction is None else call.direction.value) == expected
    assert call.calling_number is not None and call.called_number is not None
    assert (call.calling_number.value, call.called_number.value) == (calling, called)


@pytest.mark.parametrize(
    ("orig", "term", "expected"),
    [
        ("ugyfel1.example", "carrier", "outbound"),
        ("carrier", "UGYFEL1.example", "inbound"),
        ("ugyfel1.example", "ugyfel1.example", None),  # inside the domain: neither
        ("carrier", "carrier", None),
    ],
)
def test_netsapiens_direction_from_the_domains(orig: str, term: str, expected: str | None) -> None:
    block = (
        "<ns:domain>ugyfel1.example</ns:domain>"
        f"<ns:orig_domain>{orig}</ns:orig_domain><ns:term_domain>{term}</ns:term_domain>"
    )
    metadata = parse(
        f'<session session_id="s">{block}</session>', extra=' xmlns:ns="http://netsapiens.com/siprec/1.0"'
    )
    call = metadata.call
    assert (None if call.direction is None else call.direction.value) == expected
    assert call.tenant_hint is not None and call.tenant_hint.value == "ugyfel1.example"


def test_vendor_facts_win_over_participants_and_unusable_ones_fall_back() -> None:
    body = (
        '<group group_id="g"><callData xmlns="urn:ietf:params:xml:ns:callData">'
        "<fromhdr>&lt;sip:anonymous@anonymous.invalid&gt;;tag=1</fromhdr>"
        "<tohdr>&lt;sip:0612223333@gw;user=phone&gt;</tohdr></callData></group>" + TWO_PARTIES
    )
    call = parse(body).call
    assert call.called_number is not None and call.calling_number is not None
    assert (call.called_number.value, call.called_number.source) == ("+3612223333", "ribbon:callData/tohdr")
    # "anonymous" is no number: the calling number comes from the first participant.
    assert (call.calling_number.value, call.calling_number.source) == ("+36301234567", "participant[0].aor")


def test_participant_order_follows_credible_association_times() -> None:
    body = TWO_PARTIES + (
        '<participantsessionassoc participant_id="a" session_id="s">'
        "<associate-time>2024-03-12T10:00:05Z</associate-time></participantsessionassoc>"
        '<participantsessionassoc participant_id="b" session_id="s">'
        "<associate-time>2024-03-12T11:00:00+01:00</associate-time></participantsessionassoc>"
    )
    call = parse(body).call
    assert call.calling_number is not None and call.called_number is not None
    assert (call.calling_number.source, call.called_number.source) == (
        "participant[1].aor",
        "participant[0].aor",
    )
    bogus = parse(body.replace("2024-03-12T11:00:00+01:00", "1970-01-01T00:00:00Z")).call
    assert bogus.calling_number is not None and bogus.calling_number.source == "participant[0].aor"


def test_dialect_labels_stay_bounded() -> None:
    assert DialectInfo(namespace="").namespace_kind is NamespaceKind.NONE
    assert DialectInfo(namespace="urn:example:evil").namespace_kind is NamespaceKind.OTHER
    assert DialectInfo(namespace="urn:ietf:params:xml:ns:siprec").namespace_kind is NamespaceKind.SIPREC
    assert DialectInfo(root="metadata").root_label == "other"
    assert DialectInfo(root="recording_metadata").root_label == "recording_metadata"


def test_call_facts_json_for_the_catalogue() -> None:
    metadata = parse_metadata(metadata_of("broadworks_invite.sip"))
    assert metadata.call_facts_json() == {
        "calling_number": {
            "value": "+3614567890",
            "raw": "sip:+3614567890@voip.example.hu",
            "source": "broadworks:callingPartyNumber",
        },
        "called_number": {
            "value": "+36705551234",
            "raw": "sip:06705551234@voip.example.hu;user=phone",
            "source": "broadworks:calledPartyNumber",
        },
        "direction": {"value": "outbound", "raw": "origCall", "source": "broadworks:callType/origCall"},
        "tenant_hint": {
            "value": "SP-HU-0042/Budapest Iroda",
            "raw": "SP-HU-0042/Budapest Iroda",
            "source": "broadworks:serviceProviderID/groupID",
        },
        "ids": {
            "ext_tracking_id": {
                "value": "8028549:1",
                "raw": "8028549:1",
                "source": "broadworks:extTrackingID",
            },
            "broadworks_call_id": {
                "value": "callhalf-7948894825:0",
                "raw": "callhalf-7948894825:0",
                "source": "broadworks:callID",
            },
        },
        "dialect": {
            "namespace": "urn:ietf:params:xml:ns:siprec",
            "root": "recording_metadata",
            "vendors": ["broadworks"],
        },
    }
