"""The OPRF of the private serial lookup: RFC 9497, ciphersuite ristretto255-SHA512.

Two modes: OPRF (mode 0) and VOPRF (mode 1), where the server proves with one
batched DLEQ proof (RFC 9497 §2.2) that it used the key behind its published
public key for every element of a batch. A lookup runs:

    querier (client)                               owner (server)
    r, B = blind(x, mode)                     ->
                                              <-   [E], proof = evaluate(sk, [B], mode)
    verify_proof(pk, [B], [E], proof)   (VOPRF only)
    y = finalize(x, r, E)

with `x = serial_input(serial)`. The owner builds its index with
`evaluate_direct(sk, x, mode)`, which equals `y` without any blinding; the
querier looks `y` up in that index.

Everything that comes from a peer (elements, proofs, public keys) is validated
and raises `OprfError`; local misuse (an unknown mode, an input longer than
RFC 9497 allows, a proof nonce in OPRF mode) raises `ValueError`. Group
operations are libsodium's (see `node.lookup.ristretto`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from node.lookup.ristretto import (
    ELEMENT_SIZE,
    HASH_SIZE,
    SCALAR_SIZE,
    Expander,
    OprfError,
    add,
    decode_element,
    decode_scalar,
    hash_to_group,
    hash_to_scalar,
    is_zero_scalar,
    mult,
    mult_base,
    scalar_invert,
    scalar_mul,
    scalar_random,
    scalar_sub,
)

__all__ = [
    "ELEMENT_SIZE",
    "MAX_BATCH",
    "MODE_OPRF",
    "MODE_VOPRF",
    "OUTPUT_SIZE",
    "PROOF_SIZE",
    "SCALAR_SIZE",
    "OprfError",
    "blind",
    "context_string",
    "derive_key_pair",
    "evaluate",
    "evaluate_direct",
    "evaluate_direct_many",
    "finalize",
    "generate_key_pair",
    "public_key",
    "serial_input",
    "verify_proof",
]

MODE_OPRF = 0
MODE_VOPRF = 1
OUTPUT_SIZE = HASH_SIZE
PROOF_SIZE = 2 * SCALAR_SIZE
MAX_BATCH = 0xFFFF
"""Largest batch: the composite transcript encodes an element's index in 2 bytes."""

MAX_INPUT = 0xFFFF
SERIAL_DOMAIN = b"iarms-serial-v1"
MAX_SERIAL_BYTES = 255

_ELEMENT_LEN = ELEMENT_SIZE.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class _Suite:
    """The per-mode constants: context string and the prepared DSTs of §4.1 and §3.2.1."""

    context: bytes
    to_group: Expander
    to_scalar: Expander
    derive: Expander
    seed_dst: bytes

    @classmethod
    def for_mode(cls, mode: int) -> _Suite:
        context = b"OPRFV1-" + bytes([mode]) + b"-ristretto255-SHA512"
        return cls(
            context=context,
            to_group=Expander(b"HashToGroup-" + context),
            to_scalar=Expander(b"HashToScalar-" + context),
            derive=Expander(b"DeriveKeyPair" + context),
            seed_dst=b"Seed-" + context,
        )


_SUITES = {mode: _Suite.for_mode(mode) for mode in (MODE_OPRF, MODE_VOPRF)}


def _suite(mode: int) -> _Suite:
    try:
        return _SUITES[mode]
    except KeyError:
        raise ValueError(f"unsupported OPRF mode {mode!r} (0 = OPRF, 1 = VOPRF)") from None


def _prefixed(data: bytes) -> bytes:
    """Return `I2OSP(len(data), 2) || data`."""
    return len(data).to_bytes(2, "big") + data


def _check_input(data: bytes) -> None:
    if len(data) > MAX_INPUT:
        raise ValueError(f"OPRF input longer than {MAX_INPUT} bytes")


def _finalize_hash(data: bytes, element: bytes) -> bytes:
    """Hash(I2OSP(len(input), 2) || input || I2OSP(32, 2) || element || "Finalize")."""
    return hashlib.sha512(_prefixed(data) + _ELEMENT_LEN + element + b"Finalize").digest()


def context_string(mode: int) -> bytes:
    """Return RFC 9497's contextString: `"OPRFV1-" || I2OSP(mode, 1) || "-ristretto255-SHA512"`.

    Raises:
        ValueError: If the mode is neither `MODE_OPRF` nor `MODE_VOPRF`.
    """
    return _suite(mode).context


