"""The multi-node harness: complete nodes, each with its own database and key.

Every federation test builds its federation through `Federation`. Its nodes
reach each other in memory by default (`node.protocol.memory`: the same
envelopes and dispatcher as over HTTP, no sockets); `Federation(...,
http=True)` serves each node's federation API on a real loopback port, for
the tests of the transport itself, of the end-to-end paths and of the CLI.
Nodes can be stopped (a peer down), started again on the same URL and data
(a restart), given their own clocks (clock skew), cut from each other
(`partition`, `heal`); `settle` delivers everything queued. On HTTP, a stopped
node can also run as a real `iarms-node run` process (`spawn`), to be killed
with SIGKILL (`kill`) and spawned again on the same data: a crash. A new node is
a copy of one initialised once per process (`init_copy`), not a fresh `init`.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import os
import shutil
import signal
import socket
import sys
import tempfile
import uuid
from asyncio.subprocess import PIPE
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from node.app import Federation as FederationServices
from node.app import FederationApi, Node, federation
from node.clock import FakeClock, SystemClock
from node.config import (
    CONFIG_NAME,
    DEFAULT_CONSOLE,
    DEFAULT_FEDERATION,
    load_config,
    parse_listen,
)
from node.identity import NodeKeys, fingerprint, load_keys
from node.initialise import init_node
from node.protocol.memory import MemoryNetwork
from node.protocol.model import OutboxMessage, OutboxStatus, Service
from node.protocol.ratelimit import RateLimitConfig
from node.protocol.transport import PeerTransport, PeerUnreachableError
from node.records.model import RecordInput
from node.stats.noise import NoiseSource
from node.web.federation_api import build_federation_app
from node.web.guard import serve_app
from node.web.http_transport import HttpTransport

ADMIN_PASSWORD = "harness admin password"


#: Ports handed out by `free_port`: below the range the kernel gives outgoing
#: connections (32768-60999 here), in a block of its own per xdist worker.
#: `IARMS_TEST_PORT_BASE` moves the blocks, so that two suites can run at once.
PORT_BLOCK = 2000
PORT_BASE = int(os.environ.get("IARMS_TEST_PORT_BASE", "12000"))
_ports = itertools.count()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Not one the kernel picks (port 0): between our check and the server's
    bind, an outgoing connection of another test process could be given the
    same ephemeral port. Each xdist worker takes ports from its own block,
    in turn, skipping any that cannot be bound.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = PORT_BASE + (int(worker) % 8 if worker.isdigit() else 0) * PORT_BLOCK
    for _ in range(PORT_BLOCK):
        port = base + next(_ports) % PORT_BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port from {base} to {base + PORT_BLOCK - 1}")


CLI = str(Path(sys.executable).parent / "iarms-node")


async def run_cli(*args: str) -> tuple[int, str, str]:
    """Run `iarms-node` without blocking the event loop that serves the federation."""
    proc = await asyncio.create_subprocess_exec(CLI, *args, stdout=PIPE, stderr=PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


def init_args(data_dir: Path, admin_password_file: Path) -> list[str]:
    """`iarms-node init` arguments for a FRA node on free loopback ports."""
    return [
        "init",
        "--country",
        "FRA",
        "--data-dir",
        str(data_dir),
        "--console-listen",
        f"127.0.0.1:{free_port()}",
        "--federation-listen",
        f"127.0.0.1:{free_port()}",
        "--admin-password-file",
        str(admin_password_file),
    ]


def _base(url: str) -> str:
    """A node's URL, from the URL of one of its federation API's paths."""
    return url.split("/federation/", 1)[0]


class CutTransport:
    """A node's transport that cannot reach the nodes it is partitioned from."""

    def __init__(self, inner: PeerTransport, origin: str, cuts: set[frozenset[str]]) -> None:
        self.inner = inner
        self._origin = origin
        self._cuts = cuts

    def _check(self, url: str) -> None:
        if frozenset((self._origin, _base(url))) in self._cuts:
            raise PeerUnreachableError(f"{url}: partitioned from {self._origin} (harness)")

    async def get(self, url: str, max_bytes: int) -> bytes:
        """The inner transport's, unless cut."""
        self._check(url)
        return await self.inner.get(url, max_bytes)

    async def post(self, url: str, data: bytes, max_bytes: int) -> bytes:
        """The inner transport's, unless cut."""
        self._check(url)
        return await self.inner.post(url, data, max_bytes)

    async def close(self) -> None:
        """Close the inner transport."""
        await self.inner.close()


