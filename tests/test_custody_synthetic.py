"""Synthetic custody events: valid for the import, deterministic, realistic chains."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from node.app import Node
from node.trace.model import CUSTODY_COLUMNS, EventKind
from node.trace.synthetic import LAST_DATE, generate_rows, supply_chain, write_csv

ROWS = list(generate_rows(3000, "DEU", seed=5))


def test_same_seed_same_rows_and_a_smaller_n_is_a_prefix() -> None:
    assert list(generate_rows(1000, "DEU", seed=5)) == ROWS[:1000]
    assert list(generate_rows(1000, "DEU", seed=6)) != ROWS[:1000]
    assert all(list(row) == list(CUSTODY_COLUMNS) for row in ROWS)


def test_each_firearm_s_chain_is_in_date_order_and_plausible() -> None:
    kinds = Counter(row["event"] for row in ROWS)
    assert set(kinds) == {kind.value for kind in EventKind}
    assert kinds["sold"] > kinds["imported"] > kinds["exported"] > kinds["destroyed"]
    for _, chain in itertools.groupby(ROWS, key=lambda r: (r["serial_number"], r["make"])):
        events = list(chain)
        dates = [date.fromisoformat(e["event_date"]) for e in events]
        assert dates == sorted(dates) and dates[-1] <= LAST_DATE
        assert events[0]["event"] in ("manufactured", "imported")
        for before, after in itertools.pairwise(events):
            assert after["from_party"] == before["to_party"]  # custody passes hand to hand
        exported = [e for e in events if e["event"] == "exported"]
        assert all(len(e["to_country"]) == 3 and e["to_country"] != "DEU" for e in exported)


def test_a_supply_chain_splits_by_registry_along_its_route() -> None:
    chain = supply_chain("GLK-1", "Glock", "17", ["AUT", "DEU", "ITA"], seed=3)
    assert {c: [e["event"] for e in events] for c, events in chain.items()} == {
        "AUT": ["manufactured", "exported"],
        "DEU": ["imported", "sold", "exported"],
        "ITA": ["imported", "sold", "sold"],
    }
    assert chain["AUT"][1]["to_country"] == "DEU" and chain["DEU"][2]["to_country"] == "ITA"
    assert chain["ITA"][0]["from_party"] == chain["DEU"][2]["from_party"]
    assert chain["ITA"][-1]["licence_reference"].startswith("ITA-PL-")
    assert chain == supply_chain("GLK-1", "Glock", "17", ["AUT", "DEU", "ITA"], seed=3)
    with pytest.raises(ValueError, match="none twice"):
        supply_chain("X1", "Glock", "17", ["AUT", "DEU", "AUT"])
    with pytest.raises(ValueError, match="does not fit before"):
        supply_chain("X1", "Glock", "17", ["AUT", "DEU"], start=date(2025, 12, 1))


async def test_the_generated_file_imports_without_a_rejected_row(
    sqlite_node: Node, tmp_path: Path
) -> None:
    path = tmp_path / "custody.csv"
    write_csv(path, 500, "FRA", seed=2, progress=False)
    report = await sqlite_node.custody.imports.import_csv(path, "test")
    assert (report.rows, report.rejected, report.created) == (500, 0, 500)
