"""The pure retention rules: expiry, changing a recording's period, erasure eligibility, a tenant's options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from storage.errors import LifecycleError, StatutoryFloorError, UnderHoldError
from storage.retention import (
    ErasureRefusal,
    RecordingRetention,
    erasure_decision,
    expiry,
    plan_change,
    validate_options,
    validate_tenant_class,
)
from storage.retention_class import Basis, RetentionClass

T0 = datetime(2026, 11, 28, 14, 3, 7, 250_000, tzinfo=UTC)
HANG_UP = T0 + timedelta(seconds=94.5)

# The shipped presets (migration 0004), with the ids a fresh install gives them.
NONE = RetentionClass(
    id=1,
    code="none",
    name="Not kept",
    days=0,
    basis=Basis.LEGITIMATE_INTEREST,
    source="GDPR Art. 5(1)(c),(e)",
)
QUALITY = RetentionClass(
    id=2,
    code="quality_60d",
    name="Quality assurance, 60 days",
    days=60,
    basis=Basis.LEGITIMATE_INTEREST,
    source="GDPR Art. 6(1)(f)",
)
CONTRACT = RetentionClass(
    id=3,
    code="contract_evidence",
    name="Contract evidence, 5 years",
    days=1826,
    basis=Basis.LEGITIMATE_INTEREST,
    source="GDPR Art. 6(1)(f)/(b); Ptk. 6:22 §",
)
CONSENT = RetentionClass(
    id=4, code="consent", name="Consent, 1 year", days=365, basis=Basis.CONSENT, source="GDPR Art. 6(1)(a)"
)
UTILITY = RetentionClass(
    id=5,
    code="utility_customer_service",
    name="Utility customer service, 5 years",
    days=1826,
    statutory=True,
    basis=Basis.LEGAL_OBLIGATION,
    source="Fgytv. 17/B §",
)
TELECOM = RetentionClass(
    id=6,
    code="telecom_fault_reports",
    name="Telecom fault reports, 1 year",
    days=365,
    statutory=True,
    basis=Basis.LEGAL_OBLIGATION,
    source="Eht. 141 §",
)
INVESTMENT = RetentionClass(
    id=8,
    code="investment_services",
    name="Investment services, 5 years (7 on request)",
    days=1826,
    max_days=2557,
    statutory=True,
    basis=Basis.LEGAL_OBLIGATION,
    source="MiFID II Art. 16(7)",
)
PRESETS = (NONE, QUALITY, CONTRACT, CONSENT, UTILITY, TELECOM, INVESTMENT)
STATUTORY = (UTILITY, TELECOM, INVESTMENT)


def recording(cls: RetentionClass | None, **fields: object) -> RecordingRetention:
    values: dict[str, object] = {
        "reference": "HT-7K3M-Q9RX",
        "started_at": T0,
        "ended_at": HANG_UP,
        "basis": Basis.LEGAL_OBLIGATION if cls is not None and cls.statutory else Basis.LEGITIMATE_INTEREST,
        "retention_class": cls,
        "expires_at": None if cls is None else expiry(T0, cls.days, ended_at=HANG_UP),
    }
    values.update(fields)
    return RecordingRetention(**values)  # type: ignore[arg-type]


def test_expiry_counts_days_from_the_start_and_zero_means_hang_up() -> None:
    assert expiry(T0, 60) == datetime(2027, 1, 27, 14, 3, 7, 250_000, tzinfo=UTC)
    assert expiry(T0, 1826) == datetime(2031, 11, 28, 14, 3, 7, 250_000, tzinfo=UTC)
    assert expiry(T0, 0, ended_at=HANG_UP) == HANG_UP
    assert expiry(T0, 0) == T0  # still in the call: already due once it ends
    with pytest.raises(ValueError, match="negative"):
        expiry(T0, -1)


@given(st.integers(0, 5000), st.integers(0, 5000))
def test_expiry_is_monotonic_in_days(a: int, b: int) -> None:
    assume(a <= b)
    assert expiry(T0, a, ended_at=HANG_UP) <= expiry(T0, b, ended_at=HANG_UP)


def test_a_statutory_period_cannot_be_shortened_but_may_be_extended_as_the_law_allows() -> None:
    now = T0 + timedelta(days=30)
    with pytest.raises(StatutoryFloorError, match=r"Fgytv\. 17/B.*17\(3\)\(b\)"):
        plan_change(recording(UTILITY), now=now, days=1825)
    # MiFID II: five years, seven on the supervisor's request, and no further
    assert plan_change(recording(INVESTMENT), now=now, days=2557) == T0 + timedelta(days=2557)
    with pytest.raises(LifecycleError, match="at most 2557 days"):
        plan_change(recording(INVESTMENT), now=now, days=2558)
    # an extended one may come back to five years, never below
    extended = recording(INVESTMENT, expires_at=T0 + timedelta(days=2557))
    assert plan_change(extended, now=now, days=1826) == T0 + timedelta(days=1826)
    # a period the law fixes without an extension stays as it is
    with pytest.raises(LifecycleError, match="at most 365 days"):
        plan_change(recording(TELECOM), now=now, days=400)


def test_a_statutory_recording_does_not_leave_its_class_before_the_floor() -> None:
    before = T0 + timedelta(days=1000)
    with pytest.raises(StatutoryFloorError):
        plan_change(recording(UTILITY), now=before, target=CONTRACT)  # same length, but erasable
    with pytest.raises(StatutoryFloorError):
        plan_change(recording(UTILITY), now=before, target=TELECOM)
    assert plan_change(recording(TELECOM), now=before, target=UTILITY) == T0 + timedelta(days=1826)
    after = T0 + timedelta(days=1826, seconds=1)
    assert plan_change(recording(UTILITY), now=after, target=QUALITY) == T0 + timedelta(days=60)


def test_a_statutory_class_needs_a_legal_obligation() -> None:
    with pytest.raises(LifecycleError, match="only to recordings made under that legal obligation"):
        plan_change(recording(QUALITY), now=T0, target=UTILITY)


def test_a_non_statutory_period_moves_either_way_unless_held() -> None:
    assert plan_change(recording(QUALITY), now=T0, days=7) == T0 + timedelta(days=7)
    assert plan_change(recording(QUALITY), now=T0, target=CONTRACT) == T0 + timedelta(days=1826)
    assert plan_change(recording(QUALITY), now=T0, target=NONE) == HANG_UP
    held = recording(QUALITY, held=True)
    with pytest.raises(UnderHoldError, match=r"Art\. 18"):
        plan_change(held, now=T0, days=7)
    assert plan_change(held, now=T0, days=90) == T0 + timedelta(days=90)


def test_a_tenants_options_limit_the_classes_a_call_moves_to() -> None:
    options = (QUALITY, CONTRACT)
    with pytest.raises(LifecycleError, match=r"not one of .* \(quality_60d, contract_evidence\)"):
        plan_change(recording(QUALITY), now=T0, target=CONSENT, selectable=options)
    assert plan_change(recording(QUALITY), now=T0, target=CONTRACT, selectable=options)
    # no options chosen: any class the tenant can see
    assert plan_change(recording(QUALITY), now=T0, target=CONSENT) == T0 + timedelta(days=365)
    # its own class is always a valid choice, even when no longer offered
    assert plan_change(recording(NONE), now=T0, target=NONE, selectable=options) == HANG_UP


def test_a_change_names_exactly_one_of_class_or_days() -> None:
    with pytest.raises(ValueError, match="either"):
        plan_change(recording(QUALITY), now=T0)
    with pytest.raises(ValueError, match="either"):
        plan_change(recording(QUALITY), now=T0, target=CONTRACT, days=3)
    with pytest.raises(LifecycleError, match="no retention class"):
        plan_change(recording(None), now=T0, days=3)


times = st.integers(0, 4000).map(lambda d: T0 + timedelta(days=d))


@given(
    st.sampled_from(STATUTORY),
    times,
    st.one_of(
        st.sampled_from(PRESETS).map(lambda c: ("class", c)), st.integers(0, 4000).map(lambda d: ("days", d))
    ),
)
def test_property_before_its_floor_a_statutory_recording_is_never_given_an_earlier_expiry(
    cls: RetentionClass, now: datetime, change: tuple[str, object]
) -> None:
    floor = cls.floor(T0)
    assert floor is not None
    kind, value = change
    try:
        if kind == "class":
            assert isinstance(value, RetentionClass)
            new = plan_change(recording(cls), now=now, target=value)
        else:
            assert isinstance(value, int)
            new = plan_change(recording(cls), now=now, days=value)
    except LifecycleError:
        return
    if now < floor:
        assert new >= floor
        assert kind == "days" or (isinstance(value, RetentionClass) and value.statutory)
    if cls.longest_days is not None:
        assert kind == "class" or new <= T0 + timedelta(days=max(cls.longest_days, cls.days))


@given(st.sampled_from(PRESETS), st.integers(0, 4000), st.integers(0, 4000), times)
def test_property_a_held_recording_only_ever_moves_later(
    cls: RetentionClass, current_days: int, days: int, now: datetime
) -> None:
    current = T0 + timedelta(days=current_days)
    held = recording(cls, held=True, expires_at=current)
    try:
        new = plan_change(held, now=now, days=days)
    except (LifecycleError, ValueError):
        return
    assert new >= current


@given(st.sampled_from((NONE, QUALITY, CONTRACT, CONSENT)), st.integers(0, 4000), times)
def test_property_a_free_period_is_set_exactly(cls: RetentionClass, days: int, now: datetime) -> None:
    assert plan_change(recording(cls), now=now, days=days) == expiry(T0, days, ended_at=HANG_UP)


def test_erasure_is_refused_under_a_hold_then_before_a_statutory_floor() -> None:
    held = erasure_decision(recording(QUALITY, held=True), now=T0)
    assert (held.allowed, held.refusal) == (False, ErasureRefusal.HELD)
    assert "Art. 18" in held.message
    floor = erasure_decision(recording(UTILITY), now=T0 + timedelta(days=10))
    assert (floor.allowed, floor.refusal) == (False, ErasureRefusal.STATUTORY)
    for needed in ("Art. 17(3)(b)", "Fgytv. 17/B §", "2031-11-28T14:03:07.250000Z", "NAIH", "court"):
        assert needed in floor.message
    # a hold is named first even on a statutory recording
    both = erasure_decision(recording(UTILITY, held=True), now=T0)
    assert both.refusal is ErasureRefusal.HELD
    assert erasure_decision(recording(UTILITY), now=T0 + timedelta(days=1826)).allowed
    assert erasure_decision(recording(CONSENT), now=T0).allowed
    busy = erasure_decision(recording(QUALITY, finished=False), now=T0)
    assert busy.refusal is ErasureRefusal.IN_PROGRESS


@given(st.sampled_from(PRESETS), st.booleans(), st.booleans(), times)
def test_property_erasure_is_allowed_exactly_when_no_rule_refuses(
    cls: RetentionClass, held: bool, finished: bool, now: datetime
) -> None:
    decision = erasure_decision(recording(cls, held=held, finished=finished), now=now)
    floor = cls.floor(T0)
    expected = not held and (floor is None or now >= floor) and finished
    assert decision.allowed is expected
    assert bool(decision.message) is not expected


def test_a_tenant_offers_its_default_and_at_most_four_more() -> None:
    tenant = uuid4()
    own = RetentionClass(
        id=40,
        code="sales_90d",
        name="Sales, 90 days",
        days=90,
        basis=Basis.LEGITIMATE_INTEREST,
        source="balancing test 2026-03",
        tenant_id=tenant,
    )
    chosen = validate_options(tenant, QUALITY, [own, CONTRACT, CONSENT, NONE])
    assert [option.code for option in chosen] == [
        "quality_60d",
        "sales_90d",
        "contract_evidence",
        "consent",
        "none",
    ]
    with pytest.raises(ValueError, match="at most 4"):
        validate_options(tenant, QUALITY, [own, CONTRACT, CONSENT, NONE, UTILITY])
    with pytest.raises(ValueError, match="twice"):
        validate_options(tenant, QUALITY, [QUALITY])
    with pytest.raises(ValueError, match="another tenant"):
        validate_options(uuid4(), QUALITY, [own])


def test_a_tenants_own_class_is_never_statutory_nor_named_like_a_preset() -> None:
    presets = [cls.code for cls in PRESETS]
    good = {"code": "sales_90d", "name": "Sales", "days": 90, "basis": Basis.LEGITIMATE_INTEREST}
    validate_tenant_class(**good, source="balancing test", preset_codes=presets)  # type: ignore[arg-type]
    for bad, match in (
        ({"code": "quality_60d"}, "preset"),
        ({"code": "Sales 90"}, "code"),
        ({"days": -1}, "0 to"),
        ({"days": 3654}, "0 to"),
        ({"basis": Basis.LEGAL_OBLIGATION}, "statutory"),
        ({"name": "  "}, "name"),
    ):
        with pytest.raises(ValueError, match=match):
            validate_tenant_class(**{**good, **bad}, source="x", preset_codes=presets)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only a legal obligation"):
        RetentionClass(id=9, code="x", name="x", days=1, basis=Basis.CONSENT, source="x", statutory=True)
    with pytest.raises(ValueError, match="maximum"):
        RetentionClass(id=9, code="x", name="x", days=10, max_days=5, basis=Basis.CONSENT, source="x")
