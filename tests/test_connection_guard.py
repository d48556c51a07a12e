"""The connection defences of both listening sockets, on real sockets (issue 7).

A node's federation API and console are served as `iarms-node run` serves
them (`node.web.guard.serve_app`), with short deadlines; raw clients then
misbehave and the tests check what the node does: close them, refuse them,
keep answering others, and count them in one log line per kind.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from aiohttp import web

from admin_ui.app import build_console_app
from node.app import Node, federation
from node.config import load_config
from node.identity import load_keys
from node.initialise import init_node
from node.web.federation_api import build_federation_app
from node.web.guard import connection_middleware, serve_app
from node.web.limits import ConnectionLimits
from tests.abuse import (
    HEALTH,
    MESSAGES,
    close,
    closed_by_server,
    connect,
    get,
    partial_head,
    sources,
    stalled_body,
)
from tests.harness import free_port

SHORT = ConnectionLimits(
    head_timeout_s=1.0,
    body_timeout_s=1.0,
    idle_timeout_s=1.0,
    max_connections=100,
    max_connections_per_address=100,
)
#: Long enough that the node cannot have closed a connection for its deadline.
LONG_S = 30.0
#: Generous: how long a test waits for the node to close a connection due in about 1 s.
WAIT_S = 15.0
REPORT_S = 1.0


@dataclass
class Served:
    """One node's federation API and console, each behind its guard."""

    node: Node
    federation_port: int
    console_port: int
    runners: list[web.AppRunner]


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """A function that serves a fresh node with given limits (both sockets)."""
    opened: list[Served] = []

    async def start(limits: ConnectionLimits = SHORT) -> Served:
        data_dir = tmp_path / "fra"
        await init_node(data_dir, "FRA", admin_password="an admin password of some length")
        config = load_config(data_dir)
        node = await Node.open(config)
        fed = federation(node, load_keys(config, None))
        ports = free_port(), free_port()
        runners = [
            await serve_app(
                build_federation_app(node, fed),
                "127.0.0.1",
                ports[0],
                limits,
                "federation API",
                report_every_s=REPORT_S,
            ),
            await serve_app(
                build_console_app(node, fed),
                "127.0.0.1",
                ports[1],
                limits,
                "console",
                report_every_s=REPORT_S,
            ),
        ]
        opened.append(Served(node, ports[0], ports[1], runners))
        return opened[-1]

    yield start
    for served in opened:
        for runner in served.runners:
            await runner.cleanup()
        await served.node.close()


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """The log messages that contain `text`."""
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_a_partial_head_is_closed_at_the_head_deadline(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    served = await serve()
    conns = [await partial_head(served.federation_port) for _ in range(3)]
    silent = await connect(served.console_port)
    for conn in [*conns, silent]:
        assert await closed_by_server(conn, WAIT_S)
    await asyncio.sleep(REPORT_S * 2)
    [head] = lines(caplog, "did not finish a request head within 1 s")
    assert head.startswith("federation API: closed 3 connection(s)")
    assert head.endswith("from 1 address in the last 1 s")
    [nothing] = lines(caplog, "sent nothing within 1 s")
    assert nothing.startswith("console: closed 1 connection(s)")
    assert (await get(served.federation_port, HEALTH))[0] == 200


async def test_a_head_sent_a_line_at_a_time_is_closed_at_the_head_deadline(serve: Serve) -> None:
    """Slowloris: a header line every 0.2 s never makes the head complete."""
    served = await serve()
    conn = await partial_head(served.federation_port)
    closed = asyncio.create_task(closed_by_server(conn, WAIT_S))
    sent = 0
    while not closed.done() and sent < WAIT_S / 0.2:
        conn[1].write(f"X-Line-{sent}: still coming\r\n".encode())
        sent += 1
        await asyncio.sleep(0.2)
    assert await closed
    assert sent < WAIT_S / 0.2  # closed while it was still sending lines


async def test_a_stalled_body_is_closed_at_the_body_deadline(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    served = await serve()
    fed = await stalled_body(served.federation_port, MESSAGES, 100_000, 99_990)
    console = await stalled_body(served.console_port, "/login", 100_000, 5_000)
    assert await closed_by_server(fed, WAIT_S)
    assert await closed_by_server(console, WAIT_S)
    await asyncio.sleep(REPORT_S * 2)
    assert len(lines(caplog, "whose request body did not arrive within 1 s")) == 2
    assert not [r for r in caplog.records if r.exc_info]  # closing it logs no traceback


async def test_a_closed_stalled_body_gives_its_memory_back_at_once(serve: Serve) -> None:
    """Not only when the garbage collector next looks for cycles (it is off here)."""
    served = await serve()
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        conns = [
            await stalled_body(served.federation_port, MESSAGES, 1_048_577, 1_048_570)
            for _ in range(20)
        ]
        for conn in conns:
            assert await closed_by_server(conn, WAIT_S)
        await asyncio.sleep(0.5)  # the handlers have ended
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.enable()
    assert held < 4 << 20  # of the 20 MiB the bodies took


async def test_a_body_is_not_timed_out_while_the_node_is_not_reading_it(tmp_path: Path) -> None:
    """Time in which aiohttp paused reading (its handler not consuming) is not the client's."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3 * SHORT.body_timeout_s)  # busy; aiohttp stops reading meanwhile
        return web.Response(text=str(len(await request.read())))

    app = web.Application(middlewares=[connection_middleware], client_max_size=4 << 20)
    app.router.add_post("/slow", slow)
    port = free_port()
    runner = await serve_app(app, "127.0.0.1", port, SHORT, "test")
    try:
        reader, writer = await connect(port)
        body = b"x" * (2 << 20)  # far more than aiohttp buffers before it pauses
        head = f"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
        assert answer.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(len(str(len(body)))) == str(len(body)).encode()
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_client_that_does_not_read_its_response_is_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def big(_request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (32 << 20))  # more than the kernel buffers

    app = web.Application(middlewares=[connection_middleware])
    app.router.add_get("/big", big)
    port = free_port()
    runner = await serve_app(app, "127.0.0.1", port, SHORT, "test", report_every_s=REPORT_S)
    try:
        conn = await connect(port)
        conn[1].write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(SHORT.body_timeout_s * 3)  # not reading
        assert await closed_by_server(conn, WAIT_S)
        await asyncio.sleep(REPORT_S * 2)
        assert lines(caplog, "test: closed 1 connection(s) that left a response unread for 1 s")
    finally:
        await runner.cleanup()


async def test_an_idle_keep_alive_connection_is_closed_quietly(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "node.web.guard")
    served = await serve(replace(SHORT, head_timeout_s=LONG_S))
    reader, writer = await connect(served.federation_port)
    writer.write(f"GET {HEALTH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" not in head
    assert await closed_by_server((reader, writer), WAIT_S)
    assert lines(caplog, "closed an idle keep-alive connection")
    await asyncio.sleep(REPORT_S * 2)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]  # not abuse


async def test_over_the_per_address_cap_is_refused_at_once(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    served = await serve(
        replace(SHORT, head_timeout_s=LONG_S, idle_timeout_s=LONG_S, max_connections_per_address=3)
    )
    attacker, other = sources(2)
    held = [await partial_head(served.federation_port, attacker) for _ in range(3)]
    refused = [await connect(served.federation_port, attacker) for _ in range(4)]
    for conn in refused:
        assert await closed_by_server(conn, 5.0)  # far sooner than any deadline
    assert (await get(served.federation_port, HEALTH, other))[0] == 200
    for conn in held:
        assert not await closed_by_server(conn, 0.1)
        close(conn)
    await asyncio.sleep(REPORT_S * 2)
    assert lines(caplog, "federation API: closed 4 connection(s) over the per-address limit (3)")


async def test_at_the_total_cap_the_oldest_idle_connection_makes_room(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    served = await serve(
        replace(
            SHORT,
            head_timeout_s=LONG_S,
            idle_timeout_s=LONG_S,
            max_connections=5,
            max_connections_per_address=5,
        )
    )
    attackers = sources(5)
    held = [await partial_head(served.federation_port, a) for a in attackers]
    await asyncio.sleep(0.1)  # each has been seen by the node
    assert (await get(served.federation_port, HEALTH, sources(1, first=20)[0]))[0] == 200
    assert await closed_by_server(held[0], 5.0)
    for conn in held[1:]:
        assert not await closed_by_server(conn, 0.1)
    status, _ = await get(served.console_port, "/login")
    assert status == 200  # the console has its own cap
    for conn in held:
        close(conn)
    await asyncio.sleep(REPORT_S * 2)
    assert lines(caplog, "closed 1 idle or unfinished connection(s) to make room")


async def test_at_the_total_cap_with_every_request_busy_a_newcomer_is_refused(
    serve: Serve,
) -> None:
    served = await serve(replace(SHORT, body_timeout_s=LONG_S, max_connections=3))
    busy = [await stalled_body(served.federation_port, MESSAGES, 1000, 10) for _ in range(3)]
    await asyncio.sleep(0.2)  # their requests are in their handlers
    newcomer = await connect(served.federation_port)
    assert await closed_by_server(newcomer, 5.0)
    for conn in busy:
        assert not await closed_by_server(conn, 0.1)
        close(conn)


async def test_a_client_leaving_mid_body_is_one_line_without_traceback(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    served = await serve(replace(SHORT, body_timeout_s=LONG_S))
    for port, path in ((served.federation_port, MESSAGES), (served.console_port, "/login")):
        for _ in range(3):
            conn = await stalled_body(port, path, 10_000, 500)
            await asyncio.sleep(0.2)
            close(conn)
    await asyncio.sleep(REPORT_S * 2)
    assert not [r for r in caplog.records if r.exc_info]
    assert not lines(caplog, "incident")
    assert lines(caplog, "federation API: 3 request(s) ended by the client before their body")
    assert lines(caplog, "console: 3 request(s) ended by the client before their body")


async def test_a_few_hundred_abusers_and_the_node_keeps_answering(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    served = await serve(replace(SHORT, max_connections=150, max_connections_per_address=20))
    attackers = sources(20)
    idle = [await partial_head(served.federation_port, attackers[i % 20]) for i in range(200)]
    idle += [await connect(served.console_port, attackers[i % 20]) for i in range(100)]
    stalled = [
        await stalled_body(served.federation_port, MESSAGES, 100_000, 90_000, attackers[i % 20])
        for i in range(50)
    ]
    for _ in range(3):
        assert (await get(served.federation_port, HEALTH))[0] == 200
        assert (await get(served.console_port, "/login"))[0] == 200
    for conn in [*idle, *stalled]:
        assert await closed_by_server(conn, WAIT_S)
    await asyncio.sleep(REPORT_S * 2)
    assert len(lines(caplog, "federation API: closed 50 connection(s) whose request body")) == 1


async def test_accept_errors_are_counted_not_logged_one_by_one(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Out of file descriptors asyncio reports each failed accept; the node sums them up."""
    served = await serve()
    loop = asyncio.get_running_loop()
    [sock] = [s for site in served.runners[0].sites for s in site._server.sockets]  # type: ignore[attr-defined]
    for _ in range(500):
        loop.call_exception_handler(
            {
                "message": "socket.accept() out of system resource",  # asyncio's words
                "exception": OSError(24, "Too many open files"),
                "socket": sock,
            }
        )
    await asyncio.sleep(REPORT_S * 2)
    [line] = lines(caplog, "could not accept")
    assert line.startswith("federation API: could not accept 500 connection(s)")
    assert not lines(caplog, "out of system resource")
