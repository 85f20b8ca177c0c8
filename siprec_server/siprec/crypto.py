"""SDES keying for SRTP (RFC 4568): the SRC's `a=crypto` lines read, one chosen, and ours written.

An SRC that encrypts its media offers `RTP/SAVP` (or `RTP/SAVPF`) m-lines, each with `a=crypto` lines in its
order of preference (RFC 4568 §5.1.1). Each line carries the key the SRC protects its own RTP with; the answerer
accepts exactly one line or rejects the stream (§5.1.2), answering with the same tag and crypto-suite and a fresh
key of its own (§7.1.2). We only receive, so our key protects nothing, but the SRC needs it to set up its session.

What we can decrypt is what :mod:`media.srtp` (libsrtp) keys: the suites in `SRTP_SUITES`, one master key with
no MKI, the default key derivation rate and full encryption and authentication. A line asking for anything else
(MKI, several keys, `KDR`, `UNENCRYPTED_SRTP`/`UNENCRYPTED_SRTCP`/`UNAUTHENTICATED_SRTP`, `FEC_KEY`, an unknown
session parameter without the ignorable `-` prefix) is passed over, and the next offered line is tried (§6.3).
Key material never reaches a log line or a repr.

The per-listener policy decides which RTP profiles a stream may use: `off` takes only plain RTP, `require` only
SRTP, `allow` either. An offer with nothing acceptable is refused as a whole (`srtp_rejection`).
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from media.srtp import SRTP_SUITES, SrtpKey, key_salt_length

if TYPE_CHECKING:
    from .sdp import SessionDescription

__all__ = [
    "CryptoAttribute",
    "CryptoChoice",
    "CryptoError",
    "KeyParam",
    "SrtpDecision",
    "SrtpPolicy",
    "answer_crypto",
    "choose_crypto",
    "negotiate_srtp",
    "parse_crypto",
    "srtp_rejection",
]

PLAIN_PROFILES = frozenset({"rtp/avp", "rtp/avpf"})
SECURE_PROFILES = frozenset({"rtp/savp", "rtp/savpf"})

# RFC 4568 §9.1: tag = 1*9DIGIT; crypto-suite = 1*(ALPHA / DIGIT / "_"); key-params and session-params are
# separated by whitespace.
_TAG = re.compile(r"^[0-9]{1,9}$", re.ASCII)
_SUITE = re.compile(r"^[A-Za-z0-9_]+$", re.ASCII)
_LIFETIME = re.compile(r"^(2\^)?([0-9]{1,20})$", re.ASCII)
_MKI = re.compile(r"^([0-9]{1,20}):([0-9]{1,3})$", re.ASCII)
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$", re.ASCII)
# RFC 3711 §9.2: a master key protects at most 2^48 SRTP packets (2^31 SRTCP; the receiver cannot tell which).
_MAX_LIFETIME = 2**48
_MAX_REASON = 300  # characters of detail in a Warning: offers can list many bad lines
# §6.3.6 / §6.3.4: a window size hint and the FEC order describe nothing we must do to decrypt.
_IGNORABLE_PARAMS = frozenset({"WSH", "FEC_ORDER"})


class SrtpPolicy(enum.Enum):
    """Which RTP profiles a listener accepts: plain RTP only, either, or SRTP only."""

    OFF = "off"
    ALLOW = "allow"
    REQUIRE = "require"


class CryptoError(ValueError):
    """An `a=crypto` value that does not follow the RFC 4568 §9.1 grammar."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyParam:
    """One `inline:` key-param (§6.1): master key || salt, optional lifetime and MKI (value, length)."""

    key_salt: bytes = field(repr=False)
    lifetime: int | None = None
    mki: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CryptoAttribute:
    """One `a=crypto` line: tag (kept as sent, the answer echoes it), suite, key-params, session-params."""

    tag: str
    suite: str
    keys: tuple[KeyParam, ...]
    session_params: tuple[str, ...] = ()

    def unusable_reason(self) -> str | None:
        """Why we cannot decrypt media keyed by this line, or None when we can."""
        if self.suite not in SRTP_SUITES:
            return f"suite {self.suite[:40]} is not supported"
        if len(self.keys) != 1:
            return f"{len(self.keys)} master keys offered (MKI is not supported)"
        key = self.keys[0]
        if key.mki is not None:
            return "MKI is not supported"
        if len(key.key_salt) != key_salt_length(self.suite):
            return (
                f"inline key is {len(key.key_salt)} octets, {self.suite} needs {key_salt_length(self.suite)}"
            )
        for param in self.session_params:
            name = param.partition("=")[0]
            if name.startswith("-") or name.upper() in _IGNORABLE_PARAMS:
                continue  # §6.3: a parameter the receiver need not understand
            return f"session parameter {name[:40]} is not supported"
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CryptoChoice:
    """The offered line we accept: its tag and suite, and the SRC's key, which decrypts what it sends."""

    tag: str
    suite: str
    remote_key: SrtpKey


@dataclass(frozen=True, slots=True, kw_only=True)
class SrtpDecision:
    """Whether an m-line's RTP profile and keying fit the policy; `choice` is set for an accepted SRTP stream."""

    accepted: bool
    choice: CryptoChoice | None = None
    reason: str | None = None


def parse_crypto(value: str) -> CryptoAttribute:
    """Parse the value of an `a=crypto` attribute (after `crypto:`); raises `CryptoError` when malformed."""
    fields = value.split()
    if len(fields) < 3:
        raise CryptoError("a=crypto needs a tag, a crypto-suite and key-params")
    tag, suite, key_params, *session_params = fields
    if not _TAG.match(tag):
        raise CryptoError(f"a=crypto tag {tag[:12]!r} is not 1-9 digits")
    if not _SUITE.match(suite):
        raise CryptoError(f"a=crypto suite {suite[:40]!r} is malformed")
    keys = tuple(_parse_key_param(param) for param in key_params.split(";"))
    return CryptoAttribute(tag=tag, suite=suite, keys=keys, session_params=tuple(session_params))


