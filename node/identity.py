"""The node's identity and secrets: its Ed25519 signing key (RFC 8032) and its VOPRF key
(RFC 9497, ristretto255-SHA512), both through `cryptography` and our `oprf` module.

Both secrets are 32 bytes: the Ed25519 private seed and a ristretto255 scalar.
Each is stored with mode 0600 and its public key beside it as hex
(`signing_key.pub`, `oprf_key.pub`), so that commands that only need the
fingerprint or the descriptor's `pkS` never ask for the passphrase. The
fingerprint is the hex SHA-256 of the raw 32-byte Ed25519 public key. Whoever
holds the OPRF scalar can test serials against this node's index offline, so
it is as secret as the signing key.

When `keys.encrypted` is false, the signing key is unencrypted PKCS#8 PEM and
the OPRF key its 32 raw bytes; when it is true, both are sealed with the one
passphrase (`node.sealed`, ADR 0005). Encrypted nodes made by older versions
hold the signing key as PKCS#8 PEM encrypted by `BestAvailableEncryption`
(PBKDF2-HMAC-SHA256, 2,048 iterations) and may hold the OPRF key raw: both
still load, and `load_keys` seals them in place the first time it loads them
with the passphrase.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.errors import OprfError, SigningKeyError
from node.protocol.keys import fingerprint, public_bytes
from node.protocol.rotation import KeyRotation, sign_rotation, verify_rotation
from node.sealed import KINDS, OPRF_KEY, SIGNING_KEY, SecretKind, seal, unseal

if TYPE_CHECKING:
    from node.config import NodeConfig

PASSPHRASE_ENV = "IARMS_KEY_PASSPHRASE"  # noqa: S105 - a variable name


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """The node's two secrets, loaded together (with the passphrase, when encrypted)."""

    signing: Ed25519PrivateKey
    oprf: bytes


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _replace_secret(path: Path, data: bytes) -> None:
    """Atomically replace a secret file (the new one written at 0600 beside it first)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _needs_passphrase(what: str, path: Path) -> SigningKeyError:
    return SigningKeyError(
        f"the {what} {path} is encrypted; give its passphrase in {PASSPHRASE_ENV} "
        "or with --key-passphrase-file"
    )


def _signing_key_file(key: Ed25519PrivateKey, passphrase: bytes | None) -> bytes:
    """The signing key file's contents: sealed under `passphrase`, else unencrypted PKCS#8 PEM."""
    if passphrase:
        return seal(SIGNING_KEY, key.private_bytes_raw(), passphrase)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_signing_key(path: Path, passphrase: bytes | None) -> bytes:
    """Generate and store a new key (refusing to overwrite); return the raw public key."""
    if path.exists():
        raise SigningKeyError(f"{path} already exists; refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    _write_secret(path, _signing_key_file(key, passphrase))
    public = public_bytes(key.public_key())
    path.with_suffix(".pub").write_text(public.hex() + "\n", encoding="ascii")
    return public


def save_signing_key(path: Path, key: Ed25519PrivateKey, passphrase: bytes | None) -> None:
    """Write `key` to `path` (atomically replacing it), sealed under `passphrase` if given."""
    _replace_secret(path, _signing_key_file(key, passphrase))


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


def _open_secret(kind: SecretKind, path: Path, passphrase: bytes | None) -> tuple[bytes, bool]:
    """The file's bytes, unsealed if it is sealed as `kind`, and whether it was sealed."""
    data = _read_secret(path, kind.what)
    for other in KINDS:
        if other != kind and data.startswith(other.magic):
            raise SigningKeyError(f"{path} holds a sealed {other.what}, not the {kind.what}")
    if not data.startswith(kind.magic):
        return data, False
    if not passphrase:
        raise _needs_passphrase(kind.what, path)
    return unseal(kind, data, passphrase, path), True


def _read_signing_key(path: Path, passphrase: bytes | None) -> tuple[Ed25519PrivateKey, bool]:
    """The signing key in `path` and whether it is in the old passphrase-encrypted PEM."""
    data, sealed = _open_secret(SIGNING_KEY, path, passphrase)
    if sealed:
        return Ed25519PrivateKey.from_private_bytes(data), False
    encrypted = b"ENCRYPTED" in data.split(b"\n", 1)[0]
    if encrypted and not passphrase:
        raise _needs_passphrase("signing key", path)
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except (ValueError, TypeError) as e:
        reason = "wrong passphrase" if encrypted else "not a valid PEM private key"
        raise SigningKeyError(f"cannot load the signing key {path}: {reason}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"the signing key {path} is not an Ed25519 key")
    return key, encrypted


def load_signing_key(path: Path, passphrase: bytes | None) -> Ed25519PrivateKey:
    """Read the signing key; SigningKeyError with the fix when it cannot be used."""
    return _read_signing_key(path, passphrase)[0]


def _read_public(pub: Path, what: str) -> bytes:
    try:
        public = bytes.fromhex(pub.read_text(encoding="ascii").strip())
    except (OSError, ValueError) as e:
        raise SigningKeyError(f"cannot read the {what} {pub}: {e}") from e
    if len(public) != 32:
        raise SigningKeyError(f"{pub} does not hold a 32-byte {what}")
    return public


def load_public_key(path: Path) -> bytes:
    """The raw public key stored beside the signing key."""
    return _read_public(path.with_suffix(".pub"), "Ed25519 public key")


def oprf_public_key_file(path: Path) -> Path:
    """Where the public element of the OPRF key in `path` is kept (hex): `path` with `.pub`."""
    pub = path.with_suffix(".pub")
    if pub == path:
        raise SigningKeyError(f"keys.oprf_key: {path} must not end in .pub (its public key's)")
    return pub


def create_oprf_key(path: Path, passphrase: bytes | None) -> bytes:
    """Generate and store the node's VOPRF key (sealed under `passphrase` if given); return pkS.

    The key evaluates peers' blinded serials and builds this node's index:
    whoever holds it could test serials against the index offline, so it is
    as secret as the signing key. Refuses to overwrite (FileExistsError).
    """
    from node.lookup import oprf  # libsodium: loaded by the commands that use the key only

    pub = oprf_public_key_file(path)
    sk, pk = oprf.generate_key_pair(oprf.MODE_VOPRF)
    _write_secret(path, seal(OPRF_KEY, sk, passphrase) if passphrase else sk)
    _write_public(pub, pk)
    return pk


def _write_public(pub: Path, public: bytes) -> None:
    try:
        pub.write_text(public.hex() + "\n", encoding="ascii")
    except OSError as e:
        raise SigningKeyError(f"cannot write the OPRF public key {pub}: {e.strerror}") from e


def _read_oprf_key(path: Path, passphrase: bytes | None) -> tuple[bytes, bool]:
    """The scalar in `path` and whether the file is sealed."""
    from node.lookup import oprf

    sk, sealed = _open_secret(OPRF_KEY, path, passphrase)
    try:
        oprf.public_key(sk)
    except (OprfError, ValueError) as e:
        raise SigningKeyError(f"{path} does not hold a valid OPRF key") from e
    return sk, sealed


def load_oprf_key(path: Path, passphrase: bytes | None) -> bytes:
    """The node's VOPRF secret key; SigningKeyError with the fix when it cannot be used."""
    return _read_oprf_key(path, passphrase)[0]


def load_oprf_public_key(path: Path) -> bytes | None:
    """The public element stored beside the OPRF key; None while there is none.

    A node initialised before private lookups has neither file until its keys
    are first loaded (`load_keys`, when it runs); one initialised before the
    public key was stored beside the secret gets it then too.
    """
    pub = oprf_public_key_file(path)
    if not pub.exists():
        return None
    return _read_public(pub, "OPRF public key")


def _check_oprf_public_key(path: Path, sk: bytes) -> None:
    """Write the public key beside the secret if it is missing; refuse one that does not match."""
    from node.lookup import oprf

    public = oprf.public_key(sk)
    stored = load_oprf_public_key(path)
    pub = oprf_public_key_file(path)
    if stored is None:
        _write_public(pub, public)
    elif stored != public:
        raise SigningKeyError(
            f"{pub} does not match the OPRF key {path}: restore the key file this node "
            "was created with (its index and its peers' copies of the public key depend on it)"
        )


def load_keys(config: NodeConfig, passphrase: bytes | None) -> NodeKeys:
    """The node's signing and OPRF keys; SigningKeyError with the fix when they cannot be used.

    The OPRF key is made on first use by nodes initialised before private
    lookups existed, and sealed on first use by encrypted nodes that kept it
    raw; both with `passphrase`, checked first against the signing key. An
    encrypted signing key in the PEM of older versions (PBKDF2, 2,048
    iterations) is sealed in its place the same way.
    """
    signing, old_pem = _read_signing_key(config.signing_key_file, passphrase)
    seal_with = passphrase if config.key_encrypted else None
    if seal_with and old_pem:
        save_signing_key(config.signing_key_file, signing, seal_with)
    path = config.oprf_key_file
    if not path.exists():
        if load_oprf_public_key(path) is not None:
            raise SigningKeyError(
                f"the OPRF key {path} is missing but its public key is there: restore it "
                "from a backup (a new key would not match this node's index)"
            )
        with contextlib.suppress(FileExistsError):  # another process just made it
            create_oprf_key(path, seal_with)
    sk, sealed = _read_oprf_key(path, passphrase)
    if seal_with and not sealed:
        _replace_secret(path, seal(OPRF_KEY, sk, seal_with))
    _check_oprf_public_key(path, sk)
    return NodeKeys(signing, sk)


def read_passphrase_file(path: Path) -> bytes:
    """A passphrase from the first line of a file."""
    try:
        text = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SigningKeyError(f"cannot read the passphrase file {path}: {e}") from e
    if not text or not text[0]:
        raise SigningKeyError(f"the passphrase file {path} is empty")
    return text[0].encode()


ROTATION_FILE = "rotation.msgpack"


def rotate_signing_key(
    key_file: Path, passphrase: bytes | None, country: str, now: datetime, grace: timedelta
) -> KeyRotation:
    """Replace the node's signing key, keeping the old one aside, and write the statement.

    Both the new key and the retired copy of the old one are sealed under
    `passphrase` when it is given (an old key in the PEM of older versions is
    re-sealed as it is retired), else written as unencrypted PKCS#8 PEM. The
    statement goes to `rotation.msgpack` beside the key; the node serves it in
    its descriptor once restarted with the new key.
    """
    old = load_signing_key(key_file, passphrase)
    staged = key_file.with_name(key_file.name + ".new")
    staged.unlink(missing_ok=True)
    staged.with_suffix(".pub").unlink(missing_ok=True)
    new_public = create_signing_key(staged, passphrase)
    statement = sign_rotation(
        old, country, new_public, int(now.timestamp()), int((now + grace).timestamp())
    )
    retired = key_file.with_name(
        f"{key_file.stem}.{fingerprint(public_bytes(old.public_key()))[:12]}.retired.pem"
    )
    save_signing_key(retired, old, passphrase)
    os.replace(staged, key_file)  # the key file is never missing, not even for a moment
    os.replace(staged.with_suffix(".pub"), key_file.with_suffix(".pub"))
    (key_file.parent / ROTATION_FILE).write_bytes(statement)
    return verify_rotation(statement, public_bytes(old.public_key()))


def load_rotation(data_dir: Path) -> bytes | None:
    """The node's latest rotation statement, if it ever rotated its key."""
    path = data_dir / ROTATION_FILE
    return path.read_bytes() if path.exists() else None
