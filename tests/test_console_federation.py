"""The console's federation pages against a real three-country federation on loopback.

FRA's console (logged in as its admin) looks up serials that DEU and ITA
hold; DEU's console shows the hit and changes what it answers for FRA. The
assertions are made on the `.json` twins and on the services, so that they
test what the nodes did. One real-browser test runs a lookup as an officer would.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, FormData, web
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.async_api import ConsoleMessage, async_playwright, expect

from admin_ui.app import build_console_app
from admin_ui.federation_forms import parse_bulk, results_context
from node.accounts.model import Role
from node.errors import ValidationError
from node.lookup.querier import LookupResult, Query
from node.protocol.client import pack
from node.protocol.model import PeerStatus, Service
from node.records.serials import canonicalise_serial
from tests.conftest import MODULE_LOOP
from tests.console_helpers import OFFICER_PASSWORD, Console, console_for
from tests.harness import ADMIN_PASSWORD, Federation, assert_seeded_lookup

CASE = "FR-2026-0042"
CHROMIUM = "/usr/bin/chromium"
SEIZED = b"serial_number,make\nGLK-12345,Glock\nB-777,\n\nNOPE-1,Walther\n"


@pytest.fixture
async def deu(fed: Federation) -> AsyncIterator[Console]:
    """DEU's console with its federation services, logged in as its admin."""
    async with console_for(fed["DEU"].n, fed=fed["DEU"].f) as console:
        await console.login_as("admin", ADMIN_PASSWORD)
        yield console


async def lookup(console: Console, serial: str, make: str = "", status: int = 200) -> Any:
    """POST the one-serial lookup to `/lookup.json`; return its data."""
    form = {"serial": serial, "make": make, "case_reference": CASE}
    response = await console.post("/lookup.json", form)
    assert response.status == status, await response.text()
    return await response.json()


def by_peer(data: Any) -> dict[str, dict[str, Any]]:
    """`/lookup.json` results of a one-serial lookup, by peer."""
    return {r["peer"]: r for r in data["results"]}


async def upload(
    console: Console,
    content: bytes,
    path: str = "/lookup/bulk.json",
    *,
    case: str = CASE,
    csrf: str | None = None,
) -> ClientResponse:
    """POST a bulk lookup file as the form does: CSRF token first, case reference, file."""
    form = FormData()
    token = console.csrf if csrf is None else csrf
    if token:
        form.add_field("csrf_token", token)
    form.add_field("case_reference", case)
    form.add_field("file", content, filename="seized.csv", content_type="text/csv")
    return await console.client.post(path, data=form, allow_redirects=False)


async def post_policy(console: Console, country: str, *services: Service) -> ClientResponse:
    """Submit a peer's policy form with `services` ticked."""
    form = [("csrf_token", console.csrf)] + [("services", s.value) for s in services]
    return await console.client.post(f"/peers/{country}/policy", data=form, allow_redirects=False)


async def lookup_queries(console: Console) -> list[dict[str, Any]]:
    """The node's `lookup.query` audit entries."""
    return list((await console.json("/audit.json?action=lookup.query"))["entries"])


async def test_a_lookup_shows_the_hit_at_deu_and_no_hit_at_ita(
    fed: Federation, fra: Console
) -> None:
    answers = by_peer(await lookup(fra, "glk 12345", "glock"))
    assert_seeded_lookup(answers)
    html = await (await fra.post("/lookup", {"serial": "GLK12345", "case_reference": CASE})).text()
    assert 'id="hit-summary"' in html and "<strong>DEU</strong> holds" in html
    assert 'class="result-hit" data-peer="DEU"' in html
    assert "checked against its index version 1" in html
    entries = await lookup_queries(fra)
    assert [(e["actor"], e["details"]["case_reference"]) for e in entries] == [
        ("admin", CASE),
        ("admin", CASE),
    ]


