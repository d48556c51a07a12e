"""The schema: typed SQLAlchemy tables with a constraint naming convention.

Alembic migrations in `node/store/migrations` create exactly these tables;
`tests/test_store_migrations.py` checks that they agree.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)

    # SQLite keeps datetimes as text, 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's format,
    # compared as text in queries). SQLAlchemy parses it with a regular expression;
    # `fromisoformat` reads the same text in a tenth of the time, and `isoformat` writes
    # it: rows with datetimes are on the hot path of every peer message.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the store")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | None) -> datetime | None:
            if value is None:
                return None
            return datetime.fromisoformat(value).replace(tzinfo=UTC)

        return process


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RecordRow(Base):
    __tablename__ = "records"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    serial_number: Mapped[str] = mapped_column(String(64))
    serial_canonical: Mapped[str] = mapped_column(String(64))
    make: Mapped[str] = mapped_column(String(200))
    make_known: Mapped[bool] = mapped_column(Boolean)
    model: Mapped[str] = mapped_column(String(200))
    model_key: Mapped[str] = mapped_column(String(200))
    firearm_type: Mapped[str] = mapped_column(String(100))
    firearm_type_known: Mapped[bool] = mapped_column(Boolean)
    calibre: Mapped[str] = mapped_column(String(100))
    calibre_known: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    country_of_manufacture: Mapped[str | None] = mapped_column(String(3))
    event_date: Mapped[date | None] = mapped_column(Date)
    event_place: Mapped[str] = mapped_column(Text)
    reporting_agency: Mapped[str] = mapped_column(Text)
    case_reference: Mapped[str] = mapped_column(Text)
    contact: Mapped[str] = mapped_column(Text)
    markings: Mapped[str] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(200))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    recovered_on: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (
        Index(None, "serial_canonical"),
        Index(None, "make", "firearm_type", "status", "id"),
        Index(None, "model_key"),
        Index(None, "calibre"),
        Index(None, "country_of_manufacture"),
        Index(None, "event_date"),
    )


class AuditRow(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(400))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index(None, "action", "seq"),
        Index(None, "actor", "seq"),
        Index(None, "action", "at"),
    )


class AuditHeadRow(Base):
    """One row: the last sequence number and hash; locked to serialise appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    external: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    must_change_password: Mapped[bool] = mapped_column(Boolean, server_default=false())


class ConsoleSessionRow(Base):
    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PeerRow(Base):
    """A peer country's node, as this node's admin added it."""

    __tablename__ = "peers"

    country: Mapped[str] = mapped_column(String(3), primary_key=True)
    url: Mapped[str] = mapped_column(String(400))
    signing_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    oprf_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    policy: Mapped[list[str]] = mapped_column(JSON)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    added_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    index_version: Mapped[int | None] = mapped_column(BigInteger)
    previous_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    previous_key_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When a request to it first failed since its last contact (cleared by a contact).
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: The X25519 key its descriptor publishes for statistics shares.
    hpke_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))


