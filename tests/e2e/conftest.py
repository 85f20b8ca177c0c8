"""The portal in a real browser against a real server: fixtures.

- `site` (per package, so every browser module shares one; about half a minute to set up): a real
  ``hangtar serve`` (with the portal, :mod:`tests.e2e.serve`) on free ports and
  its embedded PostgreSQL; the tenant Acme Kft. holding ``+3612345678``, which a SIPp SIPREC client calls
  twice, for 4 then 2 seconds (recorded with ``+3612345678`` as the calling party), and Globex Zrt. holding the
  called number ``+3619876543``, which claims a third call afterwards (so Acme has a foreign recording to be
  refused). Users are made with ``hangtar users create``: Anna (admin, one-time password untouched, for the
  first-login test), Béla (admin), Dóra (dpo, the second person of a hold's release) and Vera (viewer),
  whose one-time passwords are replaced through the API. Modules run in name order, so one that changes
  what another asserts (a policy, the retention options, a hold) sorts after it.
- `browser` (per module): Debian's Chromium, headless, through Playwright; `page` (per test): a fresh
  context that fails the test on any console error or CSP violation.
- `shots`: where screenshots go (a temp dir; ``HANGTAR_SCREENSHOTS=docs/screenshots`` also writes the ones
  meant for the docs there).
- The app-level fixtures of :mod:`tests.e2e.portal_app` (no browser, no server process).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from tests.integration.server import REPO, ServerProcess, free_port, rtp_range
from tests.peers.sipp_runner import run_siprec_call
from tests.pg import scratch_dir

from .portal_app import acme, app, globex, pg, reader, services  # noqa: F401 (fixtures for every module)

CHROMIUM = "/usr/bin/chromium"
ACME_NUMBER = "+3612345678"  # the calling party of tests.peers.siprec_offer
GLOBEX_NUMBER = "+3619876543"  # the called party
PASSWORD = "Correct horse battery staple"
_REFUSED = "Failed to load resource: the server responded with a status of 4"


@dataclass(frozen=True, kw_only=True)
class Account:
    email: str
    password: str


@dataclass(kw_only=True)
class Site:
    server: ServerProcess
    base_url: str
    acme_id: str
    globex_id: str
    acme_calls: list[dict[str, Any]] = field(default_factory=list)  # catalogue rows, newest first
    globex_call: dict[str, Any] = field(default_factory=dict)
    first_admin: Account  # still holding its one-time password
    admin: Account
    dpo: Account
    viewer: Account

    @property
    def long_call(self) -> dict[str, Any]:
        """Acme's 4-second call: long enough to watch playback advance."""
        return self.acme_calls[1]

    def url(self, path: str) -> str:
        return self.base_url + path


def _json(server: ServerProcess, *args: str) -> Any:
    return json.loads(server.cli(*args, "--json").stdout)


def _user(server: ServerProcess, tenant: str, email: str, role: str) -> Account:
    made = _json(server, "users", "create", "--tenant", tenant, "--role", role, "--email", email)
    return Account(email=email, password=made["one_time_password"])


