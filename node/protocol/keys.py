"""An Ed25519 public key as peers see it: its raw bytes and its fingerprint."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def public_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: bytes) -> str:
    """The fingerprint admins compare when they add a peer: hex SHA-256 of the raw key."""
    return hashlib.sha256(public_key).hexdigest()
