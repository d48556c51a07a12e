"""The console's trace pages against real nodes (the harness, in memory): FRA's officers
start traces from the form, ITA's answer those its custody registry cannot, and every page
is checked through its `.json` twin and its HTML.

ITA made B-1 and exported it to DEU, which sold it to a person: a trace of B-1 is answered
automatically by both; a trace of any other serial waits in ITA's incoming queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from node.accounts.model import Role
from node.lookup.querier import Query
from node.protocol.model import Service
from node.records.model import RecordInput
from node.trace.export import verify_file
from node.trace.model import TraceStatus
from tests.console_helpers import OFFICER_PASSWORD, Console, add_record, console_for
from tests.harness import ADMIN_PASSWORD, Federation
from tests.test_trace_hop import custody, event

SCRIPT = "<script>alert(1)</script>"
#: A complete request for B-1 (made in ITA): nothing for the check to find.
COMPLETE = {
    "priority": "routine",
    "case_reference": "FR-2026-7",
    "agency": "OCRGDF",
    "serial_number": "B-1",
    "make": "Beretta",
    "model": "92FS",
    "firearm_type": "pistol",
    "calibre": "9mm",
    "country_of_manufacture": "ITA",
    "recovered_on": "2024-01-02",
    "recovered_at": "Lyon",
    "crime": "homicide",
}
#: What the check finds missing when the country and the date are left out.
INCOMPLETE = COMPLETE | {"country_of_manufacture": "", "recovered_on": "", "to": "ITA"}


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA, ITA and DEU, peers allowing traces, with B-1's custody at ITA and DEU."""
    federation = Federation(tmp_path)
    for country in ("FRA", "ITA", "DEU"):
        await federation.add(country)
    await federation.peer_all(Service.LOOKUPS, Service.TRACES, Service.TRACE_DETAILS)
    await custody(
        federation,
        "ITA",
        tmp_path,
        event("manufactured", "2019-01-01", "Beretta SpA"),
        event("exported", "2019-02-01", "Waffen GmbH", "DEU"),
    )
    await custody(federation, "DEU", tmp_path, event("sold", "2020-05-05", "Max Muster"))
    yield federation
    await federation.close()


@pytest.fixture
async def ita(fed: Federation) -> AsyncIterator[Console]:
    """ITA's console with its federation services, logged in as its admin."""
    async with console_for(fed["ITA"].n, fed=fed["ITA"].f) as console:
        await console.login_as("admin", ADMIN_PASSWORD)
        yield console


def form(values: dict[str, str], action: str = "send", **extra: str) -> dict[str, str]:
    """The new-trace form as posted (both default questions ticked)."""
    return values | {"action": action} | extra


async def send(console: Console, values: dict[str, str], **extra: str) -> str:
    """Send a trace through `/traces/new.json`; its id."""
    response = await console.post("/traces/new.json", form(values, **extra))
    assert response.status == 201, await response.text()
    data = await response.json()
    assert data["sent"] is True
    return str(data["trace_id"])


async def queued_at_ita(fed: Federation, fra: Console, serial: str = "Z-9", **extra: str) -> str:
    """A trace ITA's registry cannot answer, delivered: it waits in ITA's queue."""
    trace = await send(fra, COMPLETE | {"serial_number": serial} | extra)
    await fed.settle()
    return trace


async def answer(console: Console, trace: str, **values: str) -> Any:
    return await console.post(f"/traces/{trace}/answer", values)


# -- the new-trace form ------------------------------------------------------------------


async def test_check_shows_the_findings_beside_the_fields_and_sends_nothing(
    fed: Federation, fra: Console
) -> None:
    response = await fra.post("/traces/new", form(INCOMPLETE, "check"))
    assert response.status == 200
    html = await response.text()
    assert 'id="check-result"' in html and "The request is incomplete" in html
    for field in ("country_of_manufacture", "recovered_on"):
        assert f'aria-describedby="n-{field}"' in html, field
        assert f'<p class="finding" id="n-{field}">' in html, field
    assert 'id="n-serial_number"' not in html and 'id="n-make"' not in html
    assert 'value="OCRGDF"' in html and 'value="FR-2026-7"' in html  # the input kept
    assert 'id="f-force_reason"' in html  # offered once something is missing
    assert "It will be sent first to <strong>ITA</strong>" in html
    response = await fra.post("/traces/new.json", form(INCOMPLETE, "check"))
    data = await response.json()
    assert (response.status, data["sent"], data["trace_id"]) == (200, False, None)
    assert [f["field"] for f in data["findings"]] == ["country_of_manufacture", "recovered_on"]
    assert data["first_hop"] == "ITA"
    complete = await (await fra.post("/traces/new.json", form(COMPLETE, "check"))).json()
    assert (complete["findings"], complete["first_hop"]) == ([], "ITA")
    assert await fed["FRA"].f.traces.list_traces(incoming=False) == []


