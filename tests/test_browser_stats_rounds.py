"""A released statistics round in a real browser (Debian's Chromium driven by Playwright):
an analyst opens it from the rounds list and sees its chart drawn beside its table, and
the page reports no Content Security Policy violation."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import expect

from admin_ui.app import build_console_app
from node.accounts.model import Role
from node.stats.service import RoundRequest
from tests.browser_helpers import CHROMIUM, chromium, logged_in_page
from tests.console_helpers import OFFICER_PASSWORD
from tests.harness import Federation
from tests.stats_rounds import PERIOD, carry, round_federation

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt install chromium)", allow_module_level=True)

pytestmark = pytest.mark.browser
#: A file for a picture of the round's result, if set (to look at the chart).
SCREENSHOT = os.environ.get("IARMS_ROUND_SCREENSHOT")


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA, DEU and ITA, with one released `routes` round requested by FRA."""
    federation = await round_federation(tmp_path, ("FRA", "DEU", "ITA"))
    request = RoundRequest("routes", 0.5, "DEU,ITA", 3, start=PERIOD[0], end=PERIOD[1])
    await federation["FRA"].f.rounds.start(request, "analyst")
    await carry(federation)
    await federation["FRA"].n.users.add_user(
        "analyst", Role.ANALYST, False, OFFICER_PASSWORD, "test", must_change_password=False
    )
    yield federation
    await federation.close()


@pytest.fixture
async def console_url(fed: Federation) -> AsyncIterator[str]:
    """FRA's console, with its federation services, on a free port of 127.0.0.1."""
    app = build_console_app(fed["FRA"].n, fed=fed["FRA"].f)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_an_analyst_opens_a_released_round_and_sees_chart_and_table(
    console_url: str,
) -> None:
    violations: list[str] = []
    async with chromium() as browser:
        user = ("analyst", OFFICER_PASSWORD)
        viewport = {"width": 1366, "height": 900}
        page = await logged_in_page(
            browser, console_url, "/statistics/rounds", user, violations, viewport=viewport
        )
        await expect(
            page.get_by_role("heading", name="Federation statistics rounds")
        ).to_be_visible()
        await page.locator("#rounds a").first.click()
        await expect(page.locator("#status")).to_contain_text("released")
        await expect(page.locator("#contributors")).to_have_text("DEU, FRA, ITA")
        await expect(page.locator("#signatures")).to_contain_text("DEU: verified; ITA: verified")
        cells = page.locator("#cells")
        await expect(cells).to_contain_text("AUT>FRA")
        await expect(cells).to_contain_text("USA>ITA")
        await expect(page.locator("#h-result")).to_contain_text("verified")
        chart = page.locator("img.chart")
        await page.wait_for_load_state("networkidle")
        await chart.scroll_into_view_if_needed()
        assert await chart.evaluate("img => img.complete && img.naturalWidth") == 760
        box = await chart.bounding_box()
        assert box is not None and box["width"] >= 500
        if SCREENSHOT:
            await page.locator("#result").screenshot(path=SCREENSHOT)
        await page.context.close()
    assert violations == []
