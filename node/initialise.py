"""Creating a node: data directory, config, signing, OPRF and HPKE keys, database, first admin."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.accounts.model import Role
from node.app import Node
from node.clock import Clock
from node.config import (
    CONFIG_NAME,
    DEFAULT_CONSOLE,
    DEFAULT_DB_URL,
    DEFAULT_FEDERATION,
    HPKE_KEY_NAME,
    KEY_NAME,
    OPRF_KEY_NAME,
    NodeConfig,
    check_public_url,
    config_from_dict,
    config_path,
    parse_listen,
    write_config,
)
from node.countries import check_alpha3
from node.errors import ConfigError, NodeExistsError
from node.identity import create_hpke_key, create_oprf_key, create_signing_key

FIRST_ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class InitResult:
    """What `init` made: the config, and the first admin's name and password."""

    config: NodeConfig
    admin_name: str
    admin_password: str


def _raw_config(
    country: str,
    db_url: str | None,
    console_listen: str | None,
    federation_listen: str | None,
    public_url: str | None,
    encrypted: bool,
) -> dict[str, Any]:
    federation = str(parse_listen(federation_listen or DEFAULT_FEDERATION, "--federation-listen"))
    console = str(parse_listen(console_listen or DEFAULT_CONSOLE, "--console-listen"))
    return {
        "node": {
            "country": check_alpha3(country.upper() if country else country, "--country"),
            "public_url": check_public_url(public_url or f"http://{federation}", "--public-url"),
        },
        "database": {"url": db_url or DEFAULT_DB_URL},
        "console": {"listen": console},
        "federation": {"listen": federation},
        "keys": {"signing_key": KEY_NAME, "encrypted": encrypted},
    }


async def init_node(
    data_dir: Path,
    country: str,
    *,
    db_url: str | None = None,
    console_listen: str | None = None,
    federation_listen: str | None = None,
    public_url: str | None = None,
    admin_password: str | None = None,
    passphrase: bytes | None = None,
    clock: Clock | None = None,
) -> InitResult:
    """Create a new node in `data_dir`; NodeExistsError if one is already there.

    Every argument is validated before anything is written.
    """
    raw = _raw_config(
        country, db_url, console_listen, federation_listen, public_url, passphrase is not None
    )
    if config_path(data_dir).exists():
        raise NodeExistsError(
            f"{data_dir} already holds a node ({CONFIG_NAME}); refusing to overwrite it"
        )
    if (data_dir / KEY_NAME).exists():
        raise NodeExistsError(f"{data_dir} already holds a signing key; refusing to overwrite it")
    config_from_dict(raw, data_dir.resolve(), "--db-url/--*-listen")  # validate before writing
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise ConfigError(f"cannot create the data directory {data_dir}: {e.strerror}") from e
    before = set(data_dir.iterdir())
    try:
        create_signing_key(data_dir / KEY_NAME, passphrase)
        create_oprf_key(data_dir / OPRF_KEY_NAME, passphrase)
        create_hpke_key(data_dir / HPKE_KEY_NAME, passphrase)
        config = write_config(data_dir, raw)
        node = await Node.open(config, clock, migrate=True)
        try:
            # A password init generates and prints must be changed at first login; one the
            # admin chose (--admin-password-file) is theirs already.
            _user, password = await node.users.add_user(
                FIRST_ADMIN,
                Role.ADMIN,
                False,
                admin_password,
                actor="init",
                must_change_password=admin_password is None,
            )
        finally:
            await node.close()
    except BaseException:
        # Leave no half-made node behind, so that init can simply be run again.
        for path in set(data_dir.iterdir()) - before:
            path.unlink(missing_ok=True)
        raise
    return InitResult(config, FIRST_ADMIN, password)
