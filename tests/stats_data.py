"""A small known dataset for the statistics tests: records with their types, statuses,
makes, countries and dates, made through the records service and a CSV import (so that
every path that writes records keeps the aggregates), on a node whose clock reads
2026-01-01 (the recording month of a record without an event date)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from node.app import Node
from node.records.model import CSV_COLUMNS, RecordInput

ACTOR = "analyst.test"
#: A make name a page must escape.
HOSTILE_MAKE = "<script>alert(1)</script>"
CSV_ROWS = (
    # serial, make, type, calibre, status, country, event date, external id
    ("CSV-1", "Glock", "pistol", "9mm", "seized", "AUT", "2025-02-11", "x1"),
    ("CSV-2", "Beretta", "pistol", "9mm", "stolen", "ITA", "2025-03-02", "x2"),
    ("CSV-3", "Colt", "revolver", ".38 Special", "lost", "USA", "", "x3"),
)


async def seed_records(node: Node, tmp: Path) -> None:
    """The dataset, whose counts the tests state by hand."""
    create = node.records.create

    def rec(serial: str, make: str, ftype: str, status: str, **kw: object) -> RecordInput:
        return RecordInput(serial, make, ftype, status, **kw)  # type: ignore[arg-type]

    await create(
        rec(
            "S-1",
            "Glock",
            "pistol",
            "stolen",
            calibre="9mm",
            country_of_manufacture="AUT",
            event_date=date(2025, 1, 10),
        ),
        ACTOR,
    )
    await create(
        rec(
            "S-2",
            "Glock",
            "pistol",
            "stolen",
            calibre="9mm",
            country_of_manufacture="AUT",
            event_date=date(2025, 2, 3),
        ),
        ACTOR,
    )
    await create(
        rec(
            "S-3",
            "Beretta",
            "pistol",
            "lost",
            calibre="9mm",
            country_of_manufacture="ITA",
            event_date=date(2025, 2, 20),
        ),
        ACTOR,
    )
    await create(
        rec(
            "S-4",
            "Remington",
            "shotgun",
            "seized",
            calibre="12 gauge",
            country_of_manufacture="USA",
        ),
        ACTOR,
    )  # no event date: 2026-01
    await create(
        rec("S-5", HOSTILE_MAKE, "rifle", "trafficked", event_date=date(2025, 3, 1)), ACTOR
    )
    found = await create(
        rec(
            "S-6",
            "Glock",
            "pistol",
            "stolen",
            calibre="9mm",
            country_of_manufacture="AUT",
            event_date=date(2024, 12, 1),
        ),
        ACTOR,
    )
    await node.records.recover(found.id, found.version, date(2025, 3, 15), ACTOR)
    gone = await create(rec("S-7", "Glock", "pistol", "lost", event_date=date(2025, 1, 5)), ACTOR)
    await node.records.delete(gone.id, gone.version, "entered twice", ACTOR)
    moved = await create(
        rec("S-8", "Sig Sauer", "pistol", "lost", event_date=date(2025, 1, 7)), ACTOR
    )
    await node.records.update(  # now a Beretta rifle, smuggled, made in ITA, 2025-03
        moved.id,
        moved.version,
        rec(
            "S-8",
            "Beretta",
            "rifle",
            "smuggled",
            calibre=".308 Winchester",
            country_of_manufacture="ITA",
            event_date=date(2025, 3, 9),
        ),
        ACTOR,
    )
    path = tmp / "records.csv"
    lines = [",".join(CSV_COLUMNS)]
    for serial, make, ftype, calibre, status, country, day, external in (*CSV_ROWS, CSV_ROWS[0]):
        values = dict.fromkeys(CSV_COLUMNS, "") | {
            "serial_number": serial,
            "make": make,
            "firearm_type": ftype,
            "calibre": calibre,
            "status": status,
            "country_of_manufacture": country,
            "event_date": day,
            "external_id": external,
        }
        lines.append(",".join(values[c] for c in CSV_COLUMNS))
    path.write_text("\n".join(lines) + "\n")
    report = await node.imports.import_csv(path, ACTOR)
    assert report.created == 3  # the repeated row is the same record


#: The dataset's records by (type, status, month) as the tests expect them.
EXPECTED = [
    ("pistol", "stolen", "2025-01", "Glock", "AUT", "9mm"),
    ("pistol", "stolen", "2025-02", "Glock", "AUT", "9mm"),
    ("pistol", "lost", "2025-02", "Beretta", "ITA", "9mm"),
    ("shotgun", "seized", "2026-01", "Remington", "USA", "12 gauge"),
    ("rifle", "trafficked", "2025-03", HOSTILE_MAKE, "", ""),
    ("pistol", "recovered", "2024-12", "Glock", "AUT", "9mm"),
    ("rifle", "smuggled", "2025-03", "Beretta", "ITA", ".308 Winchester"),
    ("pistol", "seized", "2025-02", "Glock", "AUT", "9mm"),
    ("pistol", "stolen", "2025-03", "Beretta", "ITA", "9mm"),
    ("revolver", "lost", "2026-01", "Colt", "USA", ".38 Special"),
]
