"""Traces as officers work them, in a real browser (Debian's Chromium driven by Playwright).

Two nodes from the harness (in memory): FRA's officer starts traces from the console's
form, ITA's registry answers those it can, and ITA's officer answers the others in the
incoming queue. Both consoles run on real aiohttp servers on 127.0.0.1; the harness
delivers what the nodes queued (`settle`), as running nodes would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from admin_ui.app import build_console_app
from node.accounts.model import Role
from node.protocol.model import Service
from tests.browser_helpers import CHROMIUM, chromium, logged_in_page
from tests.console_helpers import OFFICER_PASSWORD
from tests.harness import Federation
from tests.test_trace_hop import custody, event

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt install chromium)", allow_module_level=True)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    """FRA and ITA, peers allowing traces; ITA's registry: B-1 made and sold in Italy.
    Each node has an officer."""
    base = tmp_path_factory.mktemp("traces")
    federation = Federation(base)
    for country in ("FRA", "ITA"):
        member = await federation.add(country)
        await member.n.users.add_user(
            "officer", Role.OFFICER, False, OFFICER_PASSWORD, "test", must_change_password=False
        )
    await federation.peer_all(Service.LOOKUPS, Service.TRACES, Service.TRACE_DETAILS)
    await custody(
        federation,
        "ITA",
        base,
        event("manufactured", "2019-01-01", "Beretta SpA"),
        event("sold", "2019-02-01", "Mario Rossi"),
    )
    yield federation
    await federation.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def consoles(fed: Federation) -> AsyncIterator[dict[str, str]]:
    """Each node's console on a free port of 127.0.0.1: its address by country."""
    runners, urls = [], {}
    for country in ("FRA", "ITA"):
        runner = web.AppRunner(build_console_app(fed[country].n, fed[country].f), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        runners.append(runner)
        urls[country] = f"http://{host}:{port}"
    yield urls
    for runner in runners:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, shared by the module's tests."""
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def violations() -> list[str]:
    """The CSP violations the test's pages reported (none expected)."""
    return []


async def officer_page(browser: Browser, url: str, path: str, violations: list[str]) -> Page:
    """A fresh context's page, logged in as the officer and sent on to `path`."""
    return await logged_in_page(browser, url, path, ("officer", OFFICER_PASSWORD), violations)


async def fill_request(page: Page, serial: str) -> None:
    """The request's fields, without the country of manufacture or the recovery date."""
    await page.locator("#f-case_reference").fill("FR-2026-31")
    await page.locator("#f-agency").fill("OCRGDF")
    await page.locator("#f-serial_number").fill(serial)
    await page.locator("#f-make").fill("Beretta")
    await page.locator("#f-model").fill("92FS")
    await page.locator("#f-recovered_at").fill("Marseille")
    await page.locator("#f-crime").select_option("homicide")
    await page.locator("#f-to").fill("ITA")


async def test_start_a_trace_see_the_findings_force_it_and_follow_its_chain(
    fed: Federation, consoles: dict[str, str], browser: Browser, violations: list[str]
) -> None:
    page = await officer_page(browser, consoles["FRA"], "/traces", violations)
    await page.get_by_role("link", name="New trace").click()
    await fill_request(page, "B-1")
    await page.get_by_role("button", name="Check").click()
    await expect(page.locator("#check-result")).to_contain_text("The request is incomplete")
    await expect(page.locator("#n-recovered_on")).to_contain_text("no recovery date")
    await expect(page.locator("#n-country_of_manufacture")).to_be_visible()
    await expect(page.locator("#n-serial_number")).to_have_count(0)
    await expect(page.locator("#f-agency")).to_have_value("OCRGDF")  # the input kept
    await expect(page.locator("#first-hop")).to_contain_text("ITA")

    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#e-force_reason")).to_contain_text("not sent")
    assert await fed["FRA"].f.traces.list_traces(incoming=False) == []
    await page.locator("#f-force_reason").fill("recovered without papers; date unknown")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#trace-sent")).to_contain_text("queued for ITA")
    await expect(page.locator("#v-force_reason")).to_have_text(
        "recovered without papers; date unknown"
    )
    trace = page.url.rsplit("/", 1)[1].split("?")[0]
    await fed.settle()

    await page.get_by_role("link", name="Traces", exact=True).click()
    row = page.locator(f'#traces tr[data-trace="{trace}"]')
    await expect(row).to_contain_text("answered")
    await row.get_by_role("link").click()
    await expect(page).to_have_url(re.compile(f"/traces/{trace}$"))
    await expect(page.locator("#chain-verified")).to_be_visible()
    hop = page.locator("#hop-1")
    await expect(hop).to_contain_text("ITA")
    await expect(hop).to_contain_text("end_of_chain")
    await expect(hop).to_contain_text("Mario Rossi")
    await expect(hop.locator(".verified")).to_have_text("verified")
    async with page.expect_download() as download:
        await page.locator("#export").click()
    saved = await (await download.value).path()
    assert saved.read_bytes() == await fed["FRA"].f.traces.export(bytes.fromhex(trace))
    await page.context.close()
    assert violations == []


async def test_an_officer_answers_a_trace_in_the_incoming_queue(
    fed: Federation, consoles: dict[str, str], browser: Browser, violations: list[str]
) -> None:
    fra = await officer_page(browser, consoles["FRA"], "/traces/new", violations)
    await fill_request(fra, "Z-404")
    await fra.locator("#f-recovered_on").fill("2025-03-04")
    await fra.locator("#f-country_of_manufacture").fill("ITA")
    await fra.get_by_role("button", name="Send").click()
    await expect(fra.locator("#trace-sent")).to_be_visible()
    trace = fra.url.rsplit("/", 1)[1].split("?")[0]
    await fed.settle()

    ita = await officer_page(browser, consoles["ITA"], "/traces/incoming", violations)
    item = ita.locator(f"#queued-{trace}")
    await expect(item).to_contain_text("Z-404")
    await item.get_by_label("Outcome").select_option("forwarded")
    await item.get_by_role("button", name="Send the answer").click()
    await expect(ita.locator(f"#a-{trace}-e-next_country")).to_contain_text("needs the country")
    form = ita.locator(".answer-form")
    await form.get_by_label("Outcome").select_option("refused")
    await form.get_by_label("Details").fill("<b>no such serial in our registry</b>")
    await form.get_by_role("button", name="Send the answer").click()
    await expect(ita.locator("#answered")).to_contain_text(trace)
    await expect(ita.locator("#no-queued")).to_be_visible()
    await fed.settle()

    await fra.reload()
    hop = fra.locator("#hop-1")
    await expect(hop).to_contain_text("refused")
    await expect(hop.locator('[data-detail="reason"]')).to_have_text(
        "<b>no such serial in our registry</b>"
    )
    await expect(fra.locator("#trace-status")).to_have_text("answered")
    await fra.context.close()
    await ita.context.close()
    assert violations == []
