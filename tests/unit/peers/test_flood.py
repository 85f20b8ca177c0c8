"""The flood tool: every datagram really malformed, every hostile body really hostile, and the run bounded."""

from __future__ import annotations

import functools
import re
import socket
import time
from collections import Counter

import defusedxml.ElementTree as SafeET
import pytest
from defusedxml import DefusedXmlException

from tests.peers import flood
from tests.peers.flood import Flood, HostileKind, MalformedKind

from .stub_srs import StubSrs

CANARY = "http://127.0.0.1:9"
RS1 = "{urn:ietf:params:xml:ns:recording:1}"
MANDATORY = ("via", "from", "to", "call-id", "cseq", "max-forwards", "content-length")


def acceptable(datagram: bytes) -> bool:
    """What a strict but sane SIP stack takes as one well-formed request (RFC 3261 §7, §8.1.1, §18.3, §20):
    UTF-8, a request line, token-named headers without control characters, the mandatory headers once each,
    a Via with a branch and a real port, a numeric CSeq below 2**31 naming the request's method, an exact
    Content-Length, and a header section of at most 8 KiB and 100 lines."""
    try:
        text = datagram.decode("utf-8")
    except UnicodeDecodeError:
        return False
    head, separator, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    if not separator or len(head) > 8192 or len(lines) > 100:
        return False
    if any(ord(c) < 32 and c != "\t" for c in head.replace("\r\n", "")):
        return False
    request_line = re.fullmatch(r"([A-Z]+) (sips?:\S+) SIP/2\.0", lines[0])
    if not request_line:
        return False
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not re.fullmatch(r"[A-Za-z0-9.!%*_+`'~-]+", name):
            return False
        headers.setdefault(name.lower(), []).append(value.strip())
    if any(len(headers.get(name, [])) != 1 for name in MANDATORY):
        return False
    via = re.fullmatch(r"SIP/2\.0/(UDP|TCP) [\w.-]+:(\d+);branch=z9hG4bK[^;\s]+(;.*)?", headers["via"][0])
    cseq = re.fullmatch(r"(\d{1,10}) ([A-Z]+)", headers["cseq"][0])
    length = headers["content-length"][0]
    return bool(
        via
        and 0 < int(via.group(2)) < 65536
        and cseq
        and int(cseq.group(1)) < 2**31
        and cseq.group(2) == request_line.group(1)
        and length.isdigit()
        and int(length) == len(body.encode())
    )


