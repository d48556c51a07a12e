"""The audit log's entries and their hash chain: pure values and functions.

Each entry's hash covers its own fields and the previous entry's hash, so
altering, inserting or removing any stored entry breaks the chain from that
entry on. The hash input is SHA-256 over
`prev_hash (32 bytes) || canonical JSON of {seq, at, actor, action, target, details}`
where canonical JSON has sorted keys, no spaces and UTF-8 text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Something to record: who did what to which target, with details."""

    actor: str
    action: str
    target: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A stored, chained audit entry."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


def entry_hash(seq: int, at: datetime, event: AuditEvent, prev_hash: str) -> str:
    """Return the hex SHA-256 that chains an entry to its predecessor."""
    body = {
        "seq": seq,
        "at": at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "details": event.details,
    }
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(bytes.fromhex(prev_hash) + encoded.encode()).hexdigest()


def sql_entry_hash(
    seq: int, at_iso: str, actor: str, action: str, target: str, details_json: str, prev_hash: str
) -> str:
    """`entry_hash` with SQL-friendly arguments, registered as an SQLite function.

    SQLite appends an entry in one `INSERT … SELECT` that reads the head and
    calls this, so the append is atomic without a read-then-write transaction.
    """
    event = AuditEvent(actor, action, target, json.loads(details_json))
    return entry_hash(seq, datetime.fromisoformat(at_iso), event, prev_hash)


def first_broken(entries: list[AuditEntry], prev_hash: str) -> AuditEntry | None:
    """Return the first entry whose link or hash does not verify, or None.

    Args:
        entries: consecutive entries in sequence order.
        prev_hash: the hash of the entry before the first one (GENESIS_HASH at the start).
    """
    expected_seq = entries[0].seq if entries else 0
    for entry in entries:
        event = AuditEvent(entry.actor, entry.action, entry.target, entry.details)
        if (
            entry.seq != expected_seq
            or entry.prev_hash != prev_hash
            or entry_hash(entry.seq, entry.at, event, prev_hash) != entry.hash
        ):
            return entry
        prev_hash = entry.hash
        expected_seq += 1
    return None


class AuditLog(Protocol):
    """Where services append their audit entries (`node.store.audit.AuditStore`)."""

    async def add_entry(self, at: datetime, event: AuditEvent) -> AuditEntry:
        """Append one entry, chained to the last."""
        ...


class AuditStorage(AuditLog, Protocol):
    """The whole audit log, read back for the audit service (`node.store.audit.AuditStore`)."""

    async def get_entries(
        self,
        *,
        before_seq: int | None = None,
        limit: int = 50,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditEntry]:
        """Newest entries first, optionally before a sequence number and filtered."""
        ...

    def iter_entries(self, batch: int = 5000) -> AsyncIterator[list[AuditEntry]]:
        """Every entry in sequence order, in batches (bounded memory)."""
        ...

    async def get_head(self) -> tuple[int, str]:
        """The last sequence number and hash as the head row records them."""
        ...
