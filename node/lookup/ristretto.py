"""The ristretto255 group of RFC 9497's ristretto255-SHA512 suite, over libsodium.

This is the one module that touches the libsodium binding (`rbcl`, which bundles
libsodium; see docs/adr/0003-libsodium-binding.md). It adds no group arithmetic
of its own: it composes libsodium's ristretto255 operations and SHA-512 exactly
as RFC 9497 §4.1 and RFC 9380 §5.3.1 (`expand_message_xmd`) prescribe, and it
validates every element and scalar that crosses a trust boundary.

Elements are their canonical 32-byte encodings; scalars are 32 bytes,
little-endian, reduced modulo the group order.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import sys

import rbcl

from node.errors import OprfError

ELEMENT_SIZE = 32
SCALAR_SIZE = 32
HASH_SIZE = 64

_IDENTITY = bytes(ELEMENT_SIZE)
_ZERO_SCALAR = bytes(SCALAR_SIZE)
_SHA512_BLOCK = 128
_EXPAND_SUFFIX = HASH_SIZE.to_bytes(2, "big") + b"\x00"

# rbcl writes its bundled libsodium to a fresh temporary file at every import
# and never removes it; once loaded, the file is not needed (POSIX), so delete
# it rather than leak 2.8 MB per process (every worker of a process pool).
with contextlib.suppress(KeyError, AttributeError, OSError, TypeError):
    os.unlink(sys.modules["rbcl._sodium"].lib_path)


class Expander:
    """`expand_message_xmd` with SHA-512 (RFC 9380 §5.3.1) for one DST and 64 bytes out.

    RFC 9497 only ever asks for 64 uniform bytes, so `ell` is 1 and the output
    is `b_1`. The SHA-512 state after the zero block `Z_pad` is computed once.
    """

    __slots__ = ("_after_pad", "_dst_prime", "_suffix")

    def __init__(self, dst: bytes) -> None:
        """Prepare the expander.

        Args:
            dst: The domain separation tag (at most 255 bytes).

        Raises:
            ValueError: If the DST is empty or longer than 255 bytes.
        """
        if not 0 < len(dst) <= 255:
            raise ValueError("expand_message_xmd: DST must be 1 to 255 bytes")
        self._dst_prime = dst + bytes([len(dst)])
        self._suffix = _EXPAND_SUFFIX + self._dst_prime
        self._after_pad = hashlib.sha512(bytes(_SHA512_BLOCK))

    def expand(self, msg: bytes) -> bytes:
        """Return the 64 uniform bytes `expand_message_xmd(msg, DST, 64)`."""
        h = self._after_pad.copy()
        h.update(msg)
        h.update(self._suffix)
        return hashlib.sha512(h.digest() + b"\x01" + self._dst_prime).digest()


def hash_to_group(expander: Expander, msg: bytes) -> bytes:
    """Map `msg` to an element (RFC 9497 §4.1 HashToGroup, one-way map of RFC 9496).

    Raises:
        OprfError: If the element is the identity (RFC 9497 InvalidInputError).
    """
    element: bytes = rbcl.crypto_core_ristretto255_from_hash(expander.expand(msg))
    if element == _IDENTITY:
        raise OprfError("input maps to the identity element")
    return element


def hash_to_scalar(expander: Expander, msg: bytes) -> bytes:
    """Map `msg` to a scalar: 64 uniform bytes read little-endian, reduced mod the order."""
    scalar: bytes = rbcl.crypto_core_ristretto255_scalar_reduce(expander.expand(msg))
    return scalar


def decode_element(data: object, what: str = "element") -> bytes:
    """Check a peer's element encoding (RFC 9497 DeserializeElement).

    libsodium accepts the all-zero encoding of the identity; RFC 9497 requires
    rejecting it, and it is the identity's only encoding.

    Args:
        data: The received value.
        what: What the value is, for the error message.

    Returns:
        The encoding, unchanged.

    Raises:
        OprfError: If it is not 32 bytes, not a canonical ristretto255
            encoding, or the identity.
    """
    if not isinstance(data, bytes) or len(data) != ELEMENT_SIZE:
        raise OprfError(f"{what}: expected {ELEMENT_SIZE} bytes")
    if data == _IDENTITY:
        raise OprfError(f"{what}: the identity element is not allowed")
    if not rbcl.crypto_core_ristretto255_is_valid_point(data):
        raise OprfError(f"{what}: not a valid ristretto255 encoding")
    return data


def decode_scalar(data: object, what: str = "scalar", *, nonzero: bool = False) -> bytes:
    """Check a scalar encoding (RFC 9497 DeserializeScalar): 32 bytes, below the order.

    The canonicity test reduces the value with libsodium and compares in
    constant time, so it is safe on secret scalars (keys, blinds).

    Args:
        data: The value.
        what: What the value is, for the error message.
        nonzero: Also reject zero (keys, blinds, proof nonces).

    Returns:
        The encoding, unchanged.

    Raises:
        OprfError: If it is not 32 bytes, not below the group order, or zero
            when `nonzero` is set.
    """
    if not isinstance(data, bytes) or len(data) != SCALAR_SIZE:
        raise OprfError(f"{what}: expected {SCALAR_SIZE} bytes")
    reduced = rbcl.crypto_core_ristretto255_scalar_reduce(data + _ZERO_SCALAR)
    if not hmac.compare_digest(reduced, data):
        raise OprfError(f"{what}: scalar is not reduced modulo the group order")
    if nonzero and hmac.compare_digest(data, _ZERO_SCALAR):
        raise OprfError(f"{what}: scalar must not be zero")
    return data


def is_zero_scalar(scalar: bytes) -> bool:
    """Return whether a reduced scalar is zero, in constant time."""
    return hmac.compare_digest(scalar, _ZERO_SCALAR)


def mult(scalar: bytes, element: bytes) -> bytes:
    """Return `scalar * element` for a reduced scalar and a validated element.

    Raises:
        OprfError: If the product is the identity (a zero scalar, or an
            identity reached by a peer's adversarial choice of elements).
    """
    try:
        product: bytes = rbcl.crypto_scalarmult_ristretto255(scalar, element)
    except RuntimeError as e:  # libsodium returns -1 on an identity result
        raise OprfError("scalar multiplication gave the identity element") from e
    return product


def mult_base(scalar: bytes) -> bytes:
    """Return `scalar * G` for the ristretto255 generator G.

    Raises:
        OprfError: If the scalar is zero.
    """
    try:
        product: bytes = rbcl.crypto_scalarmult_ristretto255_base(scalar)
    except RuntimeError as e:
        raise OprfError("scalar multiplication gave the identity element") from e
    return product


def add(p: bytes, q: bytes) -> bytes:
    """Return the group sum of two elements (the identity is encoded as zeros)."""
    total: bytes = rbcl.crypto_core_ristretto255_add(p, q)
    return total


def scalar_random() -> bytes:
    """Return a uniformly random non-zero scalar (RFC 9497 RandomScalar)."""
    scalar: bytes = rbcl.crypto_core_ristretto255_scalar_random()
    return scalar


def scalar_invert(scalar: bytes) -> bytes:
    """Return the inverse of a non-zero scalar modulo the group order."""
    inverse: bytes = rbcl.crypto_core_ristretto255_scalar_invert(scalar)
    return inverse


def scalar_mul(s: bytes, t: bytes) -> bytes:
    """Return `s * t` modulo the group order."""
    product: bytes = rbcl.crypto_core_ristretto255_scalar_mul(s, t)
    return product


def scalar_sub(s: bytes, t: bytes) -> bytes:
    """Return `s - t` modulo the group order."""
    difference: bytes = rbcl.crypto_core_ristretto255_scalar_sub(s, t)
    return difference
