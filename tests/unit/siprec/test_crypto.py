"""RFC 4568 `a=crypto` lines as SRCs send them: parsed, chosen in the offerer's order, answered, or refused."""

from __future__ import annotations

import base64
import random
import time

import pylibsrtp
import pytest

from media.rtp import build_rtp
from media.srtp import SrtpDecryptor
from siprec_server.siprec import parse_sdp
from siprec_server.siprec.crypto import (
    CryptoError,
    SrtpPolicy,
    answer_crypto,
    choose_crypto,
    negotiate_srtp,
    parse_crypto,
    srtp_rejection,
)

# RFC 4568 §4 and §8 examples (every one carries an MKI), and keys without one as most SBCs send them.
RFC4568_SECTION4 = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4"
RFC4568_OFFER = [
    "1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:32",
    "2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32",
]
KEY_80 = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"  # 30 octets, no padding needed
# A FreeSWITCH-style offer: AES-256 counter mode first (RFC 6188, which we do not decrypt), then AES-128.
FREESWITCH = [
    "1 AES_256_CM_HMAC_SHA1_80 inline:yrp2mWwRjtHkvwxP6pXW3EyqbP5v1MCKd+JlbhAsyAp2J3hwMmDPpE4gn7d8oQ==",
    f"2 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}",
    "3 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj",
]


def key_of(line: str) -> bytes:
    text = line.split("inline:", 1)[1].split("|", 1)[0]
    return base64.b64decode(text + "=" * (-len(text) % 4))


def test_rfc4568_example_is_read_in_full() -> None:
    crypto = parse_crypto(RFC4568_SECTION4)
    assert (crypto.tag, crypto.suite, crypto.session_params) == ("1", "AES_CM_128_HMAC_SHA1_80", ())
    (key,) = crypto.keys
    assert key.key_salt == key_of(RFC4568_SECTION4) and len(key.key_salt) == 30
    assert (key.lifetime, key.mki) == (2**20, (1, 4))
    # Key material never shows in a repr (and so never in a log line).
    assert "PS1u" not in repr(crypto) and key.key_salt.hex() not in repr(crypto)
    assert crypto.unusable_reason() == "MKI is not supported"


def test_lifetime_forms_and_session_parameters() -> None:
    crypto = parse_crypto(f"7 AES_CM_128_HMAC_SHA1_32 inline:{KEY_80}|1048576 WSH=64 -VENDOR_HINT=1")
    assert crypto.keys[0].lifetime == 2**20 and crypto.keys[0].mki is None
    assert crypto.session_params == ("WSH=64", "-VENDOR_HINT=1")
    assert crypto.unusable_reason() is None  # a window hint and a dash-prefixed parameter may be ignored
    assert (
        parse_crypto(f"000000012 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}").tag == "000000012"
    )  # echoed as sent


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1 AES_CM_128_HMAC_SHA1_80", "needs a tag, a crypto-suite and key-params"),
        (f"x1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}", "tag 'x1' is not 1-9 digits"),
        (f"1234567890 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}", "is not 1-9 digits"),
        (f"1 AES-CM-128 inline:{KEY_80}", "suite 'AES-CM-128' is malformed"),
        (f"1 AES_CM_128_HMAC_SHA1_80 uri:{KEY_80}", "key method 'uri' is not inline"),
        (f"1 AES_CM_128_HMAC_SHA1_80 {KEY_80}", "is not inline"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:not*base64!", "inline key is not base64"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:", "inline key is not base64"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:QUJD=", "inline key is not base64"),  # bad padding
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^20|1:4|9", "more than a lifetime and an MKI"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^49", "lifetime is outside"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|0", "lifetime is outside"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|1:0", "MKI length 0 is outside"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|1:129", "MKI length 129 is outside"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|1:4|2^20", "neither a lifetime nor an MKI"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|forever", "neither a lifetime nor an MKI"),
    ],
)
def test_malformed_lines_are_refused_with_a_reason(value: str, message: str) -> None:
    with pytest.raises(CryptoError, match=message.replace("^", r"\^").replace("*", r"\*")):
        parse_crypto(value)


