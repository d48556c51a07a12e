"""The OPRF of the private serial lookup against RFC 9497's vectors, and its input checks.

`tests/data/rfc9497-ristretto255-sha512.json` is a copy of
`/work/shared/testdata/rfc9497-ristretto255-sha512.json` (RFC 9497 Appendix
A.1.1, ristretto255-SHA512, cross-checked against cloudflare/circl).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.lookup import oprf
from node.lookup.oprf import MODE_OPRF, MODE_VOPRF, OprfError

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "rfc9497-ristretto255-sha512.json").read_text()
)
MODES = list(VECTORS["modes"].values())
CASES = [
    pytest.param(suite, vector, id=f"{name}-{vector['title']}")
    for name, suite in VECTORS["modes"].items()
    for vector in suite["vectors"]
]
ORDER = 2**252 + 27742317777372353535851937790883648493
IDENTITY = bytes(32)
NOT_A_POINT = b"\xff" * 32


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def listed(vector: dict[str, Any], field: str) -> list[bytes]:
    """A vector's field as a list: batched vectors carry `<field>_list`."""
    return [h(v) for v in vector.get(f"{field}_list", [vector[field]])]


def suite_key(suite: dict[str, Any]) -> tuple[bytes, bytes]:
    return oprf.derive_key_pair(h(suite["Seed"]), h(suite["KeyInfo"]), suite["mode"])


def le(n: int) -> bytes:
    return n.to_bytes(32, "little")


@pytest.fixture(scope="module")
def voprf_batch() -> tuple[bytes, bytes, list[bytes], list[bytes], bytes]:
    """A VOPRF key pair and an honest batch of three: (sk, pk, blinded, evaluated, proof)."""
    sk, pk = oprf.generate_key_pair(MODE_VOPRF)
    blinded = [oprf.blind(oprf.serial_input(s), MODE_VOPRF)[1] for s in ("A1", "B2", "C3")]
    evaluated, proof = oprf.evaluate(sk, blinded, MODE_VOPRF)
    assert proof is not None
    return sk, pk, blinded, evaluated, proof


# -- RFC 9497 test vectors ---------------------------------------------------------------------


@pytest.mark.parametrize("suite", MODES, ids=[s["mode"] for s in MODES])
def test_context_string_and_derived_keys(suite: dict[str, Any]) -> None:
    assert oprf.context_string(suite["mode"]) == h(suite["contextString"])
    sk, pk = suite_key(suite)
    assert sk == h(suite["skSm"])
    assert pk == oprf.public_key(sk)
    if "pkSm" in suite:
        assert pk == h(suite["pkSm"])


@pytest.mark.parametrize(("suite", "vector"), CASES)
def test_vector(suite: dict[str, Any], vector: dict[str, Any]) -> None:
    mode = suite["mode"]
    sk, pk = suite_key(suite)
    inputs, blinds = listed(vector, "Input"), listed(vector, "Blind")

    blinded = [oprf.blind(x, mode, r)[1] for x, r in zip(inputs, blinds, strict=True)]
    assert blinded == listed(vector, "BlindedElement")

    proof_random = h(vector["ProofRandomScalar"]) if mode == MODE_VOPRF else None
    evaluated, proof = oprf.evaluate(sk, blinded, mode, proof_random)
    assert evaluated == listed(vector, "EvaluationElement")
    if mode == MODE_VOPRF:
        assert proof == h(vector["Proof"])
        oprf.verify_proof(pk, blinded, evaluated, h(vector["Proof"]))
    else:
        assert proof is None

    outputs = [oprf.finalize(x, r, e) for x, r, e in zip(inputs, blinds, evaluated, strict=True)]
    assert outputs == listed(vector, "Output")
    assert [oprf.evaluate_direct(sk, x, mode) for x in inputs] == outputs
    assert oprf.evaluate_direct_many(sk, inputs, mode) == outputs


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [MODE_OPRF, MODE_VOPRF])
def test_blind_evaluate_finalize_equals_evaluate_direct(mode: int) -> None:
    sk, pk = oprf.generate_key_pair(mode)
    inputs = [oprf.serial_input(s) for s in ("12345", "AB-0001", "Ω77")]
    pairs = [oprf.blind(x, mode) for x in inputs]
    evaluated, proof = oprf.evaluate(sk, [b for _, b in pairs], mode)
    if mode == MODE_VOPRF:
        assert proof is not None
        oprf.verify_proof(pk, [b for _, b in pairs], evaluated, proof)
    outputs = [
        oprf.finalize(x, r, e) for x, (r, _), e in zip(inputs, pairs, evaluated, strict=True)
    ]
    assert outputs == oprf.evaluate_direct_many(sk, inputs, mode)
    assert all(len(y) == oprf.OUTPUT_SIZE for y in outputs)
    assert len(set(outputs)) == len(inputs)


