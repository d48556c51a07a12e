"""Form and query-string parsing, and the JSON shape of records: pure helpers for the views.

Every parser raises `ValidationError` naming the form field, so the views can
put the message next to it and show the user's input again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from node.errors import ValidationError
from node.records.model import CSV_COLUMNS, FirearmRecord, FirearmType, Page, Status
from node.records.service import FilterText

DEFAULT_LIMIT = 50
#: The largest id or version: the databases' 64-bit signed integer.
MAX_ID = 2**63 - 1
#: The largest offset into a list: past any table's size (the CLI's --offset bound too).
MAX_OFFSET = 1_000_000_000
NUL = "\x00"
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


def parse_int(
    text: object, field: str, default: int | None = None, minimum: int = 0, maximum: int = MAX_ID
) -> int:
    """A whole number from `minimum` to `maximum` from a form or query value; `default` when empty.

    Raises:
        ValidationError: naming `field` and the range if the text is not such a number.
    """
    text = text.strip() if isinstance(text, str) else ""
    if not text and default is not None:
        return default
    # The length bound comes first: it keeps a huge digit string from being converted.
    significant = text.lstrip("0") or "0"
    if (
        not text.isascii()
        or not text.isdigit()
        or len(significant) > len(str(maximum))
        or not (minimum <= int(significant) <= maximum)
    ):
        raise ValidationError(
            f"{field}: expected a whole number from {minimum:,} to {maximum:,}", field
        )
    return int(significant)


def parse_offset(text: object) -> int:
    """The `offset` of a list page: from 0 to `MAX_OFFSET`, 0 when empty."""
    return parse_int(text, "offset", 0, maximum=MAX_OFFSET)


def refuse_nul(values: Mapping[str, object] | Iterable[tuple[str, object]]) -> None:
    """Refuse text holding a NUL character, which the node cannot store (PostgreSQL text
    cannot hold U+0000) and no legitimate input has.

    Args:
        values: a form's or query's fields and values; values that are not text
            (uploaded files) are left to their own checks.

    Raises:
        ValidationError: naming the first field that holds a NUL character.
    """
    for name, value in values.items() if isinstance(values, Mapping) else values:
        if NUL in name:
            raise ValidationError(
                "a field name contains a NUL character (U+0000); the form was not sent by "
                "this console",
                None,
            )
        if isinstance(value, str) and NUL in value:
            raise ValidationError(
                f"{name}: contains a NUL character (U+0000), which cannot be stored; "
                "type the text without it",
                name,
            )


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
