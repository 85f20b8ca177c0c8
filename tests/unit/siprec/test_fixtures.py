"""Every recorded dialect and mid-call message under tests/fixtures/siprec: normalised result and answer shape.

One row per message: what the metadata normaliser must make of it (participants with their cleaned number,
the streams they send by label, the call facts with their provenance, the dialect, the warnings) and what
the answer to its SDP must look like (labels echoed in order, `recvonly`, exactly one codec plus
telephone-event when offered, non-audio rejected). Mid-call rows merge an update into the message before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from siprec_server.siprec import (
    SiprecBodyError,
    build_answer,
    find_metadata,
    parse_offer,
    parse_sdp,
    split_body,
)
from siprec_server.siprec.metadata import RecordingMetadata, merge_metadata, parse_metadata

from .traffic import FIXTURES, load_invite

Fact = tuple[str, str] | None  # (value, source)


@dataclass(frozen=True, kw_only=True)
class Party:
    number: str | None  # the participant's number (E.164 where possible), None if its AOR holds none
    name: str | None = None
    sends: tuple[str, ...] = ()  # labels of the streams it sends
    left: bool = False


@dataclass(frozen=True, kw_only=True)
class Row:
    name: str
    parties: tuple[Party, ...]
    labels: tuple[str | None, ...]
    calling: Fact = None
    called: Fact = None
    direction: Fact = None
    tenant: Fact = None
    ids: dict[str, Fact] = field(default_factory=dict)
    dialect: tuple[str, str, tuple[str, ...]] = ("recording:1", "recording", ())
    warnings: tuple[str, ...] = ()
    datamode: str = "complete"
    answer: tuple[tuple[str | None, str | None], ...] | None = None  # (label, codec) per m-line; None: no SDP


ROWS = [
    Row(
        name="acme_invite.sip",
        parties=(
            Party(number="+36301234567", name="+36301234567", sends=("1",)),
            Party(number="+3612345678", name="Ugyfelszolgalat", sends=("2",)),
        ),
        labels=("1", "2"),
        calling=("+36301234567", "apkt:callingParty"),
        called=("+3612345678", "apkt:callingParty"),
        ids={"ucid": ("00FA08001A2B3C65EEC4D1", "apkt:ucid")},
        dialect=("recording", "recording", ("oracle",)),
        answer=(("1", "PCMA"), ("2", "PCMA")),
    ),
    Row(
        name="cisco_cube_invite.sip",
        parties=(
            Party(number="+36209876543", name="Kovacs Anna", sends=("1",)),
            Party(number="2001", sends=("2",)),
        ),
        labels=("1", "2"),
        calling=("+36209876543", "participant[0].aor"),
        called=("2001", "participant[1].aor"),
        ids={"sip_session_id": ("4a3c9d1e6b2f5a7c8d9e0f1a2b3c4d5e", "session.sipSessionID")},
        answer=(("1", "PCMU"), ("2", "PCMU")),
    ),
    Row(
        name="cisco_cube_transfer_reinvite.sip",
        parties=(
            Party(number="+36209876543", name="Kovacs Anna", sends=("1",)),
            Party(number="2001", left=True),
            Party(number="2040", sends=("2",)),
        ),
        labels=("1", "2"),
        calling=("+36209876543", "participant[0].aor"),
        called=("2001", "participant[1].aor"),
        ids={"sip_session_id": ("4a3c9d1e6b2f5a7c8d9e0f1a2b3c4d5e", "session.sipSessionID")},
        warnings=("aor_repaired", "aor_repaired"),
        answer=(("1", "PCMU"), ("2", "PCMU")),
    ),
    Row(
        name="broadworks_invite.sip",
        parties=(Party(number="+3614567890", sends=("1",)), Party(number="+36705551234", sends=("1",))),
        labels=("1",),
        calling=("+3614567890", "broadworks:callingPartyNumber"),
        called=("+36705551234", "broadworks:calledPartyNumber"),
        direction=("outbound", "broadworks:callType/origCall"),
        tenant=("SP-HU-0042/Budapest Iroda", "broadworks:serviceProviderID/groupID"),
        ids={
            "ext_tracking_id": ("8028549:1", "broadworks:extTrackingID"),
            "broadworks_call_id": ("callhalf-7948894825:0", "broadworks:callID"),
        },
        dialect=("siprec", "recording_metadata", ("broadworks",)),
        answer=(("1", "PCMA"),),
    ),
    Row(
        name="broadworks_termcall_invite.sip",
        parties=(Party(number=None, sends=("1",)), Party(number="+36209998877", sends=("2",))),
        labels=("1", "2"),
        calling=("+36209998877", "broadworks:callingPartyNumber"),
        called=("+3696555123", "broadworks:calledPartyNumber"),
        direction=("inbound", "broadworks:callType/termCall"),
        tenant=("SP-HU-0042/Gyor Telephely", "broadworks:serviceProviderID/groupID"),
        ids={
            "ext_tracking_id": ("264:1", "broadworks:extTrackingID"),
            "broadworks_call_id": ("callhalf-7342965:0", "broadworks:callID"),
        },
        dialect=("siprec", "recording_metadata", ("broadworks",)),
        answer=(("1", "PCMA"), ("2", "PCMA")),
    ),
    Row(
        name="ribbon_gtd_invite.sip",
        parties=(
            Party(number="+36705550123", sends=("10",)),
            Party(number="+3617778888", name="Recepcio", sends=("20",)),
        ),
        labels=("10", "20"),
        calling=("+36705550123", "ribbon:callData/fromhdr"),
        called=("+3617778888", "ribbon:callData/tohdr"),
        ids={
            "call_id": ("4990206_132492727@198.51.100.17", "ribbon:callData/callid"),
            "gcid": ("4990206", "ribbon:callData/gcid"),
        },
        dialect=("recording", "recording", ("ribbon",)),
        answer=(("10", "PCMA"), ("20", "PCMA")),
    ),
    Row(
        name="sonus_1970_invite.sip",
        parties=(
            Party(number="14448500", name="Mellek 8500", sends=("2",)),
            Party(number="+3612498012", sends=("1",)),
        ),
        labels=("1", "2"),
        calling=("14448500", "ribbon:callData/fromhdr"),
        called=("+3612498012", "ribbon:callData/tohdr"),
        ids={
            "call_id": ("2da553f7-a48b-1235-d6a2-5254003a4988", "ribbon:callData/callid"),
            "gcid": ("241205267", "ribbon:callData/gcid"),
        },
        dialect=("recording", "recording", ("ribbon",)),
        warnings=("bogus_time",),
        answer=(("1", "PCMU"), ("2", "PCMU")),
    ),
    Row(
        name="ribbon_bye_partial.sip",
        parties=(Party(number=None, left=True), Party(number=None, left=True)),
        labels=(),
        dialect=("recording", "recording", ()),
        datamode="partial",
    ),
    Row(
        name="audiocodes_genesys_invite.sip",
        parties=(
            Party(number="+36301234567", name="06301234567", sends=("1",)),
            Party(number="2105", name="Nagy Eszter", sends=("2",)),
        ),
        labels=("1", "2"),
        calling=("+36301234567", "participant[0].aor"),
        called=("2105", "participant[1].aor"),
        ids={
            "genesys_uuid": ("4BOKLLA3VH66JF112M1CC9VHKS14F0KP", "audiocodes:GenesysUUID"),
            "ucid": ("FA080019001038F725B3", "audiocodes:AvayaUCID"),
        },
        dialect=("recording:1", "recording", ("audiocodes",)),
        answer=(("1", "PCMA"), ("2", "PCMA")),
    ),
    Row(
        name="avaya_sbce_invite.sip",
        parties=(Party(number="+36301234567", sends=("10",)), Party(number=None, sends=("20",))),
        labels=("10", "20"),
        calling=("+36301234567", "participant[0].aor"),
        ids={"ucid": ("00FA0800705D4C5DCAAC41", "session.session_id")},
        dialect=("recording:1", "recording", ("avaya",)),
        warnings=("placeholder_participant",),
        answer=(("10", "PCMA"), ("20", "PCMA")),
    ),
    Row(
        name="avaya_sbce_update.sip",
        parties=(Party(number="+3615550100", name="Ugyfelszolgalat"),),
        labels=(),
        calling=("+3615550100", "participant[0].aor"),
        datamode="partial",
    ),
    Row(
        name="metaswitch_invite.sip",
        parties=(
            Party(number="+36309876543", sends=("1",)),
            Party(number="+3613334444", name="Kovacs es Tarsa Kft", sends=("1",)),
        ),
        labels=("1",),
        calling=("+36309876543", "metaswitch:otherPartyDN"),
        called=("+3613334444", "metaswitch:subscriberDN"),
        direction=("inbound", "metaswitch:callDirection"),
        tenant=("Kovacs es Tarsa Kft", "metaswitch:businessGroup"),
        dialect=("recording", "recording", ("metaswitch",)),
        answer=(("1", "PCMA"),),
    ),
    Row(
        name="netsapiens_invite.sip",
        parties=(
            Party(number="1003", name="Toth Bence", sends=("1",)),
            Party(number="+36705556677", sends=("2",)),
        ),
        labels=("1", "2"),
        calling=("1003", "netsapiens:orig_from_uri"),
        called=("+36705556677", "netsapiens:term_to_uri"),
        direction=("outbound", "netsapiens:orig_domain"),
        tenant=("ugyfel1.hangtar-pbx.example", "netsapiens:domain"),
        ids={"call_id": ("9f8e7d6c5b4a39281706@203.0.113.200", "netsapiens:orig_callid")},
        dialect=("recording:1", "recording", ("netsapiens",)),
        answer=(("1", "PCMU"), ("2", "PCMU")),
    ),
    Row(
        name="opensips_invite.sip",
        parties=(
            Party(number="+36301112222", name="Szabo Peter;lang=hu-HU;id=22"),
            Party(number="+3612223333"),
        ),
        labels=("1", "2"),
        calling=("+36301112222", "participant[0].aor"),
        called=("+3612223333", "participant[1].aor"),
        ids={"sip_session_id": ("2d8abbf0769c66e15bb349f509693d60@192.0.2.50", "session.sipSessionID")},
        warnings=("no_stream_association",),
        answer=(("1", "PCMU"), ("2", "PCMA")),
    ),
    Row(
        name="freeswitch_invite.sip",
        parties=(
            Party(number="+3676123456", sends=("1",)),
            Party(number="1201", name="Recepcio", sends=("2",)),
        ),
        labels=("1", "2"),
        calling=("+3676123456", "participant[0].aor"),
        called=("1201", "participant[1].aor"),
        answer=(("1", "PCMU"), ("2", "PCMU")),
    ),
    Row(
        name="rfc7865_appendix_a_invite.sip",
        parties=(
            Party(number=None, name="Bob", sends=("97", "96")),
            Party(number=None, name="Paul", sends=("98", "99")),
        ),
        labels=("96", "97", "98", "99"),
        ids={"sip_session_id": ("ab30317f1a784dc48ff824d0d3715d86", "session.sipSessionID")},
        dialect=("recording:1", "recording", ("other",)),
        answer=(("96", "PCMU"), ("97", None), ("98", "PCMU"), ("99", None)),
    ),
    Row(
        name="rfc7866_invite.sip",
        parties=(Party(number="2000", sends=("1",)),),
        labels=("1",),
        calling=("2000", "participant[0].aor"),
        ids={"sip_session_id": ("ab30317f1a784dc48ff824d0d3715d86", "session.sipSessionID")},
        answer=(("1", "PCMU"),),
    ),
    Row(
        name="rfc8068_basic_invite.sip",
        parties=(
            Party(number="+36301234567", name="Alice", sends=("1",)),
            Party(number=None, name="Bob", sends=("2",)),
        ),
        labels=("1", "2"),
        calling=("+36301234567", "participant[0].aor"),
        ids={"sip_session_id": ("ab30317f1a784dc48ff824d0d3715d86", "session.sipSessionID")},
        answer=(("1", "PCMU"), ("2", "PCMU")),
    ),
    Row(
        name="rfc8068_transfer_reinvite.sip",
        # Bob is known only from the INVITE: the update names him by id, to say he left.
        parties=(
            Party(number="+3615550199", name="Carol", sends=("i1Pz3to5hGk8fuXl+PbwCw==",)),
            Party(number=None, left=True),
        ),
        labels=(),
        calling=("+3615550199", "participant[0].aor"),
        datamode="partial",
        answer=(("1", "PCMU"), ("2", "PCMU")),
    ),
    Row(
        name="lf_only_invite.sip",
        parties=(
            Party(number=None, name="Alice", sends=("0",)),
            Party(number=None, name="Bob", sends=("1",)),
        ),
        labels=("0", "1"),
        answer=(("0", "PCMU"), ("1", "PCMU")),
    ),
    Row(
        name="quoted_boundary_invite.sip",
        parties=(
            Party(number="3001", name="Agent 3001", sends=("b_leg",)),
            Party(number="+36301112233", name="+36301112233", sends=("a_leg",)),
        ),
        labels=("a_leg", "b_leg"),
        calling=("+36301112233", "participant[1].aor"),
        called=("3001", "participant[0].aor"),
        answer=(("a_leg", "PCMU"), ("b_leg", "PCMU")),
    ),
]


def metadata_of(name: str) -> RecordingMetadata:
    message = load_invite(name)
    part = find_metadata(split_body(message.header("content-type"), message.body))
    assert part is not None, name
    return parse_metadata(part.body)


def fact(value: object) -> Fact:
    if value is None:
        return None
    return (str(value.value), str(value.source))


def test_every_fixture_has_a_row() -> None:
    assert {path.name for path in FIXTURES.glob("*.sip")} == {row.name for row in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_normalised_metadata(row: Row) -> None:
    metadata = metadata_of(row.name)
    labels = {stream.id: stream.label for stream in metadata.streams}
    parties = tuple(
        Party(
            number=participant.number.value if participant.number else None,
            name=participant.name,
            sends=tuple(labels.get(stream, stream) or stream for stream in participant.send),
            left=participant.left_at is not None,
        )
        for participant in metadata.participants
    )
    assert parties == row.parties
    assert tuple(stream.label for stream in metadata.streams) == row.labels
    assert metadata.datamode == row.datamode
    call = metadata.call
    assert (fact(call.calling_number), fact(call.called_number)) == (row.calling, row.called)
    assert (fact(call.direction), fact(call.tenant_hint)) == (row.direction, row.tenant)
    assert {kind: fact(value) for kind, value in call.ids.items()} == row.ids
    dialect = metadata.dialect
    assert (dialect.namespace_kind.value, dialect.root, tuple(dialect.vendors)) == row.dialect
    assert tuple(warning.kind.value for warning in metadata.warnings) == row.warnings


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_answer_shape(row: Row) -> None:
    message = load_invite(row.name)
    if row.answer is None:
        # A metadata-only UPDATE or a BYE: answered 200 without a body, never with an SDP.
        with pytest.raises(SiprecBodyError, match="no application/sdp part"):
            parse_offer(message.header("content-type"), message.body)
        return
    offer = parse_offer(message.header("content-type"), message.body)
    ports = [40000 + 2 * index for index in range(len(offer.sdp.media))]
    answer = build_answer(offer.sdp, address="192.0.2.200", ports=ports, session_id=7, session_version=1)
    answered = parse_sdp(answer.body)
    assert answer.body.count(b"\r\nc=IN IP4 192.0.2.200\r\n") == 1
    assert [media.label for media in answered.media] == offer.labels  # every label echoed, in order
    shape = []
    for offered, media in zip(offer.sdp.media, answered.media, strict=True):
        if media.port == 0:
            shape.append((media.label, None))
            continue
        assert media.direction == "recvonly"
        events = [pt for pt in media.formats if media.rtpmap[int(pt)].encoding.lower() == "telephone-event"]
        codecs = [pt for pt in media.formats if pt not in events]
        assert len(codecs) == 1
        offered_events = any(rtp.encoding.lower() == "telephone-event" for rtp in offered.rtpmap.values())
        assert len(events) == (1 if offered_events else 0)
        shape.append((media.label, media.rtpmap[int(codecs[0])].encoding.upper()))
    assert tuple(shape) == row.answer


@dataclass(frozen=True, kw_only=True)
class MidCall:
    base: str
    update: str
    parties: tuple[Party, ...]
    calling: Fact
    called: Fact
    vendors: tuple[str, ...] = ()


MIDCALL = [
    # Avaya SBCE: the placeholder party becomes the real one in a metadata-only UPDATE.
    MidCall(
        base="avaya_sbce_invite.sip",
        update="avaya_sbce_update.sip",
        parties=(
            Party(number="+36301234567", sends=("10",)),
            Party(number="+3615550100", name="Ugyfelszolgalat", sends=("20",)),
        ),
        calling=("+36301234567", "participant[0].aor"),
        called=("+3615550100", "participant[1].aor"),
        vendors=("avaya",),
    ),
    # RFC 8068 transfer: Carol takes over Bob's stream, Bob is kept as gone.
    MidCall(
        base="rfc8068_basic_invite.sip",
        update="rfc8068_transfer_reinvite.sip",
        parties=(
            Party(number="+36301234567", name="Alice", sends=("1",)),
            Party(number=None, name="Bob", left=True),
            Party(number="+3615550199", name="Carol", sends=("2",)),
        ),
        calling=("+36301234567", "participant[0].aor"),
        called=None,
    ),
    # Ribbon: the BYE's partial metadata says both parties left.
    MidCall(
        base="ribbon_gtd_invite.sip",
        update="ribbon_bye_partial.sip",
        parties=(
            Party(number="+36705550123", sends=("10",), left=True),
            Party(number="+3617778888", name="Recepcio", sends=("20",), left=True),
        ),
        calling=("+36705550123", "ribbon:callData/fromhdr"),
        called=("+3617778888", "ribbon:callData/tohdr"),
        vendors=("ribbon",),
    ),
]


@pytest.mark.parametrize("case", MIDCALL, ids=[case.update for case in MIDCALL])
def test_mid_call_update_merged(case: MidCall) -> None:
    merged = merge_metadata(metadata_of(case.base), metadata_of(case.update))
    labels = {stream.id: stream.label for stream in merged.streams}
    parties = tuple(
        Party(
            number=participant.number.value if participant.number else None,
            name=participant.name,
            sends=tuple(labels[stream] or stream for stream in participant.send),
            left=participant.left_at is not None,
        )
        for participant in merged.participants
    )
    assert parties == case.parties
    assert merged.datamode == "complete"
    assert (fact(merged.call.calling_number), fact(merged.call.called_number)) == (case.calling, case.called)
    assert tuple(merged.dialect.vendors) == case.vendors