def test_outputs_depend_on_key_and_mode() -> None:
    x = oprf.serial_input("12345")
    sk, _ = oprf.generate_key_pair(MODE_OPRF)
    other, _ = oprf.generate_key_pair(MODE_OPRF)
    assert oprf.evaluate_direct(sk, x, MODE_OPRF) != oprf.evaluate_direct(other, x, MODE_OPRF)
    assert oprf.evaluate_direct(sk, x, MODE_OPRF) != oprf.evaluate_direct(sk, x, MODE_VOPRF)


def test_blinds_are_fresh() -> None:
    x = oprf.serial_input("12345")
    assert oprf.blind(x, MODE_OPRF) != oprf.blind(x, MODE_OPRF)


# -- proof verification fails on anything but the honest batch ---------------------------------


def test_proof_from_another_key_fails(voprf_batch: tuple[Any, ...]) -> None:
    _, _, blinded, evaluated, proof = voprf_batch
    _, other_pk = oprf.generate_key_pair(MODE_VOPRF)
    with pytest.raises(OprfError, match="does not verify"):
        oprf.verify_proof(other_pk, blinded, evaluated, proof)


def test_evaluation_with_another_key_fails(voprf_batch: tuple[Any, ...]) -> None:
    _, pk, blinded, _, _ = voprf_batch
    other_sk, _ = oprf.generate_key_pair(MODE_VOPRF)
    evaluated, proof = oprf.evaluate(other_sk, blinded, MODE_VOPRF)
    assert proof is not None
    with pytest.raises(OprfError, match="does not verify"):
        oprf.verify_proof(pk, blinded, evaluated, proof)


def test_tampered_or_reordered_elements_fail(voprf_batch: tuple[Any, ...]) -> None:
    _, pk, blinded, evaluated, proof = voprf_batch
    other = oprf.blind(b"other", MODE_VOPRF)[1]
    for tampered in ([other, *evaluated[1:]], [evaluated[1], evaluated[0], evaluated[2]]):
        with pytest.raises(OprfError, match="does not verify"):
            oprf.verify_proof(pk, blinded, tampered, proof)
    with pytest.raises(OprfError, match="does not verify"):
        oprf.verify_proof(pk, [other, *blinded[1:]], evaluated, proof)
    with pytest.raises(OprfError, match="does not verify"):
        oprf.verify_proof(pk, blinded[:2], evaluated[:2], proof)


@pytest.mark.parametrize("position", [0, 31, 32, 63])
def test_tampered_proof_fails(voprf_batch: tuple[Any, ...], position: int) -> None:
    _, pk, blinded, evaluated, proof = voprf_batch
    tampered = bytearray(proof)
    tampered[position] ^= 0x01
    with pytest.raises(OprfError):
        oprf.verify_proof(pk, blinded, evaluated, bytes(tampered))


