"""The HTTP transport reads whole answers, however they arrive, up to a limit."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from node.errors import PeerUnreachableError
from node.web.http_transport import HttpTransport

BIG = bytes(range(256)) * (12 * 1024)  # 3 MiB, streamed in chunks


async def test_large_answers_are_read_whole_and_limits_hold() -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for i in range(0, len(BIG), 65536):
            await response.write(BIG[i : i + 65536])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/x", stream)
    app.router.add_get("/x", stream)
    async with TestServer(app) as server:
        transport = HttpTransport()
        try:
            url = str(server.make_url("/x"))
            assert await transport.post(url, b"", len(BIG)) == BIG
            assert await transport.get(url, len(BIG)) == BIG
            with pytest.raises(PeerUnreachableError, match="larger than"):
                await transport.post(url, b"", len(BIG) - 1)
        finally:
            await transport.close()


async def test_the_transport_keeps_few_connections_to_one_peer() -> None:
    """A peer's guard allows 64 connections per address by default: our fan-out stays
    far below it, so a large lookup is never refused as abuse."""
    transport = HttpTransport()
    try:
        connector = transport._client().connector
        assert connector is not None and connector.limit_per_host == 16
    finally:
        await transport.close()
