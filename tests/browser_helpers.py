"""Helpers for the real-browser tests: Debian's Chromium, launched headless by Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, closed on leaving."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()


async def logged_in_page(
    browser: Browser,
    url: str,
    path: str,
    user: tuple[str, str],
    violations: list[str],
    **context_options: Any,
) -> Page:
    """A fresh context's page, logged in as `user` (name, password) and sent on to `path`;
    the Content Security Policy violations it reports are appended to `violations`."""
    context = await browser.new_context(**context_options)
    context.set_default_timeout(10_000)
    page = await context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            violations.append(message.text)

    page.on("console", on_console)
    await page.goto(f"{url}/login?next={path}")
    await page.get_by_label("User name").fill(user[0])
    await page.get_by_label("Password").fill(user[1])
    await page.get_by_role("button", name="Log in").click()
    return page