@dataclass
class Member:
    """One node of the federation and what makes it reachable (a server, or the network)."""

    country: str
    data_dir: Path
    clock: FakeClock
    url: str  # the public federation URL peers use
    node: Node | None = None
    keys: NodeKeys | None = None
    fed: FederationServices | None = None
    runner: web.AppRunner | None = None
    proc: asyncio.subprocess.Process | None = None  # when it runs as `iarms-node run`

    @property
    def n(self) -> Node:
        """The running node (fails if stopped)."""
        assert self.node is not None, f"{self.country} is stopped"
        return self.node

    @property
    def f(self) -> FederationServices:
        """The running node's federation services."""
        assert self.fed is not None, f"{self.country} is stopped"
        return self.fed

    @property
    def k(self) -> NodeKeys:
        """The node's signing, OPRF and HPKE keys (fails if never started)."""
        assert self.keys is not None, f"{self.country} was never started"
        return self.keys

    @property
    def fingerprint(self) -> str:
        """The signing key's fingerprint, as its admin would read it out."""
        return fingerprint(self.n.public_key)


#: Nodes initialised once per process (on SQLite, for each country, admin password and
#: kind of clock) and copied for each test: `init_node` takes about a second (Argon2,
#: migrations), a copy milliseconds. Each node of a federation has its own database and keys.
_templates: dict[tuple[str, str, bool, bool], Path] = {}
_TEMPLATE_LISTENS = ("127.0.0.1:1", "127.0.0.1:2")


async def init_copy(
    data_dir: Path,
    country: str,
    admin_password: str,
    clock: FakeClock,
    *,
    db_url: str | None = None,
    federation_listen: str = DEFAULT_FEDERATION,
    console_listen: str = DEFAULT_CONSOLE,
) -> None:
    """As `init_node(data_dir, country, ...)`, by copying a node initialised once per
    process, when it was then: a clock at `FakeClock`'s default start gets a node
    initialised then; any other, one initialised at the real time. `db_url` is an SQLite
    file URL or an (empty) PostgreSQL database, which becomes a copy of the template's.
    """
    fixed = clock.now() == FakeClock().now()
    postgres = db_url is not None and db_url.startswith("postgresql")
    key = (country, admin_password, fixed, postgres)
    template = _templates.get(key)
    if template is None:
        base = Path(tempfile.mkdtemp(prefix=f"iarms-template-{country}-"))
        atexit.register(shutil.rmtree, base, ignore_errors=True)
        template_db = await create_pg_database() if postgres else None
        if template_db is not None:
            atexit.register(lambda: asyncio.run(drop_pg_database(template_db)))
        await init_node(
            base / "node",
            country,
            db_url=template_db,
            admin_password=admin_password,
            clock=FakeClock() if fixed else FakeClock(SystemClock().now()),
            federation_listen=_TEMPLATE_LISTENS[0],
            console_listen=_TEMPLATE_LISTENS[1],
        )
        template = _templates[key] = base / "node"
    shutil.copytree(template, data_dir)
    config = data_dir / CONFIG_NAME
    toml = config.read_text()
    listens = (federation_listen, console_listen)
    for old, new in zip(_TEMPLATE_LISTENS, listens, strict=True):
        toml = toml.replace(f'{old}"', f'{parse_listen(new, "listen")}"')
    old_url = toml.split('[database]\nurl = "', 1)[1].split('"', 1)[0]
    if postgres:
        assert db_url is not None
        await drop_pg_database(db_url)
        await create_pg_database(db_url, template=old_url)
    elif db_url is not None:  # an SQLite file outside the data directory
        db_file = db_url.split(":///", 1)[1]
        for suffix in ("", "-wal", "-shm"):
            if (data_dir / f"node.db{suffix}").exists():
                (data_dir / f"node.db{suffix}").rename(f"{db_file}{suffix}")
    if db_url is not None:
        toml = toml.replace(f'"{old_url}"', f'"{db_url}"')
    config.write_text(toml)


#: The PostgreSQL server's URL for tests (any database: new ones are made beside it).
PG_URL = os.environ.get("IARMS_TEST_PG_URL")


async def _on_pg_server(statement: str) -> None:
    assert PG_URL, "IARMS_TEST_PG_URL is not set"
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await admin.dispose()


