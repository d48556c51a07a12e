"""Text from peers and from the database reaches the officer's terminal escaped.

A hostile DEU answers lookups with record fields carrying terminal escape
sequences, carriage returns, the 8-bit CSI and a bidirectional override; a
hostile FRA sends DEU a case reference carrying the same. Each node's
`iarms-node` prints them as visible escapes, over real loopback HTTP.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.lookup import oprf
from node.protocol.model import Service
from node.records.model import RecordInput
from node.records.serials import canonicalise_serial
from node.terminal import json_line, shown
from tests.conftest import wants_http
from tests.harness import Federation, run_cli

#: Clears the screen, returns the cursor, starts an 8-bit CSI, reverses the text after it.
HOSTILE = "\x1b[2J\rDEU no hit\x9b31m\u202eRTS"
HOSTILE_SHOWN = "\\x1b[2J\\rDEU no hit\\x9b31m\\u202eRTS"
BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
RAW = ("\x1b", "\r", "\x9b", "\u202e", "\x00", "\x7f", "\u2028")


def assert_harmless(output: str) -> None:
    """No raw control character in `output` but the line ends."""
    for line in output.splitlines():
        assert not any(raw in line for raw in RAW), repr(line)


@pytest.fixture
async def fed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA and DEU, peers with hit details; DEU's record of GLK-12345 carries HOSTILE."""
    federation = Federation(tmp_path, http=wants_http(request))
    for country in ("FRA", "DEU"):
        await federation.add(country)
    await federation.peer_all(Service.LOOKUPS, Service.HIT_DETAILS)
    deu = federation["DEU"]
    record = await deu.n.records.create(RecordInput("GLK-12345", "Glock", "pistol", "stolen"), "t")
    # The records service refuses control characters; a hostile node stores them anyway.
    with sqlite3.connect(deu.data_dir / "node.db") as db:
        db.execute(
            "UPDATE records SET model = ?, notes = ?, event_place = ? WHERE id = ?",
            (HOSTILE, HOSTILE + "\x7f", "\u2028" + HOSTILE, record.id),
        )
    await deu.n.lookup_index.refresh(deu.k.oprf)
    yield federation
    await federation.close()


@pytest.mark.http
async def test_a_hostile_owners_record_fields_are_printed_escaped(fed: Federation) -> None:
    fra = str(fed["FRA"].data_dir)
    code, out, err = await run_cli(
        "lookup", "--serial", "GLK-12345", "--case-ref", "FR-1", "--data-dir", fra
    )
    assert code == 0, err
    assert_harmless(out)
    assert f"model={HOSTILE_SHOWN}" in out
    assert f"notes={HOSTILE_SHOWN}\\x7f" in out
    assert f"event_place=\\u2028{HOSTILE_SHOWN}" in out
    assert out.count("\n") == 1  # one line per peer and serial, whatever the fields hold

    code, out, err = await run_cli("evidence", "show", "1", "--data-dir", fra)
    assert code == 0, err
    assert_harmless(out)
    assert f"model={HOSTILE_SHOWN}" in out
    for command in (
        ["evidence", "show", "1"],
        ["lookup", "--serial", "GLK-12345", "--case-ref", "FR-1"],
    ):
        code, out, err = await run_cli(*command, "--json", "--data-dir", fra)
        assert code == 0, err
        assert_harmless(out)
        records = json.loads(out.splitlines()[0])["records"]
        assert records[0]["model"] == HOSTILE  # the JSON escapes decode to the same text
        assert records[0]["notes"] == HOSTILE + "\x7f"


@pytest.mark.http
async def test_a_hostile_owners_nul_is_refused_and_printed_escaped(fed: Federation) -> None:
    """No string of a body may hold NUL (PROTOCOL.md): an owner whose answer holds one
    has answered with invalid data; the refusal is printed harmlessly, nothing is kept."""
    deu = fed["DEU"]
    with sqlite3.connect(deu.data_dir / "node.db") as db:
        db.execute("UPDATE records SET notes = ?", (HOSTILE + "\x00",))
    fra = str(fed["FRA"].data_dir)
    code, out, err = await run_cli(
        "lookup", "--serial", "GLK-12345", "--case-ref", "FR-1", "--data-dir", fra
    )
    assert code == 0, err
    assert_harmless(out)
    assert "refused: DEU answered with invalid data" in out and "NUL" in out
    assert (await fed["FRA"].n.evidence.list())[1] == 0