class PeerKeyRow(Base):
    """A signing key seen for a country (a peer's or this node's), kept for good with its
    validity (ms, None: unbounded) and the rotation statement that introduced it."""

    __tablename__ = "peer_keys"

    country: Mapped[str] = mapped_column(String(3), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    valid_from_ms: Mapped[int | None] = mapped_column(BigInteger)
    valid_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    rotation: Mapped[bytes | None] = mapped_column(LargeBinary)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SeenMessageRow(Base):
    """Message ids already accepted from a peer: the replay cache (survives restarts)."""

    __tablename__ = "seen_messages"

    sender: Mapped[str] = mapped_column(String(3), primary_key=True)
    message_id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class OutboxRow(Base):
    """A message that must reach a peer: kept until delivered (or dead-lettered)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(3))
    message_id: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Attempts the peer answered with a failure (not the ones it did not answer).
    failed_answers: Mapped[int] = mapped_column(Integer, server_default="0")
    #: The peer's signed answer to the delivered attempt, as received (the receipt) ...
    receipt: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: ... and the message id of that attempt's envelope, which the receipt's `ref` names.
    delivered_message_id: Mapped[bytes | None] = mapped_column(LargeBinary(16))

    __table_args__ = (Index(None, "recipient", "status", "id"),)


class DeliveryStateRow(Base):
    """Per-peer backoff: when delivery to that peer may be tried again."""

    __tablename__ = "delivery_state"

    recipient: Mapped[str] = mapped_column(String(3), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    interval_s: Mapped[float] = mapped_column(Float)
    retry_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text)


class InboxRow(Base):
    """Inbound messages that took effect, by (sender, key), with the answer each got: a
    repeat (a retried delivery) has no effect and gets that answer again.

    `message_id` is the message's key (`once_by`: its `delivery_id`, its
    `lookup_id`, or its envelope's id); `type` is the type of the message that
    claimed it. `answer_type` and `answer` (the body without `ref`) are null
    for messages whose repeats are refused, and for claims made before 0009.
    """

    __tablename__ = "inbox"

    sender: Mapped[str] = mapped_column(String(3), primary_key=True)
    message_id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answer_type: Mapped[str | None] = mapped_column(String(64))
    answer: Mapped[bytes | None] = mapped_column(LargeBinary)


class RecordOutputRow(Base):
    """The OPRF output of a record's canonical serial (what this node's index holds)."""

    __tablename__ = "record_outputs"

    record_id: Mapped[int] = mapped_column(
        ForeignKey("records.id", ondelete="CASCADE"), primary_key=True
    )
    prefix: Mapped[bytes] = mapped_column(LargeBinary(8), index=True)
    output: Mapped[bytes] = mapped_column(LargeBinary(64))
    #: The serial the output is of: stale (not answered, then recomputed) once the record's differs.
    serial_canonical: Mapped[str] = mapped_column(String(64))


class IndexDocumentRow(Base):
    """A membership index version this node published (full, or a delta on a base)."""

    __tablename__ = "index_documents"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    base_version: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: SHA-256 of the sorted items this version holds: a refresh with no change publishes nothing.
    items_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: A full version's items (8 bytes each), from which later deltas are computed.
    base_items: Mapped[bytes | None] = mapped_column(LargeBinary)


class PeerIndexRow(Base):
    """A peer's membership index as last fetched: its full version and the deltas since."""

    __tablename__ = "peer_indexes"

    country: Mapped[str] = mapped_column(String(3), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    documents: Mapped[bytes] = mapped_column(LargeBinary)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HitRow(Base):
    """A foreign lookup that matched one of our records: the investigative lead."""

    __tablename__ = "hits"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    record_id: Mapped[int] = mapped_column(BigInteger)
    serial_number: Mapped[str] = mapped_column(String(64))
    peer: Mapped[str] = mapped_column(String(3))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    case_reference: Mapped[str] = mapped_column(Text)
    make_given: Mapped[str] = mapped_column(String(200))
    make_agrees: Mapped[bool] = mapped_column(Boolean)
    lookup_id: Mapped[bytes] = mapped_column(LargeBinary(16))

    __table_args__ = (UniqueConstraint("peer", "lookup_id", "record_id"), Index(None, "at"))


class HitEvidenceRow(Base):
    """A peer's signed confirmation of a hit from one of our lookups, kept as evidence."""

    __tablename__ = "hit_evidence"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    peer: Mapped[str] = mapped_column(String(3))
    serial_number: Mapped[str] = mapped_column(Text)  # as the officer typed it
    case_reference: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    bundle: Mapped[bytes] = mapped_column(LargeBinary)  # node.lookup.evidence

    __table_args__ = (Index(None, "at"),)


class CustodyEventRow(Base):
    """One event of a firearm's legal custody (node/trace/model.py), imported by CSV."""

    __tablename__ = "custody_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    serial_number: Mapped[str] = mapped_column(String(64))  # as imported
    serial_canonical: Mapped[str] = mapped_column(String(64))
    make: Mapped[str] = mapped_column(String(200))  # as imported
    make_key: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(16))
    event_date: Mapped[date] = mapped_column(Date)
    from_party: Mapped[str] = mapped_column(Text)
    to_party: Mapped[str] = mapped_column(Text)
    to_country: Mapped[str | None] = mapped_column(String(3))
    licence_reference: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str] = mapped_column(Text)
    row_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)  # the dedupe key
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index(None, "serial_canonical", "make_key"),)


class TraceRow(Base):
    """A trace this node originated (position 0) or is a hop of (its position): its signed
    request and where it stands here (node/trace/model.py `StoredTrace`)."""

    __tablename__ = "traces"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    trace_id: Mapped[bytes] = mapped_column(LargeBinary(16))
    position: Mapped[int] = mapped_column(Integer)  # 0: we originated it
    originator: Mapped[str] = mapped_column(String(3))
    prev_country: Mapped[str | None] = mapped_column(String(3))  # who sent it to us
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    request: Mapped[bytes] = mapped_column(LargeBinary)  # the originator's signed request
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(32))
    next_country: Mapped[str | None] = mapped_column(String(3))
    note: Mapped[str] = mapped_column(Text)
    force_reason: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("trace_id", "position"),
        Index(None, "position", "created_at"),
    )


