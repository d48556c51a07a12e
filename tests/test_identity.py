"""The node's keys at rest: all sealed with the passphrase; older files load and are sealed."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from node import sealed as node_sealed
from node.app import Node
from node.config import NodeConfig, load_config
from node.errors import SigningKeyError
from node.identity import (
    PASSPHRASE_ENV,
    create_hpke_key,
    create_oprf_key,
    create_signing_key,
    load_hpke_key,
    load_hpke_public_key,
    load_keys,
    load_oprf_key,
    load_oprf_public_key,
    load_public_key,
    load_signing_key,
    public_bytes,
)
from node.initialise import init_node
from node.lookup import oprf
from node.protocol.descriptor import verify_descriptor
from node.sealed import HPKE_KEY, OPRF_KEY, SIGNING_KEY, SecretKind, seal
from tests.cli_helpers import wait_served
from tests.conftest import ADMIN_PASSWORD, NODE_SCRYPT_LOG2_N
from tests.harness import init_args

PASSPHRASE = b"correct horse battery staple, again"
CLI = str(Path(sys.executable).parent / "iarms-node")


@dataclass(frozen=True)
class Secret:
    """One kind of sealed secret as the tests make and read it, the sizes from the docstring."""

    kind: SecretKind
    create: Callable[[Path, bytes | None], bytes]  # returns the public key
    load: Callable[[Path, bytes | None], bytes]  # returns the 32-byte secret
    public: Callable[[bytes], bytes]  # the public key of a secret
    stored_public: Callable[[Path], bytes | None]  # the public key stored beside it
    size: int  # of the sealed file


def _load_seed(path: Path, passphrase: bytes | None) -> bytes:
    return load_signing_key(path, passphrase).private_bytes_raw()


def _seed_public(seed: bytes) -> bytes:
    return public_bytes(Ed25519PrivateKey.from_private_bytes(seed).public_key())


def _load_hpke(path: Path, passphrase: bytes | None) -> bytes:
    return load_hpke_key(path, passphrase).private_bytes_raw()


def _hpke_public(sk: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()


SIGNING = Secret(SIGNING_KEY, create_signing_key, _load_seed, _seed_public, load_public_key, 97)
OPRF = Secret(OPRF_KEY, create_oprf_key, load_oprf_key, oprf.public_key, load_oprf_public_key, 94)
HPKE = Secret(HPKE_KEY, create_hpke_key, _load_hpke, _hpke_public, load_hpke_public_key, 94)
EACH = pytest.mark.parametrize("secret", [SIGNING, OPRF, HPKE], ids=["signing", "oprf", "hpke"])


@EACH
def test_sealed_key_round_trip(tmp_path: Path, secret: Secret) -> None:
    path = tmp_path / "key"
    public = secret.create(path, PASSPHRASE)
    sk = secret.load(path, PASSPHRASE)
    assert secret.public(sk) == public == secret.stored_public(path)
    data = path.read_bytes()
    assert len(data) == secret.size and data.startswith(secret.kind.magic + b"\x01")
    assert sk not in data and b"-----BEGIN" not in data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises((FileExistsError, SigningKeyError)):
        secret.create(path, PASSPHRASE)


@EACH
def test_sealed_file_follows_the_documented_format(
    tmp_path: Path, secret: Secret, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoded independently of `node.sealed`, from the layout in its docstring; sealed at
    the node's own scrypt cost (the other tests seal at `CHEAP_SCRYPT`)."""
    monkeypatch.setattr(node_sealed, "SCRYPT_LOG2_N", NODE_SCRYPT_LOG2_N)
    path = tmp_path / "key"
    secret.create(path, PASSPHRASE)
    data, m = path.read_bytes(), len(secret.kind.magic)
    version, log2_n, r, p = data[m : m + 4]
    salt, nonce, sealed = data[m + 4 : m + 20], data[m + 20 : m + 32], data[m + 32 :]
    assert (version, log2_n, r, p) == (1, 15, 8, 1)
    key = Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(PASSPHRASE)
    plain = ChaCha20Poly1305(key).decrypt(nonce, sealed, data[: m + 32])
    assert plain == secret.load(path, PASSPHRASE)
    again = seal(secret.kind, plain, PASSPHRASE)
    assert again[m + 4 : m + 32] != data[m + 4 : m + 32]  # a fresh salt and nonce every time


