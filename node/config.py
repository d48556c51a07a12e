"""The node's configuration: one TOML file in the data directory, loaded and validated once.

```toml
[node]
country = "FRA"                      # ISO 3166-1 alpha-3
public_url = "http://127.0.0.1:8443" # how peers reach the federation API

[database]
url = "sqlite+aiosqlite:///node.db"  # relative SQLite paths are inside the data directory

[console]
listen = "127.0.0.1:8080"

[federation]
listen = "127.0.0.1:8443"

[keys]
signing_key = "signing_key.pem"      # Ed25519, PKCS#8 PEM, mode 0600
encrypted = false                    # true: a passphrase is needed to start the node
oprf_key = "oprf_key.bin"            # VOPRF key of the lookups, mode 0600, sealed if encrypted
```
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomli_w

from node.countries import check_alpha3
from node.errors import ConfigError, ValidationError
from node.store.database import check_url

CONFIG_NAME = "config.toml"
DEFAULT_CONSOLE = "127.0.0.1:8080"
DEFAULT_FEDERATION = "127.0.0.1:8443"
DEFAULT_DB_URL = "sqlite+aiosqlite:///node.db"
KEY_NAME = "signing_key.pem"
OPRF_KEY_NAME = "oprf_key.bin"
SECTIONS = {
    "node": {"country", "public_url"},
    "database": {"url"},
    "console": {"listen"},
    "federation": {"listen"},
    "keys": {"signing_key", "encrypted", "oprf_key"},
}


@dataclass(frozen=True, slots=True)
class Listen:
    """A HOST:PORT to serve on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_listen(text: str, what: str) -> Listen:
    """Parse HOST:PORT (IPv6 as [::1]:PORT); ConfigError with `what` in the message."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what}: expected HOST:PORT with a port from 1 to 65535, got {text!r}")
    return Listen(host, int(port))


def check_public_url(text: str, what: str = "node.public_url") -> str:
    """An http(s) URL with a host and no query; trailing slash removed."""
    parts = urlsplit(str(text))
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(
            f"{what}: expected an http:// or https:// URL such as "
            f"https://iarms.police.example:8443, got {text!r}"
        )
    return str(text).rstrip("/")


def resolve_db_url(url: str, data_dir: Path) -> str:
    """Make a relative SQLite path absolute inside the data directory."""
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str(data_dir / url[len(prefix) :])
    return url


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything the node reads from its config file, validated."""

    data_dir: Path
    country: str
    public_url: str
    database_url: str
    console: Listen
    federation: Listen
    signing_key_file: Path
    key_encrypted: bool
    oprf_key_file: Path

    @property
    def public_key_file(self) -> Path:
        """The public half of the signing key (raw 32 bytes, hex), readable without a passphrase."""
        return self.signing_key_file.with_suffix(".pub")


def config_path(data_dir: Path) -> Path:
    """Where a data directory keeps its config file."""
    return data_dir / CONFIG_NAME


def load_config(data_dir: Path) -> NodeConfig:
    """Read and validate `DIR/config.toml`; ConfigError naming the bad value otherwise."""
    path = config_path(data_dir)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{data_dir} is not an iarms-node data directory (no {CONFIG_NAME}); "
            "create one with 'iarms-node init'"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read ({e})") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    return config_from_dict(raw, data_dir.resolve(), str(path))


def _get(raw: dict[str, Any], section: str, key: str, where: str, default: Any = None) -> Any:
    value = raw.get(section, {}).get(key, default)
    if value is None:
        raise ConfigError(f"{where}: [{section}] {key} is required")
    return value


def config_from_dict(raw: dict[str, Any], data_dir: Path, where: str) -> NodeConfig:
    """Validate a parsed config; every error names the file, section and key."""
    for section, value in raw.items():
        if section not in SECTIONS or not isinstance(value, dict):
            raise ConfigError(f"{where}: unknown section [{section}]; known: {', '.join(SECTIONS)}")
        unknown = set(value) - SECTIONS[section]
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) in [{section}]: {', '.join(sorted(unknown))}"
            )
    try:
        country = check_alpha3(str(_get(raw, "node", "country", where)), f"{where}: node.country")
    except ValidationError as e:
        raise ConfigError(str(e)) from e
    try:
        db_url = check_url(
            resolve_db_url(str(_get(raw, "database", "url", where, DEFAULT_DB_URL)), data_dir)
        )
    except ConfigError as e:
        raise ConfigError(f"{where}: database.url: {e}") from e
    console = parse_listen(
        _get(raw, "console", "listen", where, DEFAULT_CONSOLE), f"{where}: console.listen"
    )
    federation = parse_listen(
        _get(raw, "federation", "listen", where, DEFAULT_FEDERATION), f"{where}: federation.listen"
    )
    if (console.host, console.port) == (federation.host, federation.port):
        raise ConfigError(f"{where}: console.listen and federation.listen must differ")
    public_url = check_public_url(
        _get(raw, "node", "public_url", where, f"http://{federation}"), f"{where}: node.public_url"
    )
    encrypted = _get(raw, "keys", "encrypted", where, False)
    if not isinstance(encrypted, bool):
        raise ConfigError(f"{where}: keys.encrypted must be true or false")
    key_file = Path(str(_get(raw, "keys", "signing_key", where, KEY_NAME)))
    oprf_file = Path(str(_get(raw, "keys", "oprf_key", where, OPRF_KEY_NAME)))
    return NodeConfig(
        data_dir=data_dir,
        country=country,
        public_url=public_url,
        database_url=db_url,
        console=console,
        federation=federation,
        signing_key_file=key_file if key_file.is_absolute() else data_dir / key_file,
        key_encrypted=encrypted,
        oprf_key_file=oprf_file if oprf_file.is_absolute() else data_dir / oprf_file,
    )


def write_config(data_dir: Path, raw: dict[str, Any]) -> NodeConfig:
    """Validate `raw` and write it as the data directory's config (mode 0600)."""
    config = config_from_dict(raw, data_dir.resolve(), str(config_path(data_dir)))
    fd = os.open(config_path(data_dir), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        tomli_w.dump(raw, f)
    return config
