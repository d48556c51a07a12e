"""docs/PROTOCOL.md §2.5: one full lookup with a fixed key and blind, byte for byte."""

from __future__ import annotations

from node.lookup import oprf
from node.lookup.membership import build_full, item_of, parse_index
from node.records.serials import canonicalise_serial
from tests.test_protocol_vectors import vector


def test_the_lookup_vector() -> None:
    v = {
        k: bytes.fromhex(x) if k not in ("serial", "canonical") else x
        for k, x in vector("lookup-GLK-12345").items()
    }
    sk, pk = oprf.derive_key_pair(v["seed"], v["info"], oprf.MODE_VOPRF)
    assert (sk, pk) == (v["skS"], v["pkS"])
    assert canonicalise_serial(str(v["serial"])) == v["canonical"]
    serial_input = oprf.serial_input(str(v["canonical"]))
    assert serial_input == v["input"]
    _blind, blinded = oprf.blind(serial_input, oprf.MODE_VOPRF, v["blind"])
    assert blinded == v["blinded"]
    evaluated, proof = oprf.evaluate(sk, [blinded], oprf.MODE_VOPRF, v["proof_random"])
    assert (evaluated, proof) == ([v["evaluated"]], v["proof"])
    oprf.verify_proof(pk, [blinded], evaluated, proof)
    output = oprf.finalize(serial_input, v["blind"], evaluated[0])
    assert output == v["output"] == oprf.evaluate_direct(sk, serial_input, oprf.MODE_VOPRF)
    assert item_of(output).to_bytes(8, "big") == v["item"]
    assert build_full("DEU", 1, [item_of(output)]) == v["index_v1"]
    assert item_of(output) in parse_index(v["index_v1"]).items  # type: ignore[union-attr]