@EACH
def test_wrong_or_missing_passphrase_is_explained(tmp_path: Path, secret: Secret) -> None:
    path = tmp_path / "key"
    secret.create(path, PASSPHRASE)
    what = secret.kind.what
    with pytest.raises(SigningKeyError, match=f"{what} {path}: wrong passphrase"):
        secret.load(path, b"guess")
    with pytest.raises(
        SigningKeyError,
        match=f"{what} {path} is encrypted; give its passphrase in {PASSPHRASE_ENV} "
        "or with --key-passphrase-file",
    ):
        secret.load(path, None)


@EACH
@pytest.mark.parametrize(
    ("offset", "message"),  # from the end of the magic
    [
        (0, "is in format 0"),  # the version
        (1, "wrong passphrase"),  # scrypt log2(N): the header is bound
        (2, "wrong passphrase"),  # scrypt r
        (3, "unusable scrypt parameters"),  # p = 0
        (6, "wrong passphrase"),  # the salt
        (26, "wrong passphrase"),  # the nonce
        (36, "wrong passphrase"),  # the ciphertext
        (79, "wrong passphrase"),  # the tag
    ],
)
def test_tampered_file_is_refused(
    tmp_path: Path, secret: Secret, offset: int, message: str
) -> None:
    path = tmp_path / "key"
    secret.create(path, PASSPHRASE)
    data = bytearray(path.read_bytes())
    data[len(secret.kind.magic) + offset] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SigningKeyError, match=message):
        secret.load(path, PASSPHRASE)


@EACH
def test_truncated_or_shared_file_is_refused(tmp_path: Path, secret: Secret) -> None:
    path = tmp_path / "key"
    secret.create(path, PASSPHRASE)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(SigningKeyError, match="truncated or damaged"):
        secret.load(path, PASSPHRASE)
    path.unlink()
    secret.create(path, PASSPHRASE)
    path.chmod(0o640)
    with pytest.raises(SigningKeyError, match=f"run: chmod 600 {path}"):
        secret.load(path, PASSPHRASE)


@pytest.mark.parametrize(
    ("secret", "other"),
    [(SIGNING, OPRF), (OPRF, SIGNING), (OPRF, HPKE), (HPKE, OPRF), (HPKE, SIGNING)],
)
def test_a_sealed_key_of_the_other_kind_is_refused(
    tmp_path: Path, secret: Secret, other: Secret
) -> None:
    """A key copied over the other is refused; relabelled, it fails the AEAD (the kind is bound)."""
    path = tmp_path / "key"
    other.create(path, PASSPHRASE)
    with pytest.raises(SigningKeyError, match=f"holds a sealed {other.kind.what}, not the"):
        secret.load(path, PASSPHRASE)
    relabelled = secret.kind.magic + path.read_bytes()[len(other.kind.magic) :]
    path.write_bytes(relabelled)
    with pytest.raises(SigningKeyError, match=r"wrong passphrase \(or the file was altered\)"):
        secret.load(path, PASSPHRASE)


def test_unencrypted_node_keeps_pem_and_the_raw_scalar(tmp_path: Path) -> None:
    path = tmp_path / "oprf_key.bin"
    pk = create_oprf_key(path, None)
    sk = path.read_bytes()
    assert len(sk) == 32 and oprf.public_key(sk) == pk
    assert load_oprf_key(path, None) == load_oprf_key(path, b"ignored") == sk
    pem = tmp_path / "signing_key.pem"
    public = create_signing_key(pem, None)
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert public_bytes(load_signing_key(pem, None).public_key()) == public


async def _node(tmp_path: Path, passphrase: bytes | None) -> NodeConfig:
    data_dir = tmp_path / "fra"
    await init_node(data_dir, "FRA", admin_password=ADMIN_PASSWORD, passphrase=passphrase)
    return load_config(data_dir)