def test_non_canonical_proof_scalar_is_rejected(voprf_batch: tuple[Any, ...]) -> None:
    """`s + order` is the same scalar to libsodium's multiplication: it must not verify."""
    _, pk, blinded, evaluated, proof = voprf_batch
    c, s = proof[:32], int.from_bytes(proof[32:], "little")
    with pytest.raises(OprfError, match="not reduced"):
        oprf.verify_proof(pk, blinded, evaluated, c + le(s + ORDER))
    with pytest.raises(OprfError, match="not reduced"):
        oprf.verify_proof(pk, blinded, evaluated, le(int.from_bytes(c, "little") + ORDER) + le(s))


def test_malformed_batches_are_rejected(voprf_batch: tuple[Any, ...]) -> None:
    sk, pk, blinded, evaluated, proof = voprf_batch
    with pytest.raises(OprfError, match="as many"):
        oprf.verify_proof(pk, blinded, evaluated[:2], proof)
    with pytest.raises(OprfError, match="batch"):
        oprf.verify_proof(pk, [], [], proof)
    with pytest.raises(OprfError, match="batch"):
        oprf.evaluate(sk, [], MODE_VOPRF)
    with pytest.raises(OprfError, match="64 bytes"):
        oprf.verify_proof(pk, blinded, evaluated, proof[:63])
    with pytest.raises(OprfError, match="64 bytes"):
        oprf.verify_proof(pk, blinded, evaluated, proof + b"\x00")


# -- invalid elements and scalars --------------------------------------------------------------


BAD_ELEMENTS = [
    pytest.param(IDENTITY, "identity element is not allowed", id="identity"),
    pytest.param(NOT_A_POINT, "not a valid", id="not-a-point"),
    pytest.param(le(2**255 - 18), "not a valid", id="non-canonical-field-element"),
    pytest.param(b"\x01" + bytes(31), "not a valid", id="negative-encoding"),
    pytest.param(bytes(31), "32 bytes", id="short"),
    pytest.param(bytes(33), "32 bytes", id="long"),
    pytest.param("00" * 32, "32 bytes", id="str"),
]


@pytest.mark.parametrize(("element", "message"), BAD_ELEMENTS)
def test_bad_elements_are_rejected_everywhere(
    voprf_batch: tuple[Any, ...], element: Any, message: str
) -> None:
    sk, pk, blinded, evaluated, proof = voprf_batch
    x = oprf.serial_input("12345")
    r, _ = oprf.blind(x, MODE_OPRF)
    with pytest.raises(OprfError, match=message):
        oprf.finalize(x, r, element)
    for mode in (MODE_OPRF, MODE_VOPRF):
        with pytest.raises(OprfError, match=message):
            oprf.evaluate(sk, [blinded[0], element], mode)
    with pytest.raises(OprfError, match=message):
        oprf.verify_proof(element, blinded, evaluated, proof)
    with pytest.raises(OprfError, match=message):
        oprf.verify_proof(pk, [*blinded[:2], element], evaluated, proof)
    with pytest.raises(OprfError, match=message):
        oprf.verify_proof(pk, blinded, [element, *evaluated[1:]], proof)


BAD_SCALARS = [
    pytest.param(le(ORDER), "not reduced", id="order"),
    pytest.param(le(ORDER + 1), "not reduced", id="order+1"),
    pytest.param(b"\xff" * 32, "not reduced", id="all-ones"),
    pytest.param(bytes(32), "zero", id="zero"),
    pytest.param(bytes(31), "32 bytes", id="short"),
]


@pytest.mark.parametrize(("scalar", "message"), BAD_SCALARS)
def test_bad_keys_blinds_and_nonces_are_rejected(scalar: bytes, message: str) -> None:
    x = oprf.serial_input("12345")
    sk, _ = oprf.generate_key_pair(MODE_VOPRF)
    _, blinded = oprf.blind(x, MODE_VOPRF)
    evaluated = oprf.evaluate(sk, [blinded], MODE_VOPRF)[0][0]
    with pytest.raises(OprfError, match=message):
        oprf.evaluate(scalar, [blinded], MODE_VOPRF)
    with pytest.raises(OprfError, match=message):
        oprf.evaluate(sk, [blinded], MODE_VOPRF, proof_random=scalar)
    with pytest.raises(OprfError, match=message):
        oprf.evaluate_direct(scalar, x, MODE_OPRF)
    with pytest.raises(OprfError, match=message):
        oprf.evaluate_direct_many(scalar, [x], MODE_OPRF)
    with pytest.raises(OprfError, match=message):
        oprf.public_key(scalar)
    with pytest.raises(OprfError, match=message):
        oprf.blind(x, MODE_OPRF, scalar)
    with pytest.raises(OprfError, match=message):
        oprf.finalize(x, scalar, evaluated)


