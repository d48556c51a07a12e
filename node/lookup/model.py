"""Typed values of lookups shared by the lookup service and the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Hit:
    """A peer's lookup that matched one of our records, as the owner records it."""

    id: int
    record_id: int
    serial_number: str
    peer: str
    at: datetime
    case_reference: str
    make_given: str
    make_agrees: bool | None  # None when the peer gave no make
    lookup_id: bytes


@dataclass(frozen=True, slots=True)
class EvidenceEntry:
    """A kept bundle and what the querier noted with it (`bundle` empty in listings)."""

    id: int
    at: datetime
    peer: str
    serial: str  # as the officer typed it
    case_reference: str
    actor: str
    bundle: bytes

    def to_json(self) -> dict[str, Any]:
        """What was noted with the bundle, as the CLI and the console list it."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "peer": self.peer,
            "serial": self.serial,
            "case_reference": self.case_reference,
            "actor": self.actor,
        }
