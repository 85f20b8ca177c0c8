"""SRTP decryption with keys as an SRC hands them over in SDES."""

from __future__ import annotations

import os

import pylibsrtp
import pytest

from media.rtp import build_rtp, parse_rtp
from media.srtp import SRTP_SUITES, SrtpDecryptor, SrtpKey, key_salt_length

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


def sender(suite: str, key_salt: bytes) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=key_salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=PROFILES[suite]
    )
    return pylibsrtp.Session(policy=policy)


@pytest.mark.parametrize("suite", SRTP_SUITES)
def test_packets_from_the_src_decrypt_to_the_original(suite: str) -> None:
    key_salt = os.urandom(key_salt_length(suite))
    src = sender(suite, key_salt)
    decryptor = SrtpDecryptor(SrtpKey(suite=suite, key_salt=key_salt))
    for seq in range(1000, 1010):
        plain = build_rtp(
            payload_type=0, sequence=seq, timestamp=seq * 160, ssrc=0xCAFE, payload=bytes([seq % 256]) * 160
        )
        protected = src.protect(plain)
        assert protected != plain
        assert decryptor.unprotect(protected) == plain
        header = parse_rtp(plain)
        assert header is not None and header.sequence == seq


def test_a_wrong_key_yields_nothing() -> None:
    suite = "AES_CM_128_HMAC_SHA1_80"
    src = sender(suite, os.urandom(30))
    decryptor = SrtpDecryptor(SrtpKey(suite=suite, key_salt=os.urandom(30)))
    packet = src.protect(build_rtp(payload_type=0, sequence=1, timestamp=160, ssrc=1, payload=b"\xff" * 160))
    assert decryptor.unprotect(packet) is None
    assert decryptor.unprotect(b"garbage") is None


def test_key_material_is_validated_and_never_printed() -> None:
    with pytest.raises(ValueError, match="needs 30 octets"):
        SrtpKey(suite="AES_CM_128_HMAC_SHA1_80", key_salt=b"short")
    with pytest.raises(ValueError, match="unsupported SRTP suite"):
        SrtpKey(suite="F8_128_HMAC_SHA1_80", key_salt=os.urandom(30))
    secret = os.urandom(30)
    assert secret.hex() not in repr(SrtpKey(suite="AES_CM_128_HMAC_SHA1_80", key_salt=secret))
