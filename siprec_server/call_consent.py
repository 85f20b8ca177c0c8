"""Consent asked during the calls of a :class:`siprec_server.calls.CallManager` (asyncio glue).

Per consent-based call (:func:`siprec_server.lifecycle.live_consent`): in-band key detection on the asked
party's streams that have no telephone-event, while their keys matter (:meth:`CallConsent.listen`); once a
second the presses its media session reported since the last check go to its
:class:`siprec_server.consent_live.LiveConsent` (:meth:`CallConsent.check`); a decision is applied in the call's
turn (:meth:`CallConsent.apply`): the proof is stored at once; a refusal, no answer or the stop key stops the
media (nothing more decoded or written: :meth:`media.MediaSession.discard`) and deletes the recording with its
file and catalogue row. The SIP session is not touched: the SRC keeps sending, the media session drains and
drops what arrives until the call ends.

Metrics: ``hangtar_consent_outcomes_total{outcome, when}`` and ``hangtar_consent_discards_total{result}``. One
log line per answer; the key only where digits may be kept (``recording.store_dtmf_digits``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from .call import Call, existing_file
from .consent import ConsentNoAnswer, ConsentOutcome
from .consent_live import heard_until
from .lifecycle import CallLifecycle, Discarded, asked_streams, consent_disposal, live_consent
from .metrics import Metrics

__all__ = ["CallConsent", "remove_file"]

log = logging.getLogger(__name__)

_WORDS = {
    "given": "given",
    "refused": "refused",
    "no_answer": "not given",
    "stopped": "withdrawn with the stop key",
}


class CallConsent:
    def __init__(self, *, lifecycle: CallLifecycle, metrics: Metrics, store_digits: bool) -> None:
        self._lifecycle = lifecycle
        self._metrics = metrics
        self._store_digits = store_digits

    def ask(self, call: Call) -> None:
        """A new call: its question when its policy has the consent basis."""
        call.consent = live_consent(call.decision, call.layout, call.specs)
        self.listen(call)

    def follow_streams(self, call: Call) -> None:
        """After a re-offer: the asked party's streams may have changed (replaced, joined)."""
        if call.consent is not None and call.decision is not None:
            call.consent.set_streams(asked_streams(call.decision.direction, call.layout, call.specs))
            self.listen(call)

    def listen(self, call: Call) -> None:
        """In-band key detection on the asked party's streams without telephone-event, only while their keys
        matter (the question is open, or consent was given: the stop key). Other streams and every call without
        the consent basis pay nothing for it."""
        consent = call.consent
        if consent is None:
            return
        listening = consent.listening and not call.media.discarded
        for spec in call.specs.values():
            call.media.set_inband_dtmf(spec, listening and spec in consent.gate.party_streams)

    def check(self, calls: Iterable[Call], now: float) -> list[Call]:
        """Once a second (``now``: wall time): each open question gets the presses reported since the last
        check, its window judged up to where every press has been reported. The calls with a decision to
        apply (:meth:`apply`, in the call's turn)."""
        deciding = []
        for call in calls:
            consent = call.consent
            if consent is None or call.ending or call.discarded or not consent.listening:
                continue
            media = call.media
            if consent.feed(media.take_presses(), heard_until(now, media.media_start, media.press_delay)):
                deciding.append(call)
        return deciding

    async def apply(self, call: Call) -> None:
        """Store the proof of each new answer; a refusal, no answer or the stop key stops the recording at
        once and deletes it (a legal hold keeps what was captured before the stop)."""
        consent, decision = call.consent, call.decision
        if consent is None or decision is None or call.ending:
            return  # the call ended meanwhile: its end applied what was decided
        reason = consent_disposal(consent.final)
        if reason is not None and not call.media.discarded:
            await call.media.discard()
        self.listen(call)
        for outcome in consent.take_decided():
            self.note(call, outcome, "call")
            try:
                await self._lifecycle.record_consent(
                    recording_id=call.recording_id,
                    started_at=call.started_at,
                    media_start=call.media.media_start,
                    decision=decision,
                    outcome=outcome,
                    number=consent.number,
                )
            except Exception:
                log.exception("call %s: consent proof (%s) not stored", call.call_id, outcome.code)
        if reason is None or call.discarded:
            return
        done = await self._lifecycle.discard(
            call_id=call.call_id, recording_id=call.recording_id, reason=reason, when="during the call"
        )
        self._metrics.consent_discards.labels(done.value).inc()
        if done is Discarded.DISCARDED:
            call.discarded = True
            await remove_file(call.path)  # gone with the row already; a file the row did not name goes too

    def at_hang_up(self, call: Call, duration: float) -> list[ConsentOutcome]:
        """The call ended (its media closed, ``duration`` seconds recorded): its last presses, and a question
        still open is unanswered. The outcomes left to apply (their proofs: ``CallLifecycle.settle``)."""
        if call.consent is None:
            return []
        call.consent.finish(call.media.take_presses(), duration)
        answers = call.consent.take_decided()
        for outcome in answers:
            self.note(call, outcome, "hangup")
        return answers

    def note(self, call: Call, outcome: ConsentOutcome, when: str) -> None:
        """The metric and one log line per answer; the key only where digits may be kept."""
        self._metrics.consent_outcomes.labels(outcome.code, when).inc()
        if isinstance(outcome, ConsentNoAnswer):
            how = f"no answer within the {outcome.at:g} s window"
        else:
            key = f"key {outcome.digit}" if self._store_digits else "a key"
            how = f"{key} at {outcome.at:.2f} s"
        log.info(
            "call %s: recording %s: consent %s (%s)%s",
            call.call_id,
            call.reference,
            _WORDS[outcome.code],
            how,
            "" if when == "call" else ", at the end of the call",
        )


async def remove_file(path: str) -> None:
    """Delete a discarded recording's file if it is still there."""
    leftover = existing_file(path)
    if leftover is not None:
        await asyncio.to_thread(leftover.unlink, missing_ok=True)
