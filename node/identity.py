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
with the passphrase. A node made before the OPRF or the HPKE key existed gains
it the first time `load_keys` runs (`run`, or any command that speaks for it).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from node.errors import OprfError, SigningKeyError
from node.protocol.keys import fingerprint, public_bytes
from node.protocol.rotation import KeyRotation, sign_rotation, verify_rotation
from node.sealed import HPKE_KEY, KINDS, OPRF_KEY, SIGNING_KEY, SecretKind, seal, unseal

if TYPE_CHECKING:
    from node.config import NodeConfig

PASSPHRASE_ENV = "IARMS_KEY_PASSPHRASE"  # noqa: S105 - a variable name


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """The node's secrets, loaded together (with the passphrase, when encrypted)."""

    signing: Ed25519PrivateKey
    oprf: bytes
    hpke: X25519PrivateKey


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


@dataclass(frozen=True, slots=True)
class _Companion:
    """A 32-byte secret kept beside the signing key, its public key in hex in `.pub`."""

    kind: SecretKind
    generate: Callable[[], bytes]  # a new secret
    public: Callable[[bytes], bytes]  # its public key (OprfError or ValueError if invalid)
    depends: str  # what depends on it, so that a lost one must be restored


def _oprf_generate() -> bytes:
    from node.lookup import oprf  # libsodium: loaded by the commands that use the key only

    return oprf.generate_key_pair(oprf.MODE_VOPRF)[0]


def _oprf_public(sk: bytes) -> bytes:
    from node.lookup import oprf

    return oprf.public_key(sk)


