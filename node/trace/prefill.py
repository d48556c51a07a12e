"""What a new trace request starts from: one of our records, or the evidence of a hit on a
peer's record (`trace new --from-record` / `--from-evidence`, and the console's form).

Each returns `TraceRequestInput` values by field name, as text; what the officer gives
on top overrides them, and `request.check_request` validates the whole.
"""

from __future__ import annotations

from node.lookup.evidence import VerifiedEvidence
from node.lookup.model import EvidenceEntry
from node.records.model import FirearmRecord

#: The firearm's fields a peer's record gives (`FirearmRecord.to_row` keys, the same names
#: as `TraceRequestInput`'s).
_FIREARM_FIELDS = ("make", "model", "firearm_type", "calibre", "country_of_manufacture", "markings")


def from_record(record: FirearmRecord) -> dict[str, str]:
    """A request's fields as one of our records gives them: the firearm, its recovery,
    the case and the agency that reported it."""
    return {
        "serial_number": record.serial_number,
        "make": record.make,
        "model": record.model,
        "firearm_type": record.firearm_type,
        "calibre": record.calibre,
        "country_of_manufacture": record.country_of_manufacture or "",
        "markings": record.markings,
        "recovered_on": record.recovered_on.isoformat() if record.recovered_on else "",
        "recovered_at": record.event_place,
        "case_reference": record.case_reference,
        "agency": record.reporting_agency,
    }


def from_evidence(entry: EvidenceEntry, proved: VerifiedEvidence) -> dict[str, str]:
    """A request's fields as a verified hit gives them: the serial our officer looked up,
    the case it was looked up for, and the firearm as the peer's newest matching record
    describes it — unless the peer disclosed no details or said its record's make differs
    from the one our officer gave: then the officer's make alone.

    The recovery, the crime and our agency are ours to say: the evidence does not."""
    values = {
        "serial_number": entry.serial,
        "case_reference": proved.case_reference,
        "make": proved.make_given,
    }
    record = proved.records[0] if proved.records and proved.make_agrees is not False else {}
    for name in _FIREARM_FIELDS:
        value = record.get(name)
        if isinstance(value, str) and value.strip():
            values[name] = value
    return values