def choose_crypto(lines: Sequence[str]) -> tuple[CryptoChoice | None, list[str]]:
    """The first offered line we can decrypt with (offerer's order, §5.1.2), and why each earlier one was not."""
    problems: list[str] = []
    for line in lines:
        try:
            crypto = parse_crypto(line)
        except CryptoError as exc:
            problems.append(str(exc))
            continue
        reason = crypto.unusable_reason()
        if reason is not None:
            problems.append(f"tag {crypto.tag}: {reason}")
            continue
        key = SrtpKey(suite=crypto.suite, key_salt=crypto.keys[0].key_salt)
        return CryptoChoice(tag=crypto.tag, suite=crypto.suite, remote_key=key), problems
    return None, problems


def answer_crypto(choice: CryptoChoice, random_bytes: Callable[[int], bytes]) -> str:
    """Our `a=crypto` value: the chosen tag and suite with a fresh key of ours (§7.1.2), no lifetime, no MKI."""
    key_salt = random_bytes(key_salt_length(choice.suite))
    if len(key_salt) != key_salt_length(choice.suite):
        raise ValueError("random_bytes returned the wrong number of octets")
    return f"{choice.tag} {choice.suite} inline:{base64.b64encode(key_salt).decode('ascii')}"


def negotiate_srtp(proto: str, crypto_lines: Sequence[str], policy: SrtpPolicy) -> SrtpDecision:
    """Decide one m-line's RTP profile under `policy`: plain RTP, SDES-keyed SRTP, or a rejection with a reason.

    `a=crypto` on a plain `RTP/AVP` m-line (best-effort SRTP) is ignored: RFC 4568 defines it for SRTP
    profiles only, and answering plain RTP tells such an SRC to send unencrypted.
    """
    profile = proto.lower()
    if profile in PLAIN_PROFILES:
        if policy is SrtpPolicy.REQUIRE:
            return SrtpDecision(accepted=False, reason=f"plain {proto} offered where SRTP is required")
        return SrtpDecision(accepted=True)
    if profile in SECURE_PROFILES:
        if policy is SrtpPolicy.OFF:
            return SrtpDecision(accepted=False, reason=f"{proto} offered where SRTP is off")
        if not crypto_lines:
            return SrtpDecision(accepted=False, reason=f"{proto} offered without SDES a=crypto keys")
        choice, problems = choose_crypto(crypto_lines)
        if choice is None:
            detail = "; ".join(problems)
            return SrtpDecision(accepted=False, reason=f"no usable a=crypto ({detail})")
        return SrtpDecision(accepted=True, choice=choice)
    return SrtpDecision(accepted=False, reason=f"RTP profile {proto[:40]} is not supported")


def srtp_rejection(offer: SessionDescription, policy: SrtpPolicy) -> str | None:
    """Why an offer is outside the listener's SRTP policy as a whole (for a 488 with a Warning), else None.

    Only live audio m-lines count: when at least one of them can be taken the call goes ahead and the others
    are rejected in the answer with port 0. The reason names the policy and contains no double quote, so it
    fits a Warning header's quoted text.
    """
    reasons: list[str] = []
    for media in offer.media:
        if media.media != "audio" or media.port == 0:
            continue
        decision = negotiate_srtp(media.proto, media.crypto, policy)
        if decision.accepted:
            return None
        if decision.reason is not None and decision.reason not in reasons:
            reasons.append(decision.reason)
    if not reasons:
        return None
    text = "; ".join(reasons).replace('"', "'")
    if len(text) > _MAX_REASON:
        text = text[: _MAX_REASON - 3] + "..."
    return f"SRTP policy {policy.value}: {text}"


def _parse_key_param(param: str) -> KeyParam:
    method, colon, info = param.partition(":")
    if not colon or method.lower() != "inline":
        raise CryptoError(f"key method {method[:20]!r} is not inline")  # §6.1: SRTP defines inline only
    key_text, *rest = info.split("|")
    if len(rest) > 2:
        raise CryptoError("inline key-info has more than a lifetime and an MKI")
    lifetime: int | None = None
    mki: tuple[int, int] | None = None
    for item in rest:
        if (match := _MKI.match(item)) is not None and mki is None:
            length = int(match.group(2))
            if not 1 <= length <= 128:  # §6.1: MKI length in octets, 1..128
                raise CryptoError(f"MKI length {length} is outside 1..128")
            mki = (int(match.group(1)), length)
        elif (match := _LIFETIME.match(item)) is not None and lifetime is None and mki is None:
            number = int(match.group(2))
            lifetime = 2 ** min(number, 64) if match.group(1) else number
            if not 0 < lifetime <= _MAX_LIFETIME:
                raise CryptoError("key lifetime is outside 1..2^48")
        else:
            raise CryptoError(f"inline parameter {item[:20]!r} is neither a lifetime nor an MKI")
    return KeyParam(key_salt=_decode_key(key_text), lifetime=lifetime, mki=mki)


def _decode_key(text: str) -> bytes:
    if not _BASE64.match(text) or ("=" in text and len(text) % 4):
        raise CryptoError("inline key is not base64")
    try:
        # Some SRCs drop the padding of keys that need it (28 and 44 octets for the GCM suites, RFC 7714 §14.2).
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise CryptoError("inline key is not base64") from None
