"""Settings and legal holds in headless Chromium against the real server of tests/e2e/conftest.py (the same
`site` as test_portal.py, whose tests run first: this module changes the policy, the retention options and,
while it runs, holds Acme's number).

An administrator makes the next version of the tenant's policy and sees it listed; creates a period of the
tenant's own, offers it and picks it for a recorded call; holds a number's calls and asks for the release,
and is refused when approving it alone; a data-protection officer approves it. Another tenant's hold is a
404 page. Every page must load without a console error (a Content-Security-Policy violation would be one).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from playwright.sync_api import Page, expect

from storage.access_rules import DEADLINE_ZONE

from .conftest import GLOBEX_NUMBER, Shots, Site, log_in

PURPOSE = "quality assurance and complaint handling"
REASON = "NAIH complaint 2026/1187: keep every call of the complainant"


def _phone_fits(page: Page) -> bool:
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    fits: bool = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    return fits


def test_a_policy_change_is_listed_as_the_next_version(page: Page, site: Site, shots: Shots) -> None:
    log_in(page, site, site.admin)
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Settings").click()
    tenant_wide = page.locator("#policies tbody tr").filter(has_text="the whole subscriber")
    before = [int(v) for v in tenant_wide.locator("td.num").all_inner_texts()]

    form = page.locator("#policy-form")
    form.get_by_label("Scope").select_option(label="the whole subscriber")
    form.get_by_label("Direction").select_option("both")
    form.get_by_label("Basis").select_option("legal_obligation")  # without its statute: refused
    form.get_by_label("Purpose").fill(PURPOSE)
    form.get_by_label("Retention").select_option("quality_60d")
    form.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "The policy cannot be saved: a legal obligation must name the statute"
    )
    expect(form.get_by_label("Purpose")).to_have_value(PURPOSE)  # what was typed is kept

    form.get_by_label("Basis").select_option("legitimate_interest")
    form.get_by_role("button", name="Save policy").click()
    page.wait_for_url("**/settings?notice=settings.policy_saved**")
    expect(page.get_by_role("status")).to_have_text("The new policy version is in force.")
    row = page.locator("#policies tbody tr").filter(has_text=PURPOSE)
    expect(row).to_have_count(1)
    expect(row.locator("td.num")).to_have_text(str(max(before, default=0) + 1))
    expect(row).to_contain_text(site.admin.email)
    shots.save(page, "settings", for_docs=True)
    assert _phone_fits(page)


def test_an_own_retention_period_is_offered_and_picked_for_a_call(page: Page, site: Site) -> None:
    log_in(page, site, site.admin)
    page.goto(site.url("/settings"))
    period = page.locator("#class-form")
    period.get_by_label("Name").fill("Complaint handling, 1 year")
    period.get_by_label("Code").fill("complaints_1y")
    period.get_by_label("Days kept").fill("365")
    period.get_by_label("Why this long").fill("balancing test of 2026-11-02: complaints close within a year")
    period.get_by_role("button", name="Create period").click()
    expect(page.get_by_role("status")).to_have_text("The retention period is created; it can now be offered.")

    options = page.locator("#options-form")
    places = ["Option 1", "Option 2", "Option 3", "Option 4"]
    empty = next(p for p in places if options.get_by_label(p, exact=True).input_value() == "")
    options.get_by_label(empty, exact=True).select_option("complaints_1y")
    options.get_by_role("button", name="Save periods").press("Enter")  # from the keyboard
    expect(page.get_by_role("status")).to_have_text("The selectable retention periods are saved.")
    expect(page.locator("#options")).to_contain_text("complaints_1y")

    call = site.acme_calls[0]
    page.goto(site.url(f"/recordings/{call['reference']}"))
    selector = page.get_by_label("Change the retention period")
    offered = selector.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert "complaints_1y" in offered
    selector.select_option("complaints_1y")
    page.get_by_role("button", name="Save retention").click()
    page.wait_for_url(re.compile(r"was="))
    expect(page.locator("#retention-class")).to_have_text("Complaint handling, 1 year")
    expires = datetime.fromisoformat(str(page.locator("#expires-at").get_attribute("datetime")))
    assert expires - datetime.fromisoformat(call["started_at"]) == timedelta(days=365)


def test_a_number_hold_needs_a_second_person_to_release_it(page: Page, site: Site, shots: Shots) -> None:
    call = site.acme_calls[0]
    day = datetime.fromisoformat(call["started_at"]).astimezone(DEADLINE_ZONE).date().isoformat()
    log_in(page, site, site.admin)
    page.get_by_role("link", name="Legal holds").click()
    page.get_by_label("Phone number").fill("06 1 234 5678")
    page.get_by_label("From day").fill(day)
    page.get_by_label("To day").fill(day)
    page.get_by_label("Reason").fill(REASON)
    page.get_by_label("Reason").press("Enter")
    page.wait_for_url(re.compile(r"/holds/[0-9a-f-]{36}\?notice=holds.placed$"))
    hold_url = page.url.split("?", 1)[0]
    expect(page.get_by_role("status")).to_contain_text("The hold is in place")
    expect(page.get_by_role("heading", level=2)).to_contain_text("+3612345678")
    expect(page.locator("#hold-state")).to_have_text("in force")

    page.goto(site.url(f"/recordings/{call['reference']}"))
    expect(page.locator("#held")).to_be_visible()
    page.locator("#hold-list").get_by_role("button", name="Request release").click()
    page.wait_for_url(f"**/recordings/{call['reference']}?notice=holds.release_requested")
    expect(page.get_by_role("status")).to_contain_text("Release requested.")
    page.locator("#hold-list").get_by_role("button", name="Approve release").click()  # the same person
    expect(page.get_by_role("alert")).to_have_text(
        f"{site.admin.email} asked for this release, so a different person must approve it."
    )
    expect(page.locator("#hold-state")).to_contain_text("a second person must approve")

    page.get_by_role("button", name="Log out").click()
    log_in(page, site, site.dpo)
    page.goto(site.url("/holds"))
    row = page.locator("#holds tbody tr").filter(has_text=REASON)
    expect(row).to_contain_text(f"{site.admin.email} asked for its release")
    shots.save(page, "holds", for_docs=True)
    assert _phone_fits(page)
    row.get_by_role("button", name="Approve release").press("Enter")
    page.wait_for_url("**/holds?notice=holds.released")
    expect(page.get_by_role("status")).to_have_text("The hold is released.")
    expect(page.locator("#holds tbody tr").filter(has_text=REASON)).to_have_count(0)
    page.goto(hold_url)
    expect(page.locator("#hold-state")).to_have_text(
        re.compile(rf"^released by {re.escape(site.dpo.email)} ")
    )
    page.goto(site.url(f"/recordings/{call['reference']}"))
    expect(page.get_by_text("This recording is not held.")).to_be_visible()


def test_another_tenants_hold_is_not_found(page: Page, site: Site) -> None:
    placed = site.server.cli(
        "holds", "place", "--tenant", "globex", "--number", GLOBEX_NUMBER, "--reason", REASON, "--json"
    )
    hold_id = json.loads(placed.stdout)["id"]
    log_in(page, site, site.admin)
    response = page.goto(site.url(f"/holds/{hold_id}"))
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_have_text("No such page or item.")
    page.goto(site.url("/holds?state=all"))
    expect(page.locator("main")).not_to_contain_text(hold_id)
    page.goto(site.url("/audit?action=hold.access_denied"))
    expect(page.locator("#audit")).to_contain_text(hold_id)