async def test_an_incomplete_request_is_sent_only_with_a_reason(
    fed: Federation, fra: Console
) -> None:
    response = await fra.post("/traces/new", form(INCOMPLETE))
    assert response.status == 400
    html = await response.text()
    assert 'id="e-force_reason"' in html and "not sent: the request is incomplete" in html
    assert 'id="n-recovered_on"' in html and 'value="OCRGDF"' in html
    refused = await fra.post("/traces/new.json", form(INCOMPLETE))
    data = await refused.json()
    assert (refused.status, data["sent"], data["error"]["code"]) == (
        400,
        False,
        "incomplete_trace",
    )
    assert data["error"]["field"] == "force_reason" and len(data["findings"]) == 2
    assert await fed["FRA"].f.traces.list_traces(incoming=False) == []

    response = await fra.post("/traces/new", form(INCOMPLETE, force_reason="date unknown"))
    assert response.status == 303
    location = response.headers["Location"]
    trace = location.removeprefix("/traces/").removesuffix("?sent=1")
    assert location == f"/traces/{trace}?sent=1"
    assert 'id="trace-sent"' in await (await fra.get(location)).text()
    await fed.settle()
    shown = await fra.json(f"/traces/{trace}.json")
    assert (shown["status"], shown["force_reason"], shown["valid"]) == (
        "answered",
        "date unknown",
        True,
    )
    assert [(h["country"], h["outcome"]) for h in shown["hops"]] == [
        ("ITA", "forwarded"),
        ("DEU", "end_of_chain"),
    ]
    (entry,) = await fed["FRA"].n.audit.recent(action="trace.new")
    assert entry.actor == "admin" and entry.details["forced"] == "date unknown"


async def test_bad_input_is_shown_beside_its_field_with_the_input_kept(fra: Console) -> None:
    cases = {
        "country_of_manufacture": COMPLETE | {"country_of_manufacture": "Atlantis"},
        "justification": COMPLETE | {"priority": "urgent"},
        "crime": COMPLETE | {"crime": ""},
        "recovered_on": COMPLETE | {"recovered_on": "2999-01-01"},
        "serial_number": COMPLETE | {"serial_number": ""},
        "case_reference": COMPLETE | {"case_reference": ""},
        "priority": COMPLETE | {"priority": "whenever"},
        "to": COMPLETE | {"to": "USA"},  # not a peer of FRA
        "force_reason": COMPLETE | {"force_reason": "x" * 1001},
    }
    for field, values in cases.items():
        response = await fra.post("/traces/new", form(values | {"agency": "Agency <b>X</b>"}))
        assert response.status == 400, field
        html = await response.text()
        assert f'<p class="field-error" id="e-{field}">' in html, field
        assert "Agency &lt;b&gt;X&lt;/b&gt;" in html and "<b>X</b>" not in html, field
        data = await fra.json_post("/traces/new.json", form(values), 400)
        assert data["error"]["field"] == field, (field, data)
    nul = await fra.post("/traces/new", form(COMPLETE | {"model": "9\x002"}))
    assert nul.status == 400 and 'id="e-model"' in await nul.text()
    obliterated = COMPLETE | {"serial_number": "", "obliterated": "1", "markings": "PB proof"}
    data = await fra.json_post("/traces/new.json", form(obliterated, "check"), 200)
    assert data["findings"] == []


