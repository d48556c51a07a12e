"""Property-based tests of the CSV reader: any bytes give rows or a clear error, never a crash."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.errors import CsvFormatError
from node.records.csvio import unneutralise
from node.records.record_rows import RECORD_ROWS

HEADER = b"serial_number,make,firearm_type,status,notes\n"


def _read(data: bytes) -> list[object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.csv"
        path.write_bytes(data)
        try:
            reader = RECORD_ROWS.reader(path)
        except CsvFormatError:
            return []
        try:
            return list(reader)
        finally:
            reader.close()


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_after_a_header(data: bytes) -> None:
    for row in _read(HEADER + data):
        assert row.line >= 2  # type: ignore[attr-defined]
        assert row.fault or set(row.values) == {  # type: ignore[attr-defined]
            "serial_number",
            "make",
            "firearm_type",
            "status",
            "notes",
        }


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_alone(data: bytes) -> None:
    _read(data)  # must return or raise CsvFormatError, nothing else


_cell = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_cell, _cell, _cell, _cell, _cell), max_size=10))
def test_well_formed_rows_come_back_as_written(rows: list[tuple[str, ...]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["serial_number", "make", "firearm_type", "status", "notes"])
    writer.writerows(rows)
    read = _read(out.getvalue().encode())
    assert [tuple(r.values.values()) for r in read] == [  # type: ignore[attr-defined]
        tuple(unneutralise(c) for c in row) for row in rows
    ]
