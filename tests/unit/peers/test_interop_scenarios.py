"""The SIPREC interop scenarios themselves, run by SIPp against a scripted SRS: what each one puts on the wire.

These need SIPp but not the product: they make sure that when an integration test fails, it is the server
that is wrong, not the client scenario.
"""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tests.audio import peak_frequency
from tests.peers import interop_calls
from tests.peers.rtp_sender import alaw_decode, ulaw_decode
from tests.peers.siprec_offer import CALLEE_AOR, CALLER_AOR

from .stub_srs import Request, RtpArrival, StubSrs

RS1 = "{urn:ietf:params:xml:ns:recording:1}"


def tone_of(packets: list[RtpArrival]) -> float:
    decode = alaw_decode if packets[0].payload_type == 8 else ulaw_decode
    return peak_frequency(np.concatenate([decode(p.payload) for p in packets]), 8000)


def offered_ports(invite: Request) -> list[int]:
    return [int(port) for port in re.findall(r"(?m)^m=audio (\d+) ", invite.part("application/sdp"))]


def matched(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found is not None, (pattern, text)
    return found.group(1)


def branches(requests: list[Request]) -> list[str]:
    return [matched(r"branch=([^;\s]+)", r.header("Via") or "") for r in requests]


def aors(root: ET.Element) -> dict[str | None, str | None]:
    """participant_id -> the aor of its nameID (RFC 7865 §6.4)."""
    found = {}
    for participant in root.iter(f"{RS1}participant"):
        name = participant.find(f"{RS1}nameID")
        found[participant.get("participant_id")] = None if name is None else name.get("aor")
    return found


def cseqs(srs: StubSrs) -> list[str]:
    return [r.header("CSeq") or "" for r in srs.requests if r.method != "ACK"]


def test_avaya_scenario_names_the_real_participants_in_a_metadata_only_update(tmp_path: Path) -> None:
    with StubSrs() as srs:
        call = interop_calls.avaya_update_call(
            srs.target, workdir=tmp_path, before_update=0.6, after_update=0.6
        )
        assert call.sipp.ok, call.sipp.describe()
        [invite], [ack], [update] = srs.received("INVITE"), srs.received("ACK"), srs.received("UPDATE")
        rtp = [srs.rtp_on(port) for port in srs.rtp_ports[:2]]

    initial = ET.fromstring(invite.part("application/rs-metadata+xml"))
    assert list(aors(initial).values()) == [interop_calls.DUMMY_AOR]
    assert initial.find(f"{RS1}participantstreamassoc") is None

    # The UPDATE: in the dialog, metadata only, and it maps the real parties to the two labels.
    assert [kind for kind, _ in update.parts] == ["application/rs-metadata+xml"]
    assert update.header("Content-Disposition") == "recording-session"
    assert update.header("Call-ID") == invite.header("Call-ID") and "tag=stub" in (update.header("To") or "")
    assert cseqs(srs) == ["1 INVITE", "2 UPDATE", "3 BYE"]
    assert 0.4 < update.at - ack.at < 1.0
    snapshot = ET.fromstring(update.part("application/rs-metadata+xml"))
    aor_of = aors(snapshot)
    label_of = {s.get("stream_id"): s.findtext(f"{RS1}label") for s in snapshot.iter(f"{RS1}stream")}
    sends = {
        aor_of[a.get("participant_id")]: label_of[a.findtext(f"{RS1}send")]
        for a in snapshot.iter(f"{RS1}participantstreamassoc")
    }
    assert sends == {CALLER_AOR: "1", CALLEE_AOR: "2"}

    # Media on both m-lines for the whole call; m-line 2 from the port the INVITE offered for it.
    assert all(len(packets) > 50 for packets in rtp)
    assert {p.source[1] for p in rtp[1]} == {offered_ports(invite)[1]}
    assert tone_of(rtp[0]) == pytest.approx(440, abs=5) and tone_of(rtp[1]) == pytest.approx(1000, abs=5)


def test_broadworks_scenario_holds_by_null_address_and_resumes(tmp_path: Path) -> None:
    with StubSrs() as srs:
        call = interop_calls.broadworks_hold_call(srs.target, workdir=tmp_path, talk=0.6, hold=0.8, after=0.6)
        assert call.sipp.ok, call.sipp.describe()
        first, held, resumed = srs.received("INVITE")
        acks = srs.received("ACK")
        rtp = srs.rtp_on(srs.rtp_ports[0])

    # The dialect: no Require, ;src inside the Contact URI, the metadata part first, one mixed PCMA m-line.
    assert first.header("Require") is None
    assert re.fullmatch(r"<sip:\+3614567890@[\d.]+:\d+;transport=UDP;src>", first.header("Contact") or "")
    assert [kind for kind, _ in first.parts] == ["application/rs-metadata+xml", "application/sdp"]
    root = ET.fromstring(first.part("application/rs-metadata+xml"))
    assert root.tag == "{urn:ietf:params:xml:ns:siprec}recording_metadata"
    ns = "{urn:ietf:params:xml:ns:siprec}"
    assert [p.findtext(f"{ns}aor") for p in root.iter(f"{ns}participant")] == [
        interop_calls.BROADWORKS_CALLER,
        interop_calls.BROADWORKS_CALLEE,
    ]
    assert root.findtext(f"{ns}stream/{ns}mode") == "mixed"
    assert re.findall(r"(?m)^m=audio \d+ (.*?)\s*$", first.part("application/sdp")) == ["RTP/AVP 8 101"]

    # Hold: the null address (the metadata again, first); resume: the real address, SDP only.
    assert re.search(r"(?m)^c=IN IP4 0\.0\.0\.0\s*$", held.part("application/sdp"))
    assert [kind for kind, _ in held.parts] == ["application/rs-metadata+xml", "application/sdp"]
    assert [kind for kind, _ in resumed.parts] == ["application/sdp"]
    assert "c=IN IP4 0.0.0.0" not in resumed.body
    versions = [matched(r"(?m)^o=\S+ \d+ (\d+) ", r.part("application/sdp")) for r in (first, held, resumed)]
    assert versions == ["1", "2", "3"]  # RFC 3264 §8: each changed offer bumps the version
    assert cseqs(srs) == ["1 INVITE", "2 INVITE", "3 INVITE", "4 BYE"]
    assert len(set(branches(srs.received("INVITE")))) == 3

    # No RTP while held; the same stream before and after, its timestamps following the wall clock.
    resumed_at = acks[2].at
    assert not [p for p in rtp if held.at < p.at < resumed_at]
    before = [p for p in rtp if p.at <= held.at]
    after = [p for p in rtp if p.at >= resumed_at]
    assert 20 <= len(before) <= 40 and 20 <= len(after) <= 40, (len(before), len(after))
    assert {p.ssrc for p in rtp} == {before[0].ssrc} and {p.payload_type for p in rtp} == {8}
    gap_by_clock = after[0].at - before[-1].at
    gap_by_timestamp = ((after[0].timestamp - before[-1].timestamp) & 0xFFFFFFFF) / 8000
    assert gap_by_clock > 0.8 and gap_by_timestamp == pytest.approx(gap_by_clock, abs=0.1)
    assert tone_of(before) == pytest.approx(440, abs=5) and tone_of(after) == pytest.approx(440, abs=5)


def test_third_part_scenario_sends_gtd_between_sdp_and_metadata(tmp_path: Path) -> None:
    with StubSrs() as srs:
        call = interop_calls.third_part_call(srs.target, workdir=tmp_path, duration=0.8)
        assert call.sipp.ok, call.sipp.describe()
        [invite] = srs.received("INVITE")
        rtp = [srs.rtp_on(port) for port in srs.rtp_ports[:2]]
    assert [kind for kind, _ in invite.parts] == [
        "application/sdp",
        "application/gtd",
        "application/rs-metadata+xml",
    ]
    assert invite.part("application/gtd").startswith("IAM,")
    root = ET.fromstring(invite.part("application/rs-metadata+xml"))
    assert root.tag == "{urn:ietf:params:xml:ns:recording}recording"  # the draft-era namespace
    assert re.findall(r"(?m)^a=label:(\S+)", invite.part("application/sdp")) == ["10", "20"]
    assert all(len(packets) > 30 for packets in rtp)
    assert {p.source[1] for p in rtp[1]} == {offered_ports(invite)[1]}


def test_conference_scenario_maps_each_participant_to_its_stream(tmp_path: Path) -> None:
    tones, sender_of_mline = (300.0, 500.0, 700.0, 900.0), (2, 0, 3, 1)
    with StubSrs() as srs:
        call = interop_calls.conference_call(
            srs.target, workdir=tmp_path, duration=1.0, tones=tones, sender_of_mline=sender_of_mline
        )
        assert call.sipp.ok, call.sipp.describe()
        [invite] = srs.received("INVITE")
        ports = srs.rtp_ports
        rtp = [srs.rtp_on(port) for port in ports]

    assert call.answer is not None and list(call.answer.ports) == ports
    root = ET.fromstring(invite.part("application/rs-metadata+xml"))
    aor_of = aors(root)
    participants = list(aor_of)
    assert list(aor_of.values()) == list(interop_calls.CONFERENCE_AORS)
    times = {
        a.get("participant_id"): a.findtext(f"{RS1}associate-time")
        for a in root.iter(f"{RS1}participantsessionassoc")
    }
    assert [times[p] for p in participants] == sorted(str(times[p]) for p in participants)
    assert len(set(times.values())) == 4
    label_of = {s.get("stream_id"): s.findtext(f"{RS1}label") for s in root.iter(f"{RS1}stream")}
    sends = {
        a.get("participant_id"): label_of[a.findtext(f"{RS1}send")]
        for a in root.iter(f"{RS1}participantstreamassoc")
    }
    assert [sends[participants[p]] for p in sender_of_mline] == ["1", "2", "3", "4"]

    offered = offered_ports(invite)
    for index, packets in enumerate(rtp):
        assert len(packets) > 30, index
        assert tone_of(packets) == pytest.approx(tones[sender_of_mline[index]], abs=5), index
        assert {p.source[1] for p in packets} == {offered[index]}  # rtp_stream too sends from its m-line


def test_session_refresh_scenario_refreshes_with_unchanged_offers(tmp_path: Path) -> None:
    with StubSrs() as srs:
        call = interop_calls.session_refresh_call(
            srs.target, workdir=tmp_path, refresh_every=0.4, refreshes=3, after=0.4
        )
        assert call.sipp.ok, call.sipp.describe()
        invites = srs.received("INVITE")
    assert len(invites) == 4
    assert cseqs(srs) == ["1 INVITE", "2 INVITE", "3 INVITE", "4 INVITE", "5 BYE"]
    assert len(set(branches(invites))) == 4  # each refresh a transaction of its own
    assert {r.header("Call-ID") for r in invites} == {invites[0].header("Call-ID")}
    for invite in invites:
        assert invite.header("Session-Expires") == "90;refresher=uac"
        assert invite.header("Supported") == "timer" and invite.header("Min-SE") == "90"
    offers = [r.part("application/sdp").strip() for r in invites]
    assert offers[1] == offers[2] == offers[3] == offers[0]  # RFC 3264 §8: unchanged, same o= version
    assert [r.parts[0][0] for r in invites[1:]] == ["application/sdp"] * 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(invites)]
    assert all(0.3 < gap < 0.6 for gap in gaps), gaps