def test_largest_canonical_scalar_is_accepted() -> None:
    sk = le(ORDER - 1)
    x = oprf.serial_input("12345")
    r, blinded = oprf.blind(x, MODE_OPRF, le(ORDER - 1))
    assert oprf.finalize(x, r, oprf.evaluate(sk, [blinded], MODE_OPRF)[0][0]) == (
        oprf.evaluate_direct(sk, x, MODE_OPRF)
    )


def test_local_misuse_raises_value_error() -> None:
    sk, _ = oprf.generate_key_pair(MODE_OPRF)
    _, blinded = oprf.blind(b"x", MODE_OPRF)
    with pytest.raises(ValueError, match="mode"):
        oprf.context_string(2)
    with pytest.raises(ValueError, match="mode"):
        oprf.evaluate_direct(sk, b"x", 2)
    with pytest.raises(ValueError, match="VOPRF"):
        oprf.evaluate(sk, [blinded], MODE_OPRF, proof_random=sk)
    with pytest.raises(ValueError, match="longer"):
        oprf.blind(bytes(0x10000), MODE_OPRF)
    with pytest.raises(ValueError, match="seed"):
        oprf.derive_key_pair(bytes(31), b"", MODE_OPRF)
    assert oprf.evaluate_direct(sk, bytes(0xFFFF), MODE_OPRF)


# -- the serial input --------------------------------------------------------------------------


def test_serial_input_is_domain_separated_and_length_prefixed() -> None:
    assert oprf.serial_input("AB12") == b"iarms-serial-v1\x00\x04AB12"
    assert oprf.serial_input("Ω") == b"iarms-serial-v1\x00\x02\xce\xa9"
    assert oprf.serial_input("x" * 255).startswith(b"iarms-serial-v1\x00\xff")
    for bad in ("", "x" * 256, "Ω" * 128):
        with pytest.raises(ValueError, match="1 to 255 bytes"):
            oprf.serial_input(bad)


# -- peers' bytes never crash ------------------------------------------------------------------

BYTES32 = st.binary(min_size=32, max_size=32)
FAST = settings(max_examples=150, deadline=None)


@FAST
@given(element=BYTES32)
def test_random_evaluated_element_is_valid_or_rejected(element: bytes) -> None:
    x = oprf.serial_input("12345")
    r, _ = oprf.blind(x, MODE_OPRF, le(7))
    try:
        output = oprf.finalize(x, r, element)
    except OprfError:
        return
    assert len(output) == oprf.OUTPUT_SIZE


@FAST
@given(element=BYTES32)
def test_random_blinded_element_is_valid_or_rejected(element: bytes) -> None:
    try:
        evaluated, proof = oprf.evaluate(le(5), [element], MODE_VOPRF)
    except OprfError:
        return
    assert proof is not None
    oprf.verify_proof(oprf.public_key(le(5)), [element], evaluated, proof)


@FAST
@given(pk=BYTES32, element=BYTES32, c=BYTES32, s=BYTES32)
def test_random_proof_parts_are_rejected(pk: bytes, element: bytes, c: bytes, s: bytes) -> None:
    blinded = [oprf.blind(b"x", MODE_VOPRF, le(3))[1]]
    for args in ((pk, blinded, blinded, c + s), (blinded[0], blinded, [element], c + s)):
        with pytest.raises(OprfError):
            oprf.verify_proof(*args)
