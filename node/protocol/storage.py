"""What the kernel needs from storage: `typing.Protocol`s that `node.store` implements.

The kernel never imports the store: the composition root (`node.app`) hands
it objects with these methods, and mypy checks that the SQL stores fit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from node.auditing import AuditEvent
from node.protocol.model import (
    DeliveryState,
    OutboxMessage,
    OutboxStatus,
    Peer,
    PeerStatus,
    Service,
)


class OutboxStorage(Protocol):
    """The durable outbox and each peer's delivery backoff (`node.store.outbox.OutboxStore`)."""

    async def add_message(
        self, recipient: str, message_id: bytes, type_: str, body: bytes, at: datetime
    ) -> OutboxMessage:
        """Queue a message for `recipient`."""
        ...

    async def get_due(self, now: datetime, limit: int = 100) -> list[OutboxMessage]:
        """The oldest pending message of each peer whose backoff has expired."""
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
    ) -> None:
        """Record an attempt; on a retryable failure `retry` = (interval, retry_at) for its peer."""
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
    ) -> Peer:
        """Change a peer's columns (policy, status, keys, contact), with an audit entry if given."""
        ...