async def test_the_form_is_filled_from_one_of_our_records(fra: Console) -> None:
    record = await add_record(
        fra.node,
        "B-1",
        make="Beretta",
        country_of_manufacture="ITA",
        event_place="Lyon",
        reporting_agency="Police",
        case_reference="FR-7",
    )
    data = await fra.json(f"/traces/new.json?from_record={record.id}")
    values = data["values"]
    assert (values["serial_number"], values["make"], values["country_of_manufacture"]) == (
        "B-1",
        "Beretta",
        "ITA",
    )
    assert (values["recovered_at"], values["agency"], values["case_reference"]) == (
        "Lyon",
        "Police",
        "FR-7",
    )
    assert data["questions"] == ["last_legal_possessor", "point_of_diversion"]
    html = await (await fra.get(f"/traces/new?from_record={record.id}")).text()
    assert 'id="f-serial_number" name="serial_number" type="text" value="B-1"' in html
    assert (await fra.json("/traces/new.json?from_record=999", 404))["error"]["code"] == (
        "not_found"
    )
    bad = await fra.json("/traces/new.json?from_record=abc", 400)
    assert bad["error"]["field"] == "from_record"


async def test_the_form_is_filled_from_the_evidence_of_a_hit(fed: Federation, fra: Console) -> None:
    ita = fed["ITA"]
    await ita.n.records.create(RecordInput("GLK-5", "Glock", "pistol", "stolen"), "t")
    await ita.n.lookup_index.refresh(ita.k.oprf)
    results = await fed["FRA"].f.lookups.lookup([Query("glk 5", "glock")], "FR-11", "admin")
    (evidence,) = [r.evidence_id for r in results if r.result == "hit"]
    html = await (await fra.get(f"/evidence/{evidence}")).text()
    assert f'href="/traces/new?from_evidence={evidence}"' in html
    values = (await fra.json(f"/traces/new.json?from_evidence={evidence}"))["values"]
    assert (values["serial_number"], values["case_reference"], values["make"]) == (
        "glk 5",
        "FR-11",
        "glock",
    )
    assert values["recovered_at"] == "" and values["crime"] == ""  # ours to say
    missing = await fra.json("/traces/new.json?from_evidence=999", 404)
    assert missing["error"]["code"] == "not_found"


# -- the list, a trace's page and its export -------------------------------------------


async def test_a_sent_trace_is_listed_and_its_timeline_verifies(
    fed: Federation, fra: Console
) -> None:
    trace = await send(fra, COMPLETE | {"justification": "two\r\nlines"})  # as browsers send
    listed = await fra.json("/traces.json")
    assert (listed["direction"], listed["total"]) == ("outgoing", 1)
    (row,) = listed["traces"]
    assert (row["trace_id"], row["status"], row["next_country"], row["overdue"]) == (
        trace,
        "open",
        "ITA",
        False,
    )
    html = await (await fra.get("/traces")).text()
    assert f'<a href="/traces/{trace}">' in html
    await fed.settle()
    shown = await fra.json(f"/traces/{trace}.json")
    assert (shown["status"], shown["valid"], shown["complete"]) == ("answered", True, True)
    assert shown["direction"] == "outgoing" and shown["problems"] == []
    assert shown["request"]["serial_number"] == "B-1" and shown["request"]["crime"] == "homicide"
    assert shown["request"]["justification"] == "two\nlines"
    assert [h["verified"] for h in shown["hops"]] == [True, True]
    assert shown["hops"][1]["details"]["party"] == "Max Muster"
    assert shown["export"] == f"/traces/{trace}/export"
    html = await (await fra.get(f"/traces/{trace}")).text()
    assert 'id="chain-verified"' in html and 'id="hop-1" data-country="ITA"' in html
    assert 'id="hop-2" data-country="DEU"' in html and "Max Muster" in html
    assert html.count('<span class="verified">verified</span>') == 2
    assert (await fra.json("/traces.json?status=answered"))["total"] == 1
    assert (await fra.json("/traces.json?status=open"))["total"] == 0

    download = await fra.get(f"/traces/{trace}/export")
    assert download.status == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="iarms-trace-{trace}.trace"'
    )
    data = await download.read()
    assert data == await fed["FRA"].f.traces.export(bytes.fromhex(trace))
    checked = verify_file(data)
    assert checked.report.valid and checked.report.complete


