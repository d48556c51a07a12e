"""The keys a trace is checked with: every key seen (with its validity), keys the chain
vouches for (forward statements), what the originator keeps of reports, and what a hop
discloses of the last legal possessor (docs/adr/0008)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from node.errors import BadSignatureError, TraceItemsFullError
from node.identity import rotate_signing_key
from node.protocol.envelope import key_id
from node.protocol.keyring import KeyHistory, KeySpan, follow_rotations, history_of
from node.protocol.model import KnownKey, Peer, PeerStatus, Service
from node.protocol.rotation import sign_rotation
from node.trace.chain import ProblemKind, verify_chain
from node.trace.disclosure import disclosed
from node.trace.export import export_chain, verify_file
from node.trace.forward import held_chain
from node.trace.intake import admit, item_of
from node.trace.model import ItemKind
from node.trace.receipts import (
    Outcome,
    ReceiptStatement,
    Signed,
    answered,
    digest,
    sign_answer,
    sign_forward,
    sign_receipt,
    signed_part,
)
from tests.harness import Federation
from tests.test_trace_hop import ACTOR, custody, event, fields
from tests.trace_chains import KEYS, T0, TRACE_ID, Chain, build, public

# -- key history ---------------------------------------------------------------------------

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _rot(old: str, new: str, at_s: int, grace_s: int = 60) -> bytes:
    start = int(AT.timestamp()) + at_s
    return sign_rotation(KEYS[old], "DEU", public(new), start, start + grace_s)


def test_a_key_rotated_twice_verifies_each_statement_within_its_validity() -> None:
    """DEU: key DEU, then AUT's test key at +100 s, then BEL's at +200 s (60 s grace)."""
    pool = [_rot("AUT", "BEL", 200), _rot("DEU", "AUT", 100)]  # any order
    spans = follow_rotations("DEU", public("DEU"), pool)
    assert [s.key for s in spans] == [public("DEU"), public("AUT"), public("BEL")]
    keys = KeyHistory({"DEU": spans})
    t = int(AT.timestamp()) * 1000

    def valid(signer: str, at_s: int) -> bool:
        return keys("DEU", key_id(public(signer)), t + at_s * 1000) is not None

    assert valid("DEU", 50) and valid("DEU", 150) and not valid("DEU", 170)
    assert not valid("AUT", 90) and valid("AUT", 150) and valid("AUT", 250)
    assert not valid("AUT", 270) and valid("BEL", 270) and not valid("BEL", 190)
    assert keys.rotation_chain("DEU") == (public("DEU"), [pool[1], pool[0]])


def test_the_history_of_a_node_keeps_each_key_with_its_bounds() -> None:
    rows = [
        KnownKey("DEU", public("AUT"), 5_000, None, _rot("DEU", "AUT", 5)),
        KnownKey("DEU", public("DEU"), None, 65_000, None),
    ]
    keys = history_of(rows)
    assert [s.key for s in keys.spans("DEU")] == [public("DEU"), public("AUT")]
    assert keys("DEU", key_id(public("DEU")), 70_000) is None
    assert keys.knows("DEU") and not keys.knows("FRA")


# -- vouching: forward statements ------------------------------------------------------


def _forwards(chain: Chain, signers: dict[int, str] | None = None) -> list[bytes]:
    """FRA forwards to AUT (hop 1), AUT to DEU, DEU to ITA, each naming the real key."""
    route = [("FRA", "AUT"), ("AUT", "DEU"), ("DEU", "ITA")]
    out = []
    for position, (by, to) in enumerate(route, 1):
        signer = (signers or {}).get(position, by)
        out.append(
            sign_forward(KEYS[signer], TRACE_ID, position, by, to, public(to), T0 + position)
        )
    return out


def _roots(*countries: str) -> KeyHistory:
    return KeyHistory({c: [KeySpan(public(c), None, None)] for c in countries})


def _found(report: object) -> set[tuple[int | None, str | None, ProblemKind]]:
    return {(p.position, p.country, p.kind) for p in report.problems}  # type: ignore[attr-defined]


def test_a_hop_that_is_not_our_peer_verifies_under_the_key_the_hop_before_vouched_for() -> None:
    chain = build()
    roots = _roots("FRA", "AUT")  # FRA's peers: AUT only
    bare = verify_chain(chain.request, chain.receipts, chain.answers, roots)
    assert _found(bare) == {
        (2, "DEU", ProblemKind.WRONG_SIGNER),
        (3, "ITA", ProblemKind.WRONG_SIGNER),
    }
    assert "no forward statement" in str(bare.problems[0])
    report = verify_chain(chain.request, chain.receipts, chain.answers, roots, _forwards(chain))
    assert report.valid, [str(p) for p in report.problems]
    assert [(v.position, v.country, v.by) for v in report.vouched] == [
        (2, "DEU", "AUT"),
        (3, "ITA", "DEU"),
    ]


def test_a_forward_by_anyone_but_the_hop_before_or_the_originator_vouches_for_nothing() -> None:
    chain = build()
    forwards = _forwards(chain)
    # ITA's key vouched for by AUT (hop 1), not DEU (hop 2, the hop before ITA):
    forwards[2] = sign_forward(KEYS["AUT"], TRACE_ID, 3, "AUT", "ITA", public("ITA"), T0)
    report = verify_chain(
        chain.request, chain.receipts, chain.answers, _roots("FRA", "AUT"), forwards
    )
    assert _found(report) == {(3, "ITA", ProblemKind.WRONG_SIGNER)}
    # ... and a forward whose signature is not its author's vouches for nothing either.
    forged = _forwards(chain, signers={2: "BEL"})
    report = verify_chain(
        chain.request, chain.receipts, chain.answers, _roots("FRA", "AUT"), forged
    )
    assert (2, "DEU", ProblemKind.WRONG_SIGNER) in _found(report)


def test_a_vouch_never_replaces_the_key_we_trust_for_a_peer() -> None:
    """A hostile AUT vouches BEL's key as DEU's and signs DEU's receipt with it: FRA, a
    peer of DEU, checks DEU's receipt under DEU's real key and reports it."""
    chain = build(signers={2: KEYS["BEL"]})
    forwards = _forwards(chain)
    forwards[1] = sign_forward(KEYS["AUT"], TRACE_ID, 2, "AUT", "DEU", public("BEL"), T0 + 2)
    roots = _roots("FRA", "AUT", "DEU", "ITA")
    report = verify_chain(chain.request, chain.receipts, chain.answers, roots, forwards)
    assert _found(report) == {(2, "DEU", ProblemKind.WRONG_SIGNER)}
    assert not report.vouched


def test_an_exported_chain_carries_the_forwards_and_checks_with_the_originators_roots() -> None:
    chain = build()
    keys = {c: (public(c), []) for c in ("FRA", "AUT")}
    data = export_chain(chain.request, chain.receipts, chain.answers, keys, _forwards(chain))
    verified = verify_file(data)
    assert verified.report.valid and verified.report.complete
    shown = verified.to_json()
    assert set(shown["key_fingerprints"]) == {"FRA", "AUT"}
    assert [(v["country"], v["vouched_by"]) for v in shown["vouched_keys"]] == [
        ("DEU", "AUT"),
        ("ITA", "DEU"),
    ]
    without = export_chain(chain.request, chain.receipts, chain.answers, keys)
    assert not verify_file(without).report.valid


# -- what the originator keeps -----------------------------------------------------------


def _hop(country: str, position: int, prev: bytes, key: str | None = None) -> tuple[bytes, ...]:
    """A hop's pending receipt, a needs_information answer and receipt, and a final answer
    and receipt."""
    signer = KEYS[key or country]
    request_hash = digest(build(()).request)
    pending = ReceiptStatement(
        TRACE_ID, position, country, prev, request_hash, T0 + 10, None, None, None, None
    )
    asked = sign_answer(signer, TRACE_ID, position, country, Outcome.NEEDS_INFORMATION, {})
    final = sign_answer(signer, TRACE_ID, position, country, Outcome.NOT_FOUND, {"reason": "x"})
    return (
        sign_receipt(signer, pending),
        asked,
        answered(signer, pending, T0 + 20, asked),
        final,
        answered(signer, pending, T0 + 30, final),
    )


def test_reports_are_checked_on_arrival_and_bounded_per_hop() -> None:
    keys = _roots("FRA", "AUT")
    request_hash = digest(build(()).request)
    pending, _asked, asked_receipt, _final, final_receipt = _hop("AUT", 1, request_hash)
    kept = []
    for data in (pending, asked_receipt, final_receipt):
        item = item_of(data)
        admit(item, keys, kept)
        kept.append(item)
    # A second, different final receipt for hop 1: refused, whoever signed it.
    other = answered(
        KEYS["AUT"],
        ReceiptStatement(
            TRACE_ID, 1, "AUT", request_hash, request_hash, T0 + 11, None, None, None, None
        ),
        T0 + 40,
        _hop("AUT", 1, request_hash)[3],
    )
    with pytest.raises(TraceItemsFullError, match="hop 1 already has 1 verified final receipt"):
        admit(item_of(other), keys, kept)
    # A receipt under AUT's key id that AUT's key did not sign is forged: refused outright.
    signed = signed_part(_hop("AUT", 1, request_hash, key="BEL")[0])
    forged = msgspec.msgpack.encode(
        Signed(signed.statement, key_id(public("AUT")), signed.signature)
    )
    with pytest.raises(BadSignatureError):
        admit(item_of(forged), keys, [])
    # Under a key id AUT does not have (yet: a rotation not followed), it waits for verify.
    admit(item_of(_hop("AUT", 1, request_hash, key="BEL")[0]), keys, [])


def test_items_not_checkable_yet_are_kept_within_their_own_bound() -> None:
    """DEU is no root: its receipts are kept unchecked, one pending at most, and a verified
    one still finds its place beside an unchecked forgery."""
    keys = _roots("FRA", "AUT")
    prev = bytes(32)
    unchecked = item_of(_hop("DEU", 2, prev, key="BEL")[0])
    admit(unchecked, keys, [])
    with pytest.raises(TraceItemsFullError, match="not yet verifiable pending receipt"):
        admit(item_of(_hop("DEU", 2, bytes([1]) * 32, key="ITA")[0]), keys, [unchecked])
    vouched = keys.with_country("DEU", [KeySpan(public("DEU"), None, None)])
    admit(item_of(_hop("DEU", 2, prev)[0]), vouched, [unchecked])


def test_the_chain_takes_each_hops_verified_final_receipt() -> None:
    request_hash = digest(build(()).request)
    pending, asked, asked_receipt, final, final_receipt = _hop("AUT", 1, request_hash)
    # A forgery signed later than the final receipt, in a key that is not AUT's.
    forged = _hop("AUT", 1, request_hash, key="BEL")[2]
    items = [item_of(d) for d in (final_receipt, pending, asked_receipt, forged, asked, final)]
    receipts, answers, _replaced = held_chain(items, _roots("FRA", "AUT"))
    assert receipts == [final_receipt]
    assert {digest(a) for a in answers} == {digest(asked), digest(final)}
    assert held_chain(items[:3])[0] == [final_receipt]  # final over a later-kept asked one


def test_a_forward_and_a_rotation_are_items_too() -> None:
    forward = item_of(sign_forward(KEYS["FRA"], TRACE_ID, 1, "FRA", "AUT", public("AUT"), T0))
    assert (forward.kind, forward.position, forward.country) == (ItemKind.FORWARD, 1, "FRA")
    rotation = item_of(_rot("DEU", "AUT", 5))
    assert (rotation.kind, rotation.position, rotation.country) == (ItemKind.ROTATION, 0, "DEU")


# -- disclosure ----------------------------------------------------------------------------


def _peer(*services: Service, status: PeerStatus = PeerStatus.ACTIVE) -> Peer:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Peer(
        "FRA",
        "http://x",
        public("FRA"),
        "",
        None,
        status,
        frozenset(services),
        now,
        "t",
        None,
        None,
        None,
        None,
        None,
    )


DETAILS = {"party": "Max Muster", "date": "2020-05-05", "event": "sold", "licence_reference": "L-1"}


def test_the_possessor_is_disclosed_only_to_a_peer_allowed_trace_details() -> None:
    assert disclosed(DETAILS, "AUT", "FRA", _peer(Service.TRACES, Service.TRACE_DETAILS)) == DETAILS
    for peer in (
        _peer(Service.TRACES),
        None,  # the originator is not our peer
        _peer(Service.TRACE_DETAILS, status=PeerStatus.REVOKED),
    ):
        shown = disclosed(DETAILS, "AUT", "FRA", peer)
        assert "party" not in shown and "licence_reference" not in shown
        assert shown["date"] == "2020-05-05" and shown["event"] == "sold"
        assert "identified; withheld by AUT's policy for FRA" in shown["note"]
    destroyed = disclosed({"note": "destroyed", "party": "X"}, "AUT", "FRA", None)
    assert destroyed["note"].startswith("destroyed; the last legal possessor is identified")
    assert disclosed({"loop": "ITA"}, "AUT", "FRA", None) == {"loop": "ITA"}


def test_validity_is_in_ms_and_a_rotation_names_its_grace() -> None:
    spans = follow_rotations("DEU", public("DEU"), [_rot("DEU", "AUT", 0, grace_s=86400)])
    assert spans[0].valid_until_ms == (int(AT.timestamp()) + 86400) * 1000
    assert spans[1].valid_from_ms == int(AT.timestamp()) * 1000
    assert spans[1].rotation is not None
    assert timedelta(milliseconds=spans[0].valid_until_ms - spans[1].valid_from_ms).days == 1


# -- over the federation (in-memory harness) ----------------------------------------------


async def _peer_pair(fed: Federation, a: str, b: str, *services: Service) -> None:
    for x, y in ((a, b), (b, a)):
        await fed[x].n.peers.add(fed[y].url, y, fed[y].fingerprint, "harness")
        await fed[x].n.peers.set_policy(y, services, "harness")


async def test_a_chain_through_countries_the_originator_does_not_peer_with_verifies(
    tmp_path: Path,
) -> None:
    """FRA peers with ITA only; ITA with DEU; DEU with AUT. FRA's chain checks with its
    own roots: ITA vouches for DEU's key, DEU for AUT's; AUT withholds the possessor from
    FRA, which is not its peer; the export carries the forwards and checks anywhere."""
    fed = Federation(tmp_path)
    try:
        for country in ("FRA", "ITA", "DEU", "AUT"):
            await fed.add(country)
        both = (Service.TRACES, Service.TRACE_DETAILS)
        for a, b in (("FRA", "ITA"), ("ITA", "DEU"), ("DEU", "AUT")):
            await _peer_pair(fed, a, b, *both)
        await custody(fed, "ITA", tmp_path, event("exported", "2019-02-01", "Waffen GmbH", "DEU"))
        await custody(fed, "DEU", tmp_path, event("exported", "2019-04-01", "Jagd KG", "AUT"))
        await custody(fed, "AUT", tmp_path, event("sold", "2020-05-05", "Max Muster"))
        started = await fed["FRA"].f.traces.start(fields(fed), ACTOR)
        await fed.settle()

        report = await fed["FRA"].f.traces.verify(started.trace_id)
        assert report.valid and report.complete, [str(p) for p in report.problems]
        assert [(v.country, v.by) for v in report.vouched] == [("DEU", "ITA"), ("AUT", "DEU")]
        last = report.hops[-1]
        assert last.outcome is Outcome.END_OF_CHAIN and last.details is not None
        assert "party" not in last.details and "licence_reference" not in last.details
        assert "withheld by AUT's policy for FRA" in last.details["note"]

        verified = verify_file(await fed["FRA"].f.traces.export(started.trace_id))
        assert verified.report.valid and verified.report.complete
        assert set(verified.fingerprints) == {"FRA", "ITA"}
        assert {v.country for v in verified.report.vouched} == {"DEU", "AUT"}
    finally:
        await fed.close()


async def test_a_peer_rotated_twice_keeps_every_key_with_its_validity(tmp_path: Path) -> None:
    fed = Federation(tmp_path)
    try:
        for country in ("FRA", "DEU"):
            await fed.add(country)
        await fed.peer_all(Service.LOOKUPS)
        fra, deu = fed["FRA"], fed["DEU"]
        keys = [deu.n.public_key]
        for _ in range(2):
            rotate_signing_key(
                deu.n.config.signing_key_file, None, "DEU", deu.clock.now(), timedelta(hours=1)
            )
            await fed.stop("DEU")
            await fed.start("DEU")
            keys.append(deu.n.public_key)
            fed.clock.advance(120)
            assert await fra.n.peers.follow_rotation("DEU")
            fed.clock.advance(2 * 3600)  # past the grace period
        history = await fra.n.peers.key_history()
        spans = history.spans("DEU")
        assert [s.key for s in spans] == keys
        assert spans[0].valid_from_ms is None and spans[0].rotation is None
        assert all(s.rotation is not None for s in spans[1:])
        assert spans[0].valid_until_ms == spans[1].valid_from_ms + 3600_000
        assert history.rotation_chain("DEU") == (keys[0], [s.rotation for s in spans[1:]])
        # DEU keeps its own keys too, from the statement it serves, as it opens.
        own = (await deu.n.peers.key_history()).spans("DEU")
        assert [s.key for s in own][-2:] == keys[1:]
    finally:
        await fed.close()
