"""Console input at the boundary: a NUL character anywhere, and numbers out of range.

PostgreSQL text cannot hold U+0000, so a NUL that reached the database was a
500 there; every console input refuses it with a 400 naming the field and
stores nothing, on both backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from admin_ui.forms import MAX_ID, parse_int
from node.accounts.model import Role
from node.app import Node
from node.errors import ValidationError
from tests.conftest import MODULE_LOOP
from tests.console_helpers import ADMIN_PASSWORD, OFFICER_PASSWORD, Console, add_record, console_for

NUL = "\0"


@pytest.fixture
async def console(node: Node) -> AsyncIterator[Console]:
    """A console on each backend, logged in as the first admin."""
    async with console_for(node) as c:
        await c.login_as("admin", ADMIN_PASSWORD)
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_console(module_node: Node) -> AsyncIterator[Console]:
    """`console` once per module and backend, for the tests that change nothing (when the
    console refuses what they send, as it must)."""
    async with console_for(module_node) as c:
        await c.login_as("admin", ADMIN_PASSWORD)
        yield c


QUERIES = [
    *(f"/records{twin}?{name}=a%00b" for twin in ("", ".json") for name in ("make", "model")),
    *(
        f"/records.json?{name}=x%00"
        for name in ("serial", "type", "calibre", "status", "country", "from", "to")
    ),
    "/records.json?offset=1%00",
    "/records?deleted=1%00",
    "/audit?actor=a%00b",
    "/audit.json?actor=a%00b",
    "/audit.json?action=login%00",
    "/audit.json?before=%00",
    "/users.json?x%00=1",
    "/peers?added=FRA%00",
    "/hits.json?offset=%00",
    "/evidence.json?limit=%00",
    "/login?next=/%00",
]


@MODULE_LOOP
@pytest.mark.parametrize("path", QUERIES)
async def test_a_nul_in_a_query_is_400_naming_the_parameter(
    module_console: Console, path: str
) -> None:
    response = await module_console.get(path)
    assert response.status == 400, await response.text()
    text = await response.text()
    assert "NUL character (U+0000)" in text
    if ".json" in path:
        error = (await response.json())["error"]
        assert error["code"] == "invalid"
        name = path.split("?")[1].split("=")[0]
        assert error["field"] == (None if NUL in name or "%00" in name else name)


async def test_a_nul_in_the_address_is_400_and_changes_nothing(console: Console) -> None:
    await console.add_user("officer.a", Role.OFFICER)
    for action, form in [("approve", {}), ("status", {"status": "disabled"}), ("password", {})]:
        response = await console.post(f"/users/officer.a%00/{action}", form)
        assert response.status == 400, await response.text()
        assert "address: contains a NUL character" in await response.text()
    officer = await console.node.users.get_user("officer.a")
    assert officer.status.value == "active" and officer.must_change_password is False


async def test_a_nul_in_the_login_name_shows_the_form_again(console: Console) -> None:
    response = await console.login(f"admin{NUL}", ADMIN_PASSWORD)
    assert response.status == 400
    text = await response.text()
    assert 'id="login-error">name: contains a NUL character' in text
    assert 'action="/login"' in text
    assert await console.node.audit.recent(limit=50, action="login.fail") == []


async def test_a_nul_in_a_record_form_is_refused_next_to_its_field(console: Console) -> None:
    new = {"serial_number": "NUL-1", "make": f"Glo{NUL}ck", "firearm_type": "pistol"}
    created = await console.post("/records/new", new | {"status": "stolen"})
    assert created.status == 400
    assert 'id="e-make"' in await created.text()
    assert await console.node.records.count() == 0

    record = await add_record(console.node, "NUL-2")
    edit = {**record.to_row(), "notes": f"a{NUL}b", "version": "1"}
    edited = await console.post(f"/records/{record.id}/edit", edit)
    assert edited.status == 400 and 'id="e-notes"' in await edited.text()
    recovered = await console.post(
        f"/records/{record.id}/recover", {"version": "1", "recovered_on": f"2025-01-01{NUL}"}
    )
    assert recovered.status == 400 and 'id="e-recovered_on"' in await recovered.text()
    deleted = await console.post(
        f"/records/{record.id}/delete", {"version": "1", "reason": f"dup{NUL}licate"}
    )
    assert deleted.status == 400 and 'id="e-reason"' in await deleted.text()
    kept = await console.node.records.get(record.id, "test")
    assert (kept.version, kept.notes, kept.recovered_on) == (1, record.notes, None)


@pytest.mark.parametrize(
    ("path", "form", "field"),
    [
        ("/users", {"name": f"officer{NUL}", "role": "officer"}, "name"),
        ("/users", {"name": "officer.b", "role": f"officer{NUL}"}, "role"),
        (
            "/peers",
            {"url": f"http://127.0.0.1:9/{NUL}", "country": "DEU", "fingerprint": "ab"},
            "url",
        ),
        (
            "/peers",
            {"url": "http://127.0.0.1:9/", "country": f"DE{NUL}", "fingerprint": "ab"},
            "country",
        ),
        (
            "/account/password",
            {
                "current_password": f"{ADMIN_PASSWORD}{NUL}",
                "new_password": "a new password 1",
                "repeat_password": "a new password 1",
            },
            "current_password",
        ),
    ],
)
@MODULE_LOOP
async def test_a_nul_in_an_admin_form_is_refused_next_to_its_field(
    module_console: Console, path: str, form: dict[str, str], field: str
) -> None:
    console = module_console
    response = await console.post(path, form)
    assert response.status == 400, await response.text()
    text = await response.text()
    assert f'id="e-{field}"' in text and "contains a NUL character" in text
    assert [u.name for u in await console.node.users.list_users()] == ["admin"]
    assert await console.node.peers.list_peers() == []
    assert (await console.node.users.authenticate("admin", ADMIN_PASSWORD, address="x")).name


# --- numbers -------------------------------------------------------------------------------


def test_parse_int_names_its_true_range() -> None:
    assert parse_int(str(MAX_ID), "id") == MAX_ID
    assert parse_int("0" * 5000 + "7", "id") == 7  # leading zeros: no giant conversion
    for text in (str(MAX_ID + 1), "9" * 5000, "-1", "1.0", "١٢"):
        with pytest.raises(ValidationError, match=r"^id: expected a whole number from 0 to "):
            parse_int(text, "id")
    with pytest.raises(ValidationError) as refused:
        parse_int(str(MAX_ID + 1), "id", minimum=1)
    assert str(refused.value) == "id: expected a whole number from 1 to 9,223,372,036,854,775,807"


async def test_an_offset_past_its_bound_says_the_bound(console: Console) -> None:
    await console.add_user("officer.a", Role.OFFICER, OFFICER_PASSWORD)
    for path in ("/records.json", "/hits.json", "/evidence.json"):
        refused = await console.json(f"{path}?offset=9223372036854775807", 400)
        assert refused["error"] == {
            "code": "invalid",
            "message": "offset: expected a whole number from 0 to 1,000,000,000",
            "field": "offset",
        }
    assert (await console.json("/records.json?offset=1000000000"))["records"] == []
    assert (await console.json("/records/9223372036854775807.json", 404))["error"]["code"]
