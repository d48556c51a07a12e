"""The audit service: appends events and verifies the hash chain."""

from __future__ import annotations

from dataclasses import dataclass

from node.auditing import GENESIS_HASH, AuditEntry, AuditEvent, AuditStorage, first_broken
from node.clock import Clock


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of `AuditService.verify`."""

    entries: int
    ok: bool
    broken_seq: int | None = None
    message: str = ""


class AuditService:
    """Records what happened and proves it was not altered."""

    def __init__(self, store: AuditStorage, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record(self, event: AuditEvent) -> AuditEntry:
        """Append one event."""
        return await self._store.add_entry(self._clock.now(), event)

    async def recent(
        self,
        before_seq: int | None = None,
        limit: int = 50,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditEntry]:
        """Newest entries first."""
        return await self._store.get_entries(
            before_seq=before_seq, limit=limit, action=action, actor=actor
        )

    async def verify(self) -> VerifyReport:
        """Walk the whole chain; name the first entry that does not verify."""
        prev = GENESIS_HASH
        count = 0
        expected_seq = 1
        async for batch in self._store.iter_entries():
            if batch[0].seq != expected_seq:
                return _broken(batch[0].seq, count, f"entries before {batch[0].seq} are missing")
            bad = first_broken(batch, prev)
            if bad is not None:
                return _broken(bad.seq, count, f"entry {bad.seq} does not match its hash chain")
            count += len(batch)
            prev = batch[-1].hash
            expected_seq = batch[-1].seq + 1
        head_seq, head_hash = await self._store.get_head()
        if (head_seq, head_hash) != (expected_seq - 1, prev):
            return _broken(
                expected_seq,
                count,
                f"the log ends at entry {expected_seq - 1} but its head says {head_seq}: "
                "entries were removed from the end",
            )
        return VerifyReport(entries=count, ok=True, message=f"{count} entries verified")


def _broken(seq: int, count: int, message: str) -> VerifyReport:
    return VerifyReport(entries=count, ok=False, broken_seq=seq, message=message)