async def test_unknown_traces_are_not_found(fra: Console) -> None:
    missing = "ab" * 16
    data = await fra.json(f"/traces/{missing}.json", 404)
    assert data["error"]["code"] == "not_found" and missing in data["error"]["message"]
    assert (await fra.get(f"/traces/{missing}/export")).status == 404
    assert (await fra.get("/traces/not-an-id")).status == 404
    bad = await fra.json("/traces.json?status=lost", 400)
    assert bad["error"]["field"] == "status"
    page = await fra.get("/traces?priority=soon")
    assert page.status == 400 and 'id="e-priority"' in await page.text()


async def test_overdue_traces_come_first_with_how_late(fed: Federation, fra: Console) -> None:
    urgent = await queued_at_ita(
        fed, fra, "Z-1", priority="urgent", justification="a series of shootings"
    )
    routine = await queued_at_ita(fed, fra, "Z-2")
    async with console_for(fed["ITA"].n, fed=fed["ITA"].f) as ita:
        await ita.login_as("admin", ADMIN_PASSWORD)
        listed = await ita.json("/traces.json?direction=incoming")
        assert [r["trace_id"] for r in listed["traces"]] == [routine, urgent]  # newest first
        fed.clock.advance(26 * 3600)
        await ita.login_as("admin", ADMIN_PASSWORD)  # the session ended meanwhile
        listed = await ita.json("/traces.json?direction=incoming")
        assert [r["trace_id"] for r in listed["traces"]] == [urgent, routine]
        first = listed["traces"][0]
        assert first["overdue"] is True and 2 * 3600 <= first["late_seconds"] < 3 * 3600
        assert listed["traces"][1]["overdue"] is False
        overdue = await ita.json("/traces.json?direction=incoming&overdue=1")
        assert [r["trace_id"] for r in overdue["traces"]] == [urgent]
        by_priority = await ita.json("/traces.json?direction=incoming&priority=routine")
        assert [r["trace_id"] for r in by_priority["traces"]] == [routine]
        html = await (await ita.get("/traces?direction=incoming")).text()
        assert html.index(urgent) < html.index(routine)
        assert '<span class="overdue">2 h ' in html
        queue = await (await ita.get("/traces/incoming")).text()
        assert queue.index(urgent) < queue.index(routine) and "h " in queue
        page = await ita.json(f"/traces/{urgent}.json")
        assert page["overdue"] is True and page["direction"] == "incoming"
    # And at the originator, the same trace (its hop, ITA) is as late (PROTOCOL.md §3.8).
    await fra.login_as("admin", ADMIN_PASSWORD)
    outgoing = await fra.json("/traces.json?overdue=1")
    assert [r["trace_id"] for r in outgoing["traces"]] == [urgent]
    assert 2 * 3600 <= outgoing["traces"][0]["late_seconds"] < 3 * 3600
    page = await fra.json(f"/traces/{urgent}.json")
    assert page["overdue"] is True and page["hops"][0]["overdue"] is True


# -- the incoming queue ------------------------------------------------------------------


async def test_an_officer_answers_a_queued_trace(
    fed: Federation, fra: Console, ita: Console
) -> None:
    trace = await queued_at_ita(fed, fra)
    queue = await ita.json("/traces/incoming.json")
    (item,) = queue["traces"]
    assert (item["trace_id"], item["status"], item["from"]) == (trace, "queued", "FRA")
    assert item["request"]["serial_number"] == "Z-9"
    html = await (await ita.get("/traces/incoming")).text()
    assert f'action="/traces/{trace}/answer"' in html and f'id="queued-{trace}"' in html
    page = await ita.json(f"/traces/{trace}.json")
    assert (page["direction"], page["position"], page["valid"]) == ("incoming", 1, True)
    assert [(h["country"], h["outcome"]) for h in page["hops"]] == [("ITA", None)]
    assert page["export"] is None

    response = await answer(ita, trace, outcome="not_found", details="no such serial\r\nat all")
    assert response.status == 303
    assert response.headers["Location"] == f"/traces/incoming?answered={trace}"
    assert (await ita.json("/traces/incoming.json"))["traces"] == []
    (entry,) = await fed["ITA"].n.audit.recent(action="trace.answer")
    assert entry.actor == "admin" and entry.details["outcome"] == "not_found"
    await fed.settle()
    shown = await fra.json(f"/traces/{trace}.json")
    assert shown["status"] == "answered"
    assert [(h["outcome"], h["details"]) for h in shown["hops"]] == [
        ("not_found", {"reason": "no such serial\nat all"})
    ]
    again = await answer(ita, trace, outcome="refused")
    assert again.status == 400
    assert "not waiting for an answer" in await again.text()


