"""The SDP answer to SRTP offers (RFC 4568 §7.1.2 with RFC 3264 §6), per listener policy, read back as an SRC would."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable

import pytest

from siprec_server.siprec import NegotiatedStream, SdpAnswer, build_answer, parse_sdp
from siprec_server.siprec.crypto import SrtpPolicy, parse_crypto

KEY_A = bytes(range(30))
KEY_B = bytes(range(100, 130))
GCM_KEY = bytes(range(200, 228))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


# Two sendonly SRTP streams as pjsua2 (2.15, srtpUse mandatory) offers them: its suites in its order, one key
# per m-line, AEAD first.
PJSIP_OFFER = (
    "v=0\r\n"
    "o=- 3918409347 3918409347 IN IP4 192.0.2.55\r\n"
    "s=pjmedia\r\n"
    "b=AS:84\r\n"
    "t=0 0\r\n"
    "a=X-nat:0\r\n"
    "m=audio 4000 RTP/SAVP 0 8 101\r\n"
    "c=IN IP4 192.0.2.55\r\n"
    "b=TIAS:64000\r\n"
    "a=rtcp:4001 IN IP4 192.0.2.55\r\n"
    "a=sendonly\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    f"a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{b64(bytes(46))}\r\n"
    f"a=crypto:2 AEAD_AES_128_GCM inline:{b64(GCM_KEY)}\r\n"
    f"a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY_A)}\r\n"
    "a=label:1\r\n"
    "m=audio 4002 RTP/SAVP 0 8 101\r\n"
    "c=IN IP4 192.0.2.55\r\n"
    "a=rtcp:4003 IN IP4 192.0.2.55\r\n"
    "a=sendonly\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY_B)}|2^31\r\n"
    f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{b64(KEY_A)}|2^31\r\n"
    "a=label:2\r\n"
)
HEAD = "v=0\r\no=SBC 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"
PLAIN = "m=audio 5000 RTP/AVP 8 0\r\na=label:plain\r\na=sendonly\r\n"
SECURE = (
    f"m=audio 5002 RTP/SAVP 0\r\na=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY_A)}\r\na=label:srtp\r\n"
)


def counting_random() -> Callable[[int], bytes]:
    """Deterministic 'random' keys: 0x01…, then 0x02…, so each answered key is known and distinct."""
    counter = itertools.count(1)
    return lambda n: bytes([next(counter)]) * n


def answer(offer: str, *ports: int, policy: SrtpPolicy) -> SdpAnswer:
    return build_answer(
        parse_sdp(offer.encode()),
        address="192.0.2.200",
        ports=ports,
        session_id=42,
        session_version=1,
        srtp=policy,
        random_bytes=counting_random(),
    )


def test_pjsip_offer_is_answered_with_one_crypto_line_per_stream() -> None:
    result = answer(PJSIP_OFFER, 30000, 30002, policy=SrtpPolicy.ALLOW)
    sdp = parse_sdp(result.body)
    assert [(m.port, m.proto, m.label, m.direction) for m in sdp.media] == [
        (30000, "RTP/SAVP", "1", "recvonly"),
        (30002, "RTP/SAVP", "2", "recvonly"),
    ]
    first, second = (parse_crypto(m.crypto[0]) for m in sdp.media)
    assert all(len(m.crypto) == 1 for m in sdp.media)
    # The first suite we decrypt in the offerer's order, under its tag, with a fresh key of ours.
    assert (first.tag, first.suite, first.keys[0].key_salt) == ("2", "AEAD_AES_128_GCM", b"\x01" * 28)
    assert (second.tag, second.suite, second.keys[0].key_salt) == (
        "1",
        "AES_CM_128_HMAC_SHA1_80",
        b"\x02" * 30,
    )
    assert first.keys[0].lifetime is None and first.keys[0].mki is None
    streams = result.streams
    assert streams[0].srtp_key is not None and streams[1].srtp_key is not None
    # The streams carry the SRC's keys: what its packets decrypt with.
    assert (streams[0].srtp_key.suite, streams[0].srtp_key.key_salt) == ("AEAD_AES_128_GCM", GCM_KEY)
    assert (streams[1].srtp_key.suite, streams[1].srtp_key.key_salt) == ("AES_CM_128_HMAC_SHA1_80", KEY_B)
    assert [(s.codec, s.telephone_event_pt) for s in streams] == [("PCMU", 101), ("PCMU", 101)]


def test_keys_stay_out_of_reprs() -> None:
    streams = answer(PJSIP_OFFER, 30000, 30002, policy=SrtpPolicy.ALLOW).streams
    text = repr(streams)
    for key in (GCM_KEY, KEY_B):
        assert key.hex() not in text and b64(key) not in text and repr(key) not in text
    assert "key_salt=<28 octets>" in text and "key_salt=<30 octets>" in text


def test_savpf_profile_is_echoed() -> None:
    offer = HEAD + SECURE.replace("RTP/SAVP", "RTP/SAVPF")
    sdp = parse_sdp(answer(offer, 30000, policy=SrtpPolicy.REQUIRE).body)
    assert (sdp.media[0].port, sdp.media[0].proto) == (30000, "RTP/SAVPF")


@pytest.mark.parametrize(
    ("policy", "ports", "secure"),
    [
        (SrtpPolicy.OFF, [30000, 0], [False, False]),
        (SrtpPolicy.ALLOW, [30000, 30002], [False, True]),
        (SrtpPolicy.REQUIRE, [0, 30002], [False, True]),
    ],
)
def test_policy_per_m_line(policy: SrtpPolicy, ports: list[int], secure: list[bool]) -> None:
    result = answer(HEAD + PLAIN + SECURE, 30000, 30002, policy=policy)
    sdp = parse_sdp(result.body)
    assert [m.port for m in sdp.media] == ports
    assert [s.port for s in result.streams] == ports
    assert [s.srtp_key is not None for s in result.streams] == secure
    assert [m.proto for m in sdp.media] == ["RTP/AVP", "RTP/SAVP"]
    # A rejected stream keeps its label and formats but carries no key (RFC 3264 §6, RFC 4568 §5.1.2).
    assert [m.label for m in sdp.media] == ["plain", "srtp"]
    assert [bool(m.crypto) for m in sdp.media] == secure


def test_default_policy_takes_plain_rtp_only() -> None:
    result = build_answer(
        parse_sdp((HEAD + PLAIN + SECURE).encode()),
        address="192.0.2.200",
        ports=[30000, 30002],
        session_id=1,
        session_version=1,
    )
    assert [s.port for s in result.streams] == [30000, 0]
    assert b"a=crypto" not in result.body


def test_crypto_we_cannot_use_rejects_the_stream() -> None:
    mki = SECURE.replace(b64(KEY_A), b64(KEY_A) + "|2^20|1:4")
    for media in (
        mki,
        SECURE.replace("AES_CM_128_HMAC_SHA1_80", "F8_128_HMAC_SHA1_80"),
        SECURE.split("a=crypto")[0],
    ):
        result = answer(HEAD + media, 30000, policy=SrtpPolicy.ALLOW)
        assert result.streams[0].port == 0 and result.streams[0].srtp_key is None
        assert b"a=crypto" not in result.body and b"m=audio 0 RTP/SAVP 0" in result.body


def test_best_effort_crypto_on_plain_rtp_is_answered_plain() -> None:
    offer = HEAD + PLAIN.replace(
        "a=label", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY_A)}\r\na=label"
    )
    result = answer(offer, 30000, policy=SrtpPolicy.ALLOW)
    assert result.streams[0].port == 30000 and result.streams[0].srtp_key is None
    assert b"a=crypto" not in result.body and b"RTP/AVP" in result.body


def test_held_srtp_stream_keeps_its_keys() -> None:
    offer = HEAD.replace("c=IN IP4 198.51.100.1", "c=IN IP4 0.0.0.0") + SECURE
    result = answer(offer, 30000, policy=SrtpPolicy.ALLOW)
    media = parse_sdp(result.body).media[0]
    assert media.direction == "inactive" and len(media.crypto) == 1
    assert result.streams[0].srtp_key is not None and result.streams[0].remote_host is None


def test_plain_stream_equality_is_unchanged() -> None:
    result = answer(HEAD + PLAIN, 30000, policy=SrtpPolicy.ALLOW)
    assert result.streams[0] == NegotiatedStream(
        index=0,
        label="plain",
        port=30000,
        payload_type=8,
        codec="PCMA",
        clock_rate=8000,
        telephone_event_pt=None,
        direction="recvonly",
        remote_host="198.51.100.1",
        remote_port=5000,
    )
