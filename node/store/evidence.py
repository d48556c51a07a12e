"""The querier's evidence of hits: peers' signed confirmations, byte for byte."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select

from node.errors import NotFoundError
from node.lookup.model import EvidenceEntry
from node.store.database import Database
from node.store.tables import HitEvidenceRow, table

_e = table(HitEvidenceRow)
_SUMMARY = (_e.c.id, _e.c.at, _e.c.peer, _e.c.serial_number, _e.c.case_reference, _e.c.actor)


def _entry(row: Any, bundle: bytes = b"") -> EvidenceEntry:
    return EvidenceEntry(
        row.id, row.at, row.peer, row.serial_number, row.case_reference, row.actor, bundle
    )


class EvidenceStore:
    """Keeps and reads evidence bundles (`node.lookup.evidence`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_evidence(
        self, at: datetime, peer: str, serial: str, case_reference: str, actor: str, bundle: bytes
    ) -> int:
        """Keep one bundle; its id."""
        values = {
            "at": at,
            "peer": peer,
            "serial_number": serial,
            "case_reference": case_reference,
            "actor": actor,
            "bundle": bundle,
        }
        # Kept on the hit path: one driver round trip (`Database.fetch`).
        ((evidence_id,),) = await self._db.fetch(
            "evidence.add",
            lambda: insert(_e).values({k: bindparam(k) for k in values}).returning(_e.c.id),
            values,
            write=True,
        )
        return int(evidence_id)

    async def get_evidence(self, evidence_id: int) -> EvidenceEntry:
        """One bundle with its summary; NotFoundError if there is none with this id."""
        async with self._db.read() as conn:
            row = (await conn.execute(select(_e).where(_e.c.id == evidence_id))).first()
        if row is None:
            raise NotFoundError(f"no evidence with id {evidence_id}")
        return _entry(row, row.bundle)

    async def list_evidence(self, limit: int, offset: int = 0) -> tuple[list[EvidenceEntry], int]:
        """Summaries (no bundle), newest first, and how many there are in all."""
        query = select(*_SUMMARY).order_by(_e.c.id.desc()).limit(limit).offset(offset)
        async with self._db.read() as conn:
            rows = list(await conn.execute(query))
            total = (await conn.execute(select(func.count()).select_from(_e))).scalar_one()
        return [_entry(r) for r in rows], int(total)
