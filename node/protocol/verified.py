"""Ed25519 signatures one node has already found valid, so that the same bytes are not
checked twice.

A trace's originator re-reads the whole chain at every report (which receipts
verify, which keys the forwards vouch for); without this each report would
check every item again, and a five-hop trace would cost hundreds of checks.
Whether a signature verifies under a public key is a pure function of the
key, the signature and the message, so remembering the answer weakens no
check: which key a country held at a time is still resolved every time
(`KeyHistory`), only the arithmetic is not repeated. Only valid signatures
are kept (a forgery is checked each time it is presented, and fails; the
node's own signatures, `made`, are valid by construction), by the
SHA-256 of the triple (32 bytes each, whatever the statement's size), at most
`MAX_KEPT` of them, the least recently used forgotten first. One per node
(`PeersService` hands it out with the key history it reads), never shared
between nodes. No I/O.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

#: Valid signatures remembered (a trace holds a few dozen items; many traces at once).
MAX_KEPT = 8192
#: Public keys kept decoded (a node's peers' and its own, with their past keys).
MAX_KEYS = 1024


class VerifiedSignatures:
    """The valid `(public key, signature, message)` triples seen lately (module docstring)."""

    def __init__(self, max_kept: int = MAX_KEPT) -> None:
        self._kept: OrderedDict[bytes, None] = OrderedDict()
        self._max = max_kept

    def check(self, public: bytes, signature: bytes, message: bytes) -> None:
        """Verify `signature` over `message` under the raw Ed25519 key `public`, unless this
        exact triple verified before.

        Raises:
            cryptography.exceptions.InvalidSignature: it does not verify.
        """
        triple = _digest(public, signature, message)
        if triple in self._kept:
            self._kept.move_to_end(triple)
            return
        verify_ed25519(public, signature, message)
        self._keep(triple)

    def made(self, public: bytes, signature: bytes, message: bytes) -> None:
        """Remember a signature this node has just made with the private key of `public`:
        valid by construction, so reading back what it signed checks nothing."""
        self._keep(_digest(public, signature, message))

    def _keep(self, triple: bytes) -> None:
        self._kept[triple] = None
        if len(self._kept) > self._max:
            self._kept.popitem(last=False)


def _digest(public: bytes, signature: bytes, message: bytes) -> bytes:
    """The SHA-256 of the triple, each part's length first (no two triples share it)."""
    h = hashlib.sha256()
    for part in (public, signature):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    h.update(message)
    return h.digest()


def verify_ed25519(public: bytes, signature: bytes, message: bytes) -> None:
    """Verify `signature` over `message` under the raw Ed25519 key `public`.

    Raises:
        cryptography.exceptions.InvalidSignature: it does not verify.
        ValueError: `public` is no Ed25519 public key.
    """
    _public_key(public).verify(signature, message)


@functools.lru_cache(maxsize=MAX_KEYS)
def _public_key(public: bytes) -> Ed25519PublicKey:
    """The key object of raw Ed25519 key bytes: decoding them (a point decompression)
    costs a third of a verification, and a node verifies under the same few keys."""
    return Ed25519PublicKey.from_public_bytes(public)
