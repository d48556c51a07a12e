"""Evidence bundles of hits: what verifies, and every way a bundle can fail to."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import EvidenceError, NotFoundError
from node.identity import fingerprint
from node.lookup.evidence import FORMAT, bundle, verify_bundle
from node.lookup.querier import Query
from node.protocol.envelope import read_header, seal, to_ms
from node.trace.receipts import RequestStatement, read
from node.trace.request import from_wire
from tests.harness import Federation, run_cli

FRA = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
DEU = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
FRA_PUB, DEU_PUB = FRA.public_key().public_bytes_raw(), DEU.public_key().public_bytes_raw()
ASKED = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
RECORD = {"serial_number": "AB-1234", "make": "Glock", "status": "stolen"}


def _pack(body: dict[str, object]) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def _request(**body: object) -> bytes:
    fields = {"lookup_id": b"\x05" * 16, "output": b"\x06" * 64, "make": "GLOCK"}
    fields |= {"case_reference": "FR-2026-77"} | body
    return seal(FRA, "FRA", "DEU", "lookup.confirm", _pack(fields), timestamp_ms=to_ms(ASKED))


def _answer(request: bytes, *, type_: str = "lookup.confirmed", ref: bytes | None = None) -> bytes:
    body = {
        "records": [RECORD],
        "make_agrees": True,
        "details": True,
        "ref": read_header(request).message_id if ref is None else ref,
    }
    return seal(DEU, "DEU", "FRA", type_, _pack(body), timestamp_ms=to_ms(ASKED) + 40)


def _bundle(**fields: object) -> bytes:
    request = _request()
    values: dict[str, object] = {
        "format": FORMAT,
        "request": request,
        "answer": _answer(request),
        "requester_key": FRA_PUB,
        "owner_key": DEU_PUB,
    }
    return _pack(values | fields)


def test_a_bundle_proves_who_answered_what_and_when() -> None:
    request = _request()
    proved = verify_bundle(bundle(request, _answer(request), FRA_PUB, DEU_PUB))
    assert (proved.owner, proved.requester) == ("DEU", "FRA")
    assert proved.owner_fingerprint == fingerprint(DEU_PUB)
    assert (proved.asked_at, (proved.answered_at - proved.asked_at).total_seconds()) == (
        ASKED,
        0.04,
    )
    assert (proved.case_reference, proved.make_given) == ("FR-2026-77", "GLOCK")
    assert (proved.records, proved.make_agrees, proved.details) == ([RECORD], True, True)


def test_years_later_a_bundle_still_verifies() -> None:
    """Evidence is old by nature: the freshness window of live messages does not apply."""
    assert verify_bundle(_bundle()).answered_at.year == 2026


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"answer": _flip_last(_answer(_request()))}, "the answer does not verify"),
        ({"request": _flip_last(_request())}, "the request does not verify"),
        ({"owner_key": FRA_PUB}, "the answer does not verify"),  # not DEU's key
        ({"answer": _answer(_request())}, "does not refer to this request"),  # another request
        ({"answer": _answer(_request(), type_="lookup.evaluated")}, "expected a lookup.confirm"),
        ({"format": "iarms-hit-evidence/9"}, "unknown format"),
        ({"owner_key": b"\x00" * 31}, "32-byte"),
        ({"requester_key": "not bytes"}, "requester_key must be bytes"),
    ],
)
def test_a_bundle_that_does_not_prove_it_is_refused_with_the_reason(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(EvidenceError, match=message):
        verify_bundle(_bundle(**fields))


def test_an_answer_between_other_countries_is_refused() -> None:
    request = _request()
    ita = Ed25519PrivateKey.from_private_bytes(b"\x03" * 32)
    body = _pack(
        {
            "records": [RECORD],
            "make_agrees": True,
            "details": True,
            "ref": read_header(request).message_id,
        }
    )
    answer = seal(ita, "ITA", "FRA", "lookup.confirmed", body, timestamp_ms=to_ms(ASKED))
    owner = ita.public_key().public_bytes_raw()
    with pytest.raises(EvidenceError, match="not between the request's two countries"):
        verify_bundle(bundle(request, answer, FRA_PUB, owner))


def test_missing_or_extra_fields_are_refused() -> None:
    for data in (_pack({"format": FORMAT}), _pack({**msgpack.unpackb(_bundle()), "x": 1})):
        with pytest.raises(EvidenceError, match="expected exactly the fields"):
            verify_bundle(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=0))
def test_random_and_mutated_bundles_fail_only_with_evidence_errors(noise: bytes, at: int) -> None:
    valid = _bundle()
    position = at % len(valid)
    mutated = valid[:position] + bytes([valid[position] ^ 0x5A]) + valid[position + 1 :]
    for data in (noise, mutated):
        with pytest.raises(EvidenceError):
            verify_bundle(data)


# Kept by lookups, read back by the CLI (real nodes over loopback: `fed` in conftest).


async def test_a_confirmed_hit_keeps_the_owners_signed_answer(
    fed: Federation, tmp_path: Path
) -> None:
    fra = fed["FRA"]
    results = await fra.f.lookups.lookup([Query("glk 12345", "glock")], "FR-9", "officer.dupont")
    hit = next(r for r in results if r.result == "hit")
    assert [r.evidence_id for r in results if r.result != "hit"] == [None]
    assert hit.evidence_id is not None and hit.to_json()["evidence"] == hit.evidence_id
    entry, proved = await fra.n.evidence.open(hit.evidence_id)
    assert (entry.peer, entry.serial, entry.case_reference, entry.actor) == (
        "DEU",
        "glk 12345",
        "FR-9",
        "officer.dupont",
    )
    assert (proved.owner, proved.owner_fingerprint) == ("DEU", fed["DEU"].fingerprint)
    assert (proved.requester_fingerprint, proved.case_reference) == (fra.fingerprint, "FR-9")
    assert (proved.records, proved.make_agrees) == (hit.records, True)
    with pytest.raises(NotFoundError):
        await fra.n.evidence.open(hit.evidence_id + 1)

    data = str(fra.data_dir)
    code, out, err = await run_cli("evidence", "list", "--json", "--data-dir", data)
    assert code == 0, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == [hit.evidence_id]
    code, out, err = await run_cli(
        "evidence", "show", str(hit.evidence_id), "--json", "--data-dir", data
    )
    shown = json.loads(out)
    assert (shown["owner_fingerprint"], shown["records"]) == (fed["DEU"].fingerprint, hit.records)
    exported = tmp_path / "evidence.msgpack"
    code, out, err = await run_cli(
        "evidence", "export", str(hit.evidence_id), "--out", str(exported), "--data-dir", data
    )
    assert code == 0, err
    assert exported.read_bytes() == entry.bundle
    code, _out, err = await run_cli(
        "evidence", "export", str(hit.evidence_id), "--out", str(exported), "--data-dir", data
    )
    assert code == 1 and "refusing to overwrite" in err
    code, out, err = await run_cli("evidence", "verify", str(exported))  # no node needed
    assert code == 0 and "verified: signed by DEU" in out and fed["DEU"].fingerprint in out
    exported.write_bytes(_flip_last(entry.bundle))
    code, _out, err = await run_cli("evidence", "verify", str(exported))
    assert code == 1 and "does not verify" in err


async def test_a_trace_starts_from_the_evidence_of_a_hit(fed: Federation) -> None:
    """`trace new --from-evidence`: the serial and case our officer looked up, the firearm as
    the peer's record describes it; the recovery, the crime and the agency are ours."""
    fra = fed["FRA"]
    results = await fra.f.lookups.lookup([Query("glk 12345", "glock")], "FR-9", "officer.dupont")
    evidence = next(r.evidence_id for r in results if r.result == "hit")
    data = str(fra.data_dir)
    new = ["trace", "new", "--from-evidence", str(evidence), "--to", "DEU", "--data-dir", data]
    code, _out, err = await run_cli(*new)
    assert code == 2 and "required with --from-evidence: --recovered-at, --crime, --agency" in err
    ours = ["--recovered-on", "2026-01-02", "--recovered-at", "Lyon", "--crime", "found"]
    ours += ["--country-of-manufacture", "AUT"]
    code, out, err = await run_cli(*new, *ours, "--agency", "Police nationale", "--json")
    assert code == 0, (out, err)
    started = json.loads(out)
    assert started["findings"] == []
    view = await fra.f.traces.show(bytes.fromhex(started["trace_id"]))
    asked = from_wire(read(view.trace.request, RequestStatement)[1].fields, fra.n.reference)
    assert (asked.firearm.serial_number, asked.firearm.make, asked.firearm.firearm_type) == (
        "glk 12345",
        "Glock",
        "pistol",
    )
    assert (asked.case_reference, asked.agency, asked.recovery.place) == (
        "FR-9",
        "Police nationale",
        "Lyon",
    )
    code, _out, err = await run_cli(*new, *ours, "--agency", "P", "--from-evidence", "99")
    assert code == 2 and "99" in err and len(err.splitlines()) == 1
    code, _out, err = await run_cli(*new, "--from-record", "1")
    assert code == 2 and "not allowed with argument" in err
