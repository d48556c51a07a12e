"""The statistics page in a real browser (Debian's Chromium driven by Playwright): an
analyst sees every chart drawn and its table, changes the period, and the page reports no
Content Security Policy violation."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import expect

from admin_ui.app import build_console_app
from node.accounts.model import Role
from node.app import Node
from node.clock import FakeClock
from node.config import load_config
from tests.browser_helpers import CHROMIUM, chromium, logged_in_page
from tests.conftest import ADMIN_PASSWORD, init_copy
from tests.console_helpers import OFFICER_PASSWORD
from tests.stats_data import HOSTILE_MAKE, seed_records

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt install chromium)", allow_module_level=True)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
#: A directory for pictures of some figures, if set (to look at the charts).
SCREENSHOT = os.environ.get("IARMS_STATS_SCREENSHOT")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A seeded node's console on a free port of 127.0.0.1, with an analyst."""
    base = tmp_path_factory.mktemp("stats")
    clock = FakeClock()
    await init_copy(base / "fra", "FRA", ADMIN_PASSWORD, clock)
    node = await Node.open(load_config(base / "fra"), clock)
    await seed_records(node, base)
    await node.users.add_user(
        "analyst", Role.ANALYST, False, OFFICER_PASSWORD, "test", must_change_password=False
    )
    runner = web.AppRunner(build_console_app(node), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()
    await node.close()


async def test_an_analyst_sees_charts_and_tables_with_no_csp_violation(console_url: str) -> None:
    violations: list[str] = []
    async with chromium() as browser:
        user = ("analyst", OFFICER_PASSWORD)
        viewport = {"width": 1366, "height": 900}
        page = await logged_in_page(
            browser, console_url, "/statistics", user, violations, viewport=viewport
        )
        await expect(page.get_by_role("heading", name="National statistics")).to_be_visible()

        await page.locator("#f-from").fill("2024-12")
        await page.locator("#f-to").fill("2026-01")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#period")).to_contain_text("From 2024-12 to 2026-01")
        await expect(page.locator("#total")).to_have_text("10")
        charts = page.locator("img.chart")
        assert await charts.count() == 11
        await page.wait_for_load_state("networkidle")
        for i in range(await charts.count()):
            chart = charts.nth(i)
            await chart.scroll_into_view_if_needed()
            drawn = await chart.evaluate("img => img.complete && img.naturalWidth")
            assert drawn == 760, await chart.get_attribute("src")
            box = await chart.bounding_box()
            assert box is not None and box["width"] >= 500  # legible beside its table
        status = page.locator("#table-records_by_status")
        await expect(status).to_contain_text("stolen")
        await expect(page.locator("#table-top_makes")).to_contain_text(HOSTILE_MAKE)
        assert await page.evaluate("() => window.__xss === undefined")
        if SCREENSHOT:  # a directory: one picture per figure
            for name in ("records_by_month", "top_makes", "traces_by_outcome"):
                figure = page.locator(f"#figure-{name}")
                await figure.screenshot(path=str(Path(SCREENSHOT) / f"{name}.png"))
        await page.context.close()
    assert violations == []