def _hpke_public(sk: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()


_OPRF = _Companion(
    OPRF_KEY,
    _oprf_generate,
    _oprf_public,
    "its index and its peers' copies of the public key depend on it",
)
_HPKE = _Companion(
    HPKE_KEY,
    lambda: X25519PrivateKey.generate().private_bytes_raw(),
    _hpke_public,
    "its peers seal statistics shares to the public key they hold",
)


def _public_file(companion: _Companion, path: Path) -> Path:
    """Where the public key of the secret in `path` is kept (hex): `path` with `.pub`."""
    pub = path.with_suffix(".pub")
    if pub == path:
        raise SigningKeyError(
            f"the {companion.kind.what} {path} must not end in .pub (its public key's)"
        )
    return pub


def _create(companion: _Companion, path: Path, passphrase: bytes | None) -> bytes:
    """Generate and store a secret (sealed under `passphrase` if given); return its public key.

    Refuses to overwrite (FileExistsError).
    """
    pub = _public_file(companion, path)
    sk = companion.generate()
    public = companion.public(sk)
    _write_secret(path, seal(companion.kind, sk, passphrase) if passphrase else sk)
    _write_public(companion, pub, public)
    return public


def create_oprf_key(path: Path, passphrase: bytes | None) -> bytes:
    """Generate and store the node's VOPRF key (sealed under `passphrase` if given); return pkS.

    The key evaluates peers' blinded serials and builds this node's index:
    whoever holds it could test serials against the index offline, so it is
    as secret as the signing key. Refuses to overwrite (FileExistsError).
    """
    return _create(_OPRF, path, passphrase)


def create_hpke_key(path: Path, passphrase: bytes | None) -> bytes:
    """Generate and store the node's HPKE (X25519) key, sealed under `passphrase` if given;
    return its public key. Statistics shares are sealed to it: whoever holds it reads
    the shares sent to this node as an aggregator. Refuses to overwrite (FileExistsError).
    """
    return _create(_HPKE, path, passphrase)


def _write_public(companion: _Companion, pub: Path, public: bytes) -> None:
    try:
        pub.write_text(public.hex() + "\n", encoding="ascii")
    except OSError as e:
        what = f"{companion.kind.what}'s public key"
        raise SigningKeyError(f"cannot write the {what} {pub}: {e.strerror}") from e


def _read(companion: _Companion, path: Path, passphrase: bytes | None) -> tuple[bytes, bool]:
    """The secret in `path` and whether the file is sealed."""
    sk, sealed = _open_secret(companion.kind, path, passphrase)
    try:
        companion.public(sk)
    except (OprfError, ValueError) as e:
        raise SigningKeyError(f"{path} does not hold a valid {companion.kind.what}") from e
    return sk, sealed


def load_oprf_key(path: Path, passphrase: bytes | None) -> bytes:
    """The node's VOPRF secret key; SigningKeyError with the fix when it cannot be used."""
    return _read(_OPRF, path, passphrase)[0]


def load_hpke_key(path: Path, passphrase: bytes | None) -> X25519PrivateKey:
    """The node's HPKE secret key; SigningKeyError with the fix when it cannot be used."""
    return X25519PrivateKey.from_private_bytes(_read(_HPKE, path, passphrase)[0])


def _load_public(companion: _Companion, path: Path) -> bytes | None:
    pub = _public_file(companion, path)
    if not pub.exists():
        return None
    return _read_public(pub, f"{companion.kind.what}'s public key")


def load_oprf_public_key(path: Path) -> bytes | None:
    """The public element stored beside the OPRF key; None while there is none.

    A node initialised before private lookups has neither file until its keys
    are first loaded (`load_keys`, when it runs); one initialised before the
    public key was stored beside the secret gets it then too.
    """
    return _load_public(_OPRF, path)


def load_hpke_public_key(path: Path) -> bytes | None:
    """The X25519 public key stored beside the HPKE key; None while there is none (a node
    initialised before statistics has none until its keys are first loaded)."""
    return _load_public(_HPKE, path)


def _check_public(companion: _Companion, path: Path, sk: bytes) -> None:
    """Write the public key beside the secret if it is missing; refuse one that does not match."""
    public = companion.public(sk)
    stored = _load_public(companion, path)
    pub = _public_file(companion, path)
    if stored is None:
        _write_public(companion, pub, public)
    elif stored != public:
        raise SigningKeyError(
            f"{pub} does not match the {companion.kind.what} {path}: restore the key file "
            f"this node was created with ({companion.depends})"
        )


def _companion_key(
    companion: _Companion, path: Path, passphrase: bytes | None, seal_with: bytes | None
) -> bytes:
    """The secret in `path`, made first if the node predates it, sealed if it should be."""
    if not path.exists():
        if _load_public(companion, path) is not None:
            raise SigningKeyError(
                f"the {companion.kind.what} {path} is missing but its public key is there: "
                f"restore it from a backup ({companion.depends})"
            )
        with contextlib.suppress(FileExistsError):  # another process just made it
            _create(companion, path, seal_with)
    sk, sealed = _read(companion, path, passphrase)
    if seal_with and not sealed:
        _replace_secret(path, seal(companion.kind, sk, seal_with))
    _check_public(companion, path, sk)
    return sk


def load_keys(config: NodeConfig, passphrase: bytes | None) -> NodeKeys:
    """The node's signing, OPRF and HPKE keys; SigningKeyError with the fix when they cannot
    be used.

    The OPRF and HPKE keys are made on first use by nodes initialised before
    private lookups or statistics existed, and sealed on first use by encrypted
    nodes that kept them raw; both with `passphrase`, checked first against the
    signing key. An encrypted signing key in the PEM of older versions (PBKDF2,
    2,048 iterations) is sealed in its place the same way.
    """
    signing, old_pem = _read_signing_key(config.signing_key_file, passphrase)
    seal_with = passphrase if config.key_encrypted else None
    if seal_with and old_pem:
        save_signing_key(config.signing_key_file, signing, seal_with)
    oprf = _companion_key(_OPRF, config.oprf_key_file, passphrase, seal_with)
    hpke = _companion_key(_HPKE, config.hpke_key_file, passphrase, seal_with)
    return NodeKeys(signing, oprf, X25519PrivateKey.from_private_bytes(hpke))


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
