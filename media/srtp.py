"""SRTP decryption of a recorded stream (RFC 3711), keyed by SDES (RFC 4568), through libsrtp (pylibsrtp).

The SRC sends; we only receive. Its master key and salt come from the `a=crypto` line of its offer; the key we
put in our answer protects what we would send, which is nothing. One :class:`SrtpDecryptor` per stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import pylibsrtp

__all__ = ["SRTP_SUITES", "SrtpDecryptor", "SrtpKey", "key_salt_length"]

# RFC 4568 §6.2 / RFC 7714 §14.2 suite name → (libsrtp profile, master key + salt length in octets)
_PROFILES: dict[str, tuple[int, int]] = {
    "AES_CM_128_HMAC_SHA1_80": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "AES_CM_128_HMAC_SHA1_32": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, 30),
    "AEAD_AES_128_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
    "AEAD_AES_256_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
}
SRTP_SUITES: tuple[str, ...] = tuple(_PROFILES)


def key_salt_length(suite: str) -> int:
    """Octets of master key plus master salt the suite's `inline:` parameter carries."""
    return _PROFILES[suite][1]


@dataclass(frozen=True, slots=True, kw_only=True)
class SrtpKey:
    """One direction's SDES keying: the suite name and the decoded `inline:` master key || salt."""

    suite: str
    key_salt: bytes

    def __post_init__(self) -> None:
        if self.suite not in _PROFILES:
            raise ValueError(f"unsupported SRTP suite {self.suite!r}")
        if len(self.key_salt) != key_salt_length(self.suite):
            raise ValueError(f"{self.suite} needs {key_salt_length(self.suite)} octets of key and salt")

    def __repr__(self) -> str:  # never print key material
        return f"SrtpKey(suite={self.suite!r}, key_salt=<{len(self.key_salt)} octets>)"


class SrtpDecryptor:
    """Unprotects the SRC's SRTP and SRTCP packets; a packet that fails authentication yields None."""

    def __init__(self, key: SrtpKey) -> None:
        profile, _ = _PROFILES[key.suite]
        policy = pylibsrtp.Policy(
            key=key.key_salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile
        )
        self._session = pylibsrtp.Session(policy=policy)

    def unprotect(self, packet: bytes) -> bytes | None:
        try:
            return bytes(self._session.unprotect(packet))
        except (pylibsrtp.Error, ValueError):  # auth failure, replay, garbage (RFC 3711 §3.3), oversize
            return None

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        try:
            return bytes(self._session.unprotect_rtcp(packet))
        except (pylibsrtp.Error, ValueError):
            return None
