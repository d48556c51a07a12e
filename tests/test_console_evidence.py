"""The console's evidence pages against a real three-country federation on loopback.

FRA's console looks up serials that DEU and ITA hold; each hit keeps the
owner's signed confirmation, which the evidence pages list, verify on every
view and hand out byte for byte. Assertions are made on the `.json` twins and
on the node's evidence service, so that they test what the node kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import FormData
from sqlalchemy import select, update

from node.accounts.model import Role
from node.app import Node
from node.lookup.evidence import verify_bundle
from node.records.model import RecordInput
from node.store.tables import HitEvidenceRow, table
from tests.console_helpers import OFFICER_PASSWORD, Console, console_for
from tests.harness import Federation, assert_seeded_lookup

CASE = "FR-2026-0099"
SCRIPT = "<script>alert(1)</script>"
SEIZED = b"serial_number,make\nGLK-12345,Glock\nB-777,\nNOPE-1,Walther\n"
_evidence = table(HitEvidenceRow)


async def lookup(console: Console, serial: str, make: str = "", case: str = CASE) -> Any:
    """POST the one-serial lookup to `/lookup.json`; its results by peer."""
    form = {"serial": serial, "make": make, "case_reference": case}
    response = await console.post("/lookup.json", form)
    assert response.status == 200, await response.text()
    return {r["peer"]: r for r in (await response.json())["results"]}


async def bulk_lookup(console: Console, content: bytes) -> list[dict[str, Any]]:
    """POST a bulk lookup file to `/lookup/bulk.json`, CSRF token first; its results."""
    form = FormData()
    form.add_field("csrf_token", console.csrf)
    form.add_field("case_reference", CASE)
    form.add_field("file", content, filename="seized.csv", content_type="text/csv")
    response = await console.client.post("/lookup/bulk.json", data=form, allow_redirects=False)
    assert response.status == 200, await response.text()
    return list((await response.json())["results"])


async def deu_hit(console: Console) -> int:
    """Look up DEU's seeded serial; the id of the evidence of its hit."""
    answers = await lookup(console, "glk 12345", "glock")
    assert_seeded_lookup(answers)
    return int(answers["DEU"]["evidence"])


async def tamper(node: Node, evidence_id: int, old: bytes, new: bytes) -> None:
    """Alter a kept bundle in the database, as someone with access to it could."""
    where = _evidence.c.id == evidence_id
    async with node.db.write() as conn:
        data = (await conn.execute(select(_evidence.c.bundle).where(where))).scalar_one()
        assert old in data
        await conn.execute(update(_evidence).where(where).values(bundle=data.replace(old, new)))


@pytest.fixture
async def anonymous(fed: Federation) -> AsyncIterator[Console]:
    """FRA's console, not logged in."""
    async with console_for(fed["FRA"].n, fed=fed["FRA"].f) as console:
        yield console


