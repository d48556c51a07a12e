"""Issue 7 against `iarms-node run` itself: its own file descriptors, its own log.

The node runs with a limit of 600 open files, so that a few hundred idle
connections are what 20,000 are to a node allowed 20,000: before the
defences, they exhausted its descriptors and it stopped answering.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.abuse import (
    HEALTH,
    MESSAGES,
    NodeProcess,
    closed_by_server,
    get,
    open_many,
    partial_head,
    sources,
    stalled_body,
)

pytestmark = pytest.mark.slow
FD_LIMIT = 600
DEADLINES = {"head_timeout_s": 2, "body_timeout_s": 3, "idle_timeout_s": 3}
WAIT_S = 30.0


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[NodeProcess]:
    """A node run as `iarms-node run` with short deadlines and few file descriptors."""
    proc = NodeProcess.create(tmp_path, {"federation": DEADLINES, "console": DEADLINES})
    await proc.start(fd_limit=FD_LIMIT)
    yield proc
    await proc.stop()


def tally(log: str, listener: str, text: str) -> tuple[int, int]:
    """(lines, total count) of the abuse lines of `listener` that say `text`."""
    found = [x for x in log.splitlines() if x.startswith(f"{listener}: ") and text in x]
    counts = [int(re.sub(r"\D", "", x.split(": ", 1)[1].split(" ", 2)[1])) for x in found]
    return len(found), sum(counts)


async def test_hundreds_of_abusive_connections_and_the_node_keeps_serving(
    node: NodeProcess,
) -> None:
    fed, console = node.port("federation"), node.port("console")
    stalled = await open_many(
        functools.partial(stalled_body, fed, MESSAGES, 1_048_577, 1_048_570), 50, sources(5)
    )
    idle = await open_many(functools.partial(partial_head, fed), 500, sources(10, first=10))
    idle_console = await open_many(
        functools.partial(partial_head, console), 100, sources(2, first=30)
    )
    for _ in range(3):
        assert (await get(fed, HEALTH, within=10))[0] == 200
        assert (await get(console, "/login", within=10))[0] == 200
    assert (len(stalled), len(idle), len(idle_console)) == (50, 500, 100)
    for conn in [*stalled, *idle, *idle_console]:
        assert await closed_by_server(conn, WAIT_S)
    assert (await get(fed, HEALTH))[0] == 200

    log = await node.stop()
    assert "Traceback" not in log and "Too many open files" not in log
    assert log.count("the process may open only 600 files") == 1
    # Each abusive connection is counted once: a stalled body by its deadline, unless it
    # was evicted while the node had not yet read its head; a partial head by its
    # deadline or evicted to make room.
    body = tally(log, "federation API", "whose request body did not arrive within 3 s")
    head = tally(log, "federation API", "did not finish a request head within 2 s")
    evicted = tally(log, "federation API", "to make room at the connection limit (229)")
    assert body[1] > 0 and evicted[1] > 0
    assert body[1] + head[1] + evicted[1] == 550
    assert max(body[0], head[0], evicted[0]) <= 2  # a line a minute at most
    assert tally(log, "console", "did not finish a request head within 2 s from 2 ") == (1, 100)