@MODULE_LOOP
async def test_a_lookup_form_with_errors_is_shown_again(seeded_fra: Console) -> None:
    missing = await seeded_fra.post(
        "/lookup", {"serial": "  ", "make": "Glock", "case_reference": CASE}
    )
    assert missing.status == 400
    html = await missing.text()
    assert "enter the serial number as it is stamped" in html
    assert 'value="Glock"' in html and f'value="{CASE}"' in html
    refused = await seeded_fra.post("/lookup.json", {"serial": "GLK-1", "case_reference": ""})
    assert refused.status == 400
    assert (await refused.json())["error"]["field"] == "case_reference"
    form = {"serial": "GLK-1", "make": "G\x00", "case_reference": CASE}
    nul = await seeded_fra.post("/lookup.json", form)
    assert nul.status == 400
    assert (await nul.json())["error"]["field"] == "make"
    assert await lookup_queries(seeded_fra) == []


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("   ", "case_reference: give the case this lookup is for"),
        ("c" * 101, "case_reference: at most 100 characters (this one has 101)"),
        ("FR\u202e1", "case_reference: character 3 (U+202E) is not printable on one line"),
        ("FR\n1", "case_reference: character 3 is a control character (U+000A)"),
    ],
)
async def test_the_console_applies_the_one_case_reference_rule(
    fra: Console, case: str, message: str
) -> None:
    """The form's rule is the domain's (`node.lookup.text`), for one serial and for a file."""
    refused = await fra.post("/lookup.json", {"serial": "GLK-1", "case_reference": case})
    assert refused.status == 400
    error = (await refused.json())["error"]
    assert error["field"] == "case_reference" and error["message"].startswith(message)
    bulk = await upload(fra, SEIZED, case=case)
    assert bulk.status == 400
    assert (await bulk.json())["error"]["message"].startswith(message)
    assert await lookup_queries(fra) == []
    ok = await fra.post("/lookup.json", {"serial": "GLK-1", "case_reference": " " + "c" * 100})
    assert ok.status == 200


async def test_a_bulk_lookup_checks_every_serial_of_the_file(fra: Console) -> None:
    response = await upload(fra, SEIZED)
    assert response.status == 200, await response.text()
    results = (await response.json())["results"]
    table = {(r["peer"], r["serial"]): r["result"] for r in results}
    assert table == {
        ("DEU", "GLK-12345"): "hit",
        ("DEU", "B-777"): "no_hit",
        ("DEU", "NOPE-1"): "no_hit",
        ("ITA", "GLK-12345"): "no_hit",
        ("ITA", "B-777"): "hit",
        ("ITA", "NOPE-1"): "no_hit",
    }
    deu_hit = next(r for r in results if r["peer"] == "DEU" and r["result"] == "hit")
    assert deu_hit["make_agrees"] is True
    html = await (await upload(fra, SEIZED, "/lookup/bulk")).text()
    assert "<strong>2 hits</strong>" in html
    assert html.index('data-peer="ITA"') < html.index('class="result-no_hit"')  # hits first


@MODULE_LOOP
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"serial,make\nGLK-12345,Glock\n", "header with a serial_number column"),
        (b"", "header with a serial_number column"),
        (b"serial_number\n\n  \n", "no serial numbers under its header"),
        (b"serial_number\n\xff\xfeGLK\n", "not UTF-8 text"),
        (b"serial_number\nGLK-1\n---\n", "line 3: '---' is not a serial number"),
        (b"serial_number,make\nGLK-1,Gl\x00ock\n", "line 2: make: character 3 is a control"),
        (b"serial_number\nGLK\x1b[2J-1\n", "line 2: serial_number: character 4 is a control"),
        (b"serial_number\n" + b"".join(b"S-%d\n" % i for i in range(10_001)), "more than 10000"),
    ],
)
async def test_a_bad_bulk_file_gets_a_clear_error(
    seeded_fra: Console, content: bytes, message: str
) -> None:
    response = await upload(seeded_fra, content)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["field"] == "file" and message in error["message"]
    page = await upload(seeded_fra, content, "/lookup/bulk")
    assert page.status == 400
    html = await page.text()
    assert 'id="be-file"' in html and message.replace("'", "&#39;") in html
    assert f'value="{CASE}"' in html  # the case reference is kept
    assert await lookup_queries(seeded_fra) == []


