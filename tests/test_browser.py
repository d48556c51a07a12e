"""The officer's flows in a real browser: Debian's Chromium driven by Playwright.

The console runs on a real aiohttp server on 127.0.0.1 in the test's event
loop; one node, one server and one browser serve the whole module, and every
test gets a fresh browser context (no cookies).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, expect

from admin_ui.app import build_console_app
from node.accounts.service import SIGN_IN_FAILED
from node.app import Node
from node.clock import FakeClock
from node.config import load_config
from node.initialise import init_node
from tests.browser_helpers import CHROMIUM, chromium
from tests.conftest import ADMIN_PASSWORD

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt install chromium)", allow_module_level=True)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
SCRIPT = "<script>alert(1)</script>"


@dataclass
class Served:
    """The console under test: its node and its address."""

    node: Node
    url: str


@dataclass
class Tab:
    """A page in a fresh browser context, with the dialogs and CSP violations it saw."""

    page: Page
    url: str
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def open(self, path: str) -> None:
        """Go to a console path."""
        await self.page.goto(self.url + path)

    async def log_in(self, name: str = "admin", password: str = ADMIN_PASSWORD) -> None:
        """Fill in and send the login form the page shows."""
        await self.page.get_by_label("User name").fill(name)
        await self.page.get_by_label("Password").fill(password)
        await self.page.get_by_role("button", name="Log in").click()


@asynccontextmanager
async def serving(data_dir: Path, admin_password: str | None) -> AsyncIterator[tuple[Served, str]]:
    """A new node (SQLite) and its console on a free port of 127.0.0.1; and the admin's password."""
    clock = FakeClock()
    made = await init_node(data_dir, "FRA", admin_password=admin_password, clock=clock)
    node = await Node.open(load_config(data_dir), clock)
    runner = web.AppRunner(build_console_app(node), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield Served(node, f"http://{host}:{port}"), made.admin_password
    finally:
        await runner.cleanup()
        await node.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """One node whose admin chose their password, served for the whole module."""
    async with serving(tmp_path_factory.mktemp("browser") / "fra", ADMIN_PASSWORD) as (node, _):
        yield node


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, shared by the module's tests."""
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: Browser, served: Served) -> AsyncIterator[Tab]:
    """A page in a new context that records dialogs (dismissing them) and CSP violations."""
    context = await browser.new_context()
    context.set_default_timeout(10_000)
    page = await context.new_page()
    tab = Tab(page, served.url)

    async def on_dialog(dialog: Dialog) -> None:
        tab.dialogs.append(dialog.message)
        await dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            tab.errors.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    yield tab
    await context.close()
    assert tab.errors == [], "no page of the console violates its own CSP"


async def test_logging_in_keeps_a_secure_http_only_session_cookie(tab: Tab) -> None:
    await tab.open("/login")
    await tab.log_in()
    await expect(tab.page).to_have_url(tab.url + "/")
    await expect(tab.page.locator("#country")).to_have_text("FRA")
    cookies = {c["name"]: c for c in await tab.page.context.cookies()}
    session = cookies["iarms_session"]
    assert session.get("secure") is True  # kept by Chromium although served over http://127.0.0.1
    assert session.get("httpOnly") is True
    assert session.get("sameSite") == "Strict"


async def test_a_visitor_without_session_is_sent_to_login_and_back(tab: Tab) -> None:
    await tab.open("/records?status=stolen&type=pistol")
    await expect(tab.page).to_have_url(re.compile(r"/login\?next="))
    next_field = tab.page.locator("input[name=next]")
    await expect(next_field).to_have_value("/records?status=stolen&type=pistol")
    await expect(tab.page.get_by_role("heading", name="Log in")).to_be_visible()
    await tab.log_in("admin", "a wrong password")
    await expect(tab.page.locator("#login-error")).to_have_text(SIGN_IN_FAILED)
    await tab.page.get_by_label("Password").fill(ADMIN_PASSWORD)
    await tab.page.get_by_role("button", name="Log in").click()
    await expect(tab.page).to_have_url(tab.url + "/records?status=stolen&type=pistol")
    await expect(tab.page.get_by_role("heading", name="Firearm records")).to_be_visible()


async def test_create_a_record_and_find_it_by_a_misread_serial(tab: Tab) -> None:
    await tab.open("/login?next=/records/new")
    await tab.log_in()
    page = tab.page
    await page.get_by_label("Serial number").fill("KB-2020-77")
    await page.get_by_label("Make").fill("Smith and Wesson")
    await page.get_by_label("Type").select_option("revolver")
    await page.get_by_label("Calibre").fill(".38 spl")
    await page.get_by_label("Status").select_option("stolen")
    await page.get_by_label("Event date").fill("2025-05-17")
    await page.get_by_label("Country of manufacture").fill("USA")
    await page.get_by_role("button", name="Create record").click()
    await expect(page.locator("#v-serial_number")).to_have_text("KB-2020-77")
    await expect(page.locator("#v-make")).to_have_text("Smith & Wesson")
    await expect(page.locator("#v-version")).to_have_text("1")

    await page.get_by_role("link", name="Records", exact=True).click()
    await page.get_by_label("Serial").fill("kb 2O2O 77")  # letter O typed for zero
    await page.get_by_role("button", name="Search").click()
    results = page.locator("#results tbody tr")
    await expect(results).to_have_count(1)
    await expect(results.first).to_contain_text("KB-2020-77")
    await results.first.get_by_role("link", name="KB-2020-77").click()
    await expect(page.locator("#v-status")).to_have_text("stolen")


