"""The GDPR side of a call's life in the server: what the policy decided, what consent decides during the call,
and what happens at hang-up.

At the INVITE the call's facts (numbers, direction, tenant hint, the SIP source) become a
:class:`storage.attribution.CallContext` for the policy decision.

A consent-based call asks the party outside the tenant (:func:`asked_streams`, :func:`asked_number`) and is
decided while it runs (:class:`siprec_server.consent_live.LiveConsent`, driven by
:mod:`siprec_server.call_consent`): each answer is stored as a proof at once
(:meth:`CallLifecycle.record_consent`); a refusal, no answer or the stop key stops the media and deletes the
recording with its file right away (:meth:`CallLifecycle.discard`, reasons ``consent_refused`` /
``consent_withdrawn``), while the SIP session goes on untouched.

At hang-up, after the catalogue row is finished, :meth:`CallLifecycle.settle` applies what is left:

- the proofs of answers the end of the call decided (a press in its last moments; a question still open is
  "no answer"), and the deletion of a refused or withdrawn call that could not be deleted during the call (a
  database fault; a legal hold refuses it again, and the recording stays, expired, until the hold is released);
- a call in a 0-day retention class ("not kept") is deleted at once (disposal reason ``not_kept``).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from media import RecordingResult
from storage.attribution import CallContext
from storage.consent import ConsentLedger, RecordingConsent
from storage.decision import Decision
from storage.disposal import DisposalReason
from storage.erasure import ErasureService
from storage.errors import StorageError, UnderHoldError
from storage.policy_rules import CallDirection
from storage.retention import expiry
from storage.retention_class import Basis

from .consent import ConsentGiven, ConsentNoAnswer, ConsentOutcome, ConsentStopped
from .consent_live import LiveConsent
from .siprec import ChannelLayout, RecordingMetadata

__all__ = [
    "CallLifecycle",
    "Discarded",
    "asked_number",
    "asked_streams",
    "call_context",
    "consent_disposal",
    "expires_at",
    "judge_consent",
    "live_consent",
    "recording_fields",
]

log = logging.getLogger(__name__)

_CALLER_CHANNEL, _CALLEE_CHANNEL = 0, 1  # stereo: caller left, callee right


def call_context(metadata: RecordingMetadata | None, source_host: str) -> CallContext:
    """What the policy decides on: the normalised call facts of the metadata and the SIP source address."""
    facts: Mapping[str, Any] = metadata.call_facts_json() if metadata is not None else {}

    def value(name: str) -> str | None:
        fact = facts.get(name)
        return str(fact["value"]) if isinstance(fact, Mapping) and fact.get("value") else None

    direction = value("direction")
    return CallContext(
        calling=value("calling_number"),
        called=value("called_number"),
        direction=CallDirection(direction) if direction in ("inbound", "outbound") else None,
        tenant_hint=value("tenant_hint"),
        source_ip=source_host,
    )


def recording_fields(decision: Decision | None) -> dict[str, Any]:
    """The catalogue columns the decision fills (``NewRecording`` keyword arguments)."""
    if decision is None:
        return {}
    return {
        "tenant_id": decision.tenant_id,
        "policy_id": decision.policy_id,
        "basis": None if decision.basis is None else decision.basis.value,
        "statute": decision.statute,
        "purpose": decision.purpose,
        "retention_class_id": None if decision.retention is None else decision.retention.id,
        "consent_state": (
            RecordingConsent.PENDING if decision.basis is Basis.CONSENT else RecordingConsent.NOT_REQUIRED
        ).value,
        "numbers": list(decision.numbers),
    }


def expires_at(decision: Decision | None, started_at: datetime, ended_at: datetime) -> datetime | None:
    if decision is None or decision.retention is None:
        return None
    return expiry(started_at, decision.retention.days, ended_at=ended_at)


class Discarded(enum.StrEnum):
    """What became of a recording the server tried to delete (the ``result`` label of the consent metric)."""

    DISCARDED = "discarded"  # deleted with its file
    HELD = "held"  # a legal hold keeps it (GDPR Art. 18); it is expired, the sweeper deletes it once released
    FAILED = "failed"  # a database or file fault; expired, so the sweeper deletes it


@dataclass(frozen=True, slots=True, kw_only=True)
class _Judged:
    outcome: ConsentOutcome
    number: str | None


def consent_disposal(outcome: ConsentOutcome | None) -> DisposalReason | None:
    """Why a consent-based call is deleted after this outcome (its final one); None while it may be kept."""
    if outcome is None or isinstance(outcome, ConsentGiven):
        return None
    if isinstance(outcome, ConsentStopped):
        return DisposalReason.CONSENT_WITHDRAWN
    return DisposalReason.CONSENT_REFUSED


class CallLifecycle:
    """Stores consent proofs, deletes what must not be kept (during the call or at hang-up)."""

    def __init__(self, *, pool: Any, erasure: ErasureService, consent: ConsentLedger) -> None:
        self._pool = pool
        self._erasure = erasure
        self._consent = consent

    async def record_consent(
        self,
        *,
        recording_id: UUID,
        started_at: datetime,
        media_start: float | None,
        decision: Decision,
        outcome: ConsentOutcome,
        number: str | None,
    ) -> None:
        """Store the proof of one answer (GDPR Art. 7(1)) and move the recording's consent state on. The
        question was asked when the media started (``media_start``, wall time; the call's start without
        media); ``outcome.at`` counts from there."""
        assert decision.consent is not None
        asked = started_at if media_start is None else datetime.fromtimestamp(media_start, UTC)
        digit = None if isinstance(outcome, ConsentNoAnswer) else outcome.digit
        answered = None if digit is None else asked + timedelta(seconds=outcome.at)
        async with self._pool.acquire() as conn, conn.transaction():
            await self._consent.record(
                conn,
                recording_id=recording_id,
                tenant_id=decision.tenant_id,
                number=number,
                prompt_version=decision.consent.prompt_version,
                asked_at=asked,
                answered_at=answered,
                digit=digit,
                outcome=outcome.code,
            )

    async def discard(
        self, *, call_id: str, recording_id: UUID, reason: DisposalReason, when: str
    ) -> Discarded:
        """Delete the recording, its file and proofs now (:meth:`storage.erasure.ErasureService.discard`).
        ``when`` says where in the call, for the log."""
        try:
            await self._erasure.discard(recording_id, reason)
        except UnderHoldError as exc:
            log.warning(
                "call %s: recording kept by a legal hold, not discarded (%s): %s", call_id, reason.value, exc
            )
            return Discarded.HELD
        except StorageError as exc:
            # A database fault: the recording stays (expired by its consent state, so the sweeper retries).
            log.warning("call %s: recording not discarded (%s): %s", call_id, reason.value, exc)
            return Discarded.FAILED
        log.info("call %s: recording discarded %s (%s)", call_id, when, reason.value)
        return Discarded.DISCARDED

    async def settle(
        self,
        *,
        call_id: str,
        recording_id: UUID,
        started_at: datetime,
        decision: Decision | None,
        consent: LiveConsent | None = None,
        answers: Sequence[ConsentOutcome] = (),
        media_start: float | None = None,
    ) -> DisposalReason | None:
        """After ``Catalogue.finish``: the reason the recording was deleted, or None when it is kept.

        ``consent`` is the call's question, :meth:`LiveConsent.finish`-ed; ``answers`` are its outcomes not
        applied during the call (taken from :meth:`LiveConsent.take_decided`): their proofs are stored here.
        Then a call whose final answer is not a yes is deleted (again, if that failed during the call)."""
        if decision is None or not decision.record or decision.retention is None:
            return None
        reason: DisposalReason | None = None
        if decision.basis is Basis.CONSENT and decision.consent is not None and consent is not None:
            for outcome in answers:
                try:
                    await self.record_consent(
                        recording_id=recording_id,
                        started_at=started_at,
                        media_start=media_start,
                        decision=decision,
                        outcome=outcome,
                        number=consent.number,
                    )
                except StorageError as exc:
                    log.warning("call %s: consent proof not stored (%s): %s", call_id, outcome.code, exc)
            reason = consent_disposal(consent.final)
        if reason is None and decision.retention.days == 0:
            reason = DisposalReason.NOT_KEPT
        if reason is None:
            return None
        done = await self.discard(
            call_id=call_id, recording_id=recording_id, reason=reason, when="at hang-up"
        )
        return reason if done is Discarded.DISCARDED else None


def live_consent(
    decision: Decision | None, layout: ChannelLayout, specs: Mapping[int, int]
) -> LiveConsent | None:
    """The consent question of a call whose policy has the consent basis; None for every other call."""
    if decision is None or decision.basis is not Basis.CONSENT or decision.consent is None:
        return None
    streams = asked_streams(decision.direction, layout, specs)
    return LiveConsent(decision.consent, party_streams=streams, number=asked_number(decision))


def judge_consent(
    decision: Decision, result: RecordingResult, layout: ChannelLayout, specs: Mapping[int, int]
) -> _Judged:
    """The whole call's key presses (seconds from the first frame) judged at once, as at hang-up: the same
    rules the call applies while it runs."""
    consent = live_consent(decision, layout, specs)
    assert consent is not None
    consent.finish(result.dtmf, result.duration)
    final = consent.final
    assert final is not None  # the end of the call always decides
    return _Judged(outcome=final, number=consent.number)


def asked_streams(
    direction: CallDirection | None, layout: ChannelLayout, specs: Mapping[int, int]
) -> frozenset[int]:
    """The media streams of the party asked for consent: the one outside the tenant (the caller of an inbound
    call, the callee of an outbound one); every stream when the direction is unknown."""
    wanted: Sequence[int] | None = None
    if direction is CallDirection.INBOUND:
        wanted = (_CALLER_CHANNEL,)
    elif direction is CallDirection.OUTBOUND:
        wanted = (_CALLEE_CHANNEL,)
    streams = {
        spec
        for mline, spec in specs.items()
        if wanted is None or (mline < len(layout.stream_channels) and layout.stream_channels[mline] in wanted)
    }
    return frozenset(streams or specs.values())


def asked_number(decision: Decision) -> str | None:
    """The asked party's number: the call's number that is not the tenant's own."""
    others = [n for n in decision.numbers if n != decision.tenant_number]
    return others[0] if others else (decision.numbers[0] if decision.numbers else None)