async def test_a_bad_answer_is_shown_beside_its_field(
    fed: Federation, fra: Console, ita: Console
) -> None:
    trace = await queued_at_ita(fed, fra)
    cases = {
        "next_country": {"outcome": "forwarded", "details": "exported"},
        "outcome": {"outcome": "lost"},
        "details": {"outcome": "refused", "details": "x" * 401},
        "details ": {"outcome": "refused", "details": "a\x07bell"},
    }
    bad_country = {"outcome": "forwarded", "next_country": "XX"}
    for key, values in [*cases.items(), ("next_country", bad_country)]:
        field = key.strip()
        response = await answer(ita, trace, **values)
        assert response.status == 400, field
        html = await response.text()
        assert f'id="a-{trace}-e-{field}"' in html, field
        if "details" in values:
            assert values["details"] in html  # the input kept
        data = await ita.json_post(f"/traces/{trace}/answer.json", values, 400)
        assert data["error"]["field"] == field
    clash = await answer(ita, trace, outcome="not_found", next_country="DEU")
    assert clash.status == 400 and f'id="a-{trace}-e-next_country"' in await clash.text()
    assert (await ita.json("/traces/incoming.json"))["traces"][0]["status"] == "queued"
    missing = await answer(ita, "cd" * 16, outcome="not_found")
    assert missing.status == 404


async def test_the_answer_json_twin_forwards(fed: Federation, fra: Console, ita: Console) -> None:
    trace = await queued_at_ita(fed, fra)
    data = await ita.json_post(
        f"/traces/{trace}/answer.json",
        {"outcome": "forwarded", "next_country": "deu", "details": "exported 2019"},
        200,
    )
    assert data == {"trace_id": trace, "outcome": "forwarded", "status": "answered"}
    await fed.settle()
    shown = await fra.json(f"/traces/{trace}.json")
    assert [(h["country"], h["outcome"]) for h in shown["hops"]] == [
        ("ITA", "forwarded"),
        ("DEU", None),  # DEU's registry has no Z-9: queued there
    ]


async def test_the_originator_replies_to_a_hop_s_question(
    fed: Federation, fra: Console, ita: Console
) -> None:
    trace = await queued_at_ita(fed, fra)
    asked = await answer(
        ita, trace, outcome="needs_information", details="Which <b>proof</b> mark?"
    )
    assert asked.status == 303
    await fed.settle()
    shown = await fra.json(f"/traces/{trace}.json")
    assert shown["question"] == {
        "position": 1,
        "country": "ITA",
        "text": "Which <b>proof</b> mark?",
    }
    html = await (await fra.get(f"/traces/{trace}")).text()
    assert 'id="question"' in html and f'action="/traces/{trace}/reply"' in html
    assert "Which &lt;b&gt;proof&lt;/b&gt; mark?" in html and "<b>proof</b>" not in html
    empty = await fra.post(f"/traces/{trace}/reply", {"text": "  "})
    assert empty.status == 400 and 'id="r-e-text"' in await empty.text()
    assert (await fra.json_post(f"/traces/{trace}/reply.json", {"text": ""}, 400))["error"][
        "field"
    ] == "text"
    assert (await fra.post(f"/traces/{trace}/reply", {"text": "x"}, csrf="")).status == 403
    replied = await fra.post(f"/traces/{trace}/reply", {"text": "Eagle over N,\r\nleft side"})
    assert replied.status == 303
    assert replied.headers["Location"] == f"/traces/{trace}?replied=1"
    (entry,) = await fed["FRA"].n.audit.recent(action="trace.reply")
    assert entry.actor == "admin"
    again = await fra.post(f"/traces/{trace}/reply", {"text": "more"})
    assert again.status == 400 and 'id="reply-error"' in await again.text()
    await fed.settle()
    (queued,) = (await ita.json("/traces/incoming.json"))["traces"]
    assert queued["trace_id"] == trace
    at_ita = await ita.json(f"/traces/{trace}.json")
    assert [r["text"] for r in at_ita["replies"]] == ["Eagle over N, left side"]
    assert "Eagle over N, left side" in await (await ita.get(f"/traces/{trace}")).text()


