"""Secrets sealed under a passphrase: the file format of the node's encrypted keys (ADR 0005).

The node's secrets (`node.identity`) are sealed with the one passphrase
in this file format, version 1, which binds the kind of
secret (its magic) into the associated data; `m` is the magic's length:

    offset  size  field
       0      m   magic: b"iarms-signing-key" (m = 17), b"iarms-oprf-key" (m = 14)
                  or b"iarms-hpke-key" (m = 14)
      m+0     1   format version: 1
      m+1     1   scrypt log2(N)  (15: N = 32768)
      m+2     1   scrypt r        (8)
      m+3     1   scrypt p        (1)
      m+4    16   scrypt salt (random)
      m+20   12   ChaCha20-Poly1305 nonce (random)
      m+32   48   ChaCha20-Poly1305 of the secret (32 bytes + 16-byte tag) under
                  key = scrypt(passphrase, salt, N, r, p, length 32),
                  associated data = bytes 0 to m+31 (everything above)

so a sealed signing key is 97 bytes and a sealed OPRF or HPKE key 94. Files are told
apart by content, not by name (`signing_key.pem` keeps its configured name).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from node.errors import SigningKeyError

SEALED_FORMAT = 1
_SEALED_PARAMS = struct.Struct(">BBBB16s12s")  # after the magic: version, log2 N, r, p, salt, nonce
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 15, 8, 1  # interactive strength: 32 MiB, ~0.1 s
_SCRYPT_MAX_MEMORY = 1 << 30  # refuse parameters from a damaged file that would need more
_SECRET_BYTES = 32  # an Ed25519 seed, a ristretto255 scalar or an X25519 private key


@dataclass(frozen=True, slots=True)
class SecretKind:
    """A kind of sealed secret: its name in messages and the magic that opens its file."""

    what: str
    magic: bytes


SIGNING_KEY = SecretKind("signing key", b"iarms-signing-key")
OPRF_KEY = SecretKind("OPRF key", b"iarms-oprf-key")
HPKE_KEY = SecretKind("HPKE key", b"iarms-hpke-key")
KINDS = (SIGNING_KEY, OPRF_KEY, HPKE_KEY)


def _scrypt_key(passphrase: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(passphrase)


def seal(kind: SecretKind, secret: bytes, passphrase: bytes) -> bytes:
    """The sealed (format 1) file contents of the 32-byte `secret` of `kind` under `passphrase`."""
    if len(secret) != _SECRET_BYTES:
        raise ValueError(f"a sealed {kind.what} holds {_SECRET_BYTES} bytes")
    salt, nonce = os.urandom(16), os.urandom(12)
    params = (SEALED_FORMAT, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P, salt, nonce)
    header = kind.magic + _SEALED_PARAMS.pack(*params)
    key = _scrypt_key(passphrase, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
    return header + ChaCha20Poly1305(key).encrypt(nonce, secret, header)


def unseal(kind: SecretKind, data: bytes, passphrase: bytes, path: Path) -> bytes:
    """The secret of `kind` in sealed file contents; SigningKeyError naming `path` if refused."""
    header_size = len(kind.magic) + _SEALED_PARAMS.size
    if len(data) != header_size + _SECRET_BYTES + 16 or not data.startswith(kind.magic):
        raise SigningKeyError(f"the {kind.what} {path} is truncated or damaged")
    header, sealed = data[:header_size], data[header_size:]
    version, log2_n, r, p, salt, nonce = _SEALED_PARAMS.unpack(header[len(kind.magic) :])
    if version != SEALED_FORMAT:
        raise SigningKeyError(
            f"the {kind.what} {path} is in format {version}; this version of iarms-node "
            f"reads format {SEALED_FORMAT} only"
        )
    if not (log2_n >= 1 and r >= 1 and 1 <= p <= 16 and (128 * r << log2_n) <= _SCRYPT_MAX_MEMORY):
        raise SigningKeyError(f"the {kind.what} {path} has unusable scrypt parameters")
    key = _scrypt_key(passphrase, salt, log2_n, r, p)
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, sealed, header)
    except InvalidTag as e:
        raise SigningKeyError(
            f"cannot load the {kind.what} {path}: wrong passphrase (or the file was altered)"
        ) from e