def test_the_yardstick_takes_a_proper_request() -> None:
    proper = flood._encode(flood._request("OPTIONS", target_port=5060, local_port=40000, call_id="a" * 24))
    assert acceptable(proper)
    assert not acceptable(proper.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"))


def test_every_malformed_datagram_is_malformed_and_harmless() -> None:
    datagrams = list(flood.malformed_datagrams(2000, target_port=5060, local_port=40000, seed=3))
    assert Counter(kind for kind, _ in datagrams) == dict.fromkeys(MalformedKind, 200)
    for kind, datagram in datagrams:
        assert not acceptable(datagram), (kind, datagram[:300])
        assert len(datagram) <= flood.MAX_DATAGRAM
        # Never a recording session, whatever a forgiving parser makes of it.
        assert b"rs-metadata" not in datagram and b"multipart" not in datagram
    sizes = [len(d) for k, d in datagrams if k is MalformedKind.HUGE_HEADER]
    assert min(sizes) > 20_000
    assert datagrams == list(flood.malformed_datagrams(2000, target_port=5060, local_port=40000, seed=3))
    assert datagrams != list(flood.malformed_datagrams(2000, target_port=5060, local_port=40000, seed=4))


@pytest.mark.parametrize(
    "kind", [HostileKind.BILLION_LAUGHS, HostileKind.EXTERNAL_ENTITY, HostileKind.EXTERNAL_DTD]
)
def test_hostile_metadata_is_refused_by_a_hardened_parser(kind: HostileKind) -> None:
    document = flood.hostile_metadata(kind, canary_url=CANARY)
    with pytest.raises(DefusedXmlException):
        SafeET.fromstring(document)
    assert len(document) < 4096  # small on the wire: the harm is in what a naive parser makes of it


def test_billion_laughs_expands_to_gigabytes() -> None:
    document = flood.hostile_metadata(HostileKind.BILLION_LAUGHS, canary_url=CANARY)
    entities = dict(re.findall(r'<!ENTITY (\w+) "([^"]*)">', document))

    @functools.cache
    def expanded(value: str) -> int:
        return sum(
            len(part) if i % 2 == 0 else expanded(entities[part])
            for i, part in enumerate(re.split(r"&(\w+);", value))
        )

    assert expanded("&lol9;") == 3 * 10**9


def test_external_entities_point_at_a_local_file_and_the_canary() -> None:
    document = flood.hostile_metadata(HostileKind.EXTERNAL_ENTITY, canary_url=CANARY)
    assert 'SYSTEM "file:///etc/passwd"' in document and f'SYSTEM "{CANARY}/entity"' in document
    assert f'SYSTEM "{CANARY}/dtd"' in flood.hostile_metadata(HostileKind.EXTERNAL_DTD, canary_url=CANARY)


def test_huge_document_is_well_formed_rfc7865_metadata() -> None:
    document = flood.hostile_metadata(HostileKind.HUGE_DOCUMENT, canary_url=CANARY)
    assert flood.HUGE_DOCUMENT_BYTES <= len(document.encode()) < flood.HUGE_DOCUMENT_BYTES + 1024
    root = SafeET.fromstring(document)
    assert root.tag == f"{RS1}recording"
    assert len(root.findall(f"{RS1}participant")) > 1000


@pytest.mark.parametrize("kind", list(HostileKind))
def test_hostile_invites_are_valid_sip_recording_sessions(kind: HostileKind) -> None:
    invite = flood.hostile_invite(
        kind, target_port=5060, local_port=40000, canary_url=CANARY, media_port=40002, call_id="c" * 30
    )
    head = invite.split(b"\r\n\r\n", 1)[0]
    if kind is HostileKind.HUGE_DOCUMENT:  # valid, just far beyond one datagram: this one needs TCP
        assert len(invite) > flood.HUGE_DOCUMENT_BYTES
    assert acceptable(invite), head
    assert b"Via: SIP/2.0/TCP 127.0.0.1:40000;" in head and b"Require: siprec" in head
    body = invite.split(b"\r\n\r\n", 1)[1]
    assert body.count(b"--flood-boundary-42\r\nContent-Type: ") == 2 and body.endswith(
        b"--flood-boundary-42--\r\n"
    )
    assert b"m=audio 40002 RTP/AVP 0" in body


@pytest.mark.parametrize("host", ["10.0.0.1", "localhost", "0.0.0.0", "192.0.2.10"])
def test_the_flood_only_targets_the_loopback_address(host: str) -> None:
    with pytest.raises(ValueError, match="only targets"):
        Flood(port=5060, host=host)
    with pytest.raises(ValueError):
        Flood(port=5060, rate=0)
    with pytest.raises(ValueError):
        Flood(port=0)


def test_canary_counts_connections() -> None:
    with flood._Canary() as canary:
        port = int(canary.url.rsplit(":", 1)[1])
        for _ in range(2):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        deadline = time.monotonic() + 5
        while canary.hits < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the count the accept thread keeps
        assert canary.hits == 2


def test_a_small_flood_is_paced_and_ends_each_accepted_invite() -> None:
    with StubSrs() as srs:
        report = Flood(port=srs.port, malformed=300, hostile=4, rate=1000.0, max_seconds=20).run()
        invites, acks, byes = srs.received("INVITE"), srs.received("ACK"), srs.received("BYE")
        udp = [r for r in srs.requests if r.transport == "udp"]
    assert report.malformed_sent == 300 and report.hostile_sent == 4 and not report.stopped_early
    assert 0.25 < report.malformed_seconds < 0.6, report.malformed_seconds  # 300 at 1000/s
    assert dict(report.hostile_answers) == {kind.value: (200,) for kind in HostileKind}
    assert report.bye_answers == (200, 200, 200, 200)
    assert report.canary_hits == 0
    assert report.udp_responses.get(200, 0) > 0  # the scripted SRS answers what it can read
    assert len(udp) > 100

    tcp_invites = [r for r in invites if r.transport == "tcp"]
    assert len(tcp_invites) == 4 and len({r.header("Call-ID") for r in tcp_invites}) == 4
    for invite in tcp_invites:
        call_id = invite.header("Call-ID")
        [ack] = [r for r in acks if r.header("Call-ID") == call_id]
        [bye] = [r for r in byes if r.header("Call-ID") == call_id]
        assert "tag=stub" in (ack.header("To") or "") and bye.header("CSeq") == "2 BYE"
        assert ack.transport == bye.transport == "tcp"
    huge = [r for r in tcp_invites if "Participant 1000" in r.body]
    assert len(huge) == 1 and len(huge[0].body) > flood.HUGE_DOCUMENT_BYTES


def test_the_flood_stops_at_its_time_bound() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        report = Flood(
            port=sink.getsockname()[1], malformed=100_000, hostile=0, rate=1000.0, max_seconds=0.3
        ).run()
    assert report.stopped_early
    assert 200 < report.malformed_sent < 400, report.malformed_sent
    assert report.elapsed < 1.5