async def test_hostile_text_from_a_peer_is_shown_as_text(
    fed: Federation, fra: Console, ita: Console
) -> None:
    trace = await queued_at_ita(fed, fra, agency="<i>agency</i>")
    queue = await (await ita.get("/traces/incoming")).text()
    assert "<i>agency</i>" not in queue and "&lt;i&gt;agency&lt;/i&gt;" in queue
    await answer(ita, trace, outcome="refused", details=SCRIPT)
    await fed.settle()
    shown = await fra.json(f"/traces/{trace}.json")
    assert shown["hops"][0]["details"] == {"reason": SCRIPT}
    for path in (f"/traces/{trace}", "/traces"):
        html = await (await fra.get(path)).text()
        assert SCRIPT not in html and "<script" not in html, path
    html = await (await fra.get(f"/traces/{trace}")).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# -- security and roles ------------------------------------------------------------------


async def test_posts_without_the_csrf_token_are_refused(
    fed: Federation, fra: Console, ita: Console
) -> None:
    response = await fra.post("/traces/new", form(COMPLETE), csrf="")
    assert response.status == 403
    response = await fra.post("/traces/new.json", form(COMPLETE), csrf="wrong")
    assert (await response.json())["error"]["code"] == "csrf"
    assert await fed["FRA"].f.traces.list_traces(incoming=False) == []
    trace = await queued_at_ita(fed, fra)
    response = await ita.post(f"/traces/{trace}/answer", {"outcome": "not_found"}, csrf="")
    assert response.status == 403
    assert (await ita.json("/traces/incoming.json"))["traces"][0]["status"] == "queued"


async def test_officers_start_and_answer_auditors_read(
    fed: Federation, fra: Console, ita: Console
) -> None:
    trace = await queued_at_ita(fed, fra)
    await ita.add_user("auditor", Role.AUDITOR)
    await ita.add_user("analyst", Role.ANALYST)
    await ita.add_user("officer", Role.OFFICER)
    await ita.login_as("analyst", OFFICER_PASSWORD)
    assert 'href="/traces"' not in await (await ita.get("/")).text()
    for path in ("/traces.json", f"/traces/{trace}.json", "/traces/incoming.json"):
        assert (await ita.json(path, 403))["error"]["code"] == "forbidden", path
    await ita.login_as("auditor", OFFICER_PASSWORD)
    assert 'href="/traces"' in await (await ita.get("/")).text()
    assert (await ita.json("/traces.json?direction=incoming"))["total"] == 1
    page = await (await ita.get(f"/traces/{trace}")).text()
    assert 'id="timeline"' in page and "answer-form" not in page
    for path in ("/traces/new.json", "/traces/incoming.json"):
        assert (await ita.json(path, 403))["error"]["code"] == "forbidden", path
    refused = await answer(ita, trace, outcome="not_found")
    assert refused.status == 403
    await ita.login_as("officer", OFFICER_PASSWORD)
    assert "answer-form" in await (await ita.get(f"/traces/{trace}")).text()
    assert (await answer(ita, trace, outcome="not_found")).status == 303
    (entry,) = await fed["ITA"].n.audit.recent(action="trace.answer")
    assert entry.actor == "officer"
    assert (await ita.json(f"/traces/{trace}.json"))["status"] == TraceStatus.ANSWERED.value


async def test_visitors_are_sent_to_log_in(fed: Federation) -> None:
    async with console_for(fed["FRA"].n, fed=fed["FRA"].f) as anonymous:
        for path in ("/traces", "/traces/new", "/traces/incoming", f"/traces/{'ab' * 16}"):
            response = await anonymous.get(path)
            assert response.status == 302, path
            assert response.headers["Location"].startswith("/login?next=")
        assert (await anonymous.get("/traces.json")).status == 401


async def test_without_the_signing_key_traces_are_explained(fed: Federation) -> None:
    async with console_for(fed["FRA"].n) as console:
        await console.login_as("admin", ADMIN_PASSWORD)
        html = await (await console.get("/traces/new")).text()
        assert 'id="traces-unavailable"' in html and "iarms-node run" in html
        data = await console.json("/traces.json", 503)
        assert data["error"]["code"] == "no_signing_key"
