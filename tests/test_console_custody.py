"""The console's custody registry: CSV upload through the shared import jobs, search, roles."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from node.accounts.model import Role
from node.app import Node
from tests.console_helpers import ADMIN_PASSWORD, OFFICER_PASSWORD, Console, console_for
from tests.test_custody import CHAIN, HEADER, row

CUSTODY_CSV = (HEADER + CHAIN + row(event="lent") + row(to_party="<b>Rossi</b>")).encode()


@pytest.fixture
async def console(sqlite_node: Node) -> AsyncIterator[Console]:
    """A console on the SQLite node, logged in as an officer."""
    async with console_for(sqlite_node) as c:
        await c.login_as("admin", ADMIN_PASSWORD)
        await c.add_user("officer", Role.OFFICER)
        await c.login_as("officer", OFFICER_PASSWORD)
        yield c


async def upload(console: Console, content: bytes = CUSTODY_CSV) -> str:
    """Upload a custody CSV; the job page's address."""
    response = await console.upload(content, "custody.csv", path="/custody/import")
    assert response.status == 303, await response.text()
    location: str = response.headers["Location"]
    assert location.startswith("/custody/import/")
    return location


async def test_upload_imports_and_reports_rejected_rows(console: Console) -> None:
    form = await (await console.get("/custody/import")).text()
    assert "Import custody events from CSV" in form and 'action="/custody/import"' in form
    assert "<code>licence_reference</code> (required)" in form
    location = await upload(console)
    job = await console.wait_for_job(location)
    assert job["state"] == "done", job
    report = job["report"]
    assert (report["rows"], report["created"], report["rejected"]) == (5, 4, 1)
    assert report["errors"] == [
        {
            "line": 5,
            "column": "event",
            "reason": "'lent' is not one of manufactured, imported, exported, sold, "
            "transferred, destroyed",
        }
    ]
    html = await (await console.get(location)).text()
    assert "<td>5</td><td>event</td>" in html and 'href="/custody">Custody registry</a>' in html
    assert await console.node.custody.count() == 4
    again = await console.wait_for_job(await upload(console))
    assert (again["report"]["created"], again["report"]["duplicates"]) == (0, 4)
    entries = await console.node.audit.recent(action="custody.import")
    assert [(e.actor, e.target) for e in entries] == [("officer", "custody.csv")] * 2


async def test_a_custody_job_is_not_a_records_job(console: Console) -> None:
    location = await upload(console)
    await console.wait_for_job(location)
    job_id = location.rsplit("/", 1)[1]
    assert (await console.get(f"/records/import/{job_id}")).status == 404
    unreadable = await upload(console, b"serial_number,make,firearm_type,status\nA,B,pistol,lost\n")
    job = await console.wait_for_job(unreadable)
    assert job["state"] == "failed"
    assert job["error"].startswith("custody.csv: unknown column(s) 'firearm_type', 'status'")


async def test_search_shows_the_chain_in_order(console: Console) -> None:
    await console.wait_for_job(await upload(console))
    data = await console.json("/custody.json?serial=glk%20100&make=GLOCK")
    assert (data["serial_canonical"], data["make_key"]) == ("G1K100", "glock")
    assert [(e["event"], e["event_date"]) for e in data["events"]] == [
        ("manufactured", "2019-01-10"),
        ("exported", "2019-03-02"),
        ("sold", "2019-03-02"),
    ]
    html = await (await console.get("/custody?serial=R1")).text()
    assert "&lt;b&gt;Rossi&lt;/b&gt;" in html and "<b>Rossi" not in html
    assert "Custody events of serial R1, oldest first" in html
    none = await (await console.get("/custody?serial=NOPE-1&make=Glock")).text()
    assert "No custody event of this serial and make." in none
    assert (await console.json("/custody.json")) == {"events": []}


async def test_a_bad_search_is_shown_next_to_its_field(console: Console) -> None:
    response = await console.get("/custody?serial=%2F%2F")
    assert response.status == 400
    assert "has no letters or digits to search for" in await response.text()
    error = await console.json("/custody.json?serial=%2F%2F", status=400)
    assert error["error"]["field"] == "serial"


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.ANALYST])
async def test_only_officers_reach_the_registry(console: Console, role: Role) -> None:
    await console.login_as("admin", ADMIN_PASSWORD)
    await console.add_user("other", role)
    await console.login_as("other", OFFICER_PASSWORD)
    for path in ("/custody", "/custody/import", "/custody.json?serial=R1"):
        assert (await console.get(path)).status == 403, path
    response = await console.upload(CUSTODY_CSV, path="/custody/import")
    assert response.status == 403
    assert await console.node.custody.count() == 0
