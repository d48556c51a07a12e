"""The multi-node harness: complete nodes, each with its own database and key,
serving their federation API on real loopback ports.

Every federation test builds its federation through `Federation`; nodes can
be stopped (a peer down), started again on the same port and data (a
restart), and given their own clocks (clock skew).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
from asyncio.subprocess import PIPE
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from node.app import Federation as FederationServices
from node.app import Node, federation
from node.clock import FakeClock, SystemClock
from node.config import load_config
from node.identity import NodeKeys, fingerprint, load_keys
from node.initialise import init_node
from node.protocol.model import Service
from node.protocol.ratelimit import RateLimitConfig
from node.records.model import RecordInput
from node.web.federation_api import build_federation_app
from node.web.guard import serve_app

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


@dataclass
class Member:
    """One node of the federation and the server that makes it reachable."""

    country: str
    data_dir: Path
    clock: FakeClock
    node: Node | None = None
    keys: NodeKeys | None = None
    fed: FederationServices | None = None
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The public federation URL peers use."""
        return self.n.config.public_url

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
        """The node's signing and OPRF keys (fails if never started)."""
        assert self.keys is not None, f"{self.country} was never started"
        return self.keys

    @property
    def fingerprint(self) -> str:
        """The signing key's fingerprint, as its admin would read it out."""
        return fingerprint(self.n.public_key)


@dataclass
class Federation:
    """N complete nodes on loopback HTTP."""

    base: Path
    # Starts at the real time: the CLI, run beside the harness, uses the system clock.
    clock: FakeClock = field(default_factory=lambda: FakeClock(SystemClock().now()))
    members: dict[str, Member] = field(default_factory=dict)
    rate_limit: RateLimitConfig | None = None

    async def add(
        self, country: str, clock: FakeClock | None = None, db_url: str | None = None
    ) -> Member:
        """Create, open and serve a new node for `country` (on SQLite unless `db_url`)."""
        data_dir = self.base / country
        port = free_port()
        await init_node(
            data_dir,
            country,
            db_url=db_url,
            admin_password=ADMIN_PASSWORD,
            clock=clock or self.clock,
            federation_listen=f"127.0.0.1:{port}",
            console_listen=f"127.0.0.1:{free_port()}",
        )
        member = Member(country, data_dir, clock or self.clock)
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
        member.node = await Node.open(config, member.clock)
        member.fed = federation(member.node, member.keys, self.rate_limit)
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
        if member.runner is not None:
            await member.runner.cleanup()
            member.runner = None
        if member.node is not None:
            await member.node.close()
            member.node = None
            member.fed = None

    async def peer_all(self, *services: Service) -> None:
        """Make every node a peer of every other, allowing `services` (default: lookups)."""
        for a in self.members.values():
            for b in self.members.values():
                if a is b:
                    continue
                await a.n.peers.add(b.url, b.country, b.fingerprint, "harness")
                if services:
                    await a.n.peers.set_policy(b.country, services, "harness")

    async def close(self) -> None:
        """Stop every node."""
        for country in list(self.members):
            await self.stop(country)


async def seeded_federation(base: Path, rate_limit: RateLimitConfig | None = None) -> Federation:
    """FRA, DEU and ITA, peers allowing lookups and hit details, indexes published:
    DEU holds GLK-12345 (Glock, stolen), ITA holds B-777 (Beretta, lost)."""
    federation = Federation(base, rate_limit=rate_limit)
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