async def test_each_hit_of_a_lookup_keeps_its_evidence(fra: Console) -> None:
    results = await bulk_lookup(fra, SEIZED)
    hits = {r["peer"]: r for r in results if r["result"] == "hit"}
    assert {p: h["serial"] for p, h in hits.items()} == {"DEU": "GLK-12345", "ITA": "B-777"}
    listing = await fra.json("/evidence.json")
    assert (listing["total"], listing["offset"], listing["has_more"]) == (2, 0, False)
    kept = {e["peer"]: e for e in listing["evidence"]}
    assert {p: e["id"] for p, e in kept.items()} == {p: h["evidence"] for p, h in hits.items()}
    assert {p: e["serial"] for p, e in kept.items()} == {"DEU": "GLK-12345", "ITA": "B-777"}
    assert all((e["case_reference"], e["actor"]) == (CASE, "admin") for e in kept.values())
    ids = [e["id"] for e in listing["evidence"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    first = await fra.json("/evidence.json?limit=1")
    assert ([e["id"] for e in first["evidence"]], first["has_more"]) == (ids[:1], True)
    second = await fra.json("/evidence.json?offset=1&limit=1")
    assert ([e["id"] for e in second["evidence"]], second["has_more"]) == (ids[1:], False)
    html = await (await fra.get("/evidence?limit=1")).text()
    assert f'<a href="/evidence/{ids[0]}">#{ids[0]}</a>' in html
    assert 'rel="next"' in html and f"/evidence/{ids[1]}" not in html


async def test_the_lookup_page_links_each_hit_to_its_evidence(fra: Console) -> None:
    form = {"serial": "glk 12345", "make": "glock", "case_reference": CASE}
    html = await (await fra.post("/lookup", form)).text()
    [entry] = (await fra.json("/evidence.json"))["evidence"]
    assert entry["serial"] == "glk 12345"  # as the officer typed it
    link = f'<a href="/evidence/{entry["id"]}">signed confirmation #{entry["id"]}</a>'
    assert html.count(link) == 1
    assert html.index('data-peer="DEU"') < html.index(link) < html.index('data-peer="ITA"')


async def test_the_evidence_page_shows_what_the_signed_answer_proves(
    fed: Federation, fra: Console
) -> None:
    answers = await lookup(fra, "glk 12345", "glock")
    evidence_id = answers["DEU"]["evidence"]
    shown = await fra.json(f"/evidence/{evidence_id}.json")
    assert (shown["id"], shown["verified"]) == (evidence_id, True)
    assert (shown["owner"], shown["requester"]) == ("DEU", "FRA")
    assert shown["owner_fingerprint"] == fed["DEU"].fingerprint
    assert shown["requester_fingerprint"] == fed["FRA"].fingerprint
    assert (shown["case_reference"], shown["serial"], shown["actor"]) == (
        CASE,
        "glk 12345",
        "admin",
    )
    assert (shown["make_given"], shown["make_agrees"], shown["details"]) == ("glock", True, True)
    assert shown["records"] == answers["DEU"]["records"]
    assert shown["records"][0]["notes"] == "from a gun shop"
    assert shown["asked_at"] <= shown["answered_at"]
    assert shown["bundle"] == f"/evidence/{evidence_id}/bundle"
    html = await (await fra.get(f"/evidence/{evidence_id}")).text()
    fp = fed["DEU"].fingerprint
    assert f"{fp[:4]} {fp[4:8]}" in html and "Compare this fingerprint" in html
    assert 'id="evidence-verified"' in html and "from a gun shop" in html
    assert f'href="/evidence/{evidence_id}/bundle"' in html


async def test_the_downloaded_bundle_is_the_kept_one_and_verifies(
    fed: Federation, fra: Console
) -> None:
    evidence_id = await deu_hit(fra)
    response = await fra.get(f"/evidence/{evidence_id}/bundle")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="iarms-evidence-{evidence_id}.msgpack"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    data = await response.read()
    entry, proved = await fed["FRA"].n.evidence.open(evidence_id)
    assert data == entry.bundle
    assert verify_bundle(data) == proved
    assert proved.owner_fingerprint == fed["DEU"].fingerprint


async def test_a_tampered_bundle_is_shown_as_not_verifying(fed: Federation, fra: Console) -> None:
    evidence_id = await deu_hit(fra)
    await tamper(fed["FRA"].n, evidence_id, b"from a gun shop", b"from a gun show")
    data = await fra.json(f"/evidence/{evidence_id}.json", status=422)
    assert (data["id"], data["verified"]) == (evidence_id, False)
    assert data["error"]["code"] == "invalid_evidence"
    assert "the answer does not verify" in data["error"]["message"]
    response = await fra.get(f"/evidence/{evidence_id}")
    assert response.status == 422
    html = await response.text()
    assert 'id="evidence-fault"' in html and "Do not rely on this evidence" in html
    assert "the answer does not verify" in html
    assert "gun show" not in html and f"/evidence/{evidence_id}/bundle" not in html
    download = await fra.get(f"/evidence/{evidence_id}/bundle")
    assert download.status == 422
    assert download.headers["Content-Type"].startswith("text/html")
    assert (await fra.json("/evidence.json"))["total"] == 1  # still listed


async def test_unknown_evidence_is_not_found(fra: Console) -> None:
    data = await fra.json("/evidence/999.json", status=404)
    assert data["error"]["code"] == "not_found"
    for path in ("/evidence/999", "/evidence/999/bundle"):
        response = await fra.get(path)
        assert response.status == 404, path
        assert "no evidence with id 999" in await response.text()
    assert (await fra.get("/evidence/abc")).status == 404


async def test_evidence_is_for_officers_and_auditors_only(fra: Console, anonymous: Console) -> None:
    evidence_id = await deu_hit(fra)
    for path in ("/evidence", f"/evidence/{evidence_id}", f"/evidence/{evidence_id}/bundle"):
        response = await anonymous.get(path)
        assert response.status == 302, path
        assert response.headers["Location"].startswith("/login?next=")
    for path in ("/evidence.json", f"/evidence/{evidence_id}.json"):
        assert (await anonymous.get(path)).status == 401, path
    await fra.add_user("analyst", Role.ANALYST)
    await fra.add_user("auditor", Role.AUDITOR)
    await fra.login_as("analyst", OFFICER_PASSWORD)
    assert 'href="/evidence"' not in await (await fra.get("/")).text()
    for path in ("/evidence.json", f"/evidence/{evidence_id}.json"):
        assert (await fra.json(path, status=403))["error"]["code"] == "forbidden"
    assert (await fra.get(f"/evidence/{evidence_id}/bundle")).status == 403
    await fra.login_as("auditor", OFFICER_PASSWORD)
    assert 'href="/evidence"' in await (await fra.get("/")).text()
    assert (await fra.json(f"/evidence/{evidence_id}.json"))["verified"] is True
    assert (await fra.get(f"/evidence/{evidence_id}/bundle")).status == 200


async def test_evidence_pages_escape_what_peers_and_officers_wrote(
    fed: Federation, fra: Console
) -> None:
    deu = fed["DEU"]
    await deu.n.records.create(
        RecordInput("XSS-1", "Glock", "pistol", "stolen", notes=SCRIPT, model="<i>x</i>"), "t"
    )
    await deu.n.lookup_index.refresh(deu.k.oprf)
    answers = await lookup(fra, "XSS-1", case="<b>CASE</b>")
    evidence_id = answers["DEU"]["evidence"]
    assert (await fra.json(f"/evidence/{evidence_id}.json"))["records"][0]["notes"] == SCRIPT
    for path in ("/evidence", f"/evidence/{evidence_id}"):
        html = await (await fra.get(path)).text()
        assert "<b>CASE</b>" not in html and "&lt;b&gt;CASE&lt;/b&gt;" in html, path
    html = await (await fra.get(f"/evidence/{evidence_id}")).text()
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<i>x</i>" not in html and "&lt;i&gt;x&lt;/i&gt;" in html
