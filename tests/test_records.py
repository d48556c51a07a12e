"""The records service and store, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import date

import pytest

from node.app import Node
from node.clock import FakeClock
from node.errors import ConflictError, NotFoundError, ValidationError
from node.records.model import RecordInput, SerialMatch, Status
from node.records.service import FilterText

ACTOR = "officer.dupont"


def glock(serial: str = "ABC123", **kw: object) -> RecordInput:
    base: dict[str, object] = {
        "serial_number": serial,
        "make": "Glock",
        "firearm_type": "pistol",
        "status": "stolen",
        "model": "17",
        "calibre": "9mm",
        "event_date": date(2024, 5, 1),
    }
    base.update(kw)
    return RecordInput(**base)  # type: ignore[arg-type]


async def test_create_normalises_and_keeps_entered_text(node: Node) -> None:
    record = await node.records.create(
        glock("ab-c 12O", make="glock", calibre="9x19", country_of_manufacture="Austria"), ACTOR
    )
    assert record.serial_number == "ab-c 12O"
    assert record.serial_canonical == "A8C120"
    assert (record.make, record.make_known) == ("Glock", True)
    assert record.calibre_known and record.calibre == node.reference.normalise_calibre("9mm").value
    assert record.country_of_manufacture == "AUT"
    assert record.version == 1 and record.status is Status.STOLEN
    again = await node.records.get(record.id, ACTOR)
    assert again == record


async def test_unknown_make_is_kept_and_flagged(node: Node) -> None:
    record = await node.records.create(glock(make="Backyard Arms Co", calibre="7.77 Zorg"), ACTOR)
    assert (record.make, record.make_known) == ("Backyard Arms Co", False)
    assert (record.calibre, record.calibre_known) == ("7.77 Zorg", False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("status", "borrowed", "status: 'borrowed' is not one of lost, stolen"),
        ("serial_number", "--- ", "serial_number: required"),
        ("make", "  ", "make: required"),
        (
            "country_of_manufacture",
            "Atlantis",
            "country_of_manufacture: 'Atlantis' is not a country",
        ),
        ("event_date", date(2999, 1, 1), "event_date: 2999-01-01 is in the future"),
        ("notes", "x" * 2001, "notes: 2001 characters, at most 2000"),
        ("notes", "bad\x00byte", "notes: contains control characters"),
        ("serial_number", "1" * 65, "serial_number: 65 characters, at most 64"),
    ],
)
async def test_bad_input_is_refused_with_the_field_named(
    sqlite_node: Node, field: str, value: object, message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        await sqlite_node.records.create(glock(**{field: value}), ACTOR)
    assert str(info.value).startswith(message)
    assert info.value.field == field
    assert await sqlite_node.records.count() == 0


async def test_update_checks_the_version(node: Node, clock: FakeClock) -> None:
    record = await node.records.create(glock(), ACTOR)
    clock.advance(60)
    updated = await node.records.update(record.id, 1, glock(model="19", notes="seen"), ACTOR)
    assert (updated.version, updated.model, updated.notes) == (2, "19", "seen")
    assert updated.updated_at > record.updated_at == record.created_at
    with pytest.raises(ConflictError, match="changed by someone else"):
        await node.records.update(record.id, 1, glock(model="26"), ACTOR)
    assert (await node.records.get(record.id, ACTOR)).model == "19"


async def test_recover_and_delete(node: Node) -> None:
    record = await node.records.create(glock(), ACTOR)
    recovered = await node.records.recover(record.id, 1, date(2025, 1, 2), ACTOR)
    assert recovered.status is Status.RECOVERED and recovered.recovered_on == date(2025, 1, 2)
    with pytest.raises(ValidationError, match="reason"):
        await node.records.delete(record.id, 2, " ", ACTOR)
    deleted = await node.records.delete(record.id, 2, "entered twice", ACTOR)
    assert deleted.id == record.id
    with pytest.raises(NotFoundError):
        await node.records.get(record.id, ACTOR)
    entries = await node.audit.recent(limit=1)
    assert entries[0].action == "record.delete"
    assert entries[0].details["reason"] == "entered twice"
    assert entries[0].details["record"]["serial_number"] == "ABC123"


async def test_every_change_is_audited(node: Node) -> None:
    record = await node.records.create(glock(), ACTOR)
    await node.records.update(record.id, 1, glock(model="19"), ACTOR)
    await node.records.search(node.records.parse_filter(FilterText(make="glock")), ACTOR)
    actions = [e.action for e in await node.audit.recent(limit=3)]
    assert actions == ["record.search", "record.update", "record.create"]
    assert (await node.audit.verify()).ok


async def test_search_filters_combine(node: Node) -> None:
    await node.records.create(glock("AAA111", event_date=date(2020, 1, 1)), ACTOR)
    await node.records.create(glock("AAA222", status="lost", event_date=date(2021, 6, 1)), ACTOR)
    await node.records.create(
        RecordInput(
            "ZZ-999",
            "S&W",
            "revolver",
            "seized",
            model="686",
            calibre=".357 Magnum",
            country_of_manufacture="USA",
        ),
        ACTOR,
    )

    async def serials(**kw: str) -> list[str]:
        f = node.records.parse_filter(FilterText(**kw))
        page = await node.records.search(f, ACTOR)
        return sorted(r.serial_number for r in page.records)

    assert await serials(serial="aaa 111") == ["AAA111"]
    assert await serials(serial="AAA*") == ["AAA111", "AAA222"]
    assert await serials(serial="*999*") == ["ZZ-999"]
    assert await serials(serial="*999") == ["ZZ-999"]
    assert await serials(make="smith and wesson") == ["ZZ-999"]
    assert await serials(make="Glock", status="lost") == ["AAA222"]
    assert await serials(firearm_type="revolver", country="USA") == ["ZZ-999"]
    assert await serials(model="68") == ["ZZ-999"]
    assert await serials(date_from="2020-06-01", date_to="2021-12-31") == ["AAA222"]
    assert await serials(calibre="9x19 Parabellum") == ["AAA111", "AAA222"]
    assert await serials(status="found") == []


async def test_misread_serial_finds_the_record(node: Node) -> None:
    await node.records.create(glock("BRX-1O05"), ACTOR)
    f = node.records.parse_filter(FilterText(serial="brx 1005"))
    assert f.serial_match is SerialMatch.EXACT
    page = await node.records.search(f, ACTOR)
    assert [r.serial_number for r in page.records] == ["BRX-1O05"]


async def test_pagination(node: Node) -> None:
    for i in range(7):
        await node.records.create(glock(f"P{i:03d}"), ACTOR)
    f = node.records.parse_filter(FilterText(make="Glock"))
    first = await node.records.search(f, ACTOR, offset=0, limit=3)
    second = await node.records.search(f, ACTOR, offset=3, limit=3)
    last = await node.records.search(f, ACTOR, offset=6, limit=3)
    assert first.has_more and second.has_more and not last.has_more
    seen = [r.serial_number for p in (first, second, last) for r in p.records]
    assert seen == [f"P{i:03d}" for i in reversed(range(7))]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (FilterText(date_from="2021-13-01"), "from: '2021-13-01' is not a date"),
        (FilterText(date_from="2022-01-01", date_to="2021-01-01"), "from: the start date is after"),
        (FilterText(status="misplaced"), "status: 'misplaced' is not one of"),
        (FilterText(serial="*-*"), "serial: '*-*' has no letters or digits"),
        (FilterText(country="Narnia"), "country: 'Narnia' is not a country"),
    ],
)
def test_bad_filters_are_refused(sqlite_node: Node, text: FilterText, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        sqlite_node.records.parse_filter(text)


async def test_search_limits_are_checked(sqlite_node: Node) -> None:
    f = sqlite_node.records.parse_filter(FilterText())
    with pytest.raises(ValidationError, match="limit"):
        await sqlite_node.records.search(f, ACTOR, limit=0)
    with pytest.raises(ValidationError, match="offset"):
        await sqlite_node.records.search(f, ACTOR, offset=-1)


async def test_external_id_is_unique(node: Node) -> None:
    await node.records.create(glock(external_id="FR-2024-1"), ACTOR)
    with pytest.raises(ConflictError, match="FR-2024-1"):
        await node.records.create(glock("OTHER1", external_id="FR-2024-1"), ACTOR)
    assert await node.records.count() == 1


async def test_recovery_date_only_with_status_recovered(sqlite_node: Node) -> None:
    with pytest.raises(ValidationError, match="recovered_on: only a record with status recovered"):
        await sqlite_node.records.create(glock(recovered_on=date(2025, 1, 1)), ACTOR)
    record = await sqlite_node.records.create(
        glock(status="recovered", recovered_on=date(2025, 1, 1)), ACTOR
    )
    assert record.to_row()["recovered_on"] == "2025-01-01"
