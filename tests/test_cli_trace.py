"""The `trace` commands, run as a user runs them (a real process), against the harness's
nodes: FRA starts traces with the CLI, ITA and DEU answer (from custody or by an officer
with the CLI); what the CLI queued in a node's outbox the harness delivers (`settle`), as
the running node would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from node.cli import trace as cli_trace
from node.protocol.model import Service
from node.trace.export import ChainFile
from node.trace.model import StoredTrace, TraceStatus
from node.trace.receipts import Outcome
from node.trace.request import CrimeCategory, Priority
from tests.harness import Federation, run_cli
from tests.test_cli import HEAVY, _loaded, _modules_after
from tests.test_trace_hop import custody, event

NEW = [
    *("trace", "new", "--serial", "B-1", "--make", "Beretta", "--recovered-at", "Lyon"),
    *("--crime", "homicide", "--case-ref", "FR-1", "--agency", "Police"),
]


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA (originator); ITA made B-1 and exported it to DEU, which sold it to a person."""
    fed = Federation(tmp_path)
    for country in ("FRA", "ITA", "DEU"):
        await fed.add(country)
    await fed.peer_all(Service.LOOKUPS, Service.TRACES, Service.TRACE_DETAILS)
    await custody(
        fed,
        "ITA",
        tmp_path,
        event("manufactured", "2019-01-01", "Beretta SpA"),
        event("exported", "2019-02-01", "Waffen GmbH", "DEU"),
    )
    await custody(fed, "DEU", tmp_path, event("sold", "2020-05-05", "Max Muster"))
    yield fed
    await fed.close()


async def cli(fed: Federation, country: str, *args: str) -> tuple[int, str, str]:
    return await run_cli(*args, "--data-dir", str(fed[country].data_dir))


async def cli_json(fed: Federation, country: str, *args: str) -> Any:
    code, out, err = await cli(fed, country, *args, "--json")
    assert code == 0, err
    return json.loads(out)


async def test_an_incomplete_request_is_not_sent_unless_forced(fed: Federation) -> None:
    code, out, err = await cli(fed, "FRA", *NEW, "--json")
    assert code == 3, err
    refused = json.loads(out)
    assert refused["sent"] is False and refused["trace_id"] is None
    assert {f["field"] for f in refused["findings"]} == {"country_of_manufacture", "recovered_on"}
    assert await fed["FRA"].f.traces.list_traces(incoming=False) == []
    assert await fed["FRA"].n.delivery.deliver_due(fed["FRA"].f.client) == 0  # nothing queued
    code, out, err = await cli(fed, "FRA", *NEW)
    assert code == 3 and out == ""
    assert "incomplete: recovered_on: no recovery date" in err and "not sent" in err

    code, out, err = await cli(fed, "FRA", *NEW, "--to", "ITA", "--force", "date unknown")
    assert code == 0, err
    assert "incomplete: recovered_on" in out and "queued for ITA" in out
    await fed.settle()
    (listed,) = [
        json.loads(line)
        for line in (await cli(fed, "FRA", "trace", "list", "--json"))[1].splitlines()
    ]
    shown = await cli_json(fed, "FRA", "trace", "show", listed["trace_id"])
    assert shown["force_reason"] == "date unknown"
    assert shown["status"] == "answered"
    assert [h["country"] for h in shown["hops"]] == ["ITA", "DEU"]


