"""Configuration and identity: validation with precise messages, keys at 0600."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from node.config import config_from_dict, load_config
from node.errors import ConfigError, NodeExistsError, SigningKeyError, ValidationError
from node.identity import (
    create_signing_key,
    fingerprint,
    load_public_key,
    load_signing_key,
    public_bytes,
)
from node.initialise import init_node
from tests.conftest import ADMIN_PASSWORD

GOOD: dict[str, Any] = {
    "node": {"country": "DEU", "public_url": "https://iarms.bka.example:8443"},
    "database": {"url": "sqlite+aiosqlite:///node.db"},
    "console": {"listen": "127.0.0.1:8080"},
    "federation": {"listen": "0.0.0.0:8443"},
    "keys": {"signing_key": "signing_key.pem", "encrypted": False},
}


def _with(section: str, key: str, value: Any) -> dict[str, Any]:
    raw = {s: dict(v) for s, v in GOOD.items()}
    raw.setdefault(section, {})[key] = value
    return raw


def test_good_config_resolves_paths(tmp_path: Path) -> None:
    config = config_from_dict(GOOD, tmp_path, "config.toml")
    assert config.country == "DEU"
    assert config.database_url == f"sqlite+aiosqlite:///{tmp_path}/node.db"
    assert config.signing_key_file == tmp_path / "signing_key.pem"
    assert (config.console.host, config.console.port) == ("127.0.0.1", 8080)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("node", "country", "XXX", "node.country: 'XXX' is not an ISO 3166-1 alpha-3"),
        ("node", "country", "DE", "did you mean DEU"),
        ("node", "public_url", "ftp://x", "node.public_url: expected an http:// or https:// URL"),
        ("console", "listen", "localhost", "console.listen: expected HOST:PORT"),
        ("console", "listen", "127.0.0.1:70000", "console.listen: expected HOST:PORT"),
        (
            "federation",
            "listen",
            "127.0.0.1:8080",
            "console.listen and federation.listen must differ",
        ),
        ("database", "url", "mysql://x/y", "database.url: database URL uses 'mysql'"),
        ("database", "url", "::not a url::", "database.url"),
        ("keys", "encrypted", "yes", "keys.encrypted must be true or false"),
        ("node", "colour", "blue", "unknown key(s) in [node]: colour"),
        ("extra", "x", 1, "unknown section [extra]"),
    ],
)
def test_bad_values_are_named(
    tmp_path: Path, section: str, key: str, value: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(_with(section, key, value), tmp_path, "config.toml")
    assert message in str(info.value)


def test_missing_and_broken_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not an iarms-node data directory"):
        load_config(tmp_path)
    (tmp_path / "config.toml").write_text("[node\ncountry=", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)


def test_signing_key_is_private_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    public = create_signing_key(path, None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_bytes(load_signing_key(path, None).public_key()) == public
    assert load_public_key(path) == public
    assert len(fingerprint(public)) == 64
    with pytest.raises(SigningKeyError, match="refusing to overwrite"):
        create_signing_key(path, None)
    path.chmod(0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_signing_key(path, None)


def test_encrypted_signing_key(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    create_signing_key(path, b"open sesame")
    assert b"ENCRYPTED" in path.read_bytes()
    with pytest.raises(SigningKeyError, match="is encrypted; give its passphrase"):
        load_signing_key(path, None)
    with pytest.raises(SigningKeyError, match="wrong passphrase"):
        load_signing_key(path, b"guess")
    assert load_signing_key(path, b"open sesame") is not None


async def test_init_refuses_to_overwrite_and_validates_first(tmp_path: Path) -> None:
    data = tmp_path / "node"
    with pytest.raises(ValidationError, match="'ZZZ' is not an ISO 3166-1 alpha-3"):
        await init_node(data, "ZZZ")
    assert not data.exists()
    result = await init_node(data, "fra", admin_password=ADMIN_PASSWORD)
    assert result.config.country == "FRA"
    assert stat.S_IMODE((data / "config.toml").stat().st_mode) == 0o600
    before = (data / "signing_key.pem").read_bytes()
    with pytest.raises(NodeExistsError, match="refusing to overwrite"):
        await init_node(data, "DEU")
    assert (data / "signing_key.pem").read_bytes() == before


async def test_failed_init_leaves_nothing_behind(tmp_path: Path) -> None:
    data = tmp_path / "node"
    with pytest.raises(ConfigError, match="cannot migrate"):
        await init_node(data, "FRA", db_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    assert list(data.iterdir()) == []
