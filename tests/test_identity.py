"""The node's keys at rest: the OPRF key sealed with the passphrase, loaded with the signing key."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from node.app import Node
from node.config import NodeConfig, load_config
from node.errors import SigningKeyError
from node.identity import (
    PASSPHRASE_ENV,
    create_oprf_key,
    load_keys,
    load_oprf_key,
    load_oprf_public_key,
    seal_oprf_key,
)
from node.initialise import init_node
from node.protocol import oprf
from node.protocol.descriptor import verify_descriptor
from tests.conftest import ADMIN_PASSWORD
from tests.harness import init_args

PASSPHRASE = b"correct horse battery staple, again"
CLI = str(Path(sys.executable).parent / "iarms-node")


def test_sealed_oprf_key_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "oprf_key.bin"
    pk = create_oprf_key(path, PASSPHRASE)
    sk = load_oprf_key(path, PASSPHRASE)
    assert oprf.public_key(sk) == pk == load_oprf_public_key(path)
    data = path.read_bytes()
    assert len(data) == 94 and data.startswith(b"iarms-oprf-key\x01")
    assert sk not in data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        create_oprf_key(path, PASSPHRASE)


def test_sealed_file_follows_the_documented_format(tmp_path: Path) -> None:
    """Decoded independently of `identity`, from the layout in its docstring."""
    path = tmp_path / "oprf_key.bin"
    create_oprf_key(path, PASSPHRASE)
    data = path.read_bytes()
    version, log2_n, r, p = data[14:18]
    salt, nonce, sealed = data[18:34], data[34:46], data[46:]
    assert (version, log2_n, r, p) == (1, 15, 8, 1)
    key = Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(PASSPHRASE)
    assert ChaCha20Poly1305(key).decrypt(nonce, sealed, data[:46]) == load_oprf_key(
        path, PASSPHRASE
    )
    again = seal_oprf_key(load_oprf_key(path, PASSPHRASE), PASSPHRASE)
    assert again[18:46] != data[18:46]  # a fresh salt and nonce every time


def test_wrong_or_missing_passphrase_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "oprf_key.bin"
    create_oprf_key(path, PASSPHRASE)
    with pytest.raises(SigningKeyError, match="wrong passphrase"):
        load_oprf_key(path, b"guess")
    with pytest.raises(
        SigningKeyError,
        match=f"OPRF key {path} is encrypted; give its passphrase in {PASSPHRASE_ENV} "
        "or with --key-passphrase-file",
    ):
        load_oprf_key(path, None)


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (14, "is in format 0"),  # the version
        (15, "wrong passphrase"),  # scrypt log2(N): the header is bound
        (16, "wrong passphrase"),  # scrypt r
        (17, "unusable scrypt parameters"),  # p = 0
        (20, "wrong passphrase"),  # the salt
        (40, "wrong passphrase"),  # the nonce
        (50, "wrong passphrase"),  # the ciphertext
        (93, "wrong passphrase"),  # the tag
    ],
)
def test_tampered_file_is_refused(tmp_path: Path, offset: int, message: str) -> None:
    path = tmp_path / "oprf_key.bin"
    create_oprf_key(path, PASSPHRASE)
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SigningKeyError, match=message):
        load_oprf_key(path, PASSPHRASE)


def test_truncated_or_shared_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "oprf_key.bin"
    create_oprf_key(path, PASSPHRASE)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(SigningKeyError, match="truncated or damaged"):
        load_oprf_key(path, PASSPHRASE)
    path.unlink()
    create_oprf_key(path, PASSPHRASE)
    path.chmod(0o640)
    with pytest.raises(SigningKeyError, match=f"run: chmod 600 {path}"):
        load_oprf_key(path, PASSPHRASE)


def test_unencrypted_node_keeps_the_raw_scalar(tmp_path: Path) -> None:
    path = tmp_path / "oprf_key.bin"
    pk = create_oprf_key(path, None)
    sk = path.read_bytes()
    assert len(sk) == 32 and oprf.public_key(sk) == pk
    assert load_oprf_key(path, None) == load_oprf_key(path, b"ignored") == sk


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


def test_init_seals_the_oprf_key(encrypted_dir: Path) -> None:
    config = load_config(encrypted_dir)
    assert config.key_encrypted
    assert config.oprf_key_file.read_bytes().startswith(b"iarms-oprf-key")
    with pytest.raises(SigningKeyError, match="is encrypted; give its passphrase"):
        load_oprf_key(config.oprf_key_file, None)
    keys = load_keys(config, PASSPHRASE)
    assert load_oprf_public_key(config.oprf_key_file) == oprf.public_key(keys.oprf)


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


def test_run_with_the_passphrase_publishes_the_stored_oprf_key(encrypted_dir: Path) -> None:
    config = load_config(encrypted_dir)
    proc = subprocess.Popen(
        [CLI, "run", "--data-dir", str(encrypted_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, PASSPHRASE_ENV: PASSPHRASE.decode()},
    )
    try:
        body = None
        for _ in range(150):
            try:
                with urllib.request.urlopen(
                    f"http://{config.federation}/federation/v1/descriptor", timeout=2
                ) as r:
                    body = r.read()
                break
            except OSError:
                time.sleep(0.1)
        assert body is not None, proc.stderr
        descriptor = verify_descriptor(body)
        assert descriptor.oprf_key == load_oprf_public_key(config.oprf_key_file)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
