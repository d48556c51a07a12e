"""What the kernel needs from storage: `typing.Protocol`s that `node.store` implements.

The kernel never imports the store: the composition root (`node.app`) hands
it objects with these methods, and mypy checks that the SQL stores fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from node.auditing import AuditEvent
from node.protocol.model import (
    DeliveryState,
    KnownKey,
    OutboxMessage,
    OutboxStatus,
    Peer,
    PeerStatus,
    PriorClaim,
    Service,
)


class OutboxWriter(Protocol):
    """Where a message that must arrive is written: the outbox, or a unit of work."""

    async def add_message(
        self, recipient: str, message_id: bytes, type_: str, body: bytes, at: datetime
    ) -> OutboxMessage:
        """Queue a message for `recipient`."""
        ...


class UnitOfWork(OutboxWriter, Protocol):
    """One database transaction in which an inbound message takes effect, all or nothing.

    The dispatcher claims the message's id, the handler stores its effect and
    queues the messages it sends, and the dispatcher stores the answer; all of
    it commits together, or none of it does (a failure anywhere rolls back the
    claim too, so a retry is handled afresh). Services extend this Protocol
    with what their handlers store (`node.lookup.storage.LookupWork`); the
    store implements them all in one class (`node.store.work.StoreWork`).
    A handler writes only through its unit of work: on SQLite the transaction
    holds the node's only write connection.
    """

    async def claim(self, sender: str, key: bytes, type_: str, at: datetime) -> PriorClaim | None:
        """Claim (sender, key) for a message of `type_`: None if it is new, else the prior claim."""
        ...

    async def set_answer(self, sender: str, key: bytes, answer_type: str, answer: bytes) -> None:
        """Keep the answer (its body without `ref`) with the claim of (sender, key)."""
        ...

    async def add_audit_entry(self, at: datetime, event: AuditEvent) -> None:
        """Append an audit entry in this transaction."""
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the transaction has committed (never if it rolls back)."""
        ...


class OutboxStorage(OutboxWriter, Protocol):
    """The durable outbox and each peer's delivery backoff (`node.store.outbox.OutboxStore`)."""

    async def get_due(
        self, now: datetime, limit: int = 100, recipient: str | None = None
    ) -> list[OutboxMessage]:
        """The oldest pending message of each peer (or of `recipient` only) whose backoff
        has expired."""
        ...

    async def get_messages(
        self, status: OutboxStatus | None = None, limit: int = 100
    ) -> list[OutboxMessage]:
        """Newest messages first, optionally of one status (the admin's view)."""
        ...

    async def set_outcome(
        self,
        message: OutboxMessage,
        status: OutboxStatus,
        at: datetime,
        error: str | None,
        retry: tuple[float, datetime] | None = None,
        failed_answer: bool = False,
        receipt: tuple[bytes, bytes] | None = None,
        *,
        clear_backoff: bool = True,
    ) -> None:
        """Record an attempt; on a retryable failure `retry` = (interval, retry_at) for its peer;
        on delivery `receipt` = (the attempt's message id, the peer's signed answer). Without
        `retry` the peer's backoff is cleared, unless `clear_backoff` is False (it has none)."""
        ...

    async def get_state(self, recipient: str) -> DeliveryState | None:
        """A peer's backoff, if delivery to it is failing."""
        ...

    async def delete_state(self, recipient: str) -> None:
        """Clear a peer's backoff (it was heard from)."""
        ...


class PeerStorage(Protocol):
    """The peers this node trusts (`node.store.peers.PeersStore`)."""

    async def add_peer(
        self,
        country: str,
        url: str,
        signing_key: bytes,
        oprf_key: bytes | None,
        descriptor: bytes,
        policy: frozenset[Service],
        at: datetime,
        audit: AuditEvent,
        *,
        hpke_key: bytes | None = None,
    ) -> Peer:
        """Register a peer; ConflictError if the country is already a peer."""
        ...

    async def get_peer(self, country: str) -> Peer:
        """One peer; NotFoundError if this node has no such peer."""
        ...

    async def get_peers(self) -> list[Peer]:
        """Every peer, by country."""
        ...

    async def set_peer(
        self,
        country: str,
        values: dict[str, Any],
        at: datetime,
        audit: AuditEvent | None,
        *,
        if_status: PeerStatus | None = None,
        keys: Sequence[KnownKey] = (),
    ) -> Peer:
        """Change a peer's columns (policy, status, keys, contact), with an audit entry if given,
        and keep `keys` in the key history in the same transaction."""
        ...

    async def add_keys(self, keys: Sequence[KnownKey], at: datetime) -> None:
        """Keep signing keys seen: new ones added; a known one keeps its start and statement,
        and takes the end given (None: unchanged)."""
        ...

    async def get_keys(self) -> list[KnownKey]:
        """Every signing key seen (peers' and this node's), by country."""
        ...
