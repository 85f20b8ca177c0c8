"""Recording policies: the rules a policy obeys, the decision at call setup, and the versioned store."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import Catalogue
from storage.attribution import AttributedBy, CallContext
from storage.audit import Actor, AuditLog
from storage.consent_terms import ConsentTerms, ConsentTermsError
from storage.decision import Decision, DecisionReason, decide
from storage.errors import NotFoundError, PolicyRuleError
from storage.policies import POLICY_CHANNEL, PolicyScope, PolicyStore
from storage.policy_rules import PolicyDirection, PolicySpec, ScopeKind, validate_policy
from storage.retention_class import Basis
from storage.tenant_models import NumberKind
from storage.tenants import TenantStore

from .policy_samples import CLASSES, INBOUND, OUTBOUND, World
from .samples import new_recording

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
ANNA = Actor(name="anna@hangtar.example.hu", origin="192.0.2.44")
BENCE = Actor(name="cli:bence", origin="cli")

QUALITY = PolicySpec(basis=Basis.LEGITIMATE_INTEREST, purpose="quality assurance", retention="quality_60d")
UTILITY = PolicySpec(
    basis=Basis.LEGAL_OBLIGATION,
    statute="Fgytv. 17/B §",
    purpose="customer service",
    retention="utility_customer_service",
)
CONSENT = PolicySpec(basis=Basis.CONSENT, purpose="training", retention="consent", consent=ConsentTerms())


# -- the rules a policy obeys (pure) ---------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [QUALITY, UTILITY, CONSENT, PolicySpec(record=False)])
def test_valid_policies(spec: PolicySpec) -> None:
    validate_policy(spec, None if spec.retention is None else CLASSES[spec.retention])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (PolicySpec(purpose="quality assurance", retention="quality_60d"), "needs a legal basis"),
        (replace(QUALITY, purpose=None), "needs a purpose"),
        (replace(QUALITY, purpose="  "), "the purpose must be"),
        (replace(QUALITY, retention=None), "needs a retention class"),
        (replace(UTILITY, statute=None), "must name the statute"),
        (replace(QUALITY, statute="Fgytv. 17/B §"), "only for a legal obligation"),
        (replace(CONSENT, consent=None), "needs consent terms"),
        (replace(QUALITY, consent=ConsentTerms()), "consent terms are given only"),
        (replace(CONSENT, retention="quality_60d"), "needs a consent retention class"),
        (replace(QUALITY, retention="financial_complaints"), "statutory retention class"),
        (replace(QUALITY, format="ogg"), "format 'ogg'"),
        (
            PolicySpec(record=False, basis=Basis.LEGITIMATE_INTEREST, retention="none"),
            "records nothing takes no",
        ),
    ],
)
def test_policies_that_break_a_rule_are_refused_with_the_reason(spec: PolicySpec, message: str) -> None:
    with pytest.raises(PolicyRuleError, match=message):
        validate_policy(spec, None if spec.retention is None else CLASSES[spec.retention])


def test_every_broken_rule_is_named() -> None:
    spec = PolicySpec(basis=Basis.CONSENT, statute="Hpt. 288 §", retention="financial_complaints")
    with pytest.raises(PolicyRuleError) as caught:
        validate_policy(spec, CLASSES["financial_complaints"])
    assert len(caught.value.problems) == 5  # purpose, statute, terms, consent class, statutory class


def test_consent_terms() -> None:
    assert ConsentTerms.from_json({}) == ConsentTerms()
    terms = ConsentTerms.from_json({"window_seconds": 15, "yes_digit": "*", "prompt_version": "2026-11"})
    assert terms.to_json() == {
        "window_seconds": 15,
        "yes_digit": "*",
        "no_digit": "2",
        "stop_digit": "9",
        "prompt_version": "2026-11",
    }
    for bad in (
        {"yes_digit": "2"},
        {"stop_digit": "E"},
        {"window_seconds": 0},
        {"window_seconds": 121},
        {"window_seconds": "10"},
        {"prompt_version": ""},
        {"language": "hu"},
    ):
        with pytest.raises(ValueError):
            ConsentTerms.from_json(bad)


def test_consent_terms_are_the_stricter_set_both_the_policy_and_the_gate_accept() -> None:
    stored = ConsentTerms.from_json(
        {"window_seconds": 7.5, "yes_digit": "a", "no_digit": 0, "prompt_version": "2026-11 HU/EN"}
    )
    assert stored.to_json() == {
        "window_seconds": 7.5,
        "yes_digit": "A",
        "no_digit": "0",
        "stop_digit": "9",
        "prompt_version": "2026-11 HU/EN",
    }
    whole = ConsentTerms.parse(ConsentTerms(window_seconds=15.0).to_json())
    assert whole.window_seconds == 15 and type(whole.window_seconds) is int  # read out as "15 seconds"
    assert ConsentTerms(prompt_version="v" * 40).prompt_version == "v" * 40
    for bad in ({"prompt_version": "v" * 41}, {"prompt_version": "hu\tv2"}, {"window_seconds": 120.5}):
        with pytest.raises(ConsentTermsError):
            ConsentTerms.from_json(bad)


# -- selection (pure) ------------------------------------------------------------------------------------------
@pytest.fixture
def world() -> World:
    w = World()
    acme = w.tenant("acme", "Acme Kft.", hints=["SP-HU-0042/Budapest Iroda"])
    helpdesk = w.number(acme, "+3612345678")
    w.number(acme, "+3612345", NumberKind.RANGE)
    w.number(acme, "201", NumberKind.EXTENSION)
    w.policy(acme, retention="contract_evidence", purpose="contract evidence")
    w.policy(acme, helpdesk, retention="utility_customer_service", purpose="customer service")
    w.tenant("gyor", "Győri Fuvar Kft.", hints=["SP-HU-0042/Gyor Telephely"])  # no policy of its own
    return w


def _decide(world: World, **context: Any) -> Decision:
    return decide(world.snapshot(), CallContext(**context))


def test_the_numbers_policy_beats_the_tenants_beats_the_systems(world: World) -> None:
    helpdesk = _decide(world, calling="06 30 123 4567", called="06 1 234 5678")
    assert (helpdesk.record, helpdesk.scope, helpdesk.basis, helpdesk.statute) == (
        True,
        ScopeKind.NUMBER,
        Basis.LEGAL_OBLIGATION,
        "Fgytv. 17/B §",
    )
    assert helpdesk.retention is not None and helpdesk.retention.statutory
    assert helpdesk.numbers == ("+36301234567", "+3612345678")
    assert (helpdesk.tenant_slug, helpdesk.tenant_number, helpdesk.direction) == (
        "acme",
        "+3612345678",
        INBOUND,
    )
    other_line = _decide(world, calling="06 30 123 4567", called="+36 1 234 5001")  # in the range
    assert (other_line.scope, other_line.retention and other_line.retention.code) == (
        ScopeKind.TENANT,
        "contract_evidence",
    )
    gyor = _decide(
        world, calling="sip:201@pbx", called="+36 30 123 4567", tenant_hint="SP-HU-0042/Gyor Telephely"
    )
    assert (gyor.tenant_slug, gyor.scope, gyor.purpose) == ("gyor", ScopeKind.SYSTEM, "quality assurance")
    nobody = _decide(world, calling="+44 20 7946 0958", called="+36 30 123 4567")
    assert (nobody.tenant_id, nobody.attributed_by, nobody.scope, nobody.record) == (
        None,
        AttributedBy.NONE,
        ScopeKind.SYSTEM,
        True,
    )


def test_a_ranges_policy_applies_to_every_number_in_it(world: World) -> None:
    acme = world.tenants[0]
    block = next(n for n in world.numbers if n.kind is NumberKind.RANGE)
    world.policy(acme, block, basis=Basis.CONSENT, retention="consent", purpose="training")
    decision = _decide(world, calling="+36 1 234 5001", called="06 30 123 4567", direction=OUTBOUND)
    assert (decision.scope, decision.basis, decision.tenant_number) == (
        ScopeKind.NUMBER,
        Basis.CONSENT,
        "+3612345",
    )
    assert decision.consent == ConsentTerms()


def test_a_direction_specific_policy_beats_both(world: World) -> None:
    acme = world.tenants[0]
    outbound = world.policy(acme, direction=PolicyDirection.OUTBOUND, record=False)
    out = _decide(world, calling="+36 1 234 5001", called="06 30 123 4567", direction=OUTBOUND)
    assert (out.record, out.reason, out.policy_id) == (False, DecisionReason.POLICY, outbound.id)
    inbound = _decide(world, calling="06 30 123 4567", called="+36 1 234 5001", direction=INBOUND)
    assert (inbound.record, inbound.retention and inbound.retention.code) == (True, "contract_evidence")


def test_a_scope_covering_only_the_other_direction_decides_not_recorded() -> None:
    w = World()
    acme = w.tenant("acme", "Acme Kft.")
    sales = w.number(acme, "+3612345678")
    w.policy(acme)  # tenant-wide, both directions
    w.policy(acme, sales, direction=PolicyDirection.INBOUND)
    out = decide(w.snapshot(), CallContext(calling="+3612345678", called="+36301234567", direction=OUTBOUND))
    # The number's scope has policies, so it decides alone: no fallback to the tenant's "both".
    assert (out.record, out.reason, out.scope) == (False, DecisionReason.DIRECTION, ScopeKind.NUMBER)
    unknown = decide(w.snapshot(), CallContext(calling="sip:201@x", called="+36301234567", tenant_hint=None))
    assert unknown.reason is DecisionReason.RECORDED  # unattributed: the system policy


def test_only_directional_policies_and_no_direction_is_not_recorded() -> None:
    w = World()
    acme = w.tenant("acme", "Acme Kft.", hints=["acme.voip.example.hu"])
    w.policy(acme, direction=PolicyDirection.INBOUND)
    w.policy(acme, direction=PolicyDirection.OUTBOUND, retention="contract_evidence")
    decision = decide(
        w.snapshot(),
        CallContext(calling="+36301234567", called="+36305550123", tenant_hint="ACME.voip.example.hu"),
    )
    assert (decision.record, decision.reason, decision.direction) == (
        False,
        DecisionReason.DIRECTION_UNKNOWN,
        None,
    )


def test_no_policy_anywhere_records_nothing() -> None:
    w = World(system_policy=False)
    decision = decide(w.snapshot(), CallContext(calling="+36301234567", called="+3612345678"))
    assert (decision.record, decision.reason, decision.scope, decision.basis) == (
        False,
        DecisionReason.NO_POLICY,
        None,
        None,
    )
    assert decision.numbers == ("+36301234567", "+3612345678")


def test_a_policy_missing_its_class_in_the_snapshot_records_nothing(world: World) -> None:
    acme = world.tenants[0]
    broken = world.policy(acme, direction=PolicyDirection.INBOUND)
    world.policies[-1] = replace(broken, retention_class_id=999)
    decision = _decide(world, calling="06 30 123 4567", called="+36 1 234 5001", direction=INBOUND)
    assert (decision.record, decision.reason) == (False, DecisionReason.INVALID_POLICY)


def test_a_decision_to_record_cannot_be_built_without_a_basis() -> None:
    with pytest.raises(ValueError, match="needs a policy, a basis"):
        Decision(record=True, reason=DecisionReason.RECORDED, attributed_by=AttributedBy.NONE, policy_id=1)


# -- properties (hypothesis) -----------------------------------------------------------------------------------
_SLUGS = ("acme", "gyor", "pecs")
_DIDS = ("+3612345678", "+3696555123", "+3672123456")
_OUTSIDE = ("+36301234567", "+442079460958", "201", "06 30 555 0123")
_SCOPE_ORDER = {ScopeKind.NUMBER: 0, ScopeKind.TENANT: 1, ScopeKind.SYSTEM: 2}
policy_specs = st.tuples(
    st.sampled_from(list(PolicyDirection)),
    st.booleans(),
    st.sampled_from(["quality_60d", "consent", "utility_customer_service", "none", "investment_services"]),
)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """Up to three tenants with one DID each and policies on any scope, any direction, any basis."""
    w = World(system_policy=draw(st.booleans()))
    for slug, did in zip(_SLUGS, _DIDS, strict=True):
        tenant = w.tenant(slug, slug.title(), hints=[f"SP-HU-0042/{slug}"])
        number = w.number(tenant, did)
        for scope_number in (None, number):
            directions: set[PolicyDirection] = set()
            for direction, record, retention in draw(st.lists(policy_specs, max_size=3)):
                if direction not in directions:  # one current policy per scope and direction
                    directions.add(direction)
                    w.policy(tenant, scope_number, direction=direction, record=record, retention=retention)
    return w


contexts = st.builds(
    CallContext,
    calling=st.sampled_from(_DIDS + _OUTSIDE),
    called=st.sampled_from(_DIDS + _OUTSIDE),
    direction=st.sampled_from([None, INBOUND, OUTBOUND]),
    tenant_hint=st.sampled_from([None, "SP-HU-0042/acme", "sp-hu-0042/GYOR", "SP-HU-0099/nobody"]),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), contexts)
def test_never_recorded_without_a_basis(world: World, context: CallContext) -> None:
    decision = decide(world.snapshot(), context)
    if decision.record:
        assert decision.basis is not None and decision.purpose and decision.retention is not None
        assert decision.policy_id is not None
        assert (decision.basis is Basis.LEGAL_OBLIGATION) == (decision.statute is not None)
        assert (decision.basis is Basis.CONSENT) == (decision.consent is not None)
        assert not decision.retention.statutory or decision.basis is Basis.LEGAL_OBLIGATION
    else:
        assert decision.reason is not DecisionReason.RECORDED


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), contexts)
def test_the_most_specific_scope_with_policies_always_decides(world: World, context: CallContext) -> None:
    snapshot = world.snapshot()
    decision = decide(snapshot, context)
    scopes_with_policies = []
    if decision.tenant_id is not None:
        if decision.tenant_number_id is not None and snapshot.policies(
            decision.tenant_id, decision.tenant_number_id
        ):
            scopes_with_policies.append(ScopeKind.NUMBER)
        if snapshot.policies(decision.tenant_id):
            scopes_with_policies.append(ScopeKind.TENANT)
    if snapshot.policies(None):
        scopes_with_policies.append(ScopeKind.SYSTEM)
    expected = min(scopes_with_policies, key=_SCOPE_ORDER.__getitem__, default=None)
    assert decision.scope is expected
    if expected is None:
        assert decision.reason is DecisionReason.NO_POLICY
    if decision.policy_id is not None:
        chosen = next(p for p in world.policies if p.id == decision.policy_id)
        assert chosen.scope is decision.scope
        assert chosen.direction in (PolicyDirection.BOTH, PolicyDirection(decision.direction or "both"))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), contexts)
def test_removing_a_numbers_policies_falls_back_to_the_tenants(world: World, context: CallContext) -> None:
    before = decide(world.snapshot(), context)
    if before.scope is not ScopeKind.NUMBER:
        return
    world.policies = [p for p in world.policies if p.number_id != before.tenant_number_id]
    after = decide(world.snapshot(), context)
    assert after.scope is not ScopeKind.NUMBER
    tenant_wide = world.snapshot().policies(before.tenant_id)
    if tenant_wide:
        assert after.scope is ScopeKind.TENANT
        assert after.policy_id in {p.id for p in tenant_wide.values()} or after.reason in (
            DecisionReason.DIRECTION,
            DecisionReason.DIRECTION_UNKNOWN,
        )
    else:
        assert after.scope in (ScopeKind.SYSTEM, None)


# -- the store -------------------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def policies(pool: asyncpg.Pool, clock: Clock) -> PolicyStore:
    return PolicyStore(pool, AuditLog(clock=clock), clock=clock)


@pytest.fixture
def tenants(pool: asyncpg.Pool, clock: Clock) -> TenantStore:
    return TenantStore(pool, AuditLog(clock=clock), clock=clock)


async def _audit(pool: asyncpg.Pool, prefix: str = "policy.") -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM audit_log WHERE action LIKE $1 ORDER BY seq", prefix + "%")
    return [dict(row) for row in rows]


async def test_the_install_records_under_the_seeded_system_policy(policies: PolicyStore) -> None:
    [seed] = await policies.current(PolicyScope.system())
    assert (seed.version, seed.direction, seed.basis, seed.retention_code, seed.created_by) == (
        1,
        PolicyDirection.BOTH,
        Basis.LEGITIMATE_INTEREST,
        "quality_60d",
        "install",
    )
    decision = decide(await policies.snapshot(), CallContext(calling="+36301234567", called="+3612345678"))
    assert (decision.record, decision.scope, decision.policy_id) == (True, ScopeKind.SYSTEM, seed.id)


async def test_a_change_is_a_new_version_and_the_old_one_stays_valid(
    policies: PolicyStore, pool: asyncpg.Pool
) -> None:
    [seed] = await policies.current(PolicyScope.system())
    recorded = await Catalogue(pool).create(new_recording(policy_id=seed.id, numbers=["+3612345678"]))
    changed = await policies.set(
        PolicyScope.system(), replace(QUALITY, retention="contract_evidence"), actor=ANNA
    )
    assert (changed.version, changed.retention_code, changed.created_by) == (
        2,
        "contract_evidence",
        ANNA.name,
    )
    assert changed.created_at == T0 + timedelta(seconds=1)  # the injected clock, not the database's
    history = await policies.history(PolicyScope.system())
    assert [(p.id, p.version, p.current) for p in history] == [(seed.id, 1, False), (changed.id, 2, True)]
    assert history[0].superseded_at == changed.created_at
    assert history[0].retention_code == "quality_60d"  # the old row is unchanged apart from its end
    # The recording still points at the version that decided it, and that row still exists.
    assert await pool.fetchval("SELECT policy_id FROM recordings WHERE id = $1", recorded.id) == seed.id
    assert await policies.get(seed.id, tenant_id=None) == history[0]
    [entry] = await _audit(pool)
    assert (entry["action"], entry["actor"], entry["object_id"]) == (
        "policy.change",
        ANNA.name,
        str(changed.id),
    )
    assert entry["details"]["old"]["retention"] == "quality_60d"
    assert entry["details"]["new"]["retention"] == "contract_evidence"
    assert entry["details"]["old"]["version"] == 1 and entry["details"]["new"]["version"] == 2


async def test_setting_the_current_policy_again_changes_nothing(
    policies: PolicyStore, pool: asyncpg.Pool
) -> None:
    [seed] = await policies.current(PolicyScope.system())
    again = await policies.set(PolicyScope.system(), QUALITY, actor=ANNA)
    assert again == seed
    assert await _audit(pool) == []


async def test_refused_policies_leave_no_trace(
    policies: PolicyStore, tenants: TenantStore, pool: asyncpg.Pool
) -> None:
    acme = await tenants.create(slug="acme", name="Acme Kft.", actor=ANNA)
    scope = PolicyScope.for_tenant(acme.id)
    with pytest.raises(PolicyRuleError, match="must name the statute"):
        await policies.set(scope, replace(UTILITY, statute=None), actor=ANNA)
    with pytest.raises(PolicyRuleError, match="statutory retention class"):
        await policies.set(scope, replace(QUALITY, retention="investment_services"), actor=ANNA)
    with pytest.raises(NotFoundError, match="no retention class 'quality_30d'"):
        await policies.set(scope, replace(QUALITY, retention="quality_30d"), actor=ANNA)
    assert await policies.current(scope) == []
    assert await _audit(pool) == []


async def test_a_tenants_own_class_is_preferred_to_the_preset_of_that_code(
    policies: PolicyStore, tenants: TenantStore, pool: asyncpg.Pool
) -> None:
    acme = await tenants.create(slug="acme", name="Acme Kft.", actor=ANNA)
    gyor = await tenants.create(slug="gyor", name="Győri Fuvar Kft.", actor=ANNA)
    own = await pool.fetchval(
        """
        INSERT INTO retention_classes (tenant_id, code, name, days, basis, source)
        VALUES ($1, 'consent', 'Consent, 2 years', 730, 'consent', 'Art. 6(1)(a); Acme DPIA 2026') RETURNING id
        """,
        acme.id,
    )
    mine = await policies.set(PolicyScope.for_tenant(acme.id), CONSENT, actor=ANNA)
    theirs = await policies.set(PolicyScope.for_tenant(gyor.id), CONSENT, actor=ANNA)
    preset = await policies.retention_class(None, "consent")
    assert (mine.retention_class_id, theirs.retention_class_id) == (own, preset.id)
    with pytest.raises(NotFoundError):  # the system scope sees presets only
        await policies.retention_class(None, "acme_only")


async def test_remove_falls_back_to_the_broader_scope(
    policies: PolicyStore, tenants: TenantStore, pool: asyncpg.Pool
) -> None:
    acme = await tenants.create(slug="acme", name="Acme Kft.", actor=ANNA)
    helpdesk = await tenants.add_number(acme.id, "06 1 234 5678", actor=ANNA)
    tenant_wide = await policies.set(
        PolicyScope.for_tenant(acme.id), replace(QUALITY, retention="contract_evidence"), actor=ANNA
    )
    number_scope = PolicyScope.for_number(acme.id, helpdesk.id)
    numbers_policy = await policies.set(number_scope, UTILITY, actor=ANNA)
    call = CallContext(calling="06 30 123 4567", called="+36 1 234 5678")
    first = decide(await policies.snapshot(), call)
    assert (first.scope, first.policy_id) == (ScopeKind.NUMBER, numbers_policy.id)
    ended = await policies.remove(number_scope, PolicyDirection.BOTH, actor=BENCE)
    assert ended.id == numbers_policy.id and ended.superseded_at is not None
    second = decide(await policies.snapshot(), call)
    assert (second.scope, second.policy_id) == (ScopeKind.TENANT, tenant_wide.id)
    await policies.remove(PolicyScope.for_tenant(acme.id), PolicyDirection.BOTH, actor=BENCE)
    third = decide(await policies.snapshot(), call)
    assert third.scope is ScopeKind.SYSTEM
    await policies.remove(PolicyScope.system(), PolicyDirection.BOTH, actor=BENCE)
    fourth = decide(await policies.snapshot(), call)
    assert (fourth.record, fourth.reason) == (False, DecisionReason.NO_POLICY)
    with pytest.raises(NotFoundError, match="no current both policy"):
        await policies.remove(PolicyScope.system(), PolicyDirection.BOTH, actor=BENCE)
    removals = await _audit(pool, "policy.remove")
    assert [(e["actor"], e["details"]["scope"]) for e in removals] == [
        ("cli:bence", "number"),
        ("cli:bence", "tenant"),
        ("cli:bence", "system"),
    ]
    assert [len(await policies.history(s)) for s in (number_scope, PolicyScope.for_tenant(acme.id))] == [1, 1]


async def test_one_tenant_cannot_reach_anothers_policies(
    policies: PolicyStore, tenants: TenantStore, pool: asyncpg.Pool
) -> None:
    acme = await tenants.create(slug="acme", name="Acme Kft.", actor=ANNA)
    gyor = await tenants.create(slug="gyor", name="Győri Fuvar Kft.", actor=ANNA)
    helpdesk = await tenants.add_number(acme.id, "+36 1 234 5678", actor=ANNA)
    acme_policy = await policies.set(PolicyScope.for_number(acme.id, helpdesk.id), UTILITY, actor=ANNA)
    stolen_scope = PolicyScope.for_number(gyor.id, helpdesk.id)  # gyor naming acme's number
    with pytest.raises(NotFoundError):
        await policies.set(stolen_scope, QUALITY, actor=ANNA)
    with pytest.raises(NotFoundError):
        await policies.remove(stolen_scope, PolicyDirection.BOTH, actor=ANNA)
    with pytest.raises(NotFoundError):
        await policies.history(stolen_scope)
    with pytest.raises(NotFoundError):
        await policies.get(acme_policy.id, tenant_id=gyor.id)
    assert await policies.list_current(gyor.id) == []
    assert [p.id for p in await policies.list_current(acme.id)] == [acme_policy.id]
    assert (await policies.current(PolicyScope.for_number(acme.id, helpdesk.id)))[0].id == acme_policy.id


async def test_concurrent_changes_get_consecutive_versions(
    policies: PolicyStore, tenants: TenantStore, pool: asyncpg.Pool
) -> None:
    acme = await tenants.create(slug="acme", name="Acme Kft.", actor=ANNA)
    scope = PolicyScope.for_tenant(acme.id)
    await asyncio.gather(
        policies.set(scope, QUALITY, actor=ANNA),
        policies.set(scope, replace(QUALITY, retention="contract_evidence"), actor=BENCE),
        policies.set(scope, replace(QUALITY, format="opus"), actor=BENCE),
    )
    history = await policies.history(scope)
    assert [p.version for p in history] == [1, 2, 3]
    assert [p.current for p in history] == [False, False, True]


async def test_changes_are_announced_to_listening_servers(
    policies: PolicyStore, tenants: TenantStore, pool: asyncpg.Pool, pg: Any
) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = await asyncpg.connect(pg.dsn)
    try:
        await listener.add_listener(POLICY_CHANNEL, lambda *args: received.put_nowait(json.loads(args[3])))
        acme = await tenants.create(slug="acme", name="Acme Kft.", actor=ANNA)  # no attribution change yet
        helpdesk = await tenants.add_number(acme.id, "+36 1 234 5678", actor=ANNA)
        assert await asyncio.wait_for(received.get(), 10) == {"what": "number", "tenant_id": str(acme.id)}
        with pytest.raises(PolicyRuleError):  # rolled back: never announced
            await policies.set(PolicyScope.for_tenant(acme.id), replace(UTILITY, statute=None), actor=ANNA)
        await policies.set(PolicyScope.for_number(acme.id, helpdesk.id), UTILITY, actor=ANNA)
        assert await asyncio.wait_for(received.get(), 10) == {"what": "policy", "tenant_id": str(acme.id)}
        await policies.remove(PolicyScope.system(), PolicyDirection.BOTH, actor=ANNA)
        assert await asyncio.wait_for(received.get(), 10) == {"what": "policy", "tenant_id": None}
        await tenants.add_source(acme.id, "192.0.2.0/28", actor=ANNA)
        assert await asyncio.wait_for(received.get(), 10) == {"what": "source", "tenant_id": str(acme.id)}
        assert received.empty()
    finally:
        await listener.close()


async def test_the_snapshot_holds_what_attribution_needs(
    policies: PolicyStore, tenants: TenantStore, pool: asyncpg.Pool
) -> None:
    acme = await tenants.create(
        slug="acme", name="Acme Kft.", hints=["SP-HU-0042/Budapest Iroda"], actor=ANNA
    )
    gyor = await tenants.create(slug="gyor", name="Győri Fuvar Kft.", actor=ANNA)
    await tenants.add_number(acme.id, "+36 1 23x xxxx", kind=NumberKind.RANGE, actor=ANNA)
    await tenants.add_number(gyor.id, "201", kind=NumberKind.EXTENSION, actor=ANNA)
    await tenants.add_source(gyor.id, "198.51.100.0/28", actor=ANNA)
    await policies.set(PolicyScope.for_tenant(gyor.id), CONSENT, actor=ANNA)
    snapshot = await policies.snapshot()
    by_range = decide(snapshot, CallContext(calling="06 30 123 4567", called="06 1 234 5678"))
    assert (by_range.tenant_slug, by_range.attributed_by, by_range.scope) == (
        "acme",
        AttributedBy.RANGE,
        ScopeKind.SYSTEM,
    )
    by_source = decide(
        snapshot, CallContext(calling="sip:201@10.1.1.1", called="+36 30 123 4567", source_ip="198.51.100.3")
    )
    assert (by_source.tenant_slug, by_source.attributed_by, by_source.basis) == (
        "gyor",
        AttributedBy.SOURCE,
        Basis.CONSENT,
    )
    assert (by_source.tenant_party and by_source.tenant_party.value, by_source.direction) == (
        "calling",
        OUTBOUND,
    )
    assert by_source.consent == ConsentTerms()
    assert by_source.numbers == ("201", "+36301234567")
