"""The settings forms, the holds pages and the audited reads, through the app without a browser (the fixtures
are :mod:`tests.e2e.portal_app`'s): what each form makes of real input, the services' refusals shown on the
page in the reader's language, another tenant's numbers and holds (audited 404 pages), the two-person release,
and one audit entry per view of a list of holds, of cases or of the audit log itself.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from siprec_server.api import ApiServices
from storage.access_rules import DEADLINE_ZONE
from storage.audit import AuditEntry
from storage.policies import PolicyScope
from storage.principal import Role
from storage.scope import ALL_TENANTS
from storage.tenant_models import NumberKind, Tenant
from tests.unit.api.test_recordings_api import LANDLINE, record_call

from .portal_app import OPERATOR, Reader

POLICY = {
    "scope": "tenant",
    "direction": "both",
    "record": "yes",
    "basis": "legitimate_interest",
    "statute": "",
    "purpose": "quality assurance",
    "retention": "quality_60d",
    "format": "flac",
    "window_seconds": "10",
    "yes_digit": "1",
    "no_digit": "2",
    "stop_digit": "9",
    "prompt_version": "v1",
}
REASON = "NAIH complaint 2026/1187: keep every call of the complainant"


def alert(response: httpx.Response) -> str:
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', response.text, flags=re.S)
    assert found is not None, response.text[:500]
    return html.unescape(found.group(1))


def redirected(response: httpx.Response, location: str) -> None:
    assert (response.status_code, response.headers.get("location")) == (303, location), response.text[:500]


async def audit_rows(pool: asyncpg.Pool, action: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM audit_log WHERE action = $1 ORDER BY seq", action
    )
    return rows


async def test_a_policy_version_from_the_form_and_the_rules_it_breaks_shown_on_the_page(
    services: ApiServices, acme: Tenant, globex: Tenant, reader: Any
) -> None:
    admin: Reader = await reader(services, acme, Role.ADMIN)
    saved = "/settings?notice=settings.policy_saved#policies-title"
    redirected(await admin.post("/settings/policies", **POLICY), saved)
    redirected(
        await admin.post("/settings/policies", **POLICY),
        "/settings?notice=settings.policy_unchanged#policies-title",
    )
    redirected(await admin.post("/settings/policies", **{**POLICY, "purpose": "complaint handling"}), saved)
    (current,) = await services.policies.list_current(acme.id)
    assert (current.version, current.purpose, current.retention_code) == (
        2,
        "complaint handling",
        "quality_60d",
    )
    assert current.created_by == "admin@acme.example" and current.consent is None
    page = await admin.http.get("/settings?notice=settings.policy_saved")
    assert "The new policy version is in force." in page.text
    row = re.search(r'<table class="list" id="policies">.*?</table>', page.text, flags=re.S)
    assert (
        row is not None and "complaint handling" in row.group(0) and "quality assurance" not in row.group(0)
    )
    assert re.search(r'class="num">2</td>', row.group(0))

    refusals = [
        ({"basis": "legal_obligation"}, "a legal obligation must name the statute"),
        ({"retention": "ten_years"}, "no retention class 'ten_years'"),
        ({"retention": "utility_customer_service"}, "it serves only a legal obligation basis"),
        ({"basis": "consent", "retention": "consent", "no_digit": "1"}, "three different keys"),
        ({"record": "no"}, "a policy that records nothing takes no a basis, a purpose, a retention class"),
        ({"format": "ogg"}, "format 'ogg' is not one of flac, wav, opus, mp3"),
    ]
    for change, says in refusals:
        refused = await admin.post("/settings/policies", **{**POLICY, **change})
        assert refused.status_code == 422, (change, refused.text[:300])
        assert alert(refused).startswith("The policy cannot be saved: ") and says in alert(refused), change
        assert 'value="quality assurance"' in refused.text  # the form keeps what was typed
    hungarian = await admin.http.post(
        "/settings/policies",
        data={"csrf_token": admin.csrf, **POLICY, "basis": "legal_obligation"},
        headers={"Accept-Language": "hu"},
    )
    assert hungarian.status_code == 422 and alert(hungarian).startswith("A szabály nem menthető: ")
    assert (await services.policies.list_current(acme.id))[0].version == 2  # nothing refused was stored

    consent = {
        **POLICY,
        "basis": "consent",
        "retention": "consent",
        "purpose": "service",
        "prompt_version": "2026-11 HU",
    }
    redirected(await admin.post("/settings/policies", **consent), saved)
    terms = (await services.policies.list_current(acme.id))[0].consent
    assert terms is not None and (terms.prompt_version, terms.window_seconds) == ("2026-11 HU", 10)
    for malformed in ({"direction": "sideways"}, {"basis": "contract"}, {"scope": "-1"}):
        assert (await admin.post("/settings/policies", **{**POLICY, **malformed})).status_code == 400

    ours = await services.tenants.add_number(acme.id, "06 1 234 5678", actor=OPERATOR)
    number_policy = {**POLICY, "scope": str(ours.id), "direction": "inbound"}
    redirected(await admin.post("/settings/policies", **number_policy), saved)
    scoped = await services.policies.current(PolicyScope.for_number(acme.id, ours.id))
    assert [(p.number_id, p.direction.value, p.version) for p in scoped] == [(ours.id, "inbound", 1)]
    theirs = await services.tenants.add_number(globex.id, "+36 1 987 6543", actor=OPERATOR)
    foreign = await admin.post("/settings/policies", **{**POLICY, "scope": str(theirs.id)})
    assert foreign.status_code == 404 and "No such page or item." in foreign.text
    assert await services.policies.list_current(globex.id) == []
    denied = await audit_rows(services.pool, "tenant_number.access_denied")
    assert [(r["tenant_id"], r["object_id"], r["details"]["via"]) for r in denied] == [
        (acme.id, str(theirs.id), "portal")
    ]
    changes = await audit_rows(services.pool, "policy.change")
    assert {r["actor"] for r in changes} == {"admin@acme.example"} and len(changes) == 4


async def test_retention_periods_of_the_tenants_own_and_the_options_offered_on_a_recording(
    services: ApiServices, acme: Tenant, globex: Tenant, reader: Any
) -> None:
    admin: Reader = await reader(services, acme, Role.ADMIN)
    own = {
        "code": "Complaints_1y",
        "name": "Complaint handling, 1 year",
        "days": "365",
        "basis": "legitimate_interest",
        "source": "balancing test of 2026-11-02: complaints are answered within a year",
    }
    redirected(
        await admin.post("/settings/retention-classes", **own),
        "/settings?notice=settings.class_created#retention-title",
    )
    await services.retention.create_class(
        globex.id, code="globex_90d", name="Globex 90 days", days=90, actor=OPERATOR
    )
    for change, says in [
        ({}, "this tenant already has a retention class complaints_1y"),
        ({"code": "quality_60d"}, "quality_60d is the code of a preset retention class"),
        (
            {"code": "legal_5y", "basis": "legal_obligation"},
            "a legal-obligation period is a statutory preset",
        ),
        ({"code": "forever", "days": "36500"}, "a tenant's retention period is 0 to 3653 days"),
    ]:
        refused = await admin.post("/settings/retention-classes", **{**own, **change})
        assert refused.status_code == 422 and says in alert(refused), change
        assert 'value="Complaint handling, 1 year"' in refused.text
    assert (await admin.post("/settings/retention-classes", **{**own, "days": "a year"})).status_code == 400

    options = {
        "default": "quality_60d",
        "other1": "none",
        "other2": "complaints_1y",
        "other3": "",
        "other4": "",
    }
    redirected(
        await admin.post("/settings/retention-options", **options),
        "/settings?notice=settings.options_saved#retention-title",
    )
    chosen = await services.retention.options(acme.id)
    assert [c.code for c in chosen.all] == ["quality_60d", "none", "complaints_1y"]
    for change, says in [
        ({"other3": "quality_60d"}, "retention class quality_60d is offered twice"),
        ({"other3": "globex_90d"}, "no retention class 'globex_90d'"),  # another tenant's: unknown here
        ({"default": ""}, "no retention class ''"),
    ]:
        refused = await admin.post("/settings/retention-options", **{**options, **change})
        assert refused.status_code == 422 and says in alert(refused), change
    assert [c.code for c in (await services.retention.options(acme.id)).all] == [
        "quality_60d",
        "none",
        "complaints_1y",
    ]
    settings = await admin.http.get("/settings")
    form = re.search(r'<form [^>]*id="options-form">.*?</form>', settings.text, flags=re.S)
    assert form is not None  # the options form shows them chosen, and an empty place
    assert re.findall(r'<option value="([a-z0-9_]*)" selected>', form.group(0)) == [
        "quality_60d",
        "none",
        "complaints_1y",
    ]

    call = await record_call(services, acme, seconds=1.0)
    shown = await admin.http.get(f"/recordings/{call.ref}")
    select = re.search(r'<select id="retention_class".*?</select>', shown.text, flags=re.S)
    assert select is not None
    assert re.findall(r'<option value="([a-z0-9_]+)"', select.group(0)) == [
        "quality_60d",
        "none",
        "complaints_1y",
    ]
    kept = await admin.post(f"/recordings/{call.ref}/retention", retention_class="complaints_1y")
    assert kept.status_code == 303 and kept.headers["location"].startswith(f"/recordings/{call.ref}?was=")
    assert (await services.catalogue.get(call.recording.id)).retention_class == "complaints_1y"  # type: ignore[union-attr]


async def test_numbers_added_in_any_form_and_removed_and_another_tenants_refused(
    services: ApiServices, acme: Tenant, globex: Tenant, reader: Any
) -> None:
    admin: Reader = await reader(services, acme, Role.ADMIN)
    added = "/settings?notice=settings.number_added#numbers-title"
    redirected(
        await admin.post("/settings/numbers", kind="number", value="06 (1) 234-5678", label="front desk"),
        added,
    )
    redirected(await admin.post("/settings/numbers", kind="range", value="+36 1 234 56xx"), added)
    numbers = {n.value: n for n in await services.tenants.numbers(acme.id)}
    assert set(numbers) == {LANDLINE, "+36123456"} and numbers[LANDLINE].label == "front desk"
    page = await admin.http.get("/settings")
    assert f'<td data-label="Number">{LANDLINE}</td>' in page.text

    await services.tenants.add_number(globex.id, "+36 1 987 6543", actor=OPERATOR)
    taken = await admin.post("/settings/numbers", kind="number", value="06 1 987 6543")
    assert taken.status_code == 409 and "Globex" not in taken.text and "globex" not in alert(taken)
    again = await admin.post("/settings/numbers", kind="number", value="+3612345678")
    assert again.status_code == 409 and alert(again).startswith("This cannot be done: ")
    bad = await admin.post("/settings/numbers", kind="number", value="not a number")
    assert bad.status_code == 422 and 'value="not a number"' in bad.text
    assert (await admin.post("/settings/numbers", kind="fax", value="201")).status_code == 400

    removed = "/settings?notice=settings.number_removed#numbers-title"
    redirected(await admin.post(f"/settings/numbers/{numbers['+36123456'].id}/remove"), removed)
    assert [n.value for n in await services.tenants.numbers(acme.id)] == [LANDLINE]
    theirs = (await services.tenants.numbers(globex.id))[0]
    for path in (
        f"/settings/numbers/{theirs.id}/remove",
        "/settings/numbers/0/remove",
        "/settings/numbers/x/remove",
    ):
        refused = await admin.post(path)
        assert refused.status_code == 404 and "No such page or item." in refused.text, path
    assert len(await services.tenants.numbers(globex.id)) == 1
    denied = await audit_rows(services.pool, "tenant_number.access_denied")
    assert [r["object_id"] for r in denied] == [str(theirs.id)]  # a malformed id names no number
    added_by = [
        r["actor"] for r in await audit_rows(services.pool, "number.add") if r["tenant_id"] == acme.id
    ]
    assert added_by == ["admin@acme.example"] * 2


async def test_a_number_hold_from_its_page_and_a_release_by_two_different_people(
    services: ApiServices, acme: Tenant, globex: Tenant, reader: Any
) -> None:
    call = await record_call(services, acme, seconds=1.0)  # started 2026-11-28 15:03 Budapest time
    dpo: Reader = await reader(services, acme, Role.DPO)
    admin: Reader = await reader(services, acme, Role.ADMIN)
    hold_form = {"number": "06 (1) 234-5678", "from": "2026-11-28", "until": "2026-11-28", "reason": REASON}
    placed = await dpo.post("/holds", **hold_form)
    assert placed.status_code == 303
    hold_id = re.fullmatch(r"/holds/([0-9a-f-]{36})\?notice=holds.placed", placed.headers["location"])
    assert hold_id is not None
    hold = await services.holds.get(acme.id, UUID(hold_id.group(1)))
    assert (hold.number, hold.reason, hold.placed_by) == (LANDLINE, REASON, "dpo@acme.example")
    assert (hold.from_at, hold.until_at) == (  # whole Budapest days, both included
        datetime(2026, 11, 28, tzinfo=DEADLINE_ZONE),
        datetime(2026, 11, 29, tzinfo=DEADLINE_ZONE),
    )
    shown = await dpo.http.get(placed.headers["location"])
    assert "The hold is in place" in shown.text and "in force" in shown.text and LANDLINE in shown.text

    for change, status, says in [
        ({"from": "28/11/2026"}, 422, "Write days as YYYY-MM-DD."),
        ({"from": "2026-11-29"}, 422, "a hold's time range must start before it ends"),
        ({"number": "not a number"}, 422, "'not a number' is not a phone number"),
        ({"reason": "   "}, 422, "a hold needs a reason"),
    ]:
        refused = await dpo.post("/holds", **{**hold_form, **change})
        assert refused.status_code == status and says in alert(refused), change
    assert len(await services.holds.list(acme.id)) == 1

    recording_page = f"/recordings/{call.ref}"
    asked = await dpo.post(f"/holds/{hold.id}/release-request", next=recording_page)
    redirected(asked, f"{recording_page}?notice=holds.release_requested")
    page = await dpo.http.get(asked.headers["location"])
    assert f'action="/holds/{hold.id}/release-approval"' in page.text and "Release requested" in page.text
    same = await dpo.post(f"/holds/{hold.id}/release-approval", next=recording_page)
    assert same.status_code == 409
    assert alert(same) == "dpo@acme.example asked for this release, so a different person must approve it."
    assert f'href="{recording_page}"' in same.text  # back to where the form was
    assert (await services.holds.get(acme.id, hold.id)).released_at is None
    redirected(
        await admin.post(f"/holds/{hold.id}/release-approval"), f"/holds/{hold.id}?notice=holds.released"
    )
    released = await services.holds.get(acme.id, hold.id)
    assert (released.release_requested_by, released.released_by) == ("dpo@acme.example", "admin@acme.example")
    late = await admin.post(f"/holds/{hold.id}/release-request")
    assert late.status_code == 422 and "was already released by admin@acme.example" in alert(late)
    assert (await dpo.http.get("/holds")).text.count(f'href="/holds/{hold.id}"') == 0  # in force only
    assert (await dpo.http.get("/holds?state=all")).text.count(f'href="/holds/{hold.id}"') == 1


async def test_another_tenants_hold_and_the_operators_are_not_found_and_audited(
    services: ApiServices, acme: Tenant, globex: Tenant, reader: Any
) -> None:
    call = await record_call(services, acme, seconds=1.0)
    theirs = await services.holds.place_on_number(globex.id, "+3612345678", reason=REASON, actor=OPERATOR)
    operators = await services.holds.place_on_number(
        ALL_TENANTS, "+3612345678", reason=REASON, actor=OPERATOR
    )
    ours = await services.holds.place_on_recording(acme.id, call.recording.id, reason=REASON, actor=OPERATOR)
    admin: Reader = await reader(services, acme, Role.ADMIN)
    for hold_id in (theirs.hold.id, operators.hold.id, uuid4()):
        for response in (
            await admin.http.get(f"/holds/{hold_id}"),
            await admin.post(f"/holds/{hold_id}/release-request"),
            await admin.post(f"/holds/{hold_id}/release-approval"),
        ):
            assert response.status_code == 404 and "No such page or item." in response.text
    assert (await admin.http.get("/holds/not-a-uuid")).status_code == 404
    denied = await audit_rows(services.pool, "hold.access_denied")
    assert len(denied) == 9 and {r["tenant_id"] for r in denied} == {acme.id}
    assert (await services.holds.get(globex.id, theirs.hold.id)).release_requested_by is None
    listed = (await admin.http.get("/holds")).text
    assert str(ours.hold.id) in listed and str(theirs.hold.id) not in listed
    assert str(operators.hold.id) not in listed
    # The recording page lists both holds restricting the call; only the tenant's own can be released there.
    page = (await admin.http.get(f"/recordings/{call.ref}")).text
    listed_holds = re.search(r'<ul class="holds" id="hold-list">.*?</ul>', page, flags=re.S)
    assert listed_holds is not None and listed_holds.group(0).count("<li>") == 2
    assert f'action="/holds/{ours.hold.id}/release-request"' in page
    assert f"/holds/{operators.hold.id}" not in page


async def test_each_view_of_the_holds_the_cases_and_the_audit_log_is_one_audit_entry(
    services: ApiServices, acme: Tenant, globex: Tenant, reader: Any
) -> None:
    call = await record_call(services, acme, seconds=1.0)
    await services.audit.record(
        services.pool,
        AuditEntry(
            actor=OPERATOR,
            action="recording.note",
            tenant_id=acme.id,
            object_kind="recording",
            object_id=str(call.recording.id),
            details={"note": "<b>Kovács Éva</b> asked", "count": 2, "nested": {"ok": True}},
        ),
    )
    auditor: Reader = await reader(services, acme, Role.AUDITOR)
    first = await auditor.http.get("/audit")
    assert "audit.list" not in first.text  # a view does not list itself
    second = await auditor.http.get("/audit")
    assert second.text.count("<code>audit.list</code>") == 1
    reads = await audit_rows(services.pool, "audit.list")
    assert [(r["actor"], r["tenant_id"], r["object_kind"]) for r in reads] == [
        ("auditor@acme.example", acme.id, None)
    ] * 2
    assert reads[0]["details"]["via"] == "portal" and reads[0]["details"]["by"] == []
    entry = next(
        found
        for found in re.finditer(
            r"<details><summary>(.*?)</summary><pre>(.*?)</pre></details>", second.text, re.S
        )
        if "Kovács" in found.group(1)
    )
    assert "&lt;b&gt;Kovács Éva&lt;/b&gt;" in entry.group(1)  # escaped, and not as \\u escapes
    assert json.loads(html.unescape(entry.group(2))) == {
        "count": 2,
        "nested": {"ok": True},
        "note": "<b>Kovács Éva</b> asked",
    }
    filtered = await auditor.http.get("/audit", params={"action": "recording.note", "actor": "cli:operator"})
    assert filtered.text.count("<details>") == 1
    assert (await audit_rows(services.pool, "audit.list"))[-1]["details"]["by"] == ["action", "actor"]

    # The recording page's trail is a read of the log too; its entry names no object, so it stays off the trail.
    admin: Reader = await reader(services, acme, Role.ADMIN)
    for _ in range(2):
        page = await admin.http.get(f"/recordings/{call.ref}")
        trail = re.search(r'<table class="list" id="trail">.*?</table>', page.text, flags=re.S)
        assert trail is not None and "audit.list" not in trail.group(0)
    trail_reads = [
        r for r in await audit_rows(services.pool, "audit.list") if r["actor"] == "admin@acme.example"
    ]
    assert [r["details"]["by"] for r in trail_reads] == [["object_kind", "object_id"]] * 2

    dpo: Reader = await reader(services, acme, Role.DPO)
    await services.access.open(acme.id, requester="Nagy Anna", number=LANDLINE, actor=OPERATOR)
    await services.access.open(globex.id, requester="Kiss Péter", number=LANDLINE, actor=OPERATOR)
    assert "Nagy Anna" in (await dpo.http.get("/access-requests")).text
    await services.holds.place_on_number(acme.id, LANDLINE, reason=REASON, actor=OPERATOR)
    assert REASON in (await dpo.http.get("/holds?state=all")).text
    cases = await audit_rows(services.pool, "access_request.list")
    holds = await audit_rows(services.pool, "hold.list")
    assert [(r["actor"], r["tenant_id"], dict(r["details"])) for r in cases] == [
        ("dpo@acme.example", acme.id, {"state": "open", "listed": 1, "via": "portal"})
    ]
    assert [(r["actor"], dict(r["details"])) for r in holds] == [
        ("dpo@acme.example", {"state": "all", "listed": 1, "via": "portal"})
    ]
    viewer: Reader = await reader(services, acme, Role.VIEWER)
    for path in ("/audit", "/holds", "/access-requests"):
        assert (await viewer.http.get(path)).status_code == 403
    assert len(await audit_rows(services.pool, "audit.list")) == 5  # a refused page read nothing


async def test_every_new_form_needs_its_csrf_token(services: ApiServices, acme: Tenant, reader: Any) -> None:
    admin: Reader = await reader(services, acme, Role.ADMIN)
    hold = await services.holds.place_on_number(acme.id, LANDLINE, reason=REASON, actor=OPERATOR)
    number = await services.tenants.add_number(acme.id, "201", actor=OPERATOR, kind=NumberKind.EXTENSION)
    forms = {
        "/settings/policies": POLICY,
        "/settings/retention-options": {"default": "none"},
        "/settings/retention-classes": {"code": "x", "name": "x", "days": "1", "source": "x"},
        "/settings/numbers": {"kind": "number", "value": "+3613456789"},
        f"/settings/numbers/{number.id}/remove": {},
        "/holds": {"number": LANDLINE, "reason": REASON},
        f"/holds/{hold.hold.id}/release-request": {},
    }
    for path, fields in forms.items():
        for token in ({}, {"csrf_token": "forged"}):
            refused = await admin.http.post(path, data={**fields, **token})
            assert refused.status_code == 403 and "The form could not be verified." in refused.text, path
    assert await services.policies.list_current(acme.id) == []
    assert (await services.retention.options(acme.id)).default is None
    assert [n.value for n in await services.tenants.numbers(acme.id)] == ["201"]
    assert [h.id for h in await services.holds.list(acme.id)] == [hold.hold.id]
    assert (await services.holds.get(acme.id, hold.hold.id)).release_requested_by is None


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.AUDITOR, Role.VIEWER])
async def test_a_role_without_the_permission_changes_nothing(
    services: ApiServices, acme: Tenant, reader: Any, role: Role
) -> None:
    client: Reader = await reader(services, acme, role)
    hold = await services.holds.place_on_number(acme.id, LANDLINE, reason=REASON, actor=OPERATOR)
    for path, fields in {
        "/settings/policies": POLICY,
        "/settings/numbers": {"kind": "number", "value": "+3613456789"},
        f"/holds/{hold.hold.id}/release-request": {},
        f"/holds/{hold.hold.id}": None,
    }.items():
        response = await (client.http.get(path) if fields is None else client.post(path, **fields))
        assert response.status_code == 403 and "Your role does not give access" in response.text, path
    assert (
        await services.policies.list_current(acme.id) == [] and await services.tenants.numbers(acme.id) == []
    )
