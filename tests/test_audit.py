"""The hash-chained audit log: verification names the first altered entry."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, update

from node.app import Node
from node.auditing import GENESIS_HASH, AuditEntry, AuditEvent, entry_hash, first_broken
from node.store.tables import AuditRow

_log = AuditRow.__table__


async def _fill(node: Node, n: int) -> None:
    for i in range(n):
        await node.audit.record(AuditEvent("tester", "test.event", f"thing/{i}", {"i": i}))


async def test_intact_chain_verifies(node: Node) -> None:
    await _fill(node, 5)
    report = await node.audit.verify()
    # init wrote one entry (the first admin) before ours
    assert report.ok and report.entries == 6 and report.broken_seq is None


async def test_altered_entry_is_named(node: Node) -> None:
    await _fill(node, 8)
    async with node.db.write() as conn:
        await conn.execute(update(_log).where(_log.c.seq == 5).values(actor="mallory"))
    report = await node.audit.verify()
    assert not report.ok and report.broken_seq == 5
    assert "entry 5" in report.message


async def test_altered_details_are_detected(node: Node) -> None:
    await _fill(node, 3)
    async with node.db.write() as conn:
        await conn.execute(update(_log).where(_log.c.seq == 3).values(details={"i": 99}))
    assert (await node.audit.verify()).broken_seq == 3


async def test_removed_entries_are_detected(node: Node) -> None:
    await _fill(node, 6)
    async with node.db.write() as conn:
        await conn.execute(delete(_log).where(_log.c.seq == 4))
    assert (await node.audit.verify()).broken_seq == 5
    async with node.db.write() as conn:
        await conn.execute(delete(_log).where(_log.c.seq >= 4))
    report = await node.audit.verify()
    assert not report.ok and "removed from the end" in report.message


async def test_recent_filters(sqlite_node: Node) -> None:
    await _fill(sqlite_node, 3)
    await sqlite_node.audit.record(AuditEvent("other", "login", "console"))
    assert [e.actor for e in await sqlite_node.audit.recent(action="login")] == ["other"]
    assert len(await sqlite_node.audit.recent(actor="tester")) == 3
    newest = await sqlite_node.audit.recent(limit=2)
    older = await sqlite_node.audit.recent(before_seq=newest[-1].seq, limit=10)
    assert [e.seq for e in newest + older] == list(range(newest[0].seq, 0, -1))


def _chain(events: list[AuditEvent]) -> list[AuditEntry]:
    prev, out = GENESIS_HASH, []
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for seq, event in enumerate(events, 1):
        digest = entry_hash(seq, at, event, prev)
        out.append(
            AuditEntry(
                seq, at, event.actor, event.action, event.target, event.details, prev, digest
            )
        )
        prev = digest
    return out


_events = st.lists(
    st.builds(
        AuditEvent,
        st.text(max_size=10),
        st.text(max_size=10),
        st.text(max_size=10),
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
    ),
    min_size=1,
    max_size=8,
)


@given(_events, st.data())
def test_any_single_change_breaks_the_chain_at_that_entry(
    events: list[AuditEvent], data: st.DataObject
) -> None:
    chain = _chain(events)
    assert first_broken(chain, GENESIS_HASH) is None
    i = data.draw(st.integers(0, len(chain) - 1))
    victim = chain[i]
    altered = AuditEntry(
        victim.seq,
        victim.at,
        victim.actor + "!",
        victim.action,
        victim.target,
        victim.details,
        victim.prev_hash,
        victim.hash,
    )
    broken = first_broken([*chain[:i], altered, *chain[i + 1 :]], GENESIS_HASH)
    assert broken is not None and broken.seq == victim.seq