def _replace_password(base_url: str, account: Account) -> Account:
    """Through the API, as any client would: log in with the one-time password and set PASSWORD."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        login = client.post("/api/v1/session", json={"email": account.email, "password": account.password})
        assert login.status_code == 200, login.text
        token = login.cookies.get("hangtar_session") or next(
            c.split(";", 1)[0].split("=", 1)[1]
            for c in login.headers.get_list("set-cookie")
            if c.startswith("hangtar_session=")
        )
        changed = client.post(
            "/api/v1/me/password",
            json={"current_password": account.password, "new_password": PASSWORD},
            headers={"cookie": f"hangtar_session={token}", "X-CSRF-Token": login.json()["csrf_token"]},
        )
        assert changed.status_code == 200, changed.text
    return Account(email=account.email, password=PASSWORD)


def _record(
    server: ServerProcess, workdir: Path, tenant_id: str, *, seconds: float, timeout: float = 20
) -> dict[str, Any]:
    """Place SIPREC calls until one is recorded for ``tenant_id`` (a running server takes up a new number
    when the change's notification reaches it); the finished catalogue row."""
    deadline = time.monotonic() + timeout
    while True:
        call = run_siprec_call(f"127.0.0.1:{server.sip_port}", workdir=workdir, duration=seconds)
        assert call.sipp.ok, call.sipp.output
        row = server.wait_for_recording(finished(call.sipp.call_id))
        assert row["status"] == "complete", row
        if row["tenant_id"] == tenant_id:
            return row
        assert time.monotonic() < deadline, f"calls never reached tenant {tenant_id}: {row}\n{server.log()}"


def finished(call_id: str) -> Any:
    return lambda row: row["call_id"] == call_id and row["status"] != "recording"


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("sipp")
    with scratch_dir() as data_dir:
        server = ServerProcess(
            data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
        )
        server.start()
        try:
            base_url = f"http://127.0.0.1:{server.http_port}"
            acme = _json(server, "tenants", "create", "acme-kft", "--name", "Acme Kft.")
            server.cli("numbers", "add", "--tenant", "acme-kft", ACME_NUMBER, "--label", "customer service")
            # The periods Acme's users may pick: the 60-day default and two more.
            server.cli(
                "retention",
                "options",
                "set",
                "--tenant",
                "acme-kft",
                "quality_60d",
                "contract_evidence",
                "consent",
            )
            globex = _json(server, "tenants", "create", "globex", "--name", "Globex Zrt.")
            first_admin = _user(server, "acme-kft", "anna@acme.example", "admin")
            admin = _replace_password(base_url, _user(server, "acme-kft", "bela@acme.example", "admin"))
            dpo = _replace_password(base_url, _user(server, "acme-kft", "dora@acme.example", "dpo"))
            viewer = _replace_password(base_url, _user(server, "acme-kft", "vera@acme.example", "viewer"))
            older = _record(server, workdir, acme["id"], seconds=4.0)  # the one played and downloaded
            newer = _record(server, workdir, acme["id"], seconds=2.0)
            server.cli("numbers", "add", "--tenant", "globex", GLOBEX_NUMBER)
            foreign = _record(server, workdir, globex["id"], seconds=1.0)
            yield Site(
                server=server,
                base_url=base_url,
                acme_id=acme["id"],
                globex_id=globex["id"],
                acme_calls=[newer, older],
                globex_call=foreign,
                first_admin=first_admin,
                admin=admin,
                dpo=dpo,
                viewer=viewer,
            )
        finally:
            if server.process is not None and server.process.poll() is None:
                server.stop()


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    launched = playwright_driver.chromium.launch(executable_path=CHROMIUM)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context; any console error (a CSP violation among them) fails the test."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-US", accept_downloads=True
    )
    opened = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # The refusal pages (403, 404, 422) are answers the tests ask for; Chromium logs each as an error.
        if message.type == "error" and not message.text.startswith(_REFUSED):
            errors.append(message.text)

    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"the browser reported errors: {errors}"


@dataclass(frozen=True)
class Shots:
    tmp: Path
    docs: Path | None  # HANGTAR_SCREENSHOTS, for the images the docs show

    def save(self, page: Page, name: str, *, for_docs: bool = False) -> Path:
        path = self.tmp / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if for_docs and self.docs is not None:
            self.docs.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(self.docs / f"{name}.png"), full_page=True)
        return path


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Shots:
    docs = os.environ.get("HANGTAR_SCREENSHOTS")
    return Shots(
        tmp=tmp_path_factory.mktemp("screenshots"),
        docs=None if not docs else (REPO / docs if not Path(docs).is_absolute() else Path(docs)),
    )


def log_in(page: Page, site: Site, account: Account) -> None:
    page.goto(site.url("/login"))
    page.get_by_label("E-mail address").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/recordings**")