def derive_key_pair(seed: bytes, info: bytes, mode: int) -> tuple[bytes, bytes]:
    """Derive a key pair from a secret seed (RFC 9497 §3.2.1 DeriveKeyPair).

    Args:
        seed: 32 secret, uniformly random bytes.
        info: Public key information (for example a key identifier).
        mode: `MODE_OPRF` or `MODE_VOPRF`; the same seed gives different keys.

    Returns:
        `(skS, pkS)`: the 32-byte private scalar and the 32-byte public element.

    Raises:
        ValueError: On a seed that is not 32 bytes, an `info` longer than
            65535 bytes or an unknown mode.
    """
    suite = _suite(mode)
    if len(seed) != SCALAR_SIZE:
        raise ValueError(f"seed must be {SCALAR_SIZE} bytes")
    if len(info) > MAX_INPUT:
        raise ValueError(f"info longer than {MAX_INPUT} bytes")
    derive_input = seed + _prefixed(info)
    for counter in range(256):
        sk = hash_to_scalar(suite.derive, derive_input + bytes([counter]))
        if not is_zero_scalar(sk):
            return sk, mult_base(sk)
    raise ValueError("DeriveKeyPairError: no non-zero scalar in 256 tries")  # pragma: no cover


def generate_key_pair(mode: int) -> tuple[bytes, bytes]:
    """Return a fresh random key pair `(skS, pkS)` (RFC 9497 GenerateKeyPair).

    Raises:
        ValueError: On an unknown mode.
    """
    _suite(mode)
    sk = scalar_random()
    return sk, mult_base(sk)


def public_key(sk: bytes) -> bytes:
    """Return the public element `pkS = skS * G` of a private key.

    Raises:
        OprfError: If the key is not a canonical, non-zero scalar.
    """
    return mult_base(decode_scalar(sk, "private key", nonzero=True))


def serial_input(canonical_serial: str) -> bytes:
    """Return the OPRF input of a lookup for an already canonicalised serial number.

    The input is `b"iarms-serial-v1" || I2OSP(len(utf8), 2) || utf8`: the prefix
    keeps serial lookups apart from any other use of the same key, and the
    length prefix keeps the encoding unambiguous.

    Raises:
        ValueError: If the serial is empty or longer than 255 bytes in UTF-8.
    """
    utf8 = canonical_serial.encode("utf-8")
    if not 0 < len(utf8) <= MAX_SERIAL_BYTES:
        raise ValueError(f"serial must be 1 to {MAX_SERIAL_BYTES} bytes in UTF-8")
    return SERIAL_DOMAIN + _prefixed(utf8)


def blind(input: bytes, mode: int, blind: bytes | None = None) -> tuple[bytes, bytes]:
    """Blind an input for the server (client side, RFC 9497 Blind).

    Args:
        input: The private input (see `serial_input`), at most 65535 bytes.
        mode: `MODE_OPRF` or `MODE_VOPRF`.
        blind: A fixed blind, for test vectors only; random when omitted.

    Returns:
        `(blind, blinded_element)`: keep the blind secret for `finalize`;
        send the blinded element to the server.

    Raises:
        ValueError: On an unknown mode or an over-long input.
        OprfError: If a given blind is not a canonical non-zero scalar, or
            the input hashes to the identity (negligibly likely).
    """
    suite = _suite(mode)
    _check_input(input)
    r = scalar_random() if blind is None else decode_scalar(blind, "blind", nonzero=True)
    return r, mult(r, hash_to_group(suite.to_group, input))


def finalize(input: bytes, blind: bytes, evaluated: bytes) -> bytes:
    """Unblind the server's answer and hash it to the PRF output (RFC 9497 Finalize).

    In VOPRF mode, call `verify_proof` on the whole batch first.

    Args:
        input: The input given to `blind`.
        blind: The blind `blind` returned.
        evaluated: The server's evaluated element for this input.

    Returns:
        The 64-byte PRF output.

    Raises:
        ValueError: On an over-long input.
        OprfError: If the evaluated element is invalid or the identity, or
            the blind is not a canonical non-zero scalar.
    """
    _check_input(input)
    element = decode_element(evaluated, "evaluated element")
    r = decode_scalar(blind, "blind", nonzero=True)
    return _finalize_hash(input, mult(scalar_invert(r), element))


def evaluate(
    sk: bytes, blinded: Sequence[bytes], mode: int, proof_random: bytes | None = None
) -> tuple[list[bytes], bytes | None]:
    """Evaluate a batch of blinded elements (server side, RFC 9497 BlindEvaluate).

    Args:
        sk: The server's private key.
        blinded: The client's blinded elements, 1 to `MAX_BATCH` of them.
        mode: `MODE_OPRF` or `MODE_VOPRF`.
        proof_random: A fixed proof nonce, for test vectors only (VOPRF).

    Returns:
        The evaluated elements, in order, and in VOPRF mode one 64-byte proof
        `c || s` covering them all (`None` in OPRF mode).

    Raises:
        ValueError: On an unknown mode, or a proof nonce in OPRF mode.
        OprfError: On an empty or over-long batch, an invalid or identity
            element, or a key that is not a canonical non-zero scalar.
    """
    suite = _suite(mode)
    if mode == MODE_OPRF and proof_random is not None:
        raise ValueError("proof_random is only meaningful in VOPRF mode")
    k = decode_scalar(sk, "private key", nonzero=True)
    elements = _decode_batch(blinded, "blinded element")
    evaluated = [mult(k, element) for element in elements]
    if mode == MODE_OPRF:
        return evaluated, None
    r = scalar_random() if proof_random is None else decode_scalar(proof_random, nonzero=True)
    pk = mult_base(k)
    m = _combine(_composite_weights(suite, pk, elements, evaluated), elements)
    z = mult(k, m)
    c = _challenge(suite, pk, m, z, mult_base(r), mult(r, m))
    return evaluated, c + scalar_sub(r, scalar_mul(c, k))