async def test_import_a_csv_and_see_the_bad_row_on_the_report(tab: Tab) -> None:
    await tab.open("/login?next=/records/import")
    await tab.log_in()
    csv = (
        "serial_number,make,firearm_type,status,event_date\n"
        "BRW-100,Beretta,pistol,lost,2024-02-02\n"
        "BRW-101,Beretta,pistol,lost,02/02/2024\n"
        "BRW-102,Beretta,pistol,found,\n"
    )
    await tab.page.get_by_label("CSV file").set_input_files(
        {"name": "beretta.csv", "mimeType": "text/csv", "buffer": csv.encode()}
    )
    await tab.page.get_by_role("button", name="Upload and import").click()
    await expect(tab.page.locator("#job-state")).to_contain_text("Import finished")
    await expect(tab.page.locator("#r-created")).to_have_text("2")
    await expect(tab.page.locator("#r-rejected")).to_have_text("1")
    row = tab.page.locator("#rejected-rows tbody tr")
    await expect(row).to_have_count(1)
    await expect(row.locator("td").nth(0)).to_have_text("3")
    await expect(row.locator("td").nth(1)).to_have_text("event_date")
    await expect(row.locator("td").nth(2)).to_contain_text("is not a date in the form YYYY-MM-DD")


async def test_import_custody_events_and_follow_a_firearm_s_chain(tab: Tab) -> None:
    await tab.open("/login?next=/custody")
    await tab.log_in()
    page = tab.page
    await page.get_by_role("link", name="Import custody events").click()
    csv = (
        "serial_number,make,model,event,event_date,from_party,to_party,to_country,"
        "licence_reference,notes\n"
        "CZ-777,CZ,75 B,exported,2018-06-01,Ceska zbrojovka,Armeria Roma,ITA,EX-1,\n"
        "CZ-777,CZ,75 B,manufactured,2018-01-15,,Ceska zbrojovka,,,\n"
        "CZ-777,CZ,75 B,lent,2018-07-01,Armeria Roma,Someone,,,\n"
    )
    await page.get_by_label("CSV file").set_input_files(
        {"name": "cz.csv", "mimeType": "text/csv", "buffer": csv.encode()}
    )
    await page.get_by_role("button", name="Upload and import").click()
    await expect(page.locator("#job-state")).to_contain_text("Import finished")
    await expect(page.locator("#r-created")).to_have_text("2")
    rejected = page.locator("#rejected-rows tbody tr td")
    await expect(rejected.nth(0)).to_have_text("4")
    await expect(rejected.nth(1)).to_have_text("event")

    await page.get_by_role("link", name="Custody registry").last.click()
    await page.get_by_label("Serial").fill("cz 777")
    await page.get_by_label("Make").fill("Česká zbrojovka")
    await page.get_by_role("button", name="Search").click()
    events = page.locator("#events tbody tr")
    await expect(events).to_have_count(2)
    await expect(events.nth(0)).to_contain_text("manufactured")
    await expect(events.nth(1)).to_contain_text("exported")
    await expect(events.nth(1)).to_contain_text("ITA")


async def test_script_in_notes_is_shown_as_text_and_never_run(tab: Tab) -> None:
    await tab.open("/login?next=/records/new")
    await tab.log_in()
    page = tab.page
    await page.get_by_label("Serial number").fill("XSS-0001")
    await page.get_by_label("Make").fill("Glock")
    await page.get_by_label("Type").select_option("pistol")
    await page.get_by_label("Status").select_option("seized")
    await page.get_by_label("Notes").fill(SCRIPT)
    await page.get_by_role("button", name="Create record").click()
    await expect(page.locator("#v-notes")).to_have_text(SCRIPT)
    await expect(page.get_by_text(SCRIPT)).to_be_visible()
    assert await page.locator("script").count() == 0
    await page.reload()
    await expect(page.locator("#v-notes")).to_have_text(SCRIPT)
    assert tab.dialogs == []


async def test_the_first_login_with_init_s_password_must_choose_a_new_one(
    browser: Browser, tmp_path: Path
) -> None:
    """Defect 7: the one-time password `init` prints opens only the change-password page."""
    async with serving(tmp_path / "fra", None) as (fresh, init_password):
        context = await browser.new_context()
        context.set_default_timeout(10_000)
        page = await context.new_page()
        tab = Tab(page, fresh.url)
        await tab.open("/login?next=/records")
        await tab.log_in("admin", init_password)
        await expect(page).to_have_url(re.compile(r"/account/password\?next=(%2F|/)records$"))
        await expect(page.locator("#must-change")).to_be_visible()
        await tab.open("/records")  # every other page leads back here
        await expect(page).to_have_url(re.compile(r"/account/password\?next="))
        await page.get_by_label("Current password").fill(init_password)
        await page.locator("#f-new_password").fill(init_password)
        await page.get_by_label("New password again").fill(init_password)
        await page.get_by_role("button", name="Change password").click()
        await expect(page.locator("#e-new_password")).to_contain_text("differs from the current")
        await page.get_by_label("Current password").fill(init_password)
        await page.locator("#f-new_password").fill("the admin's own password")
        await page.get_by_label("New password again").fill("the admin's own password")
        await page.get_by_role("button", name="Change password").click()
        await expect(page).to_have_url(fresh.url + "/records")
        await expect(page.get_by_role("heading", name="Firearm records")).to_be_visible()
        await page.get_by_role("button", name="Log out").click()
        await tab.log_in("admin", init_password)
        await expect(page.locator("#login-error")).to_have_text(SIGN_IN_FAILED)
        await tab.log_in("admin", "the admin's own password")
        await expect(page.locator("#country")).to_have_text("FRA")  # the dashboard, at once
        await context.close()