async def test_deu_sees_the_hit_of_fra_on_its_records(fra: Console, deu: Console) -> None:
    await lookup(fra, "GLK-12345", "Smith & Wesson")
    data = await deu.json("/hits.json")
    assert data["has_more"] is False
    [hit] = data["hits"]
    assert (hit["peer"], hit["serial_number"], hit["case_reference"]) == (
        "FRA",
        "GLK-12345",
        CASE,
    )
    assert hit["make_given"] == "Smith & Wesson" and hit["make_agrees"] is False
    record = await deu.json(f"/records/{hit['record_id']}.json")
    assert record["serial_number"] == "GLK-12345"
    html = await (await deu.get("/hits")).text()
    assert f'<a href="/records/{hit["record_id"]}">' in html
    assert (await deu.json("/hits.json?offset=1&limit=1"))["hits"] == []


async def test_peers_are_listed_with_their_fingerprints(fed: Federation, fra: Console) -> None:
    peers = {p["country"]: p for p in (await fra.json("/peers.json"))["peers"]}
    assert set(peers) == {"DEU", "ITA"}
    for country, peer in peers.items():
        assert peer["fingerprint"] == fed[country].fingerprint
        assert peer["url"] == fed[country].url
        assert peer["status"] == "active"
        assert peer["policy"] == ["hit-details", "lookups"]
        assert peer["index_version"] is None  # nothing looked up yet
    await lookup(fra, "B-777")
    peers = {p["country"]: p for p in (await fra.json("/peers.json"))["peers"]}
    assert peers["ITA"]["index_version"] == 1
    assert (await fra.json("/peers.json"))["dead_letters"] == []
    html = await (await fra.get("/peers")).text()
    assert fed["DEU"].fingerprint[:4] + " " + fed["DEU"].fingerprint[4:8] in html


async def test_dead_letters_are_shown_to_the_admin(fed: Federation, fra: Console) -> None:
    fra_node = fed["FRA"]
    await fra_node.n.delivery.enqueue("DEU", "lookup.everything", pack({}))
    assert await fra_node.n.delivery.deliver_due(fra_node.f.client) == 0
    [dead] = (await fra.json("/peers.json"))["dead_letters"]
    assert (dead["recipient"], dead["type"], dead["attempts"]) == ("DEU", "lookup.everything", 1)
    assert "unknown_type" in dead["error"]
    html = await (await fra.get("/peers")).text()
    assert 'id="dead-letters"' in html and "<code>lookup.everything</code>" in html


async def test_a_peer_with_the_wrong_fingerprint_is_not_added(
    fed: Federation, fra: Console
) -> None:
    esp = await fed.add("ESP")
    form = {"url": esp.url, "country": "ESP", "fingerprint": fed["DEU"].fingerprint}
    refused = await fra.post("/peers", form)
    assert refused.status == 400
    html = await refused.text()
    assert 'id="e-fingerprint"' in html and "fingerprint mismatch" in html
    assert esp.fingerprint in html  # the key the URL really serves
    assert {p.country for p in await fed["FRA"].n.peers.list_peers()} == {"DEU", "ITA"}

    grouped = " ".join(esp.fingerprint[i : i + 4] for i in range(0, 64, 4)).upper()
    added = await fra.post("/peers", form | {"fingerprint": grouped, "country": "esp"})
    assert added.status == 303 and added.headers["Location"] == "/peers?added=ESP"
    assert (await fed["FRA"].n.peers.get("ESP")).fingerprint == esp.fingerprint
    again = await fra.post("/peers", form | {"fingerprint": esp.fingerprint})
    assert again.status == 409 and "already a peer" in await again.text()


