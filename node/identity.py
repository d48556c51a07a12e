"""The node's identity: its country and its Ed25519 signing key (RFC 8032, via `cryptography`).

The private key is stored as PKCS#8 PEM with mode 0600, optionally encrypted
with a passphrase (`BestAvailableEncryption`); the public key is stored beside
it as hex so that commands that only need the fingerprint never ask for the
passphrase. The fingerprint is the hex SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from node.errors import OprfError, SigningKeyError
from node.protocol import oprf

PASSPHRASE_ENV = "IARMS_KEY_PASSPHRASE"  # noqa: S105 - a variable name


def public_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: bytes) -> str:
    """The fingerprint admins compare when they add a peer: hex SHA-256 of the raw key."""
    return hashlib.sha256(public_key).hexdigest()


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def create_signing_key(path: Path, passphrase: bytes | None) -> bytes:
    """Generate and store a new key (refusing to overwrite); return the raw public key."""
    if path.exists():
        raise SigningKeyError(f"{path} already exists; refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    _write_secret(path, pem)
    public = public_bytes(key.public_key())
    path.with_suffix(".pub").write_text(public.hex() + "\n", encoding="ascii")
    return public


def _read_secret(path: Path, what: str) -> bytes:
    """A secret file's bytes; SigningKeyError if unreadable or readable by others."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as e:
        raise SigningKeyError(f"cannot read the {what} {path}: {e.strerror}") from e
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"the {what} {path} is readable by other users; run: chmod 600 {path}"
        )
    return data


def load_signing_key(path: Path, passphrase: bytes | None) -> Ed25519PrivateKey:
    """Read the signing key; SigningKeyError with the fix when it cannot be used."""
    data = _read_secret(path, "signing key")
    encrypted = b"ENCRYPTED" in data.split(b"\n", 1)[0]
    if encrypted and not passphrase:
        raise SigningKeyError(
            f"the signing key {path} is encrypted; give its passphrase in {PASSPHRASE_ENV} "
            "or with --key-passphrase-file"
        )
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except (ValueError, TypeError) as e:
        reason = "wrong passphrase" if encrypted else "not a valid PEM private key"
        raise SigningKeyError(f"cannot load the signing key {path}: {reason}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"the signing key {path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> bytes:
    """The raw public key stored beside the signing key."""
    pub = path.with_suffix(".pub")
    try:
        public = bytes.fromhex(pub.read_text(encoding="ascii").strip())
    except (OSError, ValueError) as e:
        raise SigningKeyError(f"cannot read the public key {pub}: {e}") from e
    if len(public) != 32:
        raise SigningKeyError(f"{pub} does not hold a 32-byte Ed25519 public key")
    return public


def create_oprf_key(path: Path) -> bytes:
    """Generate the node's VOPRF key (a 32-byte ristretto255 scalar, mode 0600); return pkS.

    The key evaluates peers' blinded serials and builds this node's index:
    whoever holds it could test serials against the index offline, so it is
    as secret as the signing key.
    """
    sk, pk = oprf.generate_key_pair(oprf.MODE_VOPRF)
    _write_secret(path, sk)
    return pk


def load_oprf_key(path: Path) -> bytes:
    """The node's VOPRF secret key; SigningKeyError with the fix when it cannot be used."""
    data = _read_secret(path, "OPRF key")
    try:
        oprf.public_key(data)
    except (OprfError, ValueError) as e:
        raise SigningKeyError(f"{path} does not hold a valid OPRF key") from e
    return data


def read_passphrase_file(path: Path) -> bytes:
    """A passphrase from the first line of a file."""
    try:
        text = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SigningKeyError(f"cannot read the passphrase file {path}: {e}") from e
    if not text or not text[0]:
        raise SigningKeyError(f"the passphrase file {path} is empty")
    return text[0].encode()