def test_a_huge_lifetime_exponent_is_refused_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(CryptoError, match="lifetime"):
        parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^99999999999999999999")
    assert time.perf_counter() - started < 0.1


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"1 F8_128_HMAC_SHA1_80 inline:{KEY_80}", "suite F8_128_HMAC_SHA1_80 is not supported"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^20|1:4;inline:{KEY_80}|2^20|2:4", "2 master keys"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|1:1", "MKI is not supported"),
        (
            "1 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0g=",
            "key is 8 octets, AES_CM_128_HMAC_SHA1_80 needs 30",
        ),
        (f"1 AEAD_AES_128_GCM inline:{KEY_80}", "inline key is 30 octets, AEAD_AES_128_GCM needs 28"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80} KDR=0", "session parameter KDR is not supported"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80} UNENCRYPTED_SRTCP", "UNENCRYPTED_SRTCP is not"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80} UNENCRYPTED_SRTP", "UNENCRYPTED_SRTP is not supported"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80} UNAUTHENTICATED_SRTP", "UNAUTHENTICATED_SRTP is not"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80} FEC_KEY=inline:{KEY_80}", "FEC_KEY is not supported"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80} SOMETHING_NEW", "SOMETHING_NEW is not supported"),
    ],
)
def test_lines_we_cannot_decrypt_with_say_why(value: str, reason: str) -> None:
    found = parse_crypto(value).unusable_reason()
    assert found is not None and reason in found, found


def test_the_first_usable_line_in_the_offerers_order_is_chosen() -> None:
    choice, problems = choose_crypto(FREESWITCH)
    assert choice is not None
    assert (choice.tag, choice.suite) == ("2", "AES_CM_128_HMAC_SHA1_80")
    assert choice.remote_key.key_salt == key_of(FREESWITCH[1])
    assert problems == ["tag 1: suite AES_256_CM_HMAC_SHA1_80 is not supported"]


def test_malformed_lines_are_skipped_and_reported() -> None:
    choice, problems = choose_crypto(["1 AES_CM_128_HMAC_SHA1_80 inline:###", *RFC4568_OFFER])
    assert choice is None
    assert problems == [
        "inline key is not base64",
        "tag 1: MKI is not supported",
        "tag 2: MKI is not supported",
    ]


def test_gcm_keys_with_and_without_padding() -> None:
    key_128 = bytes(range(28))
    padded = base64.b64encode(key_128).decode()
    assert padded.endswith("=")
    for text in (padded, padded.rstrip("=")):
        choice, _ = choose_crypto([f"9 AEAD_AES_128_GCM inline:{text}"])
        assert choice is not None and choice.remote_key.key_salt == key_128
    key_256 = bytes(range(44))
    choice, _ = choose_crypto([f"1 AEAD_AES_256_GCM inline:{base64.b64encode(key_256).decode()}|2^31"])
    assert choice is not None and choice.remote_key.key_salt == key_256


def test_our_answer_echoes_tag_and_suite_with_a_fresh_key() -> None:
    choice, _ = choose_crypto(FREESWITCH)
    assert choice is not None
    value = answer_crypto(choice, lambda n: b"\x01" * n)
    ours = base64.b64encode(b"\x01" * 30).decode()
    assert value == f"2 AES_CM_128_HMAC_SHA1_80 inline:{ours}"
    answered = parse_crypto(value)
    assert answered.unusable_reason() is None and answered.keys[0].key_salt != choice.remote_key.key_salt
    with pytest.raises(ValueError, match="wrong number of octets"):
        answer_crypto(choice, lambda n: b"\x01" * (n - 1))


def test_the_chosen_key_decrypts_what_the_src_protects() -> None:
    key_salt = bytes(range(30))
    line = f"1 AES_CM_128_HMAC_SHA1_32 inline:{base64.b64encode(key_salt).decode()}|2^31"
    choice, _ = choose_crypto([line])
    assert choice is not None
    src = pylibsrtp.Session(
        policy=pylibsrtp.Policy(
            key=key_salt,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
        )
    )
    plain = build_rtp(payload_type=0, sequence=7, timestamp=1120, ssrc=0xBEEF, payload=b"\xd5" * 160)
    assert SrtpDecryptor(choice.remote_key).unprotect(src.protect(plain)) == plain


