"""What the custody registry needs from storage: a `typing.Protocol` that `node.store`
implements (`node.store.custody.CustodyStore`)."""

from __future__ import annotations

from typing import Protocol

from node.records.storage import BatchStorage
from node.trace.model import CustodyEvent


class CustodyStorage(BatchStorage, Protocol):
    """This node's custody events; the CSV import stores them with `add_many`
    (rows of `model.STORED_FIELDS`, the digest their dedupe key)."""

    async def get_events(
        self, serial_canonical: str, make_key: str | None, limit: int | None = None
    ) -> list[CustodyEvent]:
        """The events of a canonical serial (and make key, if given) by event date, then id;
        at most `limit` of them (None: all)."""
        ...

    async def count(self) -> int:
        """How many custody events this node holds."""
        ...
