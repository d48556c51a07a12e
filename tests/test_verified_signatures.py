"""Signatures a node found valid are not checked again (node.protocol.verified): the
arithmetic is remembered per exact (key, signature, message), never a key's validity, a
forgery or another node's findings; a five-hop trace costs each node one check per item."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import node.protocol.verified as verified_module
from node.protocol.keyring import KeyHistory, KeySpan
from node.protocol.model import Service
from node.protocol.verified import VerifiedSignatures
from node.trace.model import TraceStatus
from tests.harness import Federation
from tests.test_trace_e2e import give_custody
from tests.test_trace_hop import fields

ACTOR = "cli:test"


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


@pytest.fixture
def arithmetic(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[bytes, bytes, bytes]]:
    """Every Ed25519 check actually computed, by (key, signature, message)."""
    done: Counter[tuple[bytes, bytes, bytes]] = Counter()
    real = verified_module.verify_ed25519

    def counting(public: bytes, signature: bytes, message: bytes) -> None:
        done[(public, signature, message)] += 1
        real(public, signature, message)

    monkeypatch.setattr(verified_module, "verify_ed25519", counting)
    return done


def test_a_valid_signature_is_computed_once_and_a_forgery_fails_every_time(
    arithmetic: Counter[tuple[bytes, bytes, bytes]],
) -> None:
    key = Ed25519PrivateKey.generate()
    public, signature = _raw(key), key.sign(b"receipt")
    seen = VerifiedSignatures()
    for _ in range(3):
        seen.check(public, signature, b"receipt")
    assert arithmetic[(public, signature, b"receipt")] == 1
    for _ in range(2):  # the same signature over other bytes, another key's: refused
        with pytest.raises(InvalidSignature):
            seen.check(public, signature, b"receipt, altered")
        with pytest.raises(InvalidSignature):
            seen.check(_raw(Ed25519PrivateKey.generate()), signature, b"receipt")
    assert arithmetic[(public, signature, b"receipt, altered")] == 2


def test_at_most_max_kept_are_remembered_the_least_recent_forgotten(
    arithmetic: Counter[tuple[bytes, bytes, bytes]],
) -> None:
    key = Ed25519PrivateKey.generate()
    public = _raw(key)
    signed = [(key.sign(m), m) for m in (b"a", b"b", b"c")]
    seen = VerifiedSignatures(max_kept=2)
    for signature, message in signed:
        seen.check(public, signature, message)
    seen.check(public, *signed[2])  # remembered
    seen.check(public, *signed[0])  # forgotten: computed again
    assert [arithmetic[(public, s, m)] for s, m in signed] == [2, 1, 1]


def test_a_signature_the_node_made_is_not_computed_and_changes_nothing_else(
    arithmetic: Counter[tuple[bytes, bytes, bytes]],
) -> None:
    key = Ed25519PrivateKey.generate()
    public, signature = _raw(key), key.sign(b"receipt")
    seen = VerifiedSignatures()
    seen.made(public, signature, b"receipt")
    seen.check(public, signature, b"receipt")
    assert arithmetic[(public, signature, b"receipt")] == 0
    with pytest.raises(InvalidSignature):  # only that exact triple is taken as made
        seen.check(public, signature, b"receipt, altered")


def test_a_history_keeps_its_memory_when_a_vouched_country_is_added() -> None:
    seen = VerifiedSignatures()
    key = _raw(Ed25519PrivateKey.generate())
    history = KeyHistory({}).with_verified(seen).with_country("AUT", [KeySpan(key, None, None)])
    assert history.verified is seen and history.knows("AUT")


async def test_a_five_hop_trace_costs_each_node_one_check_per_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    route = ("ITA", "AUT", "CZE", "POL", "LTU")
    fed = Federation(tmp_path)
    try:
        for country in ("FRA", *route):
            await fed.add(country)
        await fed.peer_all(Service.TRACES)
        await give_custody(fed, "V-5", route)
        memories = {id((await fed[c].n.peers.key_history()).verified): c for c in fed.members}
        assert len(memories) == 6
        computed: Counter[tuple[str, bytes, bytes, bytes]] = Counter()
        real = VerifiedSignatures.check

        def check(self: VerifiedSignatures, public: bytes, signature: bytes, data: bytes) -> None:
            new = verified_module._digest(public, signature, data) not in self._kept
            real(self, public, signature, data)
            if new:
                computed[(memories[id(self)], public, signature, data)] += 1

        monkeypatch.setattr(VerifiedSignatures, "check", check)
        started = await fed["FRA"].f.traces.start(fields(fed, serial="V-5"), ACTOR)
        await fed.settle()
        view = await fed["FRA"].f.traces.show(started.trace_id)
        assert view.status is TraceStatus.ANSWERED
        assert [h.country for h in view.report.hops] == list(route)
        assert view.report.valid and view.report.complete
        # No node computes the same check twice, and FRA (which re-reads the chain at each
        # of the ~20 reports) about one per item kept: linear in the chain, not quadratic.
        assert max(computed.values()) == 1
        # A node never checks what it signed itself (receipts, answers and forwards read
        # back), but for the originator's request, checked with the chain.
        own = {c: fed[c].n.public_key for c in fed.members}
        mine = Counter(c for (c, public, *_rest) in computed if public == own[c])
        assert mine == Counter({"FRA": 1})
        at_fra = sum(n for (country, *_rest), n in computed.items() if country == "FRA")
        assert at_fra <= len(view.report.hops) * 4 + 1  # receipts, answers, forwards; request
    finally:
        await fed.close()
