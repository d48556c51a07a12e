"""This node's OPRF outputs and published membership index follow its records."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from node.app import Node
from node.clock import FakeClock
from node.errors import IndexWorkerError
from node.identity import load_keys
from node.lookup import evaluate_worker, oprf
from node.lookup.evaluate_worker import evaluate_serials
from node.lookup.membership import FullIndex, IndexDelta, item_of, parse_index
from node.lookup.oprf_workers import OprfWorkers
from node.records.model import RecordInput
from node.server import SETTLE_S, follow_records

ROOT = Path(__file__).resolve().parents[1]


def _key(node: Node) -> bytes:
    return load_keys(node.config, None).oprf


def _item(node: Node, serial: str) -> int:
    canonical = node.records.normalise(RecordInput(serial, "Glock", "pistol", "stolen"))
    output = oprf.evaluate_direct(
        _key(node), oprf.serial_input(canonical.serial_canonical), oprf.MODE_VOPRF
    )
    return item_of(output)


def _children() -> set[int]:
    """The pids of this process's child processes, zombies included (Linux /proc)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        if ppid == os.getpid():
            children.add(int(stat.parent.name))
    return children


def _in_thread(key: bytes, serials: list[str]) -> list[bytes]:
    raise AssertionError("evaluated in a thread, not by the worker processes")


async def _create(node: Node, prefix: str, count: int) -> list[str]:
    """Create `count` records; return their canonical serials, in creation order."""
    records = [
        await node.records.create(RecordInput(f"{prefix}-{i}", "Glock", "pistol", "stolen"), "t")
        for i in range(count)
    ]
    return [record.serial_canonical for record in records]


async def test_index_follows_records(node: Node) -> None:
    created = [
        await node.records.create(RecordInput(f"IX-{i}", "Glock", "pistol", "stolen"), "t")
        for i in range(40)  # a change of 3 items stays under the 10 % that forces a full version
    ]
    assert await node.lookup_index.refresh(_key(node)) == 1
    docs = await node.lookups_store.get_documents(None)
    full = parse_index(docs[0][2])
    assert isinstance(full, FullIndex) and full.version == 1
    assert _item(node, "ix-0") in full.items and len(full.items) == 40
    assert await node.lookup_index.refresh(_key(node)) is None  # nothing changed: nothing published

    await node.records.recover(created[0].id, 1, date(2025, 1, 1), "t")
    await node.records.delete(created[1].id, 1, "duplicate", "t")
    await node.records.create(RecordInput("IX-NEW", "Glock", "pistol", "lost"), "t")
    assert await node.lookup_index.refresh(_key(node)) == 2
    docs = await node.lookups_store.get_documents(1)
    delta = parse_index(docs[-1][2])
    assert isinstance(delta, IndexDelta) and (delta.version, delta.base_version) == (2, 1)
    assert set(delta.removed) == {_item(node, "IX-0"), _item(node, "IX-1")}
    assert set(delta.added) == {_item(node, "IX-NEW")}
    assert [v for v, _b, _d in await node.lookups_store.get_documents(None)] == [1, 2]


async def test_an_edited_serial_is_evaluated_again(node: Node) -> None:
    def output(serial: str) -> bytes:
        return oprf.evaluate_direct(_key(node), oprf.serial_input(serial), oprf.MODE_VOPRF)

    record = await node.records.create(RecordInput("AAA-1", "CZ", "pistol", "stolen"), "t")
    await node.lookup_index.refresh(_key(node))
    old = output(record.serial_canonical)
    assert len(await node.lookups_store.get_records_by_output(old)) == 1
    record = await node.records.update(
        record.id, 1, RecordInput("NEW-1", "CZ", "pistol", "stolen"), "t"
    )
    # Until the index follows, the old serial's output answers nothing.
    assert await node.lookups_store.get_records_by_output(old) == []
    assert await node.lookup_index.refresh(_key(node)) == 2
    new = output(record.serial_canonical)
    assert await node.lookups_store.get_prefixes() == [new[:8]]
    assert await node.lookups_store.get_records_by_output(new) == [record]
    await node.records.recover(record.id, record.version, date(2025, 1, 1), "t")
    assert await node.lookups_store.get_records_by_output(new) == []
    assert await node.lookup_index.refresh(_key(node)) == 3
    assert await node.lookups_store.get_prefixes() == []