async def test_policy_and_revocation_from_the_forms_take_effect(
    fed: Federation, fra: Console, deu: Console
) -> None:
    assert (await post_policy(deu, "FRA", Service.LOOKUPS)).status == 303
    assert (await fed["DEU"].n.peers.get("FRA")).policy == {Service.LOOKUPS}
    assert by_peer(await lookup(fra, "GLK-12345"))["DEU"]["records"] == [{"status": "stolen"}]

    unconfirmed = await deu.post("/peers/FRA/revoke")
    assert unconfirmed.status == 400 and "tick the box" in await unconfirmed.text()
    assert (await fed["DEU"].n.peers.get("FRA")).status is PeerStatus.ACTIVE

    assert (await deu.post("/peers/FRA/revoke", {"confirm": "yes"})).status == 303
    assert (await fed["DEU"].n.peers.get("FRA")).status is PeerStatus.REVOKED
    answer = by_peer(await lookup(fra, "GLK-12345"))["DEU"]
    assert answer["result"] == "refused" and "(revoked)" in answer["reason"]
    html = await (await fra.post("/lookup", {"serial": "GLK-12345", "case_reference": CASE})).text()
    assert 'class="result-refused" data-peer="DEU"' in html and 'id="no-hits"' in html
    actions = [e["action"] for e in (await deu.json("/audit.json?actor=admin"))["entries"]]
    assert {"peer.policy", "peer.revoke"} <= set(actions)
    assert (await deu.post("/peers/XYZ/revoke", {"confirm": "yes"})).status == 404


async def test_roles_decide_who_looks_up_who_sees_hits_and_who_manages_peers(
    fed: Federation, fra: Console
) -> None:
    await fra.add_user("officer", Role.OFFICER)
    await fra.add_user("auditor", Role.AUDITOR)
    await fra.login_as("officer", OFFICER_PASSWORD)
    for path in ("/peers", "/peers.json"):
        assert (await fra.get(path)).status == 403
    forbidden = await fra.post("/peers/DEU/revoke", {"confirm": "yes"})
    assert forbidden.status == 403
    assert (await fed["FRA"].n.peers.get("DEU")).status is PeerStatus.ACTIVE
    assert by_peer(await lookup(fra, "GLK-12345"))["DEU"]["result"] == "hit"
    html = await (await fra.get("/hits")).text()
    assert 'href="/lookup"' in html and 'href="/peers"' not in html

    await fra.login_as("auditor", OFFICER_PASSWORD)
    assert (await fra.get("/hits")).status == 200
    assert (await fra.get("/lookup")).status == 403
    assert (await fra.post("/lookup.json", {"serial": "GLK-1", "case_reference": CASE})).status == (
        403
    )


@MODULE_LOOP
async def test_a_post_without_the_csrf_token_is_refused(
    seeded: Federation, seeded_fra: Console
) -> None:
    refused = [
        await seeded_fra.post(
            "/lookup.json", {"serial": "GLK-12345", "case_reference": CASE}, csrf=""
        ),
        await upload(seeded_fra, SEIZED, csrf=""),
        await upload(seeded_fra, SEIZED, csrf="forged"),
        await seeded_fra.post("/peers/DEU/revoke", {"confirm": "yes"}, csrf=""),
        await seeded_fra.post("/peers/DEU/policy", {"services": "traces"}, csrf=""),
        await seeded_fra.post("/peers", {"url": seeded["DEU"].url, "country": "DEU"}, csrf=""),
    ]
    for response in refused:
        assert response.status == 403
        text = await response.text()
        assert '"code": "csrf"' in text or 'data-code="csrf"' in text
    peer = await seeded["FRA"].n.peers.get("DEU")
    assert peer.status is PeerStatus.ACTIVE and Service.TRACES not in peer.policy
    assert await lookup_queries(seeded_fra) == []