def verify_proof(
    pk: bytes, blinded: Sequence[bytes], evaluated: Sequence[bytes], proof: bytes
) -> None:
    """Check a server's batched DLEQ proof (RFC 9497 §2.2.2 VerifyProof, VOPRF).

    Args:
        pk: The server's published public key.
        blinded: The blinded elements the client sent, in order.
        evaluated: The evaluated elements the server returned, in order.
        proof: The server's 64-byte proof `c || s`.

    Raises:
        OprfError: If anything is malformed (sizes, elements, non-canonical
            scalars) or the proof does not verify.
    """
    suite = _SUITES[MODE_VOPRF]
    key = decode_element(pk, "public key")
    if len(blinded) != len(evaluated):
        raise OprfError("proof: as many evaluated elements as blinded ones are needed")
    cs = _decode_batch(blinded, "blinded element")
    ds = _decode_batch(evaluated, "evaluated element")
    if not isinstance(proof, bytes) or len(proof) != PROOF_SIZE:
        raise OprfError(f"proof: expected {PROOF_SIZE} bytes")
    c = decode_scalar(proof[:SCALAR_SIZE], "proof challenge")
    s = decode_scalar(proof[SCALAR_SIZE:], "proof response")
    weights = _composite_weights(suite, key, cs, ds)
    m = _combine(weights, cs)
    z = _combine(weights, ds)
    t2 = add(mult_base(s), mult(c, key))
    t3 = add(mult(s, m), mult(c, z))
    if not hmac.compare_digest(_challenge(suite, key, m, z, t2, t3), c):
        raise OprfError("proof does not verify")


def evaluate_direct(sk: bytes, input: bytes, mode: int) -> bytes:
    """Compute the PRF output of the server's own input (RFC 9497 Evaluate).

    Equals what a client gets from `blind`, `evaluate` and `finalize` on the
    same input and key; this is how a node indexes its own records.

    Raises:
        ValueError: On an unknown mode or an over-long input.
        OprfError: If the key is not a canonical non-zero scalar.
    """
    suite = _suite(mode)
    k = decode_scalar(sk, "private key", nonzero=True)
    _check_input(input)
    return _finalize_hash(input, mult(k, hash_to_group(suite.to_group, input)))


def evaluate_direct_many(sk: bytes, inputs: Iterable[bytes], mode: int) -> list[bytes]:
    """Return `evaluate_direct(sk, x, mode)` for each input, checking the key once.

    Raises:
        ValueError: On an unknown mode or an over-long input.
        OprfError: If the key is not a canonical non-zero scalar.
    """
    to_group = _suite(mode).to_group
    k = decode_scalar(sk, "private key", nonzero=True)
    outputs = []
    for data in inputs:
        _check_input(data)
        outputs.append(_finalize_hash(data, mult(k, hash_to_group(to_group, data))))
    return outputs


def _decode_batch(elements: Sequence[bytes], what: str) -> list[bytes]:
    if not 0 < len(elements) <= MAX_BATCH:
        raise OprfError(f"batch must hold 1 to {MAX_BATCH} elements")
    return [decode_element(e, f"{what} {i}") for i, e in enumerate(elements)]


def _composite_weights(
    suite: _Suite, pk: bytes, blinded: Sequence[bytes], evaluated: Sequence[bytes]
) -> list[bytes]:
    """The scalars d_i of ComputeComposites (§2.2.1), one per (C_i, D_i) pair."""
    seed = hashlib.sha512(_ELEMENT_LEN + pk + _prefixed(suite.seed_dst)).digest()
    prefix = _prefixed(seed)
    return [
        hash_to_scalar(
            suite.to_scalar,
            prefix + i.to_bytes(2, "big") + _ELEMENT_LEN + c + _ELEMENT_LEN + d + b"Composite",
        )
        for i, (c, d) in enumerate(zip(blinded, evaluated, strict=True))
    ]


def _combine(weights: Sequence[bytes], elements: Sequence[bytes]) -> bytes:
    """Return the sum of `weights[i] * elements[i]` (a composite element)."""
    total = mult(weights[0], elements[0])
    for weight, element in zip(weights[1:], elements[1:], strict=True):
        total = add(total, mult(weight, element))
    return total


def _challenge(suite: _Suite, pk: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes) -> bytes:
    """The Fiat-Shamir challenge `c` of GenerateProof / VerifyProof (§2.2)."""
    transcript = b"".join(_ELEMENT_LEN + e for e in (pk, m, z, t2, t3)) + b"Challenge"
    return hash_to_scalar(suite.to_scalar, transcript)
