"""Recording sessions the policy does not let us record: answered, kept, and never given media.

When no recording policy with a legal basis applies to a call (GDPR Art. 6), the SRC still gets a 200 OK so it
does not retry or alarm, but every stream of the answer is ``a=inactive`` (RFC 3264 §6.1) with the discard port
9: no RTP is sent to us, no socket is opened, no catalogue row or byte is written. The session stays an ordinary
dialog: re-offers are answered inactive again with the same o= line (RFC 3264 §8), BYE ends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .call import takeable, with_version
from .siprec import SessionDescription, SrtpPolicy, build_answer

__all__ = ["DISCARD_PORT", "UnrecordedCalls"]

DISCARD_PORT = 9  # RFC 863; the customary port of an m-line that carries nothing


@dataclass(slots=True, kw_only=True)
class _Session:
    reason: str
    session_id: int
    version: int
    body: bytes
    srtp: SrtpPolicy
    last_seen: float


class UnrecordedCalls:
    """The not-recorded sessions of one server, by Call-ID."""

    def __init__(self, *, advertised_host: str, codecs: Sequence[str]) -> None:
        self._host = advertised_host
        self._codecs = tuple(codecs)
        self._sessions: dict[str, _Session] = {}

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    def reason(self, call_id: str) -> str | None:
        session = self._sessions.get(call_id)
        return None if session is None else session.reason

    def open(
        self,
        call_id: str,
        offer: SessionDescription,
        *,
        reason: str,
        srtp: SrtpPolicy,
        session_id: int,
        now: float,
    ) -> bytes:
        """Answer the initial offer with every stream inactive; returns the SDP body."""
        body = self._answer(offer, session_id, 1, srtp)
        self._sessions[call_id] = _Session(
            reason=reason, session_id=session_id, version=1, body=body, srtp=srtp, last_seen=now
        )
        return body

    def reoffer(self, call_id: str, offer: SessionDescription | None, now: float) -> bytes:
        """Answer a re-offer (or give our SDP as the offer of an offerless re-INVITE, RFC 3261 §14.2)."""
        session = self._sessions[call_id]
        session.version += 1
        session.last_seen = now
        if offer is None:
            session.body = with_version(session.body, session.version)
        else:
            session.body = self._answer(offer, session.session_id, session.version, session.srtp)
        return session.body

    def touch(self, call_id: str, now: float) -> None:
        session = self._sessions.get(call_id)
        if session is not None:
            session.last_seen = now

    def end(self, call_id: str) -> bool:
        """Forget a session (BYE); False if it was not one of ours."""
        return self._sessions.pop(call_id, None) is not None

    def expire(self, now: float, idle: float) -> list[str]:
        """Forget sessions silent for ``idle`` seconds (an SRC that never sent BYE); their Call-IDs."""
        gone = [call_id for call_id, s in self._sessions.items() if now - s.last_seen > idle]
        for call_id in gone:
            del self._sessions[call_id]
        return gone

    def _answer(self, offer: SessionDescription, session_id: int, version: int, srtp: SrtpPolicy) -> bytes:
        ports = [DISCARD_PORT if takeable(media) else 0 for media in offer.media]
        return build_answer(
            offer,
            address=self._host,
            ports=ports,
            codecs=self._codecs,
            session_id=session_id,
            session_version=version,
            srtp=srtp,
            inactive=True,
        ).body