async def test_without_the_signing_key_the_lookup_page_explains(fed: Federation) -> None:
    async with console_for(fed["FRA"].n) as console:
        await console.login_as("admin", ADMIN_PASSWORD)
        assert (await console.json("/lookup.json"))["available"] is False
        html = await (await console.get("/lookup")).text()
        assert 'id="lookup-unavailable"' in html and 'action="/lookup"' not in html
        refused = await console.post("/lookup.json", {"serial": "GLK-1", "case_reference": CASE})
        assert refused.status == 503
        assert (await refused.json())["error"]["code"] == "no_signing_key"
        peers = (await console.json("/peers.json"))["peers"]
        assert [p["index_version"] for p in peers] == [None, None]


# --- the pure helpers ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bulk_file_gives_serials_or_an_error_on_the_file_field(data: bytes) -> None:
    for header in (b"", b"serial_number,make\n"):
        error: ValidationError | None = None
        try:
            queries = parse_bulk(header + data)
        except ValidationError as e:
            error = e
        if error is not None:
            assert error.field == "file" and str(error).startswith("file: ")
        else:
            assert queries and all(canonicalise_serial(q.serial) for q in queries)


# Control characters are refused (a line of their own, above); everything else reads back.
serials = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20
).filter(lambda s: bool(canonicalise_serial(s.strip())))
makes = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(serials, makes), min_size=1, max_size=20))
def test_a_bulk_file_written_by_a_csv_writer_reads_back(rows: list[tuple[str, str]]) -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["notes", "Serial_Number", "MAKE"])
    writer.writerows(["x", serial, make] for serial, make in rows)
    parsed = parse_bulk(out.getvalue().encode("utf-8"))
    assert parsed == [Query(serial.strip(), make.strip()) for serial, make in rows]


def test_results_put_hits_first_and_show_every_hit() -> None:
    results = [
        LookupResult("DEU", "A", "no_hit", index_version=3),
        LookupResult("DEU", "B", "hit", make_agrees=True),
        LookupResult("ITA", "A", "unreachable", reason="down"),
        LookupResult("ITA", "B", "hit"),
    ]
    shown = results_context(results, max_rows=1)
    assert [(r.peer, r.serial) for r in shown["rows"]] == [("DEU", "B"), ("ITA", "B")]
    assert shown["hidden"] == 2
    assert shown["counts"] == {"Hit": 2, "Unreachable": 1, "No hit": 1}
    everything = results_context(results, max_rows=10)
    assert [r.result for r in everything["rows"]] == ["hit", "hit", "unreachable", "no_hit"]
    assert everything["hidden"] == 0


@pytest.mark.browser
@pytest.mark.http
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")
async def test_an_officer_looks_up_a_serial_in_a_real_browser(fed: Federation) -> None:
    await fed["FRA"].n.users.add_user(
        "officer", Role.OFFICER, False, OFFICER_PASSWORD, "test", must_change_password=False
    )
    runner = web.AppRunner(build_console_app(fed["FRA"].n, fed["FRA"].f), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            violations.append(message.text)

    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                ],
            )
            page = await browser.new_page()
            page.set_default_timeout(15_000)
            page.on("console", on_console)
            await page.goto(f"http://{host}:{port}/login?next=/lookup")
            await page.get_by_label("User name").fill("officer")
            await page.get_by_label("Password").fill(OFFICER_PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.locator("#f-serial").fill("glk 12345")
            await page.locator("#f-make").fill("Glock")
            await page.locator("#f-case_reference").fill(CASE)
            await page.get_by_role("button", name="Look up", exact=True).click()
            await expect(page.locator("#hit-summary")).to_contain_text("DEU holds glk 12345")
            hit = page.locator('tr.result-hit[data-peer="DEU"]')
            await expect(hit).to_contain_text("make agrees")
            await expect(hit).to_contain_text("from a gun shop")
            miss = page.locator('tr.result-no_hit[data-peer="ITA"]')
            await expect(miss).to_contain_text("checked against its index version 1")
            await expect(page.locator("#f-case_reference")).to_have_value(CASE)
            await browser.close()
    finally:
        await runner.cleanup()
    assert violations == []
