"""What lookups need from storage: `typing.Protocol`s that `node.store` implements."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from node.lookup.model import EvidenceEntry, Hit
from node.protocol.storage import UnitOfWork
from node.records.model import FirearmRecord


class LookupWork(UnitOfWork, Protocol):
    """The unit of work in which a confirmation or hit notice takes effect
    (`node.store.work.StoreWork`): the kernel's claim, outbox and audit, and the hits."""

    async def add_hits(self, hits: list[dict[str, Any]]) -> None:
        """Record a peer's lookup that matched our records (one row per record)."""
        ...


class LookupStorage(Protocol):
    """Our records' OPRF outputs and index versions, peers' indexes, and hits on our records
    (`node.store.lookups.LookupStore`)."""

    async def get_unindexed(self, limit: int, after: int = 0) -> list[tuple[int, str]]:
        """Active records (id above `after`) without an OPRF output: (id, canonical serial)."""
        ...

    async def add_outputs(self, outputs: list[tuple[int, str, bytes]]) -> None:
        """Store OPRF outputs: (record id, the canonical serial evaluated, its output);
        records deleted meanwhile are skipped."""
        ...

    async def delete_stale_outputs(self) -> int:
        """Drop the outputs of recovered records (they leave the index) and of records
        whose serial changed since (they are evaluated again)."""
        ...

    async def get_prefixes(self) -> list[bytes]:
        """The first 8 bytes of every stored output: the index's items, one per active record."""
        ...

    async def get_items(self) -> list[bytes]:
        """The distinct first 8 bytes of the stored outputs, in increasing order: the
        index's items, big-endian."""
        ...

    async def get_records_by_output(self, output: bytes) -> list[FirearmRecord]:
        """Active records whose serial has this OPRF output."""
        ...

    async def add_document(
        self,
        version: int,
        base_version: int,
        data: bytes,
        at: datetime,
        items_digest: bytes,
        base_items: bytes | None,
    ) -> None:
        """Keep a published index version (a full one with its items)."""
        ...

    async def get_last_document(self) -> tuple[int, int, bytes, bytes] | None:
        """The newest version: (version, base version, items digest, the base's items)."""
        ...

    async def get_version(self) -> tuple[int, int] | None:
        """The newest published version and its base version (no blob is read)."""
        ...

    async def get_documents(self, since: int | None) -> list[tuple[int, int, bytes]]:
        """What a peer holding version `since` needs: (version, base version, document)."""
        ...

    async def set_peer_index(
        self, country: str, version: int, documents: bytes, at: datetime, *, oprf_key: bytes | None
    ) -> bool:
        """Cache a peer's index (its encoded documents) at `version`."""
        ...

    async def get_peer_index(self, country: str) -> tuple[int, bytes] | None:
        """A peer's cached index: (version, encoded documents)."""
        ...

    async def get_hits(self, limit: int = 100, offset: int = 0) -> list[Hit]:
        """Hits on our records, newest first."""
        ...


class EvidenceStorage(Protocol):
    """Peers' signed confirmations of our hits (`node.store.evidence.EvidenceStore`)."""

    async def add_evidence(
        self, at: datetime, peer: str, serial: str, case_reference: str, actor: str, bundle: bytes
    ) -> int:
        """Keep one bundle; its id."""
        ...

    async def get_evidence(self, evidence_id: int) -> EvidenceEntry:
        """One bundle with its summary; NotFoundError if there is none with this id."""
        ...

    async def list_evidence(self, limit: int, offset: int = 0) -> tuple[list[EvidenceEntry], int]:
        """Summaries (no bundle), newest first, and how many there are in all."""
        ...
