"""Deriving the call facts (`facts.CallFacts`) from a metadata model, each with where it came from.

Sources, first found wins:

1. Vendor blocks (`vendor.claims`), in document order: they say outright who called whom
   (`broadworks:callingPartyNumber`, `ribbon:callData/fromhdr`, `apkt:callingParty`…), which way the call
   went and for which tenant.
2. The participants: the calling party is the first by `associate-time` when every one has a credible
   time, else the first in document order (the rule the channel layout uses); the called party the next
   one. Placeholder parties (Avaya SBCE's `ASBCE`) are skipped. Source `participant[i].aor`.
3. Correlation ids from the session: `<sipSessionID>` (RFC 7865; its local UUID, the raw value keeps
   `;remote=…`) and a session id in Avaya UCID form (Avaya SBCE uses the UCID as `session_id`).

Direction and tenant come from vendor blocks only: nothing in RFC 7865 itself says which party is the
tenant's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .addresses import parse_address
from .facts import Attributed, CallFacts, Direction
from .model import Participant
from .numbers import normalise_number
from .timestamps import EARLIEST_CREDIBLE, parse_timestamp
from .vendor import VendorExtension, claims, is_placeholder

__all__ = ["derive_call_facts"]

_UCID = re.compile(r"(?i)00fa08[0-9a-f]{16}")  # Avaya UCID, hex-encoded as in User-to-User


def derive_call_facts(
    *,
    participants: Sequence[Participant],
    extensions: Sequence[VendorExtension],
    session_ids: Sequence[str] = (),
    sip_session_ids: Sequence[str] = (),
) -> CallFacts:
    """The call facts stated by `extensions` (earlier ones win), completed from the participants."""
    by_id = {participant.id: participant for participant in participants}
    facts: dict[str, Attributed[str] | None] = {"calling": None, "called": None, "tenant": None}
    parties: dict[str, str] = {}  # "calling"/"called" -> participant id
    direction: Attributed[Direction] | None = None
    ids: dict[str, Attributed[str]] = {}
    for extension in extensions:
        for claim in claims(extension):
            if claim.fact.startswith("id:"):
                ids.setdefault(
                    claim.fact[3:], Attributed(value=claim.value, source=claim.source, raw=claim.value)
                )
            elif claim.fact in ("calling", "called") and facts[claim.fact] is None:
                facts[claim.fact] = _number(claim.value, claim.source)
            elif claim.fact in ("calling_party", "called_party") and claim.value in by_id:
                role = claim.fact.removesuffix("_party")
                if facts[role] is None:
                    participant = by_id[claim.value]
                    facts[role] = _participant_number(participant, claim.source)
                    parties[role] = participant.id
            elif claim.fact == "direction" and direction is None:
                direction = Attributed(value=Direction(claim.value), source=claim.source, raw=claim.raw)
            elif claim.fact == "tenant" and facts["tenant"] is None and claim.value.strip():
                facts["tenant"] = Attributed(value=claim.value.strip(), source=claim.source, raw=claim.raw)
    _complete_from_participants(facts, parties, participants)
    for raw in sip_session_ids[:1]:
        ids.setdefault(
            "sip_session_id", Attributed(value=raw.split(";", 1)[0], source="session.sipSessionID", raw=raw)
        )
    for session_id in session_ids:
        if _UCID.fullmatch(session_id):
            ids.setdefault("ucid", Attributed(value=session_id, source="session.session_id", raw=session_id))
    return CallFacts(
        calling_number=facts["calling"],
        called_number=facts["called"],
        direction=direction,
        tenant_hint=facts["tenant"],
        ids=ids,
    )


def _complete_from_participants(
    facts: dict[str, Attributed[str] | None], parties: dict[str, str], participants: Sequence[Participant]
) -> None:
    """Fill the calling and called number still unknown from the parties no vendor block named."""
    indexed = [(index, p) for index, p in enumerate(participants) if not is_placeholder(p.uri)]
    times = [parse_timestamp(p.associate_time) for _, p in indexed]
    if indexed and None not in times:
        order = sorted(range(len(indexed)), key=lambda k: times[k] or EARLIEST_CREDIBLE)
        indexed = [indexed[k] for k in order]
    taken = {fact.value for fact in (facts["calling"], facts["called"]) if fact is not None}
    remaining = [
        (index, participant)
        for index, participant in indexed
        if participant.id not in parties.values()
        and (participant.number is None or participant.number.value not in taken)
    ]
    for role in ("calling", "called"):
        if facts[role] is None and remaining:
            index, participant = remaining.pop(0)
            facts[role] = _participant_number(participant, f"participant[{index}].aor")


def _participant_number(participant: Participant, source: str) -> Attributed[str] | None:
    if participant.number is None:
        return None
    return Attributed(value=participant.number.value, source=source, raw=participant.aor)


def _number(raw: str, source: str) -> Attributed[str] | None:
    address = parse_address(raw)
    number = normalise_number(address.user) if address is not None and address.user else None
    if number is None:
        return None
    return Attributed(value=number.value, source=source, raw=raw.strip())
