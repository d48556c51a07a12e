"""Configuration and identity: validation with precise messages, keys at 0600."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from node.accounts.throttle import LoginThrottleConfig
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
from node.protocol.backoff import BackoffConfig
from node.protocol.ratelimit import RateLimitConfig
from node.web.limits import CONSOLE_LIMITS, FEDERATION_LIMITS, ConnectionLimits
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


def test_limits_default_when_absent(tmp_path: Path) -> None:
    config = config_from_dict(GOOD, tmp_path, "config.toml")
    assert config.rate_limit == RateLimitConfig(capacity=20_000, rate=50)
    assert config.peer_rate_limits == ()
    assert config.delivery_backoff == BackoffConfig(initial=10, multiplier=2, maximum=3600)
    assert config.login_throttle == LoginThrottleConfig(
        max_failures=10, window=timedelta(minutes=15), max_addresses=10_000
    )
    hash(config)  # still a frozen, hashable value


LIMITS_TOML = """
[node]
country = "FRA"

[federation]
evaluations_burst = 300
evaluations_per_second = 2.5

[federation.peer_limits.DEU]
evaluations_burst = 100000
evaluations_per_second = 200

[federation.peer_limits.ITA]
evaluations_burst = 40

[delivery]
retry_initial_s = 1.5
retry_multiplier = 3
retry_max_s = 60

