"""The web console through the aiohttp test client: pages, flows, roles, imports.

Assertions are made on the `.json` twin of each page where there is one, and
on the audit log, so that they test what the node did, not how a page looks.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from node.accounts.model import Role
from node.app import Node
from node.records.importer import Progress
from tests.console_helpers import (
    ADMIN_PASSWORD,
    OFFICER_PASSWORD,
    Console,
    add_record,
    console_for,
)

RECORD_FORM = {
    "serial_number": "GLK-12345",
    "make": "glock",
    "model": "17",
    "firearm_type": "pistol",
    "calibre": "9mm",
    "status": "stolen",
    "country_of_manufacture": "Austria",
    "event_date": "2025-06-01",
    "event_place": "Lyon",
    "reporting_agency": "Police nationale",
    "case_reference": "LY-2025-77",
    "contact": "desk@police.example",
    "markings": "import mark FR",
    "notes": "taken in a burglary",
}


@pytest.fixture
async def console(sqlite_node: Node) -> AsyncIterator[Console]:
    """A console on the SQLite node, logged in as the first admin."""
    async with console_for(sqlite_node) as c:
        await c.login_as("admin", ADMIN_PASSWORD)
        yield c


async def actions(console: Console, **filters: str) -> list[dict[str, object]]:
    """The audit log's newest entries, as the auditor's page shows them."""
    query = "&".join(f"{k}={quote(v)}" for k, v in filters.items())
    data = await console.json(f"/audit.json?{query}")
    return list(data["entries"])


# --- logging in ---------------------------------------------------------------------------


async def test_a_wrong_password_is_refused_and_the_right_one_opens_a_session(
    console: Console,
) -> None:
    response = await console.login("admin", "not the password")
    assert response.status == 401
    assert "wrong user name or password" in await response.text()
    assert "iarms_session" not in response.cookies
    assert (await console.get("/")).status == 302

    response = await console.login("admin", ADMIN_PASSWORD, next_path="/records?status=stolen")
    assert response.status == 303
    assert response.headers["Location"] == "/records?status=stolen"
    dashboard = await console.json("/.json")
    assert dashboard["country"] == "FRA"
    assert dashboard["records"] == 0
    assert dashboard["user"] == {"name": "admin", "role": "admin"}
    assert (await actions(console, action="login"))[0]["actor"] == "admin"


async def test_external_user_cannot_log_in_until_an_admin_approves(console: Console) -> None:
    added = await console.post(
        "/users", {"name": "gendarme.ext", "role": "officer", "external": "on"}
    )
    assert added.status == 200
    found = re.search(r'<code class="secret">([^<]+)</code>', await added.text())
    assert found, "the one-time password is shown"
    password = found.group(1)
    users = {u["name"]: u for u in (await console.json("/users.json"))["users"]}
    assert users["gendarme.ext"]["status"] == "pending"
    assert users["gendarme.ext"]["external"] is True
    assert all("password_hash" not in u for u in users.values())

    refused = await console.login("gendarme.ext", password)
    assert refused.status == 401
    assert "awaiting approval" in await refused.text()

    await console.login_as("admin", ADMIN_PASSWORD)
    approved = await console.post("/users/gendarme.ext/approve")
    assert approved.status == 303
    users = {u["name"]: u for u in (await console.json("/users.json"))["users"]}
    assert users["gendarme.ext"]["status"] == "active"
    assert users["gendarme.ext"]["approved_by"] == "admin"

    assert password not in await (await console.get("/users")).text()  # shown once only

    await console.login_as("gendarme.ext", password)
    assert (await console.json("/.json", 403))["error"]["code"] == "password_change_required"
    assert (await console.change_password(password, "my own password 1")).status == 303
    assert (await console.json("/.json"))["user"]["role"] == "officer"


# --- sessions are required ----------------------------------------------------------------

PAGES = [
    "/",
    "/records",
    "/records?serial=AB*&offset=0",
    "/records/new",
    "/records/1",
    "/records/1/edit",
    "/records/import",
    "/records/import/some-job",
    "/custody?serial=X1",
    "/custody/import",
    "/custody/import/some-job",
    "/audit",
    "/users",
    "/no/such/page",
]


async def test_every_page_sends_a_visitor_without_session_to_login(sqlite_node: Node) -> None:
    async with console_for(sqlite_node) as anonymous:
        for path in PAGES:
            response = await anonymous.get(path)
            assert response.status == 302, path
            location = urlsplit(response.headers["Location"])
            assert (location.path, parse_qs(location.query)) == ("/login", {"next": [path]})
            twin = await anonymous.get(path.split("?")[0] + ".json")
            assert twin.status == 401, path
            assert (await twin.json())["error"]["code"] == "unauthenticated"
        login = await anonymous.get("/login?next=" + quote("/records?serial=AB*"))
        assert 'name="next" value="/records?serial=AB*"' in await login.text()

        response = await anonymous.post("/records/new", RECORD_FORM, csrf="whatever")
        assert response.status == 401
        assert "log in" in (await response.text()).lower()
    assert await sqlite_node.records.count() == 0


# --- the record lifecycle -----------------------------------------------------------------


async def test_create_view_edit_recover_delete(console: Console) -> None:
    created = await console.post("/records/new", RECORD_FORM)
    assert created.status == 303
    location = created.headers["Location"]
    record_id = int(location.rsplit("/", 1)[1])

    record = await console.json(f"{location}.json")
    assert record["serial_number"] == "GLK-12345"
    assert record["make"] == "Glock" and record["make_known"] is True
    assert record["calibre"] == "9mm Luger" and record["calibre_known"] is True
    assert record["country_of_manufacture"] == "AUT"
    assert record["version"] == 1
    html = await (await console.get(location)).text()
    for value in ("GLK-12345", "Police nationale", "LY-2025-77", "import mark FR"):
        assert value in html

    edit = await console.get(f"{location}/edit")
    assert 'name="version" value="1"' in await edit.text()
    changed = await console.post(
        f"{location}/edit", RECORD_FORM | {"version": "1", "notes": "seen in Marseille"}
    )
    assert changed.status == 303
    record = await console.json(f"{location}.json")
    assert (record["notes"], record["version"]) == ("seen in Marseille", 2)

    recovered = await console.post(
        f"{location}/recover", {"version": "2", "recovered_on": "2025-12-24"}
    )
    assert recovered.status == 303
    record = await console.json(f"{location}.json")
    assert (record["status"], record["recovered_on"], record["version"]) == (
        "recovered",
        "2025-12-24",
        3,
    )

    deleted = await console.post(f"{location}/delete", {"version": "3", "reason": "entered twice"})
    assert deleted.status == 303
    assert deleted.headers["Location"] == f"/records?deleted={record_id}"
    assert (await console.get(f"{location}.json")).status == 404

    log = await actions(console, actor="admin")
    target = f"record/{record_id}"
    done = [e["action"] for e in log if e["target"] == target]
    for action in (
        "record.create",
        "record.view",
        "record.update",
        "record.recover",
        "record.delete",
    ):
        assert action in done
    deletion = next(e for e in log if e["action"] == "record.delete")
    assert deletion["details"]["reason"] == "entered twice"  # type: ignore[index]


async def test_a_stale_edit_or_delete_is_refused_with_a_clear_message(console: Console) -> None:
    record = await add_record(console.node, "RUG-555", notes="first")
    path = f"/records/{record.id}/edit"
    first = await console.post(path, RECORD_FORM | {"version": "1", "notes": "by someone else"})
    assert first.status == 303
    stale = await console.post(path, RECORD_FORM | {"version": "1", "notes": "my late change"})
    assert stale.status == 409
    html = await stale.text()
    assert "changed by someone else" in html
    assert "my late change" in html  # the user's input is kept
    current = await console.json(f"/records/{record.id}.json")
    assert (current["notes"], current["version"]) == ("by someone else", 2)

    path = f"/records/{record.id}"
    future = await console.post(f"{path}/recover", {"version": "2", "recovered_on": "2031-01-01"})
    assert future.status == 400
    assert "in the future" in await future.text()
    no_reason = await console.post(f"{path}/delete", {"version": "2", "reason": "  "})
    assert no_reason.status == 400
    assert 'id="e-reason"' in await no_reason.text()
    stale_delete = await console.post(f"{path}/delete", {"version": "1", "reason": "gone"})
    assert stale_delete.status == 409
    assert "changed by someone else" in await stale_delete.text()
    assert (await console.json(f"{path}.json"))["status"] == "stolen"


# --- searching ----------------------------------------------------------------------------


async def test_filters_and_pagination(console: Console) -> None:
    node = console.node
    for n in range(5):
        await add_record(node, f"GL{n}00{n}", event_date=None)
    await add_record(
        node,
        "SW77001",
        make="S&W",
        firearm_type="revolver",
        status="lost",
        calibre=".38 Special",
        country_of_manufacture="USA",
    )
    from datetime import date

    await add_record(node, "RU88", make="Ruger", status="seized", event_date=date(2024, 3, 1))

    first = await console.json("/records.json?limit=3")
    assert (len(first["records"]), first["offset"], first["has_more"]) == (3, 0, True)
    assert first["records"][0]["serial_number"] == "RU88"  # newest first
    last = await console.json("/records.json?limit=3&offset=6")
    assert (len(last["records"]), last["has_more"]) == (1, False)

    def serials(data: dict[str, list[dict[str, str]]]) -> list[str]:
        return [r["serial_number"] for r in data["records"]]

    assert serials(await console.json("/records.json?make=smith+and+wesson")) == ["SW77001"]
    assert serials(await console.json("/records.json?type=revolver&status=lost")) == ["SW77001"]
    assert serials(await console.json("/records.json?country=US")) == ["SW77001"]
    assert serials(await console.json("/records.json?from=2024-01-01&to=2024-12-31")) == ["RU88"]
    assert serials(await console.json("/records.json?serial=GL1*")) == ["GL1001"]
    assert len((await console.json("/records.json?serial=*00*"))["records"]) == 6
    assert (await console.json("/records.json?status=stolen&limit=2"))["has_more"] is True

    html = await (await console.get("/records?make=Glock&limit=2&offset=2")).text()
    assert 'href="/records?make=Glock&amp;offset=4&amp;limit=2"' in html
    assert 'href="/records?make=Glock&amp;offset=0&amp;limit=2"' in html

    await add_record(node, "ZZ1", make="Backyard Arms Co", calibre="7.77 Wonder")
    row = (await console.json("/records.json?limit=1"))["records"][0]
    assert (row["make_known"], row["calibre_known"]) == (False, False)
    html = await (await console.get("/records?limit=1")).text()
    assert html.count("not in the reference table") == 2


async def test_a_misread_serial_finds_the_record(console: Console) -> None:
    record = await add_record(console.node, "AB-10342")
    found = await console.json("/records.json?serial=" + quote("ab 1O342"))
    assert [r["id"] for r in found["records"]] == [str(record.id)]


# --- importing ----------------------------------------------------------------------------

CSV_WITH_A_BAD_ROW = (
    b"serial_number,make,firearm_type,status,calibre\n"
    b"IMP-001,Glock,pistol,stolen,9mm\n"
    b"IMP-002,Beretta,pistol,misplaced,9mm\n"
    b"IMP-003,Ruger,revolver,lost,.357 Magnum\n"
)


async def test_import_stores_good_rows_and_reports_the_bad_one(console: Console) -> None:
    response = await console.upload(CSV_WITH_A_BAD_ROW, filename="weekly.csv")
    assert response.status == 303
    location = response.headers["Location"]
    job = await console.wait_for_job(location)
    assert job["state"] == "done", job
    assert job["filename"] == "weekly.csv"
    assert job["percent"] == 100
    report = job["report"]
    assert (report["rows"], report["created"], report["duplicates"], report["rejected"]) == (
        3,
        2,
        0,
        1,
    )
    assert report["errors"] == [
        {"line": 3, "column": "status", "reason": report["errors"][0]["reason"]}
    ]
    assert "misplaced" in report["errors"][0]["reason"]
    html = await (await console.get(location)).text()
    assert "<td>3</td><td>status</td>" in html
    assert 'http-equiv="refresh"' not in html
    serials = {r["serial_number"] for r in (await console.json("/records.json"))["records"]}
    assert serials == {"IMP-001", "IMP-003"}
    assert list((console.node.config.data_dir / "uploads").iterdir()) == []

    again = await console.wait_for_job(
        (await console.upload(CSV_WITH_A_BAD_ROW)).headers["Location"]
    )
    assert (again["report"]["created"], again["report"]["duplicates"]) == (0, 2)

    await console.add_user("officer.b", Role.OFFICER)
    await console.login_as("officer.b", OFFICER_PASSWORD)
    assert (await console.get(location)).status == 404  # a job is private to its officer


async def test_an_unreadable_file_is_the_jobs_error(console: Console) -> None:
    response = await console.upload(b"serial_number;make\nX;Y\n", filename="semi.csv")
    job = await console.wait_for_job(response.headers["Location"])
    assert job["state"] == "failed"
    assert job["error"].startswith("semi.csv: ")
    assert "uploads" not in job["error"]
    latin1 = await console.upload(
        "serial_number,make,firearm_type,status\nÉ1,Glock,pistol,lost\n".encode("latin-1")
    )
    job = await console.wait_for_job(latin1.headers["Location"])
    assert "not UTF-8" in job["error"]
    assert list((console.node.config.data_dir / "uploads").iterdir()) == []


async def test_a_running_import_shows_progress_and_stops_with_the_console(
    sqlite_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()

    async def slow_import(path: Path, actor: str, progress: Progress, **_: object) -> None:
        progress(path.stat().st_size // 2)
        await release.wait()

    monkeypatch.setattr(sqlite_node.imports, "import_csv", slow_import)
    uploads = sqlite_node.config.data_dir / "uploads"
    async with console_for(sqlite_node) as console:
        await console.login_as("admin", ADMIN_PASSWORD)
        location = (await console.upload(CSV_WITH_A_BAD_ROW)).headers["Location"]
        job = await console.json(location + ".json")
        half = len(CSV_WITH_A_BAD_ROW) // 2
        assert (job["state"], job["bytes_read"], job["total_bytes"]) == (
            "running",
            half,
            len(CSV_WITH_A_BAD_ROW),
        )
        assert job["percent"] == half * 100 // len(CSV_WITH_A_BAD_ROW)
        html = await (await console.get(location)).text()
        assert '<meta http-equiv="refresh" content="1">' in html
        assert f"{job['percent']}% read" in html
        assert len(list(uploads.iterdir())) == 1
    assert list(uploads.iterdir()) == []  # shutting the console down stopped the job


async def test_an_upload_over_the_size_limit_is_refused(sqlite_node: Node) -> None:
    async with console_for(sqlite_node, max_upload=2048) as console:
        await console.login_as("admin", ADMIN_PASSWORD)
        big = b"serial_number,make,firearm_type,status\n" + b"A1,Glock,pistol,lost\n" * 200
        response = await console.upload(big)
        assert response.status == 413
        assert "larger than the 2048 bytes limit" in await response.text()
        assert list((sqlite_node.config.data_dir / "uploads").iterdir()) == []
        missing = await console.client.post(
            "/records/import", data={"csrf_token": console.csrf}, allow_redirects=False
        )
        assert missing.status == 400
    assert await sqlite_node.records.count() == 0


# --- roles --------------------------------------------------------------------------------


async def test_roles_decide_which_pages_open(console: Console) -> None:
    await console.add_user("officer", Role.OFFICER)
    await console.add_user("auditor", Role.AUDITOR)
    await console.add_user("analyst", Role.ANALYST)
    allowed = {
        "officer": {"/", "/records", "/records/new", "/records/import", "/custody"},
        "auditor": {"/", "/audit", "/statistics"},
        "analyst": {"/", "/statistics"},
    }
    for name, pages in allowed.items():
        await console.login_as(name, OFFICER_PASSWORD)
        for path in (
            "/",
            "/records",
            "/records/new",
            "/records/import",
            "/custody",
            "/audit",
            "/statistics",
            "/users",
        ):
            response = await console.get(path)
            expected = 200 if path in pages else 403
            assert response.status == expected, (name, path)
        assert set((await console.json("/.json"))["links"]) == pages
    await console.login_as("officer", OFFICER_PASSWORD)
    forbidden = await console.get("/users.json")
    assert forbidden.status == 403
    assert (await forbidden.json())["error"]["code"] == "forbidden"
    assert (await console.post("/users", {"name": "sneaky", "role": "admin"})).status == 403
    assert "sneaky" not in {u.name for u in await console.node.users.list_users()}


async def test_admin_can_disable_and_enable_a_user(console: Console) -> None:
    await console.add_user("officer", Role.OFFICER)
    assert (await console.post("/users/officer/status", {"status": "disabled"})).status == 303
    refused = await console.login("officer", OFFICER_PASSWORD)
    assert "disabled" in await refused.text()
    await console.login_as("admin", ADMIN_PASSWORD)
    assert (await console.post("/users/admin/status", {"status": "disabled"})).status == 400
    assert (await console.post("/users/officer/status", {"status": "active"})).status == 303
    await console.login_as("officer", OFFICER_PASSWORD)


async def test_audit_log_pages_filters_and_verifies(console: Console) -> None:
    for n in range(4):
        await add_record(console.node, f"AUD{n}")
    page = await console.json("/audit.json?limit=2&action=record.create")
    assert [e["action"] for e in page["entries"]] == ["record.create"] * 2
    older = await console.json(page["older"].replace("/audit?", "/audit.json?"))
    assert older["entries"][0]["seq"] < page["entries"][-1]["seq"]
    assert all(e["action"] == "record.create" for e in older["entries"])
    verified = await console.post("/audit/verify")
    assert verified.status == 200
    assert "entries verified" in await verified.text()


# --- forms --------------------------------------------------------------------------------


async def test_form_errors_re_render_the_form_with_the_input_kept(console: Console) -> None:
    response = await console.post("/records/new", RECORD_FORM | {"make": "  "})
    assert response.status == 400
    html = await response.text()
    assert re.search(r'<p class="field-error" id="e-make">\s*required', html)
    assert 'value="GLK-12345"' in html and "taken in a burglary" in html
    assert '<option value="stolen" selected>' in html

    bad_date = await console.post("/records/new", RECORD_FORM | {"event_date": "01/06/2025"})
    assert bad_date.status == 400
    assert 'id="e-event_date"' in await bad_date.text()
    bad_user = await console.post("/users", {"name": "Bad Name!", "role": "officer"})
    assert bad_user.status == 400
    assert 'id="e-name"' in await bad_user.text() and 'value="Bad Name!"' in await bad_user.text()
    assert await console.node.records.count() == 0

    page = await console.get("/records?from=yesterday&serial=AB")
    assert page.status == 400
    html = await page.text()
    assert 'id="e-from"' in html and "YYYY-MM-DD" in html
    assert 'value="AB"' in html
    error = await console.json("/records.json?from=yesterday", status=400)
    assert error["error"]["code"] == "invalid"
    assert error["error"]["field"] == "from"
    assert (await console.json("/records.json?limit=0", status=400))["error"]["field"] == "limit"


async def test_errors_have_one_shape(console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = await console.get("/records/999")
    assert missing.status == 404
    assert "no record with id 999" in await missing.text()
    error = await console.json("/records/999.json", status=404)
    assert error == {
        "error": {"code": "not_found", "message": "no record with id 999", "field": None}
    }

    async def broken() -> int:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(console.node.records, "count", broken)
    crashed = await console.get("/")
    assert crashed.status == 500
    body = await crashed.text()
    assert "incident" in body and "secret internals" not in body and "Traceback" not in body
