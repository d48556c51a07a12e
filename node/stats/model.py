"""The typed values that flow between the statistics service and its store."""

from __future__ import annotations

from dataclasses import dataclass

#: The record dimensions counted (`StatsStorage.get_record_counts`): a record's status,
#: type, make, calibre, country of manufacture ("" unknown), and `TYPE/STATUS`.
RECORD_DIMENSIONS = ("status", "type", "make", "calibre", "country", "type_status")
#: The monthly series of records: by the record's month (its event date, else its
#: recording), and by the month of its recovery.
RECORD_SERIES = ("recorded", "recovered")


@dataclass(frozen=True, slots=True)
class SentTrace:
    """A trace this node sent: its row id, signed request and the chain's final outcome."""

    id: int
    request: bytes
    outcome: str | None


@dataclass(frozen=True, slots=True)
class PeerMonth:
    """A count for one peer and month (`YYYY-MM`)."""

    peer: str
    month: str
    count: int


@dataclass(frozen=True, slots=True)
class HopTime:
    """How long a hop of one of our traces took to answer, in seconds."""

    country: str
    seconds: float


@dataclass(frozen=True, slots=True)
class TraceHop:
    """A hop of one of our traces: the trace's row id, the hop's position and country."""

    trace: int
    position: int
    country: str