[console]
login_failures = 3
login_window_s = 120
login_tracked_addresses = 50
"""


def test_limits_are_read(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(LIMITS_TOML, encoding="utf-8")
    config = load_config(tmp_path)
    assert config.rate_limit == RateLimitConfig(capacity=300, rate=2.5)
    assert dict(config.peer_rate_limits) == {
        "DEU": RateLimitConfig(capacity=100_000, rate=200),
        "ITA": RateLimitConfig(capacity=40, rate=2.5),  # the rate left out is the node's
    }
    assert config.delivery_backoff == BackoffConfig(initial=1.5, multiplier=3, maximum=60)
    assert config.login_throttle == LoginThrottleConfig(
        max_failures=3, window=timedelta(minutes=2), max_addresses=50
    )


async def test_init_writes_no_limits_so_the_defaults_apply(tmp_path: Path) -> None:
    result = await init_node(tmp_path / "node", "FRA", admin_password=ADMIN_PASSWORD)
    text = (tmp_path / "node" / "config.toml").read_text(encoding="utf-8")
    assert "evaluations" not in text and "retry" not in text and "login" not in text
    assert "timeout" not in text and "max_connections" not in text
    assert result.config.rate_limit == RateLimitConfig()
    assert result.config.delivery_backoff == BackoffConfig()
    assert result.config.login_throttle == LoginThrottleConfig()


WHOLE = "must be a whole number at least 1 and at most 1,000,000,000"
POSITIVE = "must be a number greater than 0 and at most"


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("federation", "evaluations_burst", True, f"federation.evaluations_burst {WHOLE}"),
        ("federation", "evaluations_burst", 0, f"federation.evaluations_burst {WHOLE}"),
        ("federation", "evaluations_burst", -5, f"federation.evaluations_burst {WHOLE}"),
        ("federation", "evaluations_burst", 2.5, f"federation.evaluations_burst {WHOLE}"),
        ("federation", "evaluations_burst", 10**30, f"federation.evaluations_burst {WHOLE}"),
        (
            "federation",
            "evaluations_per_second",
            0,
            f"federation.evaluations_per_second {POSITIVE}",
        ),
        ("federation", "evaluations_per_second", -1.0, "federation.evaluations_per_second must"),
        ("federation", "evaluations_per_second", "50", "federation.evaluations_per_second must"),
        ("federation", "evaluations_per_second", float("nan"), "evaluations_per_second must"),
        ("federation", "evaluations_per_second", float("inf"), "evaluations_per_second must"),
        ("delivery", "retry_initial_s", 0, f"delivery.retry_initial_s {POSITIVE}"),
        ("delivery", "retry_max_s", False, f"delivery.retry_max_s {POSITIVE}"),
        ("delivery", "retry_max_s", 1e12, f"delivery.retry_max_s {POSITIVE} 31,622,400"),
        (
            "delivery",
            "retry_multiplier",
            0.5,
            "delivery.retry_multiplier must be a number at least 1",
        ),
        (
            "delivery",
            "retry_initial_s",
            7200,
            "delivery.retry_initial_s (7200) must not exceed delivery.retry_max_s (3600)",
        ),
        ("delivery", "retry", 5, "unknown key(s) in [delivery]: retry"),
        ("console", "login_failures", 0, f"console.login_failures {WHOLE}"),
        ("console", "login_failures", True, f"console.login_failures {WHOLE}"),
        ("console", "login_window_s", -900, f"console.login_window_s {POSITIVE}"),
        ("console", "login_tracked_addresses", 0.5, f"console.login_tracked_addresses {WHOLE}"),
        (
            "federation",
            "peer_limits",
            {"XXX": {"evaluations_burst": 5}},
            "federation.peer_limits.XXX: 'XXX' is not an ISO 3166-1 alpha-3",
        ),
        ("federation", "peer_limits", {"DE": {}}, "did you mean DEU"),
        (
            "federation",
            "peer_limits",
            {"DEU": {"burst": 5}},
            "federation.peer_limits.DEU: unknown key(s): burst",
        ),
        (
            "federation",
            "peer_limits",
            {"DEU": {"evaluations_burst": 0}},
            f"federation.peer_limits.DEU.evaluations_burst {WHOLE}",
        ),
        (
            "federation",
            "peer_limits",
            {"DEU": {"evaluations_per_second": True}},
            f"federation.peer_limits.DEU.evaluations_per_second {POSITIVE}",
        ),
        ("federation", "peer_limits", {"DEU": 5}, "federation.peer_limits.DEU must be a table"),
        ("federation", "peer_limits", 5, "federation.peer_limits must hold tables"),
        ("federation", "head_timeout_s", 0, f"federation.head_timeout_s {POSITIVE}"),
        ("console", "body_timeout_s", "300", f"console.body_timeout_s {POSITIVE}"),
        ("console", "idle_timeout_s", True, f"console.idle_timeout_s {POSITIVE}"),
        ("federation", "max_connections", 0, f"federation.max_connections {WHOLE}"),
        ("console", "max_connections", 10.5, f"console.max_connections {WHOLE}"),
        (
            "federation",
            "max_connections_per_address",
            -1,
            f"federation.max_connections_per_address {WHOLE}",
        ),
        (
            "federation",
            "max_connections_per_address",
            2000,
            "federation.max_connections_per_address (2000) must not exceed "
            "federation.max_connections (1024)",
        ),
        ("console", "max_connection", 5, "unknown key(s) in [console]: max_connection"),
    ],
)
def test_bad_limits_are_named(
    tmp_path: Path, section: str, key: str, value: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(_with(section, key, value), tmp_path, "config.toml")
    assert str(info.value).startswith("config.toml: ")
    assert message in str(info.value)


def test_connection_limits_default_per_socket_and_are_read(tmp_path: Path) -> None:
    config = config_from_dict(GOOD, tmp_path, "config.toml")
    assert (
        config.federation_limits
        == FEDERATION_LIMITS
        == ConnectionLimits(
            head_timeout_s=10,
            body_timeout_s=30,
            idle_timeout_s=60,
            max_connections=1024,
            max_connections_per_address=64,
        )
    )
    assert config.console_limits == CONSOLE_LIMITS
    assert (CONSOLE_LIMITS.body_timeout_s, CONSOLE_LIMITS.max_connections_per_address) == (300, 512)
    raw = _with("federation", "max_connections", 40)
    raw["console"].update(head_timeout_s=2.5, idle_timeout_s=5, max_connections_per_address=8)
    config = config_from_dict(raw, tmp_path, "config.toml")
    # A total below the default per-address cap lowers that cap with it.
    assert config.federation_limits == ConnectionLimits(
        max_connections=40, max_connections_per_address=40
    )
    assert config.console_limits == ConnectionLimits(
        head_timeout_s=2.5,
        body_timeout_s=300,
        idle_timeout_s=5,
        max_connections=512,
        max_connections_per_address=8,
    )


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
    assert path.read_bytes().startswith(b"iarms-signing-key\x01")
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