class TraceItemRow(Base):
    """A signed receipt or answer of a trace, as received or signed here."""

    __tablename__ = "trace_items"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    trace: Mapped[int] = mapped_column(ForeignKey("traces.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))  # receipt | answer | reply | forward | rotation
    country: Mapped[str] = mapped_column(String(3))
    item: Mapped[bytes] = mapped_column(LargeBinary)
    item_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    signed_ms: Mapped[int] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("trace", "item_hash"),)


class TraceReminderRow(Base):
    """The reminders of one hop of a trace: sent to it (on the originator's trace) or
    received (on the hop's own), how many and the last one's time
    (node/trace/model.py `HopReminders`)."""

    __tablename__ = "trace_reminders"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    trace: Mapped[int] = mapped_column(ForeignKey("traces.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    country: Mapped[str] = mapped_column(String(3))
    count: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("trace", "position"),)


class RecordCountRow(Base):
    """How many records have a value of a dimension in a month (`node/store/stats.py`):
    aggregates kept exact in the transaction of every record change."""

    __tablename__ = "record_counts"

    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


def table(cls: type[Base]) -> Table:
    """The Core table behind a mapped class, typed for insert/update/delete."""
    return cast("Table", cls.__table__)


def _pk() -> Mapped[int]:
    return mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)


class StatsRoundRow(Base):
    """A statistics round this node requested, was asked to contribute to, or aggregates
    (node/stats/round.py `StoredRound`)."""

    __tablename__ = "stats_rounds"

    id: Mapped[int] = _pk()
    round_id: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    requester: Mapped[str] = mapped_column(String(3))
    query: Mapped[str] = mapped_column(String(32))
    period_from: Mapped[str] = mapped_column(String(7))
    period_to: Mapped[str] = mapped_column(String(7))
    epsilon: Mapped[float] = mapped_column(Float)
    aggregators: Mapped[str] = mapped_column(String(64))  # "DEU,FRA"
    min_contributors: Mapped[int] = mapped_column(Integer)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    asked: Mapped[str] = mapped_column(Text)  # the requester's: the peers asked, "DEU,ITA"
    closed: Mapped[str | None] = mapped_column(Text)  # the contributors `stats.close` named

    __table_args__ = (Index(None, "status"),)


class StatsAnswerRow(Base):
    """A party's answer to a round: joined, or refused with a reason."""

    __tablename__ = "stats_answers"

    id: Mapped[int] = _pk()
    round_id: Mapped[bytes] = mapped_column(LargeBinary(16))
    country: Mapped[str] = mapped_column(String(3))
    joined: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("round_id", "country"),)


class StatsShareRow(Base):
    """A contributor's sealed share held by this aggregator (the first one it sent)."""

    __tablename__ = "stats_shares"

    id: Mapped[int] = _pk()
    round_id: Mapped[bytes] = mapped_column(LargeBinary(16))
    contributor: Mapped[str] = mapped_column(String(3))
    query: Mapped[str] = mapped_column(String(32))
    period_from: Mapped[str] = mapped_column(String(7))
    period_to: Mapped[str] = mapped_column(String(7))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("round_id", "contributor"),)


class StatsHoldingRow(Base):
    """The contributors whose shares an aggregator of a round holds, fixed once sent."""

    __tablename__ = "stats_holdings"

    id: Mapped[int] = _pk()
    round_id: Mapped[bytes] = mapped_column(LargeBinary(16))
    aggregator: Mapped[str] = mapped_column(String(3))
    contributors: Mapped[str] = mapped_column(Text)  # "DEU,FRA" ("" for none)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("round_id", "aggregator"),)


class StatsSumRow(Base):
    """An aggregator's signed sum of a round (node/stats/result.py), ours or received."""

    __tablename__ = "stats_sums"

    id: Mapped[int] = _pk()
    round_id: Mapped[bytes] = mapped_column(LargeBinary(16))
    aggregator: Mapped[str] = mapped_column(String(3))
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("round_id", "aggregator"),)


class StatsLedgerRow(Base):
    """The privacy budget's ledger: the ε a round spent here, or was refused
    (node/stats/budget.py `LedgerEntry`)."""

    __tablename__ = "stats_ledger"

    id: Mapped[int] = _pk()
    round_id: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    requester: Mapped[str] = mapped_column(String(3))
    query: Mapped[str] = mapped_column(String(32))
    month: Mapped[str] = mapped_column(String(7))
    epsilon: Mapped[float] = mapped_column(Float)
    spent: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index(None, "month"),)
