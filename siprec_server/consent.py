"""Consent to recording asked during the call (GDPR Art. 6(1)(a), 7): the party's key press decides.

When a call's recording policy has the consent basis, the PBX plays a prompt ("press 1 to agree to recording,
2 to refuse") and the asked party answers with a key. The terms (window, keys, prompt version) are the policy's
:class:`storage.consent_terms.ConsentTerms`. The recorder sees the press as DTMF on that party's
stream (RFC 4733 telephone-event or in-band tones). :class:`ConsentGate` is the decision, sans-I/O: fed presses
with their time and the clock through :meth:`ConsentGate.handle_timer`, it returns outcomes.

Rules (the transition table ``_TRANSITIONS`` holds them):
- Only presses on the asked party's streams, at or after ``asked_at``, count; others are ignored.
- While pending, the first yes or no digit within the window ``[asked_at, asked_at + window)`` decides: given or
  refused. Other digits in the window are ignored and counted (:attr:`ConsentGate.other_presses`).
- The window's end is the timer: reached while pending, the answer is "no answer". A press fed with a time at or
  past the window's end while pending is late: it ends the window first (no answer), exactly as the timer would.
- After consent is given, only the stop key matters, at any time until the call ends: the party withdraws in the
  call (Art. 7(3)). Repeated yes presses and a later no are ignored.
- Refused, no answer and stopped close the gate: nothing is emitted after them.
Invariants: at most one of given/refused/no-answer is emitted, at most one stopped, and never stopped without
given before it.

Times are seconds on the caller's clock (the one it passes as ``now`` to every core). Feed a press as soon as its
start is known, with ``at`` = the time the key went down (an RFC 4733 event's first packet:
``TelephoneEventReceiver.started()``), so a press just before the window's end is not judged late by the time its
end packets arrive.

What the server does with each outcome, as soon as it is decided during the call
(:mod:`siprec_server.consent_live` feeds the gate, the call manager applies the outcomes):
- :class:`ConsentGiven`: keep recording, and store the proof (time asked, time answered, number, prompt version,
  digit) with ``storage.consent.ConsentLedger.record``;
- :class:`ConsentRefused` and :class:`ConsentNoAnswer`: store the proof, stop the media at once and delete
  everything captured with the catalogue row, so no audio of the call is kept; the SIP session goes on
  unchanged until the SRC ends it;
- :class:`ConsentStopped`: store the proof, stop and delete likewise; the disposal reason is a withdrawal.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from storage.consent_terms import DTMF_DIGITS, ConsentTerms

__all__ = [
    "ConsentGate",
    "ConsentGiven",
    "ConsentNoAnswer",
    "ConsentOutcome",
    "ConsentRefused",
    "ConsentState",
    "ConsentStopped",
]


class ConsentState(enum.StrEnum):
    PENDING = "pending"  # asked; the window is open
    GIVEN = "given"  # yes pressed in the window; the stop key may still withdraw it
    REFUSED = "refused"  # no pressed in the window (closed)
    NO_ANSWER = "no_answer"  # the window elapsed without yes or no (closed)
    STOPPED = "stopped"  # the stop key pressed after consent was given (closed)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentGiven:
    code: ClassVar[str] = "given"  # the ``consent_proofs.outcome`` value
    digit: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentRefused:
    code: ClassVar[str] = "refused"
    digit: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentNoAnswer:
    code: ClassVar[str] = "no_answer"
    at: float  # the window's end


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentStopped:
    code: ClassVar[str] = "stopped"
    digit: str
    at: float


ConsentOutcome = ConsentGiven | ConsentRefused | ConsentNoAnswer | ConsentStopped


class _Input(enum.Enum):
    YES = "yes"
    NO = "no"
    STOP = "stop"
    OTHER = "other"
    WINDOW_END = "window_end"


# (state, input) -> next state; a pair not listed changes nothing. Closed states have no entries.
_TRANSITIONS: Mapping[tuple[ConsentState, _Input], ConsentState] = {
    (ConsentState.PENDING, _Input.YES): ConsentState.GIVEN,
    (ConsentState.PENDING, _Input.NO): ConsentState.REFUSED,
    (ConsentState.PENDING, _Input.WINDOW_END): ConsentState.NO_ANSWER,
    (ConsentState.GIVEN, _Input.STOP): ConsentState.STOPPED,
}
_CLOSED = frozenset({ConsentState.REFUSED, ConsentState.NO_ANSWER, ConsentState.STOPPED})


class ConsentGate:
    """One asked party's answer to the consent prompt. See the module docstring for the rules."""

    __slots__ = ("_decided_at", "_state", "asked_at", "other_presses", "party_streams", "terms")

    def __init__(self, terms: ConsentTerms, *, asked_at: float, party_streams: frozenset[int]) -> None:
        if not math.isfinite(asked_at):
            raise ValueError(f"asked_at must be a finite time, not {asked_at}")
        if not party_streams:
            raise ValueError("a consent gate needs the asked party's stream indexes")
        self.terms = terms
        self.asked_at = asked_at
        self.party_streams = party_streams
        self.other_presses = 0  # other keys pressed in the window while pending
        self._state = ConsentState.PENDING
        self._decided_at: float | None = None  # when yes was pressed

    @property
    def state(self) -> ConsentState:
        return self._state

    @property
    def deadline(self) -> float:
        """The window's end: presses from then on are late."""
        return self.asked_at + self.terms.window_seconds

    @property
    def closed(self) -> bool:
        return self._state in _CLOSED

    def get_timer(self) -> float | None:
        """The window's end while an answer is awaited; else None."""
        return self.deadline if self._state is ConsentState.PENDING else None

    def handle_timer(self, now: float) -> list[ConsentOutcome]:
        if self._state is ConsentState.PENDING and now >= self.deadline:
            return self._step(_Input.WINDOW_END, None, self.deadline)
        return []

    def press(self, stream_index: int, digit: str, at: float) -> list[ConsentOutcome]:
        """A key pressed on stream ``stream_index`` at time ``at``; the outcomes it causes (at most one)."""
        if len(digit) != 1 or digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF key: {digit!r}")
        if not math.isfinite(at):
            raise ValueError(f"a key press needs a finite time, not {at}")
        if stream_index not in self.party_streams or at < self.asked_at:
            return []
        if self._state is ConsentState.PENDING:
            if at >= self.deadline:
                return self.handle_timer(at)
            key = self._key(digit, (self.terms.yes_digit, _Input.YES), (self.terms.no_digit, _Input.NO))
            if key is _Input.OTHER:
                self.other_presses += 1
            return self._step(key, digit, at)
        if self._state is ConsentState.GIVEN:
            if self._decided_at is not None and at < self._decided_at:
                return []  # fed out of order: before consent was given, so it cannot withdraw it
            return self._step(self._key(digit, (self.terms.stop_digit, _Input.STOP)), digit, at)
        return []

    @staticmethod
    def _key(digit: str, *meanings: tuple[str, _Input]) -> _Input:
        return next((meaning for key, meaning in meanings if key == digit), _Input.OTHER)

    def _step(self, key: _Input, digit: str | None, at: float) -> list[ConsentOutcome]:
        after = _TRANSITIONS.get((self._state, key))
        if after is None:
            return []
        self._state = after
        if after is ConsentState.GIVEN:
            self._decided_at = at
        return [_outcome(after, digit, at)]


def _outcome(state: ConsentState, digit: str | None, at: float) -> ConsentOutcome:
    if state is ConsentState.NO_ANSWER:
        return ConsentNoAnswer(at=at)
    assert digit is not None  # every other transition is a key press
    if state is ConsentState.GIVEN:
        return ConsentGiven(digit=digit, at=at)
    if state is ConsentState.REFUSED:
        return ConsentRefused(digit=digit, at=at)
    return ConsentStopped(digit=digit, at=at)
