"""Sealing a share to its aggregator with HPKE (RFC 9180), bound to its round and parties
(docs/PROTOCOL.md §4.2).

The suite is DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM (KEM 0x0020,
KDF 0x0001, AEAD 0x0001), base mode, single shot, from `cryptography`'s `hpke`
module: the sealed bytes are `enc` (the 32-byte ephemeral public key) followed by
the AES-GCM ciphertext of the share and its 16-byte tag. Each node publishes its
X25519 public key in its signed descriptor (`hpke_key`); the secret is kept
beside its signing key (`node.identity`).

`info` binds a share to the round, the query, the contributor and the aggregator:

    info = b"iarms-stats-v1" (14 bytes) || round_id (16) || contributor (3, ASCII)
           || aggregator (3, ASCII) || query (1 to 28 bytes, ASCII)

so a share cannot be replayed into another round or query, passed off as another
contributor's, or forwarded to another aggregator: it does not open there. Every
field but the last has a fixed length, so the layout is unambiguous, and the whole
is at most 64 bytes, a length every HPKE library takes.

Why not the post-quantum hybrid ML-KEM-768+X25519, which `cryptography` also
offers (ADR 0009): it defends against an adversary who records sealed shares
today and breaks X25519 with a quantum computer later. To learn a contributor's
counts that adversary must record and break its shares to *every* aggregator of
a round, and what it learns is one country's aggregate counts for one period,
figures whose sensitivity fades in years, not decades; the signatures and the
lookups' OPRF are not post-quantum either. Meanwhile the hybrid's HPKE code
points are still an Internet-Draft (draft-ietf-hpke-pq), not RFC 9180, so a
second implementation could not be built from a stable specification, and its
keys (1,216 bytes) and encapsulations (1,120 bytes) are over 35 times larger. A
hybrid key can be added later as a new descriptor field and `info` version
without breaking nodes that know only this suite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from node.errors import SealedShareError, ShareError, ValidationError
from node.protocol.model import Peer
from node.stats.shares import CELL_BYTES, Share, decode_share, encode_share

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
#: The suite's RFC 9180 identifiers (KEM, KDF, AEAD).
SUITE_IDS = (0x0020, 0x0001, 0x0001)
INFO_LABEL = b"iarms-stats-v1"
KEY_BYTES = 32
ENC_BYTES = 32
TAG_BYTES = 16
ROUND_ID_BYTES = 16
#: A query's name as `info` carries it: lower-case ASCII letters, digits and `_`, 1 to 28.
QUERY_NAME = re.compile(r"[a-z0-9_]{1,28}")
_COUNTRY = re.compile(r"[A-Z]{3}")


def share_info(round_id: bytes, query: str, contributor: str, aggregator: str) -> bytes:
    """The HPKE `info` that binds a share to its round, query, contributor and aggregator.

    Raises:
        ValidationError: a round id that is not 16 bytes, a query name outside
            `QUERY_NAME`, or a country that is not 3 letters A-Z.
    """
    if not isinstance(round_id, bytes) or len(round_id) != ROUND_ID_BYTES:
        raise ValidationError(f"a round id is {ROUND_ID_BYTES} bytes")
    if not QUERY_NAME.fullmatch(query):
        raise ValidationError(f"query {query!r}: 1 to 28 of a-z, 0-9 and _")
    for country in (contributor, aggregator):
        if not _COUNTRY.fullmatch(country):
            raise ValidationError(f"country {country!r} is not ISO 3166-1 alpha-3 (A-Z)")
    return INFO_LABEL + round_id + contributor.encode() + aggregator.encode() + query.encode()


def sealed_size(cells: int) -> int:
    """The length of a sealed share of a query of `cells` cells."""
    return ENC_BYTES + CELL_BYTES * cells + TAG_BYTES


def generate_key() -> X25519PrivateKey:
    """A new HPKE key pair for this node (its secret goes to disk, `node.identity`)."""
    return X25519PrivateKey.generate()


def public_key(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte X25519 public key published in the descriptor."""
    return key.public_key().public_bytes_raw()


def aggregator_key(peer: Peer) -> bytes:
    """The HPKE public key of `peer` as an aggregator.

    Raises:
        ValidationError: the peer's descriptor published none (an older iarms-node).
    """
    if peer.hpke_key is None:
        raise ValidationError(
            f"{peer.country} cannot be an aggregator: its descriptor publishes no HPKE key "
            "(it runs an older iarms-node, or this node has not fetched its descriptor since)",
            "aggregators",
        )
    return peer.hpke_key


def seal_share(share: Sequence[int], recipient: bytes, info: bytes) -> bytes:
    """Seal `share` (its wire form, `shares.encode_share`) to the aggregator's key `recipient`.

    Raises:
        ShareError: the share is malformed.
        ValidationError: `recipient` is not a usable X25519 public key.
    """
    plaintext = encode_share(share)
    try:
        return SUITE.encrypt(plaintext, X25519PublicKey.from_public_bytes(recipient), info=info)
    except ValueError as e:  # not 32 bytes, or a low-order point
        raise ValidationError(f"the aggregator's HPKE key cannot be used: {e}") from e


def open_share(sealed: bytes, key: X25519PrivateKey, info: bytes, cells: int) -> Share:
    """Open a share sealed to this node, for the round and parties `info` names.

    Raises:
        ShareError: `sealed` is not the size of a sealed share of `cells` cells.
        SealedShareError: it does not open with `key` and `info` (sealed for another
            round, query, contributor or aggregator, to another key, or altered).
    """
    if not isinstance(sealed, bytes) or len(sealed) != sealed_size(cells):
        size = len(sealed) if isinstance(sealed, bytes) else type(sealed).__name__
        raise ShareError(
            f"a sealed share of this query is {sealed_size(cells)} bytes "
            f"({ENC_BYTES} + {cells} cells of {CELL_BYTES} + {TAG_BYTES}), got {size}"
        )
    try:
        plaintext = SUITE.decrypt(sealed, key, info=info)
    except (InvalidTag, ValueError) as e:
        raise SealedShareError(
            "the sealed share does not open with this node's HPKE key for this round, "
            "query, contributor and aggregator"
        ) from e
    return decode_share(plaintext, cells)
