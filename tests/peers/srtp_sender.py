"""An SRTP sender for tests: :class:`RtpSender`'s packets protected by libsrtp with an SDES key (RFC 3711, 4568).

    sender = SrtpSender(destination=("127.0.0.1", 30000), tone_hz=440, key_salt=os.urandom(30))
    sdp_line = "a=crypto:" + sender.crypto_attribute(tag=1)

Every packet is protected once, in sequence order, when the sender is built; the plan's duplicates resend the same
bytes and its reordering sends them out of order, as a network would. Protection here uses pylibsrtp directly with
its own suite table, so test input does not come from the product's media package.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import pylibsrtp

from tests.peers.rtp_sender import RtpSender

SUITES: dict[
    str, tuple[int, int]
] = {  # RFC 4568 §6.2 / RFC 7714 §14.2 name → (libsrtp profile, key+salt octets)
    "AES_CM_128_HMAC_SHA1_80": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "AES_CM_128_HMAC_SHA1_32": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, 30),
    "AEAD_AES_128_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
    "AEAD_AES_256_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
}


@dataclass(kw_only=True)
class SrtpSender(RtpSender):
    suite: str = "AES_CM_128_HMAC_SHA1_80"
    key_salt: bytes = field(default=b"", repr=False)
    _protected: list[bytes] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        profile, length = SUITES[self.suite]
        if len(self.key_salt) != length:
            raise ValueError(f"{self.suite} needs {length} octets of master key and salt")
        policy = pylibsrtp.Policy(
            key=self.key_salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile
        )
        session = pylibsrtp.Session(policy=policy)
        self._protected = [
            session.protect(super(SrtpSender, self).packet(i)) for i in range(len(self._payloads))
        ]

    def packet(self, index: int) -> bytes:
        return self._protected[index]

    def crypto_attribute(self, tag: int = 1) -> str:
        """The `a=crypto` value (after the colon) an SRC offers for this stream."""
        return f"{tag} {self.suite} inline:{base64.b64encode(self.key_salt).decode('ascii')}"
