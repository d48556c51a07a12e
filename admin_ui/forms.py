"""Form and query-string parsing, and the JSON shape of records: pure helpers for the views.

Every parser raises `ValidationError` naming the form field, so the views can
put the message next to it and show the user's input again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from node.errors import ValidationError
from node.records.model import CSV_COLUMNS, FirearmRecord, FirearmType, Page, Status
from node.records.service import FilterText

DEFAULT_LIMIT = 50
#: The record form's fields, in display order, with their labels.
RECORD_LABELS: Mapping[str, str] = {
    "serial_number": "Serial number",
    "make": "Make",
    "model": "Model",
    "firearm_type": "Type",
    "calibre": "Calibre",
    "status": "Status",
    "country_of_manufacture": "Country of manufacture",
    "event_date": "Event date",
    "event_place": "Event place",
    "reporting_agency": "Reporting agency",
    "case_reference": "Case reference",
    "contact": "Point of contact",
    "markings": "Other markings",
    "notes": "Notes",
    "external_id": "External id",
    "recovered_on": "Recovered on",
}
#: Query parameters of the records filter and the `FilterText` field each fills.
FILTER_PARAMS: Mapping[str, str] = {
    "serial": "serial",
    "make": "make",
    "model": "model",
    "type": "firearm_type",
    "calibre": "calibre",
    "status": "status",
    "country": "country",
    "from": "date_from",
    "to": "date_to",
}
FIREARM_TYPES: tuple[str, ...] = tuple(t.value for t in FirearmType)
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)


def text_values(
    form: Mapping[str, Any], names: tuple[str, ...] | Mapping[str, str]
) -> dict[str, str]:
    """The text fields `names` of a posted form or query ("" when missing or not text)."""
    return {name: value if isinstance(value := form.get(name), str) else "" for name in names}


def record_values(form: Mapping[str, Any]) -> dict[str, str]:
    """A posted record form's values, as typed."""
    return text_values(form, CSV_COLUMNS)


def parse_int(text: object, field: str, default: int | None = None, minimum: int = 0) -> int:
    """A whole number from a form or query value; `default` when empty.

    Raises:
        ValidationError: naming `field` if the text is not a number of at least `minimum`.
    """
    text = text.strip() if isinstance(text, str) else ""
    if not text and default is not None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) < minimum:
        raise ValidationError(f"{field}: expected a whole number of at least {minimum}", field)
    return int(text)


def filter_text(params: Mapping[str, str]) -> FilterText:
    """The records filter from its query parameters (see `FILTER_PARAMS`)."""
    return FilterText(**{FILTER_PARAMS[name]: value for name, value in params.items()})


def page_url(params: Mapping[str, str], offset: int, limit: int) -> str:
    """The records list URL for `params` at `offset`, keeping the filters."""
    query = {name: value for name, value in params.items() if value}
    query |= {"offset": str(offset), "limit": str(limit)}
    return "/records?" + urlencode(query)


def record_json(record: FirearmRecord) -> dict[str, Any]:
    """A record as the `.json` twins show it: its CSV row plus version and flags."""
    return record.to_row() | {
        "version": record.version,
        "make_known": record.make_known,
        "calibre_known": record.calibre_known,
        "firearm_type_known": record.firearm_type_known,
        "serial_canonical": record.serial_canonical,
        "recovered_on": record.recovered_on,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def page_json(result: Page) -> dict[str, Any]:
    """One page of search results as `/records.json` returns it."""
    return {
        "records": [record_json(r) for r in result.records],
        "offset": result.offset,
        "limit": result.limit,
        "has_more": result.has_more,
    }