async def test_a_forced_chain_shows_verifies_and_exports(fed: Federation, tmp_path: Path) -> None:
    started = await cli_json(
        fed, "FRA", *NEW, "--recovered-on", "2024-01-02", "--country-of-manufacture", "ITA"
    )
    assert started["sent"] is True and started["findings"] == [] and started["first_hop"] == "ITA"
    trace = started["trace_id"]
    await fed.settle()

    shown = await cli_json(fed, "FRA", "trace", "show", trace)
    assert shown["status"] == "answered" and shown["valid"] is True
    hops = [(h["country"], h["outcome"], h["next_country"]) for h in shown["hops"]]
    assert hops == [("ITA", "forwarded", "DEU"), ("DEU", "end_of_chain", None)]
    assert all(h["received_at"] and h["answered_at"] for h in shown["hops"])
    assert shown["hops"][1]["details"]["party"] == "Max Muster"
    verified = await cli_json(fed, "FRA", "trace", "verify", trace)
    assert verified["valid"] is True and verified["complete"] is True
    assert verified["problems"] == []
    code, out, _ = await cli(fed, "FRA", "trace", "show", trace)
    assert code == 0 and "hop 2: DEU" in out and "chain verifies" in out

    exported = tmp_path / "chain.trace"
    code, _, err = await cli(fed, "FRA", "trace", "export", trace, "--out", str(exported))
    assert code == 0, err
    code, out, err = await run_cli("trace", "verify-file", str(exported), "--json")
    assert code == 0, err
    checked = json.loads(out)
    assert checked["valid"] is True and checked["trace_id"] == trace
    assert set(checked["key_fingerprints"]) == {"FRA", "ITA", "DEU"}

    chain = msgspec.msgpack.decode(exported.read_bytes(), type=ChainFile)
    last = bytearray(chain.receipts[-1])
    last[-1] ^= 1  # the signature's last byte
    tampered = tmp_path / "tampered.trace"
    receipts = [*chain.receipts[:-1], bytes(last)]
    tampered.write_bytes(msgspec.msgpack.encode(msgspec.structs.replace(chain, receipts=receipts)))
    code, out, _ = await run_cli("trace", "verify-file", str(tampered), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert [(p["position"], p["country"]) for p in report["problems"]] == [(2, "DEU")]
    code, out, _ = await run_cli("trace", "verify-file", str(tampered))
    assert code == 1 and "hop 2 (DEU)" in out and "NOT VALID" in out


async def test_an_officer_answers_with_the_cli(fed: Federation) -> None:
    started = await cli_json(
        fed,
        "FRA",
        *NEW[:3],
        "Z-9",
        *NEW[4:],
        "--recovered-on",
        "2024-01-02",
        "--country-of-manufacture",
        "ITA",
    )
    trace = started["trace_id"]
    await fed.settle()
    code, out, _ = await cli(fed, "ITA", "trace", "list", "--incoming", "--json")
    (queued,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and queued["trace_id"] == trace and queued["status"] == "queued"
    assert queued["overdue"] is False
    code, out, err = await cli(
        fed, "ITA", "trace", "answer", trace, "--outcome", "not_found", "--details", "no entry"
    )
    assert code == 0, err
    await fed.settle()
    shown = await cli_json(fed, "FRA", "trace", "show", trace)
    assert shown["status"] == "answered"
    (hop,) = shown["hops"]
    assert hop["outcome"] == "not_found" and hop["details"] == {"reason": "no entry"}
    # Answered once: not waiting any more.
    code, _, err = await cli(fed, "ITA", "trace", "answer", trace, "--outcome", "refused")
    assert code == 1 and "not waiting" in err


async def test_an_officer_asks_and_the_originator_replies_with_the_cli(fed: Federation) -> None:
    started = await cli_json(
        fed,
        "FRA",
        *NEW[:3],
        "Z-9",
        *NEW[4:],
        "--recovered-on",
        "2024-01-02",
        "--country-of-manufacture",
        "ITA",
    )
    trace = started["trace_id"]
    await fed.settle()
    code, out, err = await cli(fed, "FRA", "trace", "reply", trace, "--text", "the marks")
    assert code == 2 and out == ""
    assert err == (
        f"iarms-node: trace {trace} is not waiting for information: its last hop, ITA "
        "(hop 1), has not answered yet\n"
    )
    question = "Is there an import marking?"
    code, _, err = await cli(
        fed,
        "ITA",
        "trace",
        "answer",
        trace,
        "--outcome",
        "needs_information",
        "--details",
        question,
    )
    assert code == 0, err
    await fed.settle()
    shown = await cli_json(fed, "FRA", "trace", "show", trace)
    assert shown["status"] == "waiting"
    assert shown["question"] == {"position": 1, "country": "ITA", "text": question}
    code, out, _ = await cli(fed, "FRA", "trace", "show", trace)
    assert f"ITA (hop 1) asks: {question}" in out and f"trace reply {trace} --text" in out
    code, out, err = await cli(fed, "FRA", "trace", "reply", trace, "--text", "a\x07b")
    assert code == 2 and "control character" in err

    code, out, err = await cli(fed, "FRA", "trace", "reply", trace, "--text", "IT-BS 2019")
    assert code == 0, err
    assert out == f"replied to ITA on trace {trace} (the running node delivers it)\n"
    await fed.settle()
    at_ita = await cli_json(fed, "ITA", "trace", "show", trace)
    assert at_ita["status"] == "queued" and at_ita["position"] == 1
    assert [r["text"] for r in at_ita["replies"]] == ["IT-BS 2019"]
    code, out, _ = await cli(fed, "ITA", "trace", "show", trace)
    assert "reply to hop 1" in out and "IT-BS 2019" in out and "we are hop 1" in out
    code, _, err = await cli(fed, "ITA", "trace", "answer", trace, "--outcome", "not_found")
    assert code == 0, err
    await fed.settle()
    verified = await cli_json(fed, "FRA", "trace", "verify", trace)
    assert verified["valid"] is True and verified["complete"] is True
    assert verified["hops"][0]["questions"] == [question]
    code, _, err = await cli(fed, "FRA", "trace", "reply", trace, "--text", "more")
    assert code == 2 and "has not_found" in err
    code, _, err = await cli(fed, "FRA", "trace", "reply", UNKNOWN, "--text", "x")
    assert code == 2 and err == f"iarms-node: trace {UNKNOWN} was not started here\n"


async def test_a_trace_from_one_of_our_records(fed: Federation, tmp_path: Path) -> None:
    records = tmp_path / "records.csv"
    records.write_text(
        "serial_number,make,firearm_type,status,country_of_manufacture,event_place,"
        "reporting_agency,case_reference,recovered_on\n"
        "B-1,Beretta,pistol,recovered,ITA,Lyon,Police,FR-7,2024-01-02\n",
        encoding="utf-8",
    )
    code, _, err = await cli(fed, "FRA", "records", "import", str(records), "--no-progress")
    assert code == 0, err
    (record,) = (await cli_json(fed, "FRA", "records", "search", "--serial", "B-1"),)
    started = await cli_json(
        fed, "FRA", "trace", "new", "--from-record", str(record["id"]), "--crime", "robbery"
    )
    assert started["sent"] is True and started["findings"] == [] and started["first_hop"] == "ITA"
    await fed.settle()
    shown = await cli_json(fed, "FRA", "trace", "show", started["trace_id"])
    assert [h["country"] for h in shown["hops"]] == ["ITA", "DEU"]
    code, _, err = await cli(fed, "FRA", "trace", "new", "--from-record", "99", "--crime", "other")
    assert code == 2 and "99" in err and len(err.splitlines()) == 1
    code, _, err = await cli(fed, "FRA", "trace", "new", "--from-record", str(record["id"]))
    assert code == 2 and "--crime is required" in err


def test_a_hop_s_trace_is_overdue_while_it_waits_past_its_deadline() -> None:
    now = datetime(2025, 1, 10, tzinfo=UTC)
    queued = StoredTrace(
        *(1, b"t" * 16, 1, "FRA", "FRA", "routine", TraceStatus.QUEUED, b"", now),
        deadline_at=now - timedelta(seconds=1),
        outcome=None,
        next_country=None,
        note="",
        force_reason="",
    )
    assert queued.overdue(now)
    assert not replace(queued, deadline_at=now).overdue(now)
    assert not replace(queued, status=TraceStatus.ANSWERED).overdue(now)
    assert not replace(queued, deadline_at=None).overdue(now)


UNKNOWN = "00" * 16


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trace", "show", UNKNOWN], "is not known here"),
        (["trace", "verify", UNKNOWN], "was not started here"),
        (["trace", "export", UNKNOWN, "--out", "x"], "was not started here"),
        (["trace", "answer", UNKNOWN, "--outcome", "refused"], "is not at this hop"),
        (["trace", "show", "xyz"], "expected a trace id of 32 hex digits"),
        (["trace", "answer", UNKNOWN, "--outcome", "lost"], "invalid choice: 'lost'"),
        (["trace", "reply", UNKNOWN], "the following arguments are required: --text"),
        (
            ["trace", "answer", UNKNOWN, "--outcome", "forwarded", "--next-country", "XX1"],
            "not an ISO 3166-1 alpha-3 country code",
        ),
        (["trace", "answer", UNKNOWN, "--outcome", "forwarded"], "--next-country is given"),
        ([*NEW, "--to", "Narnia"], "not an ISO 3166-1 alpha-3 country code"),
        (
            NEW[:4],
            "required without --from-record or --from-evidence: --make, --recovered-at, --crime, "
            "--case-ref, --agency",
        ),
    ],
)
async def test_bad_input_is_one_line_and_exit_2(
    fed: Federation, args: list[str], message: str
) -> None:
    code, out, err = await cli(fed, "FRA", *args)
    assert code == 2, (out, err)
    assert message in err
    assert out == ""
    if "usage:" not in err:
        assert len(err.splitlines()) == 1


async def test_a_bad_chain_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "not.trace"
    path.write_bytes(b"not msgpack at all")
    code, out, err = await run_cli("trace", "verify-file", str(path))
    assert code == 1 and out == ""
    assert err.startswith("iarms-node: trace file: not a trace chain file")
    assert len(err.splitlines()) == 1


def test_verify_file_opens_no_node(tmp_path: Path) -> None:
    path = tmp_path / "empty.trace"
    path.write_bytes(b"")
    modules = _modules_after("trace", "verify-file", str(path))
    assert "node.trace.export" in modules  # it read the file
    assert _loaded(modules, (*HEAVY, "node.app", "node.store", "sqlalchemy")) == set()


def test_the_cli_choices_are_the_services() -> None:
    assert tuple(o.value for o in Outcome) == cli_trace.OUTCOMES
    assert tuple(c.value for c in CrimeCategory) == cli_trace.CRIMES
    assert tuple(p.value for p in Priority) == cli_trace.PRIORITIES
    assert tuple(s.value for s in TraceStatus) == cli_trace.STATUSES
