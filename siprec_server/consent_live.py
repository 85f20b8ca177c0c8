"""Consent asked on one call and decided while the call runs (sans-I/O): the gate fed as presses come in.

The PBX plays its prompt as the call starts, so the question is asked when the recording's media starts: time 0
on the recording's clock (seconds from its first frame), the clock :class:`media.presses.DtmfPress` times are
on. The server's periodic check (once a second) hands :meth:`LiveConsent.feed` the presses the media session
reported since the last check and the time up to which every press has been reported (:func:`heard_until`:
now, less the media session's ``press_delay``). The window's end is judged against that time, never against
the bare clock, so a key pressed just before the end, still on its way through the media path (an in-band
tone is found only after it ended and was mixed), counts.

Outcomes wait in :meth:`LiveConsent.take_decided` until the server has applied them (stored the proof, stopped
and discarded the recording): whichever runs first, the work the check started or the end of the call, takes
them, so each is applied exactly once. At hang-up :meth:`LiveConsent.finish` feeds the last presses and closes
a question still open: a call that ends before the party answered was not consented to.

Invariants: those of :class:`siprec_server.consent.ConsentGate` (one decision at most, a stop only after a
yes); every outcome is returned by :meth:`LiveConsent.take_decided` exactly once; the gate is fed presses in
time order within each feed.
"""

from __future__ import annotations

from collections.abc import Iterable

from media.presses import DtmfPress
from storage.consent_terms import ConsentTerms

from .consent import ConsentGate, ConsentGiven, ConsentOutcome, ConsentStopped

__all__ = ["NO_STREAM", "LiveConsent", "heard_until"]

#: The party's streams when the call receives none: nobody can answer, and the window ends unanswered.
NO_STREAM = -1


def heard_until(now: float, media_start: float | None, press_delay: float) -> float | None:
    """The recording time up to which every key press has been reported, at wall time ``now``; None before the
    media started (the question has not been asked yet)."""
    if media_start is None:
        return None
    return now - media_start - press_delay


class LiveConsent:
    """The consent question of one call; see the module docstring."""

    __slots__ = ("_decided", "_outcomes", "gate", "number")

    def __init__(self, terms: ConsentTerms, *, party_streams: frozenset[int], number: str | None) -> None:
        """``party_streams``: the asked party's media streams; ``number``: the party's, for the proof."""
        self.gate = ConsentGate(terms, asked_at=0.0, party_streams=party_streams or frozenset({NO_STREAM}))
        self.number = number
        self._outcomes: list[ConsentOutcome] = []  # every outcome so far
        self._decided: list[ConsentOutcome] = []  # of those, not taken yet

    @property
    def listening(self) -> bool:
        """True while key presses still matter: the question is open, or consent is given (the stop key)."""
        return not self.gate.closed

    @property
    def final(self) -> ConsentOutcome | None:
        """What decides the recording's fate so far: the stop, else the answer; None while unanswered."""
        stopped = next((o for o in self._outcomes if isinstance(o, ConsentStopped)), None)
        return stopped or next(iter(self._outcomes), None)

    @property
    def kept(self) -> bool:
        """True while the recording may be kept: consent given and not withdrawn, or not answered yet."""
        final = self.final
        return final is None or isinstance(final, ConsentGiven)

    def set_streams(self, party_streams: frozenset[int]) -> None:
        """The party's streams after a re-offer (a stream replaced, one joining)."""
        self.gate.party_streams = party_streams or frozenset({NO_STREAM})

    def feed(self, presses: Iterable[DtmfPress], until: float | None) -> bool:
        """New presses, then the window's timer at ``until`` (see :func:`heard_until`; None: not yet). True
        when an outcome is waiting in :meth:`take_decided`."""
        for press in sorted(presses, key=lambda press: (press.at, press.stream)):
            if press.digit is not None:
                self._keep(self.gate.press(press.stream, press.digit, press.at))
        if until is not None:
            self._keep(self.gate.handle_timer(until))
        return bool(self._decided)

    def finish(self, presses: Iterable[DtmfPress], duration: float) -> bool:
        """The call ended after ``duration`` seconds of recording: its last presses, then a question still open
        is unanswered (at the window's end, or at the end of the call if that came first). True when an outcome
        is waiting in :meth:`take_decided`."""
        self.feed(presses, None)
        self._keep(self.gate.handle_timer(max(duration, self.gate.deadline)))
        return bool(self._decided)

    def take_decided(self) -> list[ConsentOutcome]:
        """The outcomes not taken before, in the order they happened."""
        decided, self._decided = self._decided, []
        return decided

    def _keep(self, outcomes: list[ConsentOutcome]) -> None:
        self._outcomes += outcomes
        self._decided += outcomes
