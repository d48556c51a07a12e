"""Shared fixtures: nodes on SQLite and, when IARMS_TEST_PG_URL is set, on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from argon2 import PasswordHasher

from node import sealed
from node.accounts import service as accounts_service
from node.app import Node
from node.clock import FakeClock
from node.config import load_config
from tests.cli_helpers import run
from tests.harness import ADMIN_PASSWORD as HARNESS_ADMIN_PASSWORD
from tests.harness import (
    PG_URL,
    Federation,
    create_pg_database,
    drop_pg_database,
    init_args,
    init_copy,
    seeded_federation,
)

if TYPE_CHECKING:
    from tests.console_helpers import Console

ADMIN_PASSWORD = "correct horse battery staple"


class CheapArgon2(PasswordHasher):
    """Argon2id with the smallest cost it accepts: the node's own (64 MiB, 3 passes, 4 lanes)
    takes about 0.25 s of CPU for each hash and each login, and no test is about that cost.
    Every hash is still a real Argon2id hash, verified by argon2-cffi with the parameters
    it names (so a node initialised with the node's own cost still lets its admin log in)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)


#: The scrypt cost (log2 N) the node seals its keys with; the tests seal with `CHEAP_SCRYPT`.
NODE_SCRYPT_LOG2_N = sealed.SCRYPT_LOG2_N
CHEAP_SCRYPT = 4


@pytest.fixture(scope="session", autouse=True)
def cheap_kdfs() -> Iterator[None]:
    """In this process, passwords are hashed with `CheapArgon2` and keys sealed with scrypt
    at N = 2**`CHEAP_SCRYPT`, instead of 0.25 s and 0.1 s of CPU each time (the sealed
    format names its parameters, so the files still open anywhere). Nodes run as
    `iarms-node` processes (the CLI tests) keep the node's own costs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts_service, "PasswordHasher", CheapArgon2)
        patch.setattr(sealed, "SCRYPT_LOG2_N", CHEAP_SCRYPT)
        yield


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


@pytest.fixture
def clock() -> FakeClock:
    """A clock that tests move by hand."""
    return FakeClock()


@asynccontextmanager
async def _database(backend: str, directory: Path) -> AsyncIterator[str]:
    """A fresh database URL on `backend`; PostgreSQL skipped without IARMS_TEST_PG_URL."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'node.db'}"
        return
    if not PG_URL:
        pytest.skip("IARMS_TEST_PG_URL is not set: PostgreSQL backend not tested")
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@asynccontextmanager
async def _fra(directory: Path, db_url: str, clock: FakeClock) -> AsyncIterator[Node]:
    """A complete, initialised node (country FRA) in `directory` on `db_url`, open."""
    data_dir = directory / "fra"
    await init_copy(data_dir, "FRA", ADMIN_PASSWORD, clock, db_url=db_url)
    opened = await Node.open(load_config(data_dir), clock)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database URL on each backend; PostgreSQL skipped without IARMS_TEST_PG_URL."""
    async with _database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def node(tmp_path: Path, db_url: str, clock: FakeClock) -> AsyncIterator[Node]:
    """A complete, initialised node (country FRA) on each backend, with a fake clock."""
    async with _fra(tmp_path, db_url, clock) as opened:
        yield opened


@pytest.fixture
async def sqlite_node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Node]:
    """A complete node on SQLite only (for tests that need no second backend)."""
    data_dir = tmp_path / "fra"
    await init_copy(data_dir, "FRA", ADMIN_PASSWORD, clock)
    opened = await Node.open(load_config(data_dir), clock)
    yield opened
    await opened.close()


def wants_http(request: pytest.FixtureRequest) -> bool:
    """Whether the requesting test is marked `http` (its nodes on real loopback HTTP)."""
    return request.node.get_closest_marker("http") is not None


@pytest.fixture
async def fed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Federation]:
    """FRA, DEU and ITA with records at DEU and ITA (`seeded_federation`)."""
    federation = await seeded_federation(tmp_path, http=wants_http(request))
    yield federation
    await federation.close()


@pytest.fixture
async def fra(fed: Federation) -> AsyncIterator[Console]:
    """FRA's console with its federation services, logged in as its admin."""
    async with _admin_console(fed) as console:
        yield console


@asynccontextmanager
async def _admin_console(fed: Federation) -> AsyncIterator[Console]:
    from tests.console_helpers import console_for  # it imports this module

    async with console_for(fed["FRA"].n, fed=fed["FRA"].f) as console:
        await console.login_as("admin", HARNESS_ADMIN_PASSWORD)
        yield console


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node (FRA) made by `iarms-node init`, shared by the tests of one module."""
    base = tmp_path_factory.mktemp("cli")
    password = base / "admin.txt"
    password.write_text("a long admin password\n", encoding="utf-8")
    data = base / "fra"
    result = run(*init_args(data, password))
    assert result.returncode == 0, result.stderr
    assert "signing key fingerprint:" in result.stdout
    return data


#: The event loop of the module-wide fixtures below, and of the tests that use them.
MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def module_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Node]:
    """`node`, built once per module and backend, for the tests that only read it: they
    must leave it as they found it, and run in the module's event loop (`MODULE_LOOP`)."""
    directory = tmp_path_factory.mktemp("node")
    async with _database(request.param, directory) as url, _fra(directory, url, FakeClock()) as n:
        yield n


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    """`seeded_federation`, built once per module, for the tests that only read it:
    they must leave it as they found it, and run in the module's event loop (`MODULE_LOOP`)."""
    federation = await seeded_federation(tmp_path_factory.mktemp("seeded"))
    yield federation
    await federation.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded_fra(seeded: Federation) -> AsyncIterator[Console]:
    """FRA's console on `seeded`, logged in as its admin (once per module)."""
    async with _admin_console(seeded) as console:
        yield console
