"""The GDPR side of a call's life in the server: what the policy decided, and what happens at hang-up.

At the INVITE the call's facts (numbers, direction, tenant hint, the SIP source) become a
:class:`storage.attribution.CallContext` for the policy decision. At hang-up, after the catalogue row is
finished:

- a call in a 0-day retention class ("not kept") is deleted at once (disposal reason ``not_kept``);
- a consent-based call is judged by :class:`siprec_server.consent.ConsentGate` from the key presses the asked
  party made (RFC 4733 events, kept per stream with their time): the window opens when the recording's media
  starts, since the PBX plays its prompt at the start of the call. Yes → kept, proof stored; no, no answer or
  the stop key → proof stored, then the recording and its file are deleted (``consent_refused`` /
  ``consent_withdrawn``). The decision is applied when the call ends, so a refused call's audio exists on disk
  only while the call lasts.
"""

from __future__ import annotations

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
from storage.errors import StorageError
from storage.policy_rules import CallDirection
from storage.retention import expiry
from storage.retention_class import Basis

from .consent import ConsentGate, ConsentGiven, ConsentNoAnswer, ConsentOutcome, ConsentStopped
from .siprec import ChannelLayout, RecordingMetadata

__all__ = ["CallLifecycle", "call_context", "expires_at", "judge_consent", "recording_fields"]

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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Judged:
    outcome: ConsentOutcome
    number: str | None


class CallLifecycle:
    """Applies the decision at hang-up: discards what must not be kept, records consent."""

    def __init__(self, *, pool: Any, erasure: ErasureService, consent: ConsentLedger) -> None:
        self._pool = pool
        self._erasure = erasure
        self._consent = consent

    async def settle(
        self,
        *,
        call_id: str,
        recording_id: UUID,
        started_at: datetime,
        decision: Decision | None,
        result: RecordingResult,
        layout: ChannelLayout,
        specs: Mapping[int, int],
    ) -> DisposalReason | None:
        """After ``Catalogue.finish``: the reason the recording was deleted, or None when it is kept."""
        if decision is None or not decision.record or decision.retention is None:
            return None
        reason: DisposalReason | None = None
        if decision.basis is Basis.CONSENT and decision.consent is not None:
            judged = judge_consent(decision, result, layout, specs)
            await self._store_proof(recording_id, started_at, decision, result, judged)
            if not isinstance(judged.outcome, ConsentGiven):
                stopped = isinstance(judged.outcome, ConsentStopped)
                reason = DisposalReason.CONSENT_WITHDRAWN if stopped else DisposalReason.CONSENT_REFUSED
        if reason is None and decision.retention.days == 0:
            reason = DisposalReason.NOT_KEPT
        if reason is None:
            return None
        try:
            await self._erasure.discard(recording_id, reason)
        except StorageError as exc:
            # A hold on the number, or a database fault: the recording stays (expired, so the sweeper retries).
            log.warning("call %s: recording not discarded (%s): %s", call_id, reason.value, exc)
            return None
        log.info("call %s: recording discarded at hang-up (%s)", call_id, reason.value)
        return reason

    async def _store_proof(
        self,
        recording_id: UUID,
        started_at: datetime,
        decision: Decision,
        result: RecordingResult,
        judged: _Judged,
    ) -> None:
        assert decision.consent is not None
        start = result.media_start
        asked = started_at if start is None else datetime.fromtimestamp(start, UTC)
        outcome = judged.outcome
        digit = None if isinstance(outcome, ConsentNoAnswer) else outcome.digit
        answered = None if digit is None else asked + timedelta(seconds=outcome.at)
        async with self._pool.acquire() as conn, conn.transaction():
            await self._consent.record(
                conn,
                recording_id=recording_id,
                tenant_id=decision.tenant_id,
                number=judged.number,
                prompt_version=decision.consent.prompt_version,
                asked_at=asked,
                answered_at=answered,
                digit=digit,
                outcome=outcome.code,
            )


def judge_consent(
    decision: Decision, result: RecordingResult, layout: ChannelLayout, specs: Mapping[int, int]
) -> _Judged:
    """Run the consent gate over the call's key presses (seconds from the first frame)."""
    assert decision.consent is not None
    terms = decision.consent
    streams = _asked_streams(decision.direction, layout, specs)
    gate = ConsentGate(terms, asked_at=0.0, party_streams=streams)
    outcomes: list[ConsentOutcome] = []
    for press in sorted(result.dtmf, key=lambda p: p.at):
        if press.digit is not None:
            outcomes += gate.press(press.stream, press.digit, press.at)
    outcomes += gate.handle_timer(max(result.duration, terms.window_seconds))
    decided = next((o for o in outcomes if not isinstance(o, ConsentStopped)), None)
    stopped = next((o for o in outcomes if isinstance(o, ConsentStopped)), None)
    final = stopped or decided
    assert final is not None  # the timer past the window always decides
    asked_number = _asked_number(decision)
    return _Judged(outcome=final, number=asked_number)


def _asked_streams(
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


def _asked_number(decision: Decision) -> str | None:
    others = [n for n in decision.numbers if n != decision.tenant_number]
    return others[0] if others else (decision.numbers[0] if decision.numbers else None)