async def test_workers_answer_in_order_what_a_thread_computes() -> None:
    key, _ = oprf.generate_key_pair(oprf.MODE_VOPRF)
    serials = [f"SN{i:05d}" for i in range(101)]  # 3 workers: parts of 34, 34 and 33
    workers = await OprfWorkers.start(key, 3)
    try:
        # Two overlapping requests queue per worker, as two batches of a refresh do.
        first, second = await asyncio.gather(
            workers.evaluate(serials), workers.evaluate(serials[:2])
        )
        assert await workers.evaluate([]) == []
    finally:
        await workers.close()
    assert first == evaluate_serials(key, serials)
    assert second == first[:2]


async def test_a_refresh_with_workers_stores_the_thread_outputs(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    serials = await _create(node, "WK", 25)
    monkeypatch.setattr(evaluate_worker, "evaluate_serials", _in_thread)
    node.lookup_index.batch_size, node.lookup_index.workers = 10, 3
    node.lookup_index.write_size = 10  # a transaction per batch
    done: list[int] = []
    before = _children()

    assert await node.lookup_index.refresh(_key(node), lambda n, _: done.append(n)) == 1

    assert done == [10, 20, 25]  # three batches, the last one short
    assert _children() == before
    for serial, output in zip(serials, evaluate_serials(_key(node), serials), strict=True):
        found = await node.lookups_store.get_records_by_output(output)
        assert [record.serial_canonical for record in found] == [serial]
    assert len(await node.lookups_store.get_prefixes()) == 25


async def test_a_failing_worker_is_a_clear_error_and_leaves_no_process() -> None:
    before = _children()
    workers = await OprfWorkers.start(bytes(32), 2)  # zero is not a valid key
    try:
        assert len(_children() - before) == 2
        with pytest.raises(IndexWorkerError, match=r"worker failed: .*OprfError: private key"):
            await workers.evaluate(["AB1", "AB2", "AB3"])
    finally:
        await workers.close()
    assert _children() == before


async def test_a_killed_worker_fails_the_refresh_and_leaves_no_process(
    sqlite_node: Node,
) -> None:
    await _create(sqlite_node, "KW", 25)
    sqlite_node.lookup_index.batch_size, sqlite_node.lookup_index.workers = 5, 2
    sqlite_node.lookup_index.write_size = 5  # a transaction per batch
    before = _children()

    def kill_workers(done: int, _total: int) -> None:
        # The first batch is stored; the fourth is sent only once the second is handed to
        # the writer, which waits for the first write to end: after this.
        if done == 5:
            workers = _children() - before
            assert len(workers) == 2
            for pid in workers:
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(IndexWorkerError, match="an OPRF index worker failed: exit code -9"):
        await sqlite_node.lookup_index.refresh(_key(sqlite_node), kill_workers)
    assert _children() == before
    assert await sqlite_node.lookups_store.get_documents(None) == []


_STDIN_SCRIPT = """
import asyncio, sys
from pathlib import Path
from node.app import Node
from node.clock import FakeClock
from node.clock import FakeClock
from node.config import load_config
from node.identity import load_keys
from node.initialise import init_node
from node.lookup import evaluate_worker
from node.records.model import RecordInput

def in_thread(key, serials):
    raise AssertionError("evaluated in a thread, not by the worker processes")

async def main(data_dir):
    clock = FakeClock()
    await init_node(data_dir, "FRA", admin_password="correct horse battery staple", clock=clock)
    node = await Node.open(load_config(data_dir), clock)
    try:
        for i in range(12):
            await node.records.create(RecordInput(f"SC-{i}", "CZ", "pistol", "stolen"), "t")
        evaluate_worker.evaluate_serials = in_thread
        node.lookup_index.batch_size, node.lookup_index.workers = 5, 2
        version = await node.lookup_index.refresh(load_keys(node.config, None).oprf)
        print("published", version, len(await node.lookups_store.get_prefixes()))
    finally:
        await node.close()

asyncio.run(main(Path(sys.argv[1])))
"""


def test_a_script_on_stdin_can_refresh_with_workers(tmp_path: Path) -> None:
    # A process pool of the `spawn` kind re-ran the parent's __main__ in each
    # worker, which a script read from standard input does not have.
    done = subprocess.run(
        [sys.executable, "-", str(tmp_path / "node")],
        input=_STDIN_SCRIPT,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "published 1 12"


async def _next_published(published: asyncio.Queue[int | None], clock: FakeClock) -> int | None:
    """The next version the follower publishes, moving the fake clock past its settle time."""
    for _ in range(3000):
        if not published.empty():
            return published.get_nowait()
        clock.advance(SETTLE_S)
        await asyncio.sleep(0.01)  # the refresh works in the database's thread
    raise AssertionError("nothing was published")


async def test_the_served_index_follows_a_record_change_without_waiting_for_the_timer(
    sqlite_node: Node, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` publishes a change stored in its own process (console, import) at once;
    the 30 s timer is for changes made by other processes (here: an hour, never reached)."""
    node, published = sqlite_node, asyncio.Queue[int | None]()
    refresh = node.lookup_index.refresh

    async def refresh_and_tell(key: bytes) -> int | None:
        version = await refresh(key)
        published.put_nowait(version)
        return version

    monkeypatch.setattr(node.lookup_index, "refresh", refresh_and_tell)
    stop = asyncio.Event()
    follower = asyncio.create_task(follow_records(node, _key(node), stop, every_s=3600))
    try:
        assert await asyncio.wait_for(published.get(), 30) == 1  # the refresh at start
        entry = RecordInput("FOLLOW-1", "Glock", "pistol", "stolen")
        record = await node.records.create(entry, "t")
        assert await _next_published(published, clock) == 2
        await node.records.recover(record.id, record.version, None, "t")
        assert await _next_published(published, clock) == 3
    finally:
        stop.set()
        await follower
    assert published.empty()  # no refresh without a change


async def test_outputs_of_records_deleted_meanwhile_are_not_stored(node: Node) -> None:
    kept, gone = [
        await node.records.create(RecordInput(f"DEL-{i}", "CZ", "pistol", "stolen"), "t")
        for i in range(2)
    ]
    await node.records.delete(gone.id, gone.version, "duplicate", "t")
    await node.lookups_store.add_outputs(
        [(r.id, r.serial_canonical, bytes([i]) * 64) for i, r in enumerate((kept, gone))]
    )
    await node.lookups_store.add_outputs([(kept.id, kept.serial_canonical, bytes(64))])  # again
    assert await node.lookups_store.get_prefixes() == [bytes(8)]


async def test_outputs_of_scattered_records_deleted_meanwhile_are_not_stored(node: Node) -> None:
    # Ids far apart are checked row by row, a run of ids by one range scan (above).
    records = [
        await node.records.create(RecordInput(f"SCAT-{i}", "CZ", "pistol", "stolen"), "t")
        for i in range(6)
    ]
    first, last = records[0], records[-1]
    await node.records.delete(last.id, last.version, "duplicate", "t")
    await node.lookups_store.add_outputs(
        [(r.id, r.serial_canonical, bytes([i + 1]) * 64) for i, r in enumerate((first, last))]
    )
    assert await node.lookups_store.get_prefixes() == [bytes([1]) * 8]


async def test_the_items_are_the_distinct_prefixes_in_increasing_order(node: Node) -> None:
    records = [
        await node.records.create(RecordInput(f"ITEM-{i}", "CZ", "pistol", "stolen"), "t")
        for i in range(4)
    ]
    outputs = [bytes([9]) * 64, bytes([2]) * 64, bytes([9]) * 64, bytes([0, 7]) * 32]
    await node.lookups_store.add_outputs(
        [(r.id, r.serial_canonical, out) for r, out in zip(records, outputs, strict=True)]
    )
    expected = [bytes([0, 7]) * 4, bytes([2]) * 8, bytes([9]) * 8]
    assert await node.lookups_store.get_items() == expected