def _make_legacy(config: NodeConfig) -> bytes:
    """Turn the node's OPRF key into the raw file, without `.pub`, of older versions."""
    sk = oprf.generate_key_pair(oprf.MODE_VOPRF)[0]
    config.oprf_key_file.unlink()
    config.oprf_key_file.with_suffix(".pub").unlink()
    fd = os.open(config.oprf_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(sk)
    return sk


async def test_legacy_raw_key_loads_and_gains_its_public_key(tmp_path: Path) -> None:
    config = await _node(tmp_path, None)
    sk = _make_legacy(config)
    node = await Node.open(config)
    await node.close()
    assert node.oprf_public_key is None  # opening a node never reads the secret
    keys = load_keys(config, None)
    assert keys.oprf == sk == config.oprf_key_file.read_bytes()
    assert config.signing_key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert load_oprf_public_key(config.oprf_key_file) == oprf.public_key(sk)


async def test_encrypted_node_seals_a_legacy_raw_key(tmp_path: Path) -> None:
    config = await _node(tmp_path, PASSPHRASE)
    sk = _make_legacy(config)
    with pytest.raises(SigningKeyError, match="wrong passphrase"):
        load_keys(config, b"guess")  # the signing key checks the passphrase first
    assert config.oprf_key_file.read_bytes() == sk
    assert load_keys(config, PASSPHRASE).oprf == sk
    assert sk not in config.oprf_key_file.read_bytes()
    assert stat.S_IMODE(config.oprf_key_file.stat().st_mode) == 0o600
    assert load_oprf_key(config.oprf_key_file, PASSPHRASE) == sk
    assert [p.name for p in config.data_dir.iterdir() if p.name.startswith(".")] == []


def _make_legacy_pem(config: NodeConfig) -> bytes:
    """Rewrite the node's signing key as older versions did: PKCS#8 PEM, PBKDF2 (2,048 rounds)."""
    key = load_signing_key(config.signing_key_file, PASSPHRASE)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE),
    )
    config.signing_key_file.write_bytes(pem)  # keeps its mode, 0600
    return pem


async def test_encrypted_node_seals_a_legacy_pem_signing_key(tmp_path: Path) -> None:
    config = await _node(tmp_path, PASSPHRASE)
    path, public = config.signing_key_file, load_public_key(config.signing_key_file)
    pem = _make_legacy_pem(config)
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    with pytest.raises(SigningKeyError, match=f"the signing key {path} is encrypted; give its"):
        load_keys(config, None)
    with pytest.raises(SigningKeyError, match=f"signing key {path}: wrong passphrase"):
        load_keys(config, b"guess")
    assert path.read_bytes() == pem  # nothing is rewritten without the passphrase
    keys = load_keys(config, PASSPHRASE)
    assert public_bytes(keys.signing.public_key()) == public
    data = path.read_bytes()
    assert data.startswith(b"iarms-signing-key\x01") and len(data) == 97
    assert keys.signing.private_bytes_raw() not in data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in config.data_dir.iterdir() if p.name.startswith(".")] == []
    assert public_bytes(load_signing_key(path, PASSPHRASE).public_key()) == public
    assert public_bytes(load_keys(config, PASSPHRASE).signing.public_key()) == public
    assert path.read_bytes() == data  # sealed once, not again on every load
    assert load_public_key(path) == public


async def test_loading_a_legacy_pem_alone_rewrites_nothing(tmp_path: Path) -> None:
    """Only `load_keys`, which knows `keys.encrypted`, seals an old file."""
    config = await _node(tmp_path, PASSPHRASE)
    pem = _make_legacy_pem(config)
    key = load_signing_key(config.signing_key_file, PASSPHRASE)
    assert public_bytes(key.public_key()) == load_public_key(config.signing_key_file)
    assert config.signing_key_file.read_bytes() == pem


async def test_node_from_before_lookups_gets_a_sealed_key(tmp_path: Path) -> None:
    config = await _node(tmp_path, PASSPHRASE)
    config.oprf_key_file.unlink()
    config.oprf_key_file.with_suffix(".pub").unlink()
    node = await Node.open(config)
    await node.close()
    assert not config.oprf_key_file.exists()
    keys = load_keys(config, PASSPHRASE)
    assert load_oprf_key(config.oprf_key_file, PASSPHRASE) == keys.oprf
    assert load_oprf_public_key(config.oprf_key_file) == oprf.public_key(keys.oprf)


async def test_node_from_before_statistics_gains_a_sealed_hpke_key(tmp_path: Path) -> None:
    config = await _node(tmp_path, PASSPHRASE)
    path = config.hpke_key_file
    assert path.name == "hpke_key.bin" and path.parent == config.signing_key_file.parent
    path.unlink()
    path.with_suffix(".pub").unlink()
    node = await Node.open(config)
    await node.close()
    assert node.hpke_public_key is None and not path.exists()  # opening reads no secret
    keys = load_keys(config, PASSPHRASE)
    assert path.read_bytes().startswith(b"iarms-hpke-key\x01") and len(path.read_bytes()) == 94
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public = keys.hpke.public_key().public_bytes_raw()
    assert load_hpke_public_key(path) == public
    assert load_keys(config, PASSPHRASE).hpke.public_key().public_bytes_raw() == public  # kept


async def test_a_lost_hpke_key_is_not_silently_replaced(tmp_path: Path) -> None:
    config = await _node(tmp_path, None)
    assert len(config.hpke_key_file.read_bytes()) == 32  # unencrypted: the raw key
    config.hpke_key_file.unlink()
    with pytest.raises(SigningKeyError, match=r"HPKE key .* is missing but its public key"):
        load_keys(config, None)
    assert not config.hpke_key_file.exists()


