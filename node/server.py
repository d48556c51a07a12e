"""Serving a node: the console and the federation API, each on its own address."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.app import Node
from node.errors import ConfigError
from node.protocol.http_app import build_federation_app

log = logging.getLogger(__name__)


async def start_sites(node: Node, signing_key: Ed25519PrivateKey) -> list[web.AppRunner]:
    """Start the console and federation servers; return their runners (to clean up)."""
    from admin_ui.app import build_console_app

    runners: list[web.AppRunner] = []
    apps = (
        (build_console_app(node), node.config.console, "console"),
        (build_federation_app(node, signing_key), node.config.federation, "federation API"),
    )
    try:
        for app, listen, what in apps:
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            runners.append(runner)
            try:
                await web.TCPSite(runner, listen.host, listen.port).start()
            except OSError as e:
                raise ConfigError(f"cannot serve the {what} on {listen}: {e.strerror}") from e
    except BaseException:
        for runner in runners:
            await runner.cleanup()
        raise
    return runners


async def serve(
    node: Node, signing_key: Ed25519PrivateKey, announce: Callable[[str], None]
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runners = await start_sites(node, signing_key)
    announce(f"console:        http://{node.config.console}/")
    announce(
        f"federation API: http://{node.config.federation}/federation/v1/health "
        f"(public URL {node.config.public_url})"
    )
    try:
        await stop.wait()
        announce("shutting down")
    finally:
        for runner in runners:
            await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
