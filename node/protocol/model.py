"""Peers and what this node answers for them: typed values shared by service and store."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class Service(enum.StrEnum):
    """What a node may answer for a peer; each peer's policy is a set of these."""

    LOOKUPS = "lookups"  # blind evaluations and the membership index
    HIT_DETAILS = "hit-details"  # record details in a confirmed hit
    TRACES = "traces"
    TRACE_DETAILS = "trace-details"  # the last legal possessor in an end_of_chain answer
    STATISTICS = "statistics"


#: A newly added peer may look up serials but sees record details only once allowed.
DEFAULT_POLICY: frozenset[Service] = frozenset({Service.LOOKUPS})


class PeerStatus(enum.StrEnum):
    """`revoked` peers are refused at once, whatever their policy."""

    ACTIVE = "active"
    REVOKED = "revoked"


class Reachability(enum.StrEnum):
    """Whether this node's requests reach a peer, as its last contact and failure tell."""

    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"
    NOT_CONTACTED = "not contacted yet"


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer country's node as this node knows it.

    `last_contact_at` is its last verified message (a request of its own or an
    answer to ours); `last_error_at` is when a request to it first failed after
    that contact and `last_error` the latest failure's reason; a contact clears both.
    """

    country: str
    url: str
    signing_key: bytes
    fingerprint: str
    oprf_key: bytes | None
    status: PeerStatus
    policy: frozenset[Service]
    added_at: datetime
    added_by: str
    revoked_at: datetime | None
    last_contact_at: datetime | None
    index_version: int | None
    previous_key: bytes | None
    previous_key_until: datetime | None
    last_error_at: datetime | None = None
    last_error: str | None = None
    #: The X25519 key its descriptor publishes for statistics shares (None: it cannot aggregate).
    hpke_key: bytes | None = None

    def allows(self, service: Service) -> bool:
        """Whether this node answers `service` for this peer now."""
        return self.status is PeerStatus.ACTIVE and service in self.policy

    @property
    def reachability(self) -> Reachability:
        """Reachable if its last contact came after the last failure to reach it."""
        contact, error = self.last_contact_at, self.last_error_at
        if error is not None and (contact is None or error >= contact):
            return Reachability.UNREACHABLE
        return Reachability.NOT_CONTACTED if contact is None else Reachability.REACHABLE

    @property
    def reachable(self) -> bool | None:
        """`reachability` as the JSON views give it: None when never contacted."""
        reachability = self.reachability
        if reachability is Reachability.NOT_CONTACTED:
            return None
        return reachability is Reachability.REACHABLE

    def to_json(self) -> dict[str, Any]:
        """The peer as `peers show --json` and `/peers.json` give it (keys as a fingerprint).

        `reachable` is None for a peer never contacted; `last_error_at` is when
        it became unreachable, `last_error` the latest reason; `hpke_key` is None
        for a peer that cannot aggregate statistics.
        """

        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "country": self.country,
            "url": self.url,
            "fingerprint": self.fingerprint,
            "status": self.status.value,
            "policy": sorted(s.value for s in self.policy),
            "added_at": self.added_at.isoformat(),
            "added_by": self.added_by,
            "revoked_at": iso(self.revoked_at),
            "last_contact_at": iso(self.last_contact_at),
            "index_version": self.index_version,
            "reachable": self.reachable,
            "last_error_at": iso(self.last_error_at),
            "last_error": self.last_error,
            "hpke_key": self.hpke_key.hex() if self.hpke_key is not None else None,
        }


@dataclass(frozen=True, slots=True)
class KnownKey:
    """A signing key this node has seen for a country (a peer's, or its own), with when it
    was valid (ms; None: unbounded) and the rotation statement that introduced it (None for
    a first key: trusted by fingerprint). Kept for good: old signatures stay checkable."""

    country: str
    key: bytes
    valid_from_ms: int | None
    valid_until_ms: int | None
    rotation: bytes | None


class OutboxStatus(enum.StrEnum):
    """`dead`: refused by the peer for good (a 4xx other than 429); shown to the admin."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message that must reach a peer."""

    id: int
    recipient: str
    message_id: bytes
    type: str
    body: bytes
    created_at: datetime
    status: OutboxStatus
    attempts: int
    delivered_at: datetime | None
    last_error: str | None
    failed_answers: int = 0  # attempts that got an answer saying it failed (`internal`)
    #: The peer's signed answer to the delivered attempt, exactly as received (a receipt) ...
    receipt: bytes | None = None
    #: ... and that attempt's envelope message id, which the receipt's `ref` names.
    delivered_message_id: bytes | None = None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """A peer to which delivery is failing, and when it will be tried again."""

    recipient: str
    failures: int
    interval_s: float
    retry_at: datetime
    last_error: str


@dataclass(frozen=True, slots=True)
class PriorClaim:
    """An inbound message id claimed before: by which message type, and the answer it got.

    `answer_type` and `answer` (the body, without `ref`) are None for claims kept
    before answers were stored.
    """

    type: str
    answer_type: str | None
    answer: bytes | None