async def create_pg_database(url: str | None = None, template: str | None = None) -> str:
    """Create a PostgreSQL database (at `url`, else a new name), empty or a copy of the
    database at `template`; return its URL."""
    assert PG_URL, "IARMS_TEST_PG_URL is not set"
    url = url or PG_URL.rsplit("/", 1)[0] + f"/iarms_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
    await _on_pg_server(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"{copy}')
    return url


async def drop_pg_database(url: str) -> None:
    """Drop the PostgreSQL database at `url`, if it exists."""
    await _on_pg_server(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@dataclass
class Federation:
    """N complete nodes, reaching each other in memory (or on loopback HTTP if `http`)."""

    base: Path
    # Starts at the real time: the CLI, run beside the harness, uses the system clock.
    clock: FakeClock = field(default_factory=lambda: FakeClock(SystemClock().now()))
    members: dict[str, Member] = field(default_factory=dict)
    rate_limit: RateLimitConfig | None = None
    http: bool = False
    network: MemoryNetwork = field(default_factory=MemoryNetwork)
    cuts: set[frozenset[str]] = field(default_factory=set)
    #: The noise every node's statistics sums get instead of OpenDP's (tests only).
    stats_noise: NoiseSource | None = None

    async def add(
        self, country: str, clock: FakeClock | None = None, db_url: str | None = None
    ) -> Member:
        """Create, open and serve a new node for `country` (on SQLite unless `db_url`)."""
        data_dir = self.base / country
        listens = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        if clock is None:
            await init_copy(
                data_dir,
                country,
                ADMIN_PASSWORD,
                self.clock,
                db_url=db_url,
                federation_listen=listens[0],
                console_listen=listens[1],
            )
        else:
            await init_node(
                data_dir,
                country,
                db_url=db_url,
                admin_password=ADMIN_PASSWORD,
                clock=clock or self.clock,
                federation_listen=listens[0],
                console_listen=listens[1],
            )
        member = Member(country, data_dir, clock or self.clock, load_config(data_dir).public_url)
        self.members[country] = member
        await self.start(country)
        return member

    def __getitem__(self, country: str) -> Member:
        return self.members[country]

    async def start(self, country: str) -> None:
        """Open the node and serve its federation API (again, after `stop`)."""
        member = self.members[country]
        config = load_config(member.data_dir)
        member.keys = load_keys(config, None)
        inner = HttpTransport() if self.http else self.network.transport()
        transport = CutTransport(inner, member.url, self.cuts)
        member.node = await Node.open(config, member.clock, transport=transport)
        member.fed = federation(member.node, member.keys, self.rate_limit, self.stats_noise)
        if not self.http:
            self.network.attach(member.url, FederationApi(member.node, member.fed))
            return
        # Served as `iarms-node run` serves it: with the connection defences on.
        member.runner = await serve_app(
            build_federation_app(member.node, member.fed),
            config.federation.host,
            config.federation.port,
            config.federation_limits,
            f"{member.country} federation API",
        )

    async def stop(self, country: str) -> None:
        """Stop serving and close the node (a peer that is down)."""
        member = self.members[country]
        self.network.detach(member.url)
        if member.runner is not None:
            await member.runner.cleanup()
            member.runner = None
        if member.node is not None:
            await member.node.close()
            member.node = None
            member.fed = None

    async def spawn(self, country: str, within_s: float = 120.0) -> None:
        """Run the stopped node as `iarms-node run` (its own process, on the system clock,
        with its own delivery loop) and return once it serves its federation API. Its
        output goes to `<base>/<country>.log`, named by the failure if it does not serve.
        """
        member = self.members[country]
        assert self.http, "a node in its own process is reached over HTTP only"
        assert member.node is None and member.proc is None, f"{country} is running"
        log = self.base / f"{country}.log"
        with log.open("ab") as out:
            member.proc = await asyncio.create_subprocess_exec(
                CLI, "run", "--data-dir", str(member.data_dir), stdout=out, stderr=out
            )
        health = f"{member.url}/federation/v1/health"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        async with aiohttp.ClientSession() as session:
            while member.proc.returncode is None and loop.time() < deadline:
                try:
                    async with session.get(health) as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(
            f"{country} did not serve ({member.proc.returncode}): {log.read_text()}"
        )

    async def kill(self, country: str) -> None:
        """End the node's `iarms-node run` process with SIGKILL: nothing of it runs on."""
        member = self.members[country]
        assert member.proc is not None, f"{country} does not run in its own process"
        if member.proc.returncode is None:
            member.proc.send_signal(signal.SIGKILL)
        await member.proc.wait()
        member.proc = None

    async def peer_all(self, *services: Service) -> None:
        """Make every node a peer of every other, allowing `services` (default: lookups)."""
        for a in self.members.values():
            for b in self.members.values():
                if a is b:
                    continue
                await a.n.peers.add(b.url, b.country, b.fingerprint, "harness")
                if services:
                    await a.n.peers.set_policy(b.country, services, "harness")

    def partition(self, a: str, b: str) -> None:
        """Cut `a` and `b` apart: what either sends the other fails as unreachable."""
        self.cuts.add(frozenset((self[a].url, self[b].url)))

    def heal(self, a: str, b: str) -> None:
        """Undo `partition(a, b)`."""
        self.cuts.discard(frozenset((self[a].url, self[b].url)))

    async def settle(self, within_s: float = 7200.0, timeout_s: float = 60.0) -> None:
        """Deliver everything queued, until every running node's outbox is empty.

        Each round, every running node delivers what is due; then the clocks
        move on (1 s, then twice as far each round, firing their timers) past
        the backoff of what failed. AssertionError naming each message still
        queued once the clocks have moved `within_s`, or after `timeout_s` of
        real time.
        """
        clocks = list({id(m.clock): m.clock for m in self.members.values()}.values())
        moved, step = 0.0, 1.0
        async with asyncio.timeout(timeout_s):
            while True:
                running = [m for m in self.members.values() if m.node is not None]
                for member in running:
                    await member.n.delivery.deliver_due(member.f.client)
                queued = [
                    (member.country, message)
                    for member in running
                    for message in await member.n.delivery.messages(OutboxStatus.PENDING)
                ]
                if not queued:
                    return
                if moved >= within_s:
                    raise AssertionError(
                        f"still queued after {moved:.0f} s of clock time: "
                        + "; ".join(_queued(country, m) for country, m in queued)
                    )
                step = min(step, within_s - moved)
                for clock in clocks:
                    clock.advance(step)
                moved, step = moved + step, step * 2
                await asyncio.sleep(0)  # let the loops whose timers fired run

    async def close(self) -> None:
        """Stop every node (and kill those running in their own process)."""
        for country, member in self.members.items():
            await self.stop(country)
            if member.proc is not None:
                await self.kill(country)


def _queued(sender: str, message: OutboxMessage) -> str:
    return (
        f"{sender} -> {message.recipient} {message.type} "
        f"({message.attempts} attempts, last error: {message.last_error})"
    )


async def seeded_federation(
    base: Path, rate_limit: RateLimitConfig | None = None, http: bool = False
) -> Federation:
    """FRA, DEU and ITA, peers allowing lookups and hit details, indexes published:
    DEU holds GLK-12345 (Glock, stolen), ITA holds B-777 (Beretta, lost)."""
    federation = Federation(base, rate_limit=rate_limit, http=http)
    for country in ("FRA", "DEU", "ITA"):
        await federation.add(country)
    await federation.peer_all(Service.LOOKUPS, Service.HIT_DETAILS)
    await federation["DEU"].n.records.create(
        RecordInput(
            "GLK-12345", "Glock", "pistol", "stolen", case_reference="DE-7", notes="from a gun shop"
        ),
        "t",
    )
    await federation["ITA"].n.records.create(RecordInput("B-777", "Beretta", "pistol", "lost"), "t")
    for member in federation.members.values():
        await member.n.lookup_index.refresh(member.k.oprf)
    return federation


def assert_seeded_lookup(answers: dict[str, dict[str, object]]) -> None:
    """The answers of a `seeded_federation` to a lookup of "glk 12345" (make "glock")."""
    deu = answers["DEU"]
    records = deu["records"]
    assert deu["result"] == "hit"
    assert deu["make_agrees"] is True
    assert isinstance(records, list)
    assert records[0]["serial_number"] == "GLK-12345"
    assert records[0]["notes"] == "from a gun shop"
    assert answers["ITA"] == {
        "peer": "ITA",
        "serial": "glk 12345",
        "result": "no_hit",
        "index_version": 1,
    }