async def test_a_hostile_queriers_case_reference_is_printed_escaped(fed: Federation) -> None:
    """Our CLI refuses such a case reference (quoting it escaped); a hostile FRA sends its
    confirmation anyway, and DEU's officer sees the case reference escaped."""
    fra, deu = str(fed["FRA"].data_dir), str(fed["DEU"].data_dir)
    code, out, err = await run_cli(
        "lookup", "--serial", "GLK-12345", "--case-ref", HOSTILE, "--data-dir", fra
    )
    assert code == 1 and "control character" in err
    assert_harmless(out + err)
    peer = await fed["FRA"].n.peers.get("DEU")
    serial = oprf.serial_input(canonicalise_serial("GLK-12345"))
    output = oprf.evaluate_direct(fed["DEU"].k.oprf, serial, oprf.MODE_VOPRF)
    body = {"lookup_id": bytes(16), "output": output, "make": "", "case_reference": HOSTILE}
    await fed["FRA"].f.client.request(peer, "lookup.confirm", body)
    code, out, err = await run_cli("hits", "--data-dir", deu)
    assert code == 0, err
    assert_harmless(out)
    assert f"case {HOSTILE_SHOWN}" in out
    code, out, err = await run_cli("hits", "--json", "--data-dir", deu)
    assert_harmless(out)
    assert json.loads(out)["case_reference"] == HOSTILE
    code, out, err = await run_cli("audit", "show", "--limit", "50", "--data-dir", deu)
    assert code == 0, err
    assert_harmless(out)
    code, out, err = await run_cli("audit", "show", "--limit", "50", "--json", "--data-dir", deu)
    assert_harmless(out)
    confirmed = [e for e in map(json.loads, out.splitlines()) if e["action"] == "lookup.confirm"]
    assert confirmed[0]["details"]["case_reference"] == HOSTILE


async def test_a_peers_failure_reason_is_printed_escaped(fed: Federation) -> None:
    fra = fed["FRA"]
    # The reason a peer was unreachable quotes what it answered.
    with sqlite3.connect(fra.data_dir / "node.db") as db:
        db.execute(
            "UPDATE peers SET last_error = ?, last_error_at = '2030-01-01 00:00:00.000000'"
            " WHERE country = 'DEU'",
            (HOSTILE,),
        )
    for command in (["peers", "list"], ["peers", "show", "DEU"]):
        code, out, err = await run_cli(*command, "--data-dir", str(fra.data_dir))
        assert code == 0, err
        assert_harmless(out)
        assert f"unreachable since 2030-01-01 00:00 UTC: {HOSTILE_SHOWN}" in out
        code, out, err = await run_cli(*command, "--json", "--data-dir", str(fra.data_dir))
        assert_harmless(out)
        assert json.loads(out)["last_error"] == HOSTILE


def test_each_unsafe_character_has_a_visible_escape() -> None:
    assert shown("a\x00b\x1b[2J\r\n\t\x7f\x85\x9b") == "a\\x00b\\x1b[2J\\r\\n\\t\\x7f\\x85\\x9b"
    assert shown("\u061c\u200e\u200f\u202a\u202e\u2066\u2069\u2028\u2029") == (
        "\\u061c\\u200e\\u200f\\u202a\\u202e\\u2066\\u2069\\u2028\\u2029"
    )
    assert shown("seized-\udcff.csv \ud800") == "seized-\\xff.csv \\ud800"  # argv bytes as bytes
    assert shown("Müller, C:\\case 7, 東京, عربي") == "Müller, C:\\case 7, 東京, عربي"


@given(st.text(st.characters(codec=None)))
def test_shown_and_json_lines_never_carry_a_raw_control(text: str) -> None:
    for line in (shown(text), json_line({"field": text})):
        for char in line:
            assert unicodedata.category(char) not in {"Cc", "Cs", "Zl", "Zp"}, repr(char)
            assert char not in BIDI_CONTROLS
    assert json.loads(json_line({"field": text})) == {"field": text}
