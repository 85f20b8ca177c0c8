"""The subscriber portal in headless Chromium against a real server and real recorded calls.

A reader logs in (replacing a one-time password first), finds a call by its number written the Hungarian
way, plays it, changes how long it is kept, downloads it (the same bytes as ``hangtar recordings export``),
answers an access request with a bundle, and is refused another tenant's recording. Also: the viewer role,
CSRF, the language switch and the phone layout. Every page must load without a console error — a
Content-Security-Policy violation would be one.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, Request, expect

from .conftest import PASSWORD, Shots, Site, log_in

HUNGARIAN_WAY = "06 1 234 5678"  # the call was recorded as +3612345678


def test_first_login_replaces_the_one_time_password(page: Page, site: Site, shots: Shots) -> None:
    page.goto(site.url("/"))
    page.wait_for_url("**/login?next=%2Frecordings")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    shots.save(page, "login")

    page.get_by_label("E-mail address").fill(site.first_admin.email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong e-mail address or password.")

    page.get_by_label("Password").fill(site.first_admin.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/password")
    expect(page.get_by_text("A one-time password must be replaced at the first login.")).to_be_visible()
    page.goto(site.url("/recordings"))  # nothing else until it is replaced
    page.wait_for_url("**/password")

    page.get_by_label("Current password").fill(site.first_admin.password)
    page.get_by_label("New password", exact=True).fill(PASSWORD)
    page.get_by_label("New password again").fill(PASSWORD + "!")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert")).to_have_text("The two new passwords differ.")

    page.get_by_label("Current password").fill(site.first_admin.password)
    page.get_by_label("New password", exact=True).fill(PASSWORD)
    page.get_by_label("New password again").fill(PASSWORD)
    page.get_by_role("button", name="Change password").click()
    page.wait_for_url("**/recordings?notice=password.changed")
    expect(page.get_by_role("status")).to_have_text("Your password has been changed.")
    expect(page.get_by_text(f"Signed in as {site.first_admin.email} (administrator)")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login?notice=logout.done")
    page.get_by_label("E-mail address").fill(site.first_admin.email)
    page.get_by_label("Password").fill(site.first_admin.password)  # the one-time password is gone
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong e-mail address or password.")


def test_a_number_written_the_hungarian_way_finds_the_call(page: Page, site: Site, shots: Shots) -> None:
    log_in(page, site, site.admin)
    newer, older = (call["reference"] for call in site.acme_calls)
    rows = page.locator("#recordings tbody tr")
    expect(rows).to_have_count(2)  # Acme's two calls; Globex's is not Acme's
    expect(page.locator("#recordings")).not_to_contain_text(site.globex_call["reference"])

    page.get_by_role("searchbox").fill(HUNGARIAN_WAY)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"q=06\+1\+234\+5678"))
    expect(page.locator("#searched-as")).to_have_text(f"Searched as phone number: “{HUNGARIAN_WAY}”")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("a.ref")).to_have_text(newer)  # newest first
    expect(rows.nth(1).locator("a.ref")).to_have_text(older)
    expect(rows.nth(0)).to_contain_text("+3612345678")
    shots.save(page, "recordings", for_docs=True)

    page.get_by_role("searchbox").fill(older.lower().replace("-", " "))  # a reference as someone reads it out
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#searched-as")).to_contain_text("reference")
    expect(rows).to_have_count(1)
    expect(rows.nth(0).locator("a.ref")).to_have_text(older)

    page.get_by_role("searchbox").fill("06 30 999 9999")  # nobody's
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No recording matches.")).to_be_visible()

    page.get_by_role("searchbox").fill("")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No recording matches.")).to_be_visible()
    status = site.acme_calls[0]["status"]
    page.get_by_label("Status").select_option(status)
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(sum(call["status"] == status for call in site.acme_calls))
    expect(rows.nth(0).locator("a.ref")).to_have_text(newer)


def test_play_advances_the_audio_and_is_audited(page: Page, site: Site, shots: Shots) -> None:
    log_in(page, site, site.admin)
    call = site.long_call
    elsewhere: list[str] = []

    def outside(request: Request) -> None:
        if not request.url.startswith(site.base_url):
            elsewhere.append(request.url)

    page.on("request", outside)
    response = page.goto(site.url(f"/recordings/{call['reference']}"))
    assert response is not None
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    expect(page.get_by_role("heading", name=f"Recording {call['reference']}")).to_be_visible()
    expect(page.locator("#waveform")).to_have_class(re.compile(r"\bready\b"))
    drawn = page.evaluate(
        """() => { const c = document.getElementById('waveform');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let painted = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) painted++;
                   return painted / (c.width * c.height); }"""
    )
    assert drawn > 0.05, f"the waveform is nearly empty ({drawn:.3f} of the canvas)"

    player = page.locator("#player")
    assert player.evaluate("a => a.paused && a.readyState === 0")  # opening the page loads nothing
    box = player.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 18, box["y"] + box["height"] / 2)  # the player's own play button
    page.wait_for_function("() => document.getElementById('player').currentTime > 1.0", timeout=15_000)
    assert not player.evaluate("a => a.paused")
    shots.save(page, "recording", for_docs=True)
    assert not elsewhere, f"the page fetched from elsewhere: {elsewhere}"

    page.reload()
    expect(page.locator("#trail")).to_contain_text("recording.play")
    expect(page.locator("#trail")).to_contain_text(site.admin.email)


def test_retention_change_moves_the_deletion_time(page: Page, site: Site) -> None:
    log_in(page, site, site.admin)
    call = site.acme_calls[0]
    page.goto(site.url(f"/recordings/{call['reference']}"))
    selector = page.get_by_label("Change the retention period")
    offered = selector.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert offered == ["quality_60d", "contract_evidence", "consent"]  # the tenant's options only
    before = datetime.fromisoformat(str(page.locator("#expires-at").get_attribute("datetime")))

    selector.select_option("contract_evidence")
    page.get_by_role("button", name="Save retention").click()
    page.wait_for_url(re.compile(r"was="))
    expect(page.locator("#retention-changed")).to_contain_text("Retention changed")
    after = datetime.fromisoformat(str(page.locator("#expires-at").get_attribute("datetime")))
    assert after - before == timedelta(days=1826 - 60)
    expect(page.locator("#retention-class")).to_contain_text("Contract evidence")

    shown = site.server.cli("recordings", "show", call["reference"], "--json").stdout
    assert after == datetime.fromisoformat(re.search(r'"expires_at": "([^"]+)"', shown).group(1))  # type: ignore[union-attr]


def test_download_is_the_exported_recording(page: Page, site: Site, tmp_path: Path) -> None:
    log_in(page, site, site.admin)
    call = site.long_call
    page.goto(site.url(f"/recordings/{call['reference']}"))
    with page.expect_download() as info:
        page.locator("#download").click()
    download = info.value
    assert download.suggested_filename.startswith(call["reference"]) and download.suggested_filename.endswith(
        ".flac"
    )
    saved = Path(download.path()).read_bytes()

    exported = tmp_path / "export.flac"
    site.server.cli("recordings", "export", call["reference"], "-o", str(exported))
    assert saved == exported.read_bytes()
    assert hashlib.sha256(saved).hexdigest() == call["sha256"]


def test_an_access_request_ends_in_a_delivered_bundle(page: Page, site: Site, shots: Shots) -> None:
    log_in(page, site, site.admin)
    page.get_by_role("link", name="Access requests").click()
    page.get_by_label("Phone number").fill("06-1/234-5678")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#found-count")).to_have_text("Recordings found: 2")
    for call in site.acme_calls:
        expect(page.locator("#found")).to_contain_text(call["reference"])

    page.get_by_label("Requester").fill("Kiss Péter, kiss.peter@example.hu")
    page.get_by_role("button", name="Open case").click()
    page.wait_for_url(re.compile(r"/access-requests/[0-9a-f-]{36}$"))
    expect(page.locator("#due")).to_contain_text("Due:")
    expect(page.locator("#case-status")).to_have_text("open")

    page.locator("#export").click()
    expect(page.locator("#case-status")).to_have_text("copy made")
    with page.expect_download() as info:
        page.locator("#bundle").click()
    bundle = Path(info.value.path()).read_bytes()
    assert hashlib.sha256(bundle).hexdigest() == page.locator("#bundle-sha256").inner_text().strip()
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
    for call in site.acme_calls:
        assert any(call["reference"] in name for name in names), names
    shots.save(page, "access-request")

    page.get_by_label("How it was handed over").fill("e-mail, encrypted zip")
    page.get_by_role("button", name="Mark delivered").click()
    expect(page.get_by_role("status")).to_have_text("The request is answered: the copy was handed over.")
    expect(page.locator("#case-status")).to_have_text("delivered")

    page.goto(site.url("/access-requests?state=all"))
    expect(page.locator("#cases")).to_contain_text("Kiss Péter")
    expect(page.locator("#cases")).to_contain_text("delivered")


def test_another_tenants_recording_is_not_found(page: Page, site: Site) -> None:
    log_in(page, site, site.admin)
    foreign = site.globex_call
    for key in ("reference", "id"):
        response = page.goto(site.url(f"/recordings/{foreign[key]}"))
        assert response is not None and response.status == 404
        expect(page.get_by_role("alert")).to_have_text("No such page or item.")
    assert page.request.get(site.url(f"/recordings/{foreign['id']}/waveform")).status == 404
    assert page.request.get(site.url(f"/api/v1/recordings/{foreign['id']}/audio")).status == 404

    page.goto(site.url("/audit?action=recording.access_denied"))
    expect(page.locator("#audit")).to_contain_text(foreign["reference"])
    expect(page.locator("#audit")).to_contain_text(foreign["id"])


def test_a_viewer_sees_but_cannot_listen_change_or_configure(page: Page, site: Site) -> None:
    log_in(page, site, site.viewer)
    expect(page.get_by_role("navigation", name="Main menu").get_by_role("link")).to_have_text(["Recordings"])
    call = site.acme_calls[0]
    page.goto(site.url(f"/recordings/{call['reference']}"))
    expect(page.get_by_text("Your role does not allow listening.")).to_be_visible()
    expect(page.locator("#player")).to_have_count(0)
    expect(page.get_by_label("Change the retention period")).to_have_count(0)

    response = page.goto(site.url("/settings"))
    assert response is not None and response.status == 403
    expect(page.get_by_role("alert")).to_have_text("Your role does not give access to this page.")
    assert page.request.get(site.url(f"/api/v1/recordings/{call['id']}/audio")).status == 403
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "hangtar_csrf")
    refused = page.request.post(
        site.url(f"/recordings/{call['reference']}/retention"),
        form={"csrf_token": csrf, "retention_class": "consent"},
    )
    assert refused.status == 403


def test_a_form_without_its_csrf_token_is_refused(page: Page, site: Site) -> None:
    log_in(page, site, site.admin)
    call = site.acme_calls[0]
    target = site.url(f"/recordings/{call['reference']}/holds")
    forms: list[dict[str, str | float | bool]] = [
        {"reason": "litigation"},
        {"reason": "litigation", "csrf_token": "forged"},
    ]
    for form in forms:
        refused = page.request.post(target, form=form, headers={"Accept-Language": "en"})
        assert refused.status == 403
        assert "The form could not be verified" in refused.text()
    page.goto(site.url(f"/recordings/{call['reference']}"))
    expect(page.get_by_text("This recording is not held.")).to_be_visible()


def test_hungarian_on_a_phone(page: Page, site: Site, shots: Shots) -> None:
    log_in(page, site, site.admin)
    page.get_by_role("link", name="Magyar").click()
    expect(page.get_by_role("heading", name="Felvételek")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "hu"
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    first_row = page.locator("#recordings tbody tr").first
    assert first_row.evaluate("row => getComputedStyle(row).display") == "block"  # a card per call
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Ugrás a tartalomra"
    shots.save(page, "recordings-phone-hu")
