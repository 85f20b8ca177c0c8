"""SRTP and SRTCP removed from a drained batch before the timeline sees it (sans-I/O).

One :class:`media.srtp.SrtpDecryptor` per stream keeps libsrtp's per-SSRC state (rollover counter, replay
window). A datagram whose second octet is an RTCP packet type (RFC 5761 §4; the SRTCP header is in the clear,
RFC 3711 §3.4) is SRTCP, from the RTCP port or multiplexed on the RTP port; everything else is taken as SRTP.
What fails authentication or the replay check (RFC 3711 §3.3) is only counted: garbage, a wrong key or a
replayed packet never reaches the audio. Decrypted SRTCP goes on to the timeline, which counts it.
"""

from __future__ import annotations

from collections.abc import Sequence

from media.srtp import SrtpDecryptor

__all__ = ["decrypt_batch"]

_RTCP_FIRST = 192
_RTCP_LAST = 223


def decrypt_batch(
    decryptor: SrtpDecryptor, packets: Sequence[tuple[float, bytes]]
) -> tuple[list[tuple[float, bytes]], int]:
    """The ``(arrival, plain datagram)`` pairs that authenticated, and how many did not."""
    plain: list[tuple[float, bytes]] = []
    append = plain.append
    unprotect = decryptor.unprotect
    unprotect_rtcp = decryptor.unprotect_rtcp
    failures = 0
    for arrival, data in packets:
        rtcp = len(data) > 1 and _RTCP_FIRST <= data[1] <= _RTCP_LAST
        try:
            out = unprotect_rtcp(data) if rtcp else unprotect(data)
        except ValueError:  # libsrtp's buffer is 1500 octets: a longer datagram is not ours to decrypt
            out = None
        if out is None:
            failures += 1
        else:
            append((arrival, out))
    return plain, failures
