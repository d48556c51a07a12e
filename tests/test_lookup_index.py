"""This node's OPRF outputs and published membership index follow its records."""

from __future__ import annotations

from datetime import date

from node.app import Node
from node.protocol import oprf
from node.protocol.membership import FullIndex, IndexDelta, item_of, parse_index
from node.records.model import RecordInput


def _item(node: Node, serial: str) -> int:
    canonical = node.records.normalise(RecordInput(serial, "Glock", "pistol", "stolen"))
    output = oprf.evaluate_direct(
        node.oprf_key, oprf.serial_input(canonical.serial_canonical), oprf.MODE_VOPRF
    )
    return item_of(output)


async def test_index_follows_records(node: Node) -> None:
    created = [
        await node.records.create(RecordInput(f"IX-{i}", "Glock", "pistol", "stolen"), "t")
        for i in range(40)  # a change of 3 items stays under the 10 % that forces a full version
    ]
    assert await node.lookup_index.refresh() == 1
    docs = await node.lookups_store.get_documents(None)
    full = parse_index(docs[0][2])
    assert isinstance(full, FullIndex) and full.version == 1
    assert _item(node, "ix-0") in full.items and len(full.items) == 40
    assert await node.lookup_index.refresh() is None  # nothing changed: nothing published

    await node.records.recover(created[0].id, 1, date(2025, 1, 1), "t")
    await node.records.delete(created[1].id, 1, "duplicate", "t")
    await node.records.create(RecordInput("IX-NEW", "Glock", "pistol", "lost"), "t")
    assert await node.lookup_index.refresh() == 2
    docs = await node.lookups_store.get_documents(1)
    delta = parse_index(docs[-1][2])
    assert isinstance(delta, IndexDelta) and (delta.version, delta.base_version) == (2, 1)
    assert set(delta.removed) == {_item(node, "IX-0"), _item(node, "IX-1")}
    assert set(delta.added) == {_item(node, "IX-NEW")}
    assert [v for v, _b, _d in await node.lookups_store.get_documents(None)] == [1, 2]


async def test_an_edited_serial_is_evaluated_again(sqlite_node: Node) -> None:
    record = await sqlite_node.records.create(RecordInput("OLD-1", "CZ", "pistol", "stolen"), "t")
    await sqlite_node.lookup_index.refresh()
    await sqlite_node.records.update(
        record.id, 1, RecordInput("NEW-1", "CZ", "pistol", "stolen"), "t"
    )
    assert await sqlite_node.lookup_index.refresh() == 2
    output = oprf.evaluate_direct(sqlite_node.oprf_key, oprf.serial_input("NEW1"), oprf.MODE_VOPRF)
    assert await sqlite_node.lookups_store.get_records_by_output(output) == [
        await sqlite_node.records.get(record.id, "t")
    ]
