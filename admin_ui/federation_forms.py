"""Parsing the lookup and peer forms, and shaping results for the pages: pure helpers.

Every parser raises `ValidationError` naming the form field, so the views can
put the message next to it. The JSON shapes here are what the `.json` twins
of `/lookup`, `/hits` and `/peers` return.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from admin_ui.forms import RECORD_LABELS
from node.errors import ReceiptError, ValidationError
from node.lookup import bulk
from node.lookup.model import Hit
from node.lookup.oprf import MAX_SERIAL_BYTES
from node.lookup.querier import LookupResult, Query
from node.protocol.model import OutboxMessage, Service
from node.protocol.peers import parse_services
from node.protocol.receipts import DeliveryReceipt
from node.records.serials import canonicalise_serial

#: The largest bulk file: 10,000 rows of a long serial and a make fit with room to spare.
MAX_BULK_BYTES = 4 << 20
LOOKUP_FIELDS = ("serial", "make", "case_reference")
PEER_FIELDS = ("url", "country", "fingerprint")
#: Results listed before the others: the hits (the leads), then what needs a second look.
RESULT_ORDER: Mapping[str, int] = {"hit": 0, "refused": 1, "unreachable": 2, "no_hit": 3}
RESULT_LABELS: Mapping[str, str] = {
    "hit": "Hit",
    "no_hit": "No hit",
    "unreachable": "Unreachable",
    "refused": "Refused",
}
#: A hit's `make_agrees` as officers read it.
MAKE_AGREEMENT: Mapping[bool | None, str] = {
    True: "make agrees",
    False: "make differs",
    None: "no make given",
}
#: Labels of the record fields a peer discloses in a hit (its `FirearmRecord.to_row()`).
DISCLOSED_LABELS: Mapping[str, str] = {"id": "Their record id", **RECORD_LABELS}
#: The services a peer's policy may allow, with what each lets the peer do.
SERVICE_LABELS: Mapping[str, str] = {
    Service.LOOKUPS.value: "Lookups (check serials against our records)",
    Service.HIT_DETAILS.value: "Hit details (see our record's fields on a hit)",
    Service.TRACES.value: "Traces (send us trace requests; we answer them)",
    Service.TRACE_DETAILS.value: (
        "Trace details (name the last legal possessor when a trace they started ends here)"
    ),
    Service.STATISTICS.value: "Statistics",
}


def _check_serial(serial: str, where: str, field: str) -> None:
    canonical = canonicalise_serial(serial)
    if not canonical or len(canonical.encode()) > MAX_SERIAL_BYTES:
        raise ValidationError(
            f"{field}: {where}{serial[:80]!r} is not a serial number "
            "(it needs letters or digits, at most 255 bytes)",
            field,
        )


def single_query(values: Mapping[str, str]) -> Query:
    """The serial and make of the one-serial form."""
    serial = values.get("serial", "").strip()
    if not serial:
        raise ValidationError("serial: enter the serial number as it is stamped", "serial")
    _check_serial(serial, "", "serial")
    return Query(serial, values.get("make", "").strip())


def parse_bulk(data: bytes) -> list[Query]:
    """The serials (and makes) of a bulk lookup file: a UTF-8 CSV with a header row.

    Read by `node.lookup.bulk.parse_bulk`, which the CLI's `lookup --bulk` shares.

    Raises:
        ValidationError: naming the field `file` and, for a bad row, its line.
    """
    return bulk.parse_bulk(data, "file")


def results_context(results: list[LookupResult] | None, max_rows: int) -> dict[str, Any]:
    """The results part of the lookup page: hits first, then the rest up to `max_rows`."""
    if results is None:
        return {"results": None, "rows": [], "hits": [], "counts": {}, "hidden": 0}
    ordered = sorted(results, key=lambda r: RESULT_ORDER.get(r.result, 1))
    hits = [r for r in ordered if r.result == "hit"]
    rows = ordered[: max(max_rows, len(hits))]
    counts = Counter(r.result for r in results)
    return {
        "results": results,
        "rows": rows,
        "hits": hits,
        "counts": {RESULT_LABELS[k]: counts[k] for k in RESULT_ORDER if counts[k]},
        "hidden": len(ordered) - len(rows),
    }


def parse_policy(values: Iterable[object]) -> frozenset[Service]:
    """The services ticked on a peer's policy form."""
    names = [v for v in values if isinstance(v, str)]
    return parse_services(",".join(names))


def dead_letter_json(message: OutboxMessage) -> dict[str, Any]:
    """A message a peer refused for good, as `/peers.json` lists it."""
    return {
        "id": message.id,
        "recipient": message.recipient,
        "type": message.type,
        "error": message.last_error,
        "created_at": message.created_at,
        "attempts": message.attempts,
    }


def delivery_json(
    message: OutboxMessage, receipt: DeliveryReceipt | ReceiptError
) -> dict[str, Any]:
    """A delivered message and its receipt (checked), as `/peers.json` lists it."""
    verified = receipt if isinstance(receipt, DeliveryReceipt) else None
    return {
        "id": message.id,
        "recipient": message.recipient,
        "type": message.type,
        "delivered_at": message.delivered_at,
        "receipt": verified.to_json() if verified else None,
        "receipt_error": None if verified else str(receipt),
    }


def hit_json(hit: Hit) -> dict[str, Any]:
    """A peer's lookup that matched one of our records, as `/hits.json` lists it."""
    return {
        "id": hit.id,
        "at": hit.at,
        "peer": hit.peer,
        "record_id": hit.record_id,
        "serial_number": hit.serial_number,
        "case_reference": hit.case_reference,
        "make_given": hit.make_given,
        "make_agrees": hit.make_agrees,
    }
