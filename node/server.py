"""Serving a node: the console and the federation API, each on its own address."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from node.app import Federation, Node, federation, resume_waiting
from node.clock import Clock
from node.errors import ConfigError
from node.identity import NodeKeys
from node.trace.reminders import SWEEP_S
from node.web.federation_api import build_federation_app
from node.web.guard import serve_app
from node.web.limits import ConnectionLimits, fit_to_fd_limit

log = logging.getLogger(__name__)
INDEX_REFRESH_S = 30.0
SETTLE_S = 0.5
PRUNE_S = 600.0


async def _every(
    clock: Clock, seconds: float, stop: asyncio.Event, job: Callable[[], Awaitable[object]]
) -> None:
    """Run `job` now and every `seconds` of `clock` until `stop`; log its failures, keep going."""
    while not stop.is_set():
        try:
            await job()
        except Exception:
            log.exception("background job failed; it runs again in %.0f s", seconds)
        await clock.wait(seconds, stop)


async def follow_records(
    node: Node, oprf_key: bytes, stop: asyncio.Event, every_s: float = INDEX_REFRESH_S
) -> None:
    """Keep the lookup index in line with the records until `stop`.

    A change stored by this process (console, import) is published within
    about `SETTLE_S`; changes made by another process (the CLI) are caught by
    the refresh every `every_s`. A failed refresh is logged and tried again.
    """
    changed = node.records_changed
    while not stop.is_set():
        changed.clear()
        try:
            await node.lookup_index.refresh(oprf_key)
        except Exception:
            log.exception("refreshing the lookup index failed; it runs again in %.0f s", every_s)
        await node.clock.wait(every_s, changed, stop)
        if changed.is_set() and not stop.is_set():
            await node.clock.sleep(SETTLE_S)  # let a burst of edits or import batches settle


async def remind_overdue(
    node: Node, fed: Federation, stop: asyncio.Event, every_s: float = SWEEP_S
) -> None:
    """Until `stop`, remind the hops of our traces whose answer is overdue (PROTOCOL.md
    §3.8): a sweep now and every `every_s` of the node's clock; what is due is read from
    the database each time, so a restart neither repeats a reminder nor skips one."""
    await _every(node.clock, every_s, stop, fed.reminders.sweep)


async def _greet(node: Node, fed: Federation) -> None:
    """Tell the peers we are back, so that what they hold for us comes now."""
    try:
        answered = await fed.client.greet(await node.peers.list_peers())
    except Exception:
        log.exception("greeting the peers failed")
    else:
        log.info("%d peer(s) answered our hello", answered)


async def _resume_traces(node: Node, keys: NodeKeys) -> None:
    """Move on the traces waiting for a peering added while we could not sign (a `peers
    add` on the command line without the key's passphrase)."""
    try:
        await resume_waiting(node, keys.signing)
    except Exception:
        log.exception("moving on the traces waiting for a peering failed")


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, e)
    return soft


def connection_limits(node: Node) -> dict[str, ConnectionLimits]:
    """The console's and the federation API's limits, fitted under the open-file limit."""
    wanted = {
        "console": node.config.console_limits,
        "federation API": node.config.federation_limits,
    }
    limits, warning = fit_to_fd_limit(wanted, raise_fd_limit())
    if warning:
        log.warning("%s", warning)
    return limits


async def start_sites(node: Node, fed: Federation) -> list[web.AppRunner]:
    """Start the console and federation servers; return their runners (to clean up)."""
    from admin_ui.app import build_console_app

    limits = connection_limits(node)
    runners: list[web.AppRunner] = []
    apps = (
        (build_console_app(node, fed), node.config.console, "console"),
        (build_federation_app(node, fed), node.config.federation, "federation API"),
    )
    try:
        for app, listen, what in apps:
            try:
                runners.append(await serve_app(app, listen.host, listen.port, limits[what], what))
            except OSError as e:
                raise ConfigError(f"cannot serve the {what} on {listen}: {e.strerror}") from e
    except BaseException:
        for runner in runners:
            await runner.cleanup()
        raise
    return runners


async def serve(node: Node, keys: NodeKeys, announce: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # A parent may have blocked them (the mask is inherited): they must reach us.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    fed = federation(node, keys)
    runners = await start_sites(node, fed)
    background = [
        asyncio.create_task(node.delivery.run(fed.client, stop)),
        asyncio.create_task(follow_records(node, keys.oprf, stop)),
        asyncio.create_task(_every(node.clock, PRUNE_S, stop, fed.receiver.prune)),
        asyncio.create_task(remind_overdue(node, fed, stop)),
        asyncio.create_task(fed.rounds.run(stop)),
        asyncio.create_task(_greet(node, fed)),
        asyncio.create_task(_resume_traces(node, keys)),
    ]
    announce(f"console:        http://{node.config.console}/")
    announce(
        f"federation API: http://{node.config.federation}/federation/v1/health "
        f"(public URL {node.config.public_url})"
    )
    try:
        await stop.wait()
        announce("shutting down")
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        for runner in runners:
            await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