@pytest.mark.parametrize(
    ("proto", "policy", "accepted", "secure"),
    [
        ("RTP/AVP", SrtpPolicy.OFF, True, False),
        ("RTP/AVP", SrtpPolicy.ALLOW, True, False),
        ("RTP/AVP", SrtpPolicy.REQUIRE, False, False),
        ("RTP/AVPF", SrtpPolicy.ALLOW, True, False),
        ("RTP/SAVP", SrtpPolicy.OFF, False, False),
        ("RTP/SAVP", SrtpPolicy.ALLOW, True, True),
        ("rtp/savp", SrtpPolicy.REQUIRE, True, True),
        ("RTP/SAVPF", SrtpPolicy.REQUIRE, True, True),
        ("UDP/TLS/RTP/SAVP", SrtpPolicy.ALLOW, False, False),  # DTLS-SRTP keying is not SDES
        ("udp", SrtpPolicy.ALLOW, False, False),
    ],
)
def test_policy_by_rtp_profile(proto: str, policy: SrtpPolicy, accepted: bool, secure: bool) -> None:
    decision = negotiate_srtp(proto, [f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}"], policy)
    assert decision.accepted is accepted
    assert (decision.choice is not None) is secure
    assert (decision.reason is None) is accepted


def test_srtp_profile_without_keys_is_not_taken() -> None:
    decision = negotiate_srtp("RTP/SAVP", [], SrtpPolicy.ALLOW)
    assert not decision.accepted and decision.reason == "RTP/SAVP offered without SDES a=crypto keys"


HEAD = "v=0\r\no=SBC 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"
PLAIN = "m=audio 4000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n"
SECURE = f"m=audio 4002 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}\r\na=label:2\r\n"
MKI_ONLY = f"m=audio 4004 RTP/SAVP 0\r\na=crypto:{RFC4568_OFFER[0]}\r\na=crypto:{RFC4568_OFFER[1]}\r\n"
VIDEO = "m=video 4006 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"


def test_an_offer_entirely_outside_the_policy_is_refused_naming_it() -> None:
    plain = parse_sdp(HEAD + PLAIN + PLAIN.replace("label:1", "label:2"))
    reason = srtp_rejection(plain, SrtpPolicy.REQUIRE)
    assert reason == "SRTP policy require: plain RTP/AVP offered where SRTP is required"
    assert srtp_rejection(plain, SrtpPolicy.ALLOW) is None

    secure = parse_sdp(HEAD + SECURE + VIDEO)
    assert srtp_rejection(secure, SrtpPolicy.OFF) == "SRTP policy off: RTP/SAVP offered where SRTP is off"
    assert srtp_rejection(secure, SrtpPolicy.REQUIRE) is None

    mki = parse_sdp(HEAD + MKI_ONLY)
    assert srtp_rejection(mki, SrtpPolicy.ALLOW) == (
        "SRTP policy allow: no usable a=crypto (tag 1: MKI is not supported; tag 2: MKI is not supported)"
    )


def test_one_acceptable_stream_is_enough_and_dead_streams_do_not_count() -> None:
    mixed = parse_sdp(HEAD + PLAIN + SECURE)
    for policy in SrtpPolicy:
        assert srtp_rejection(mixed, policy) is None
    # Only video and a port-0 audio line: not an SRTP matter (the answer rejects them line by line).
    assert srtp_rejection(parse_sdp(HEAD + VIDEO + PLAIN.replace("4000", "0")), SrtpPolicy.REQUIRE) is None


def test_the_reason_fits_a_warning_header() -> None:
    hostile = 'm=audio 4000 RTP/SAVP 0\r\na=crypto:1 "AES" inline:x\r\n'
    reason = srtp_rejection(parse_sdp(HEAD + hostile), SrtpPolicy.ALLOW)
    assert reason is not None and '"' not in reason and "\r" not in reason and "\n" not in reason
    many = "".join(
        f"a=crypto:{tag} {'X' * 500}_{tag} inline:{KEY_80} {'P' * 500}\r\n" for tag in range(1, 200)
    )
    flood = parse_sdp(HEAD + "m=audio 4000 RTP/SAVP 0\r\n" + many + f"m=audio 4002 {'Y' * 900} 0\r\n")
    reason = srtp_rejection(flood, SrtpPolicy.ALLOW)
    assert reason is not None and len(reason) <= 330 and reason.endswith("...")


def test_mutated_lines_never_raise_anything_but_crypto_error() -> None:
    rng = random.Random(4568)
    seeds = [RFC4568_SECTION4, *RFC4568_OFFER, *FREESWITCH, f"7 AEAD_AES_128_GCM inline:{KEY_80}|2^31 WSH=64"]
    alphabet = " |:;^=+/-_0123456789AZaz\t\x00é"
    for _ in range(3000):
        line = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(line) + 1)
            action = rng.random()
            if action < 0.4 and line:
                del line[min(position, len(line) - 1)]
            elif action < 0.8 or not line:
                line.insert(position, rng.choice(alphabet))
            else:
                line[min(position, len(line) - 1)] = rng.choice(alphabet)
        text = "".join(line)
        try:
            crypto = parse_crypto(text)
        except CryptoError:
            continue
        reason = crypto.unusable_reason()
        assert reason is None or isinstance(reason, str)
        choose_crypto([text])