async def test_a_public_key_that_does_not_match_is_refused(tmp_path: Path) -> None:
    config = await _node(tmp_path, None)
    other = oprf.generate_key_pair(oprf.MODE_VOPRF)[1]
    config.oprf_key_file.with_suffix(".pub").write_text(other.hex(), encoding="ascii")
    with pytest.raises(SigningKeyError, match="does not match the OPRF key"):
        load_keys(config, None)


async def test_a_lost_oprf_key_is_not_silently_replaced(tmp_path: Path) -> None:
    config = await _node(tmp_path, None)
    config.oprf_key_file.unlink()
    with pytest.raises(SigningKeyError, match="is missing but its public key is there"):
        load_keys(config, None)
    assert not config.oprf_key_file.exists()


def _cli(*args: str, passphrase_env: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    if passphrase_env is not None:
        env[PASSPHRASE_ENV] = passphrase_env
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def encrypted_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node made by `init --key-passphrase-file`."""
    base = tmp_path_factory.mktemp("encrypted")
    (base / "admin.txt").write_text("a long admin password\n", encoding="utf-8")
    (base / "passphrase.txt").write_text(PASSPHRASE.decode() + "\n", encoding="utf-8")
    data = base / "fra"
    result = _cli(
        *init_args(data, base / "admin.txt"), "--key-passphrase-file", str(base / "passphrase.txt")
    )
    assert result.returncode == 0, result.stderr
    return data


def test_init_seals_every_key(encrypted_dir: Path) -> None:
    config = load_config(encrypted_dir)
    assert config.key_encrypted
    assert config.signing_key_file.name == "signing_key.pem"
    assert config.signing_key_file.read_bytes().startswith(b"iarms-signing-key\x01")
    assert config.oprf_key_file.read_bytes().startswith(b"iarms-oprf-key\x01")
    assert config.hpke_key_file.read_bytes().startswith(b"iarms-hpke-key\x01")
    for load, path in (
        (load_signing_key, config.signing_key_file),
        (load_oprf_key, config.oprf_key_file),
        (load_hpke_key, config.hpke_key_file),
    ):
        with pytest.raises(SigningKeyError, match="is encrypted; give its passphrase"):
            load(path, None)
    keys = load_keys(config, PASSPHRASE)
    assert public_bytes(keys.signing.public_key()) == load_public_key(config.signing_key_file)
    assert load_oprf_public_key(config.oprf_key_file) == oprf.public_key(keys.oprf)
    hpke_public = keys.hpke.public_key().public_bytes_raw()
    assert load_hpke_public_key(config.hpke_key_file) == hpke_public


@pytest.mark.parametrize(
    "command",
    [["hits"], ["records", "search"], ["peers", "list"], ["users", "list"], ["identity"]],
)
def test_commands_that_do_not_speak_for_the_node_need_no_passphrase(
    encrypted_dir: Path, command: list[str]
) -> None:
    result = _cli(*command, "--data-dir", str(encrypted_dir))
    assert result.returncode == 0, result.stderr


def test_lookup_needs_the_passphrase(encrypted_dir: Path) -> None:
    lookup = ("lookup", "--serial", "X-1", "--case-ref", "c", "--data-dir", str(encrypted_dir))
    refused = _cli(*lookup)
    assert refused.returncode == 1
    assert f"is encrypted; give its passphrase in {PASSPHRASE_ENV}" in refused.stderr
    wrong = _cli(*lookup, passphrase_env="no")
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    passphrase_file = str(encrypted_dir.parent / "passphrase.txt")
    result = _cli(*lookup, "--key-passphrase-file", passphrase_file)
    assert result.returncode == 0, result.stderr
    assert "no active peers" in result.stderr


def test_run_with_the_passphrase_publishes_the_stored_public_keys(encrypted_dir: Path) -> None:
    config = load_config(encrypted_dir)
    proc = subprocess.Popen(
        [CLI, "run", "--data-dir", str(encrypted_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, PASSPHRASE_ENV: PASSPHRASE.decode()},
    )
    try:
        body = wait_served(f"http://{config.federation}/federation/v1/descriptor", proc)
        descriptor = verify_descriptor(body)
        assert descriptor.oprf_key == load_oprf_public_key(config.oprf_key_file)
        assert descriptor.hpke_key == load_hpke_public_key(config.hpke_key_file)
        assert descriptor.hpke_key is not None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
