"""The composition root: wires config, clock, store and services into a `Node`.

Nothing else constructs services; the CLI, the console and the tests all get
them from `Node.open`.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.accounts.service import UsersService
from node.accounts.throttle import LoginThrottle
from node.audit import AuditService
from node.auditing import AuditLog
from node.clock import Clock, SystemClock
from node.config import NodeConfig
from node.identity import (
    NodeKeys,
    load_hpke_public_key,
    load_oprf_public_key,
    load_public_key,
    load_rotation,
)
from node.lookup.evidence import EvidenceService
from node.lookup.index import LookupIndex
from node.protocol.delivery import DeliveryService
from node.protocol.descriptor import sign_descriptor
from node.protocol.model import Peer
from node.protocol.peers import PeerHook, PeersService
from node.protocol.ratelimit import RateLimitConfig
from node.protocol.transport import PeerTransport
from node.records.importer import ImportService
from node.records.record_rows import RECORD_ROWS
from node.records.reference import ReferenceTable, load_reference
from node.records.service import RecordsService
from node.stats.local import LocalStats
from node.store.audit import AuditStore
from node.store.custody import CustodyStore
from node.store.database import SCHEMA_REVISION, Database
from node.store.evidence import EvidenceStore
from node.store.lookups import LookupStore
from node.store.outbox import OutboxStore
from node.store.peers import PeersStore
from node.store.records import RecordsStore
from node.store.stats import StatsStore
from node.store.users import UsersStore
from node.trace.custody import CustodyService
from node.web.http_transport import HttpTransport

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from node.lookup.querier import LookupService
    from node.protocol.client import PeerClient
    from node.protocol.dispatch import Dispatcher
    from node.protocol.receive import Receiver
    from node.stats.budget import Budget
    from node.stats.noise import NoiseSource
    from node.stats.service import RoundsService
    from node.store.work import StoreWork
    from node.trace.forward import Onward
    from node.trace.hop import TraceHop
    from node.trace.reminders import TraceReminders
    from node.trace.service import TraceService


@dataclass(frozen=True, slots=True)
class Node:
    """One country's node: its configuration and its services.

    Opening a node needs no secret (so no passphrase): the signing, OPRF and
    HPKE keys are loaded only by the commands that speak for the node
    (`identity.load_keys`, then `federation`).
    """

    config: NodeConfig
    clock: Clock
    db: Database
    reference: ReferenceTable
    records: RecordsService
    imports: ImportService
    users: UsersService
    audit: AuditService
    #: Where the services append their entries (the federation's too).
    audit_log: AuditLog
    peers: PeersService
    delivery: DeliveryService
    lookup_index: LookupIndex
    lookups_store: LookupStore
    #: Set when this process stores a record change: the lookup index follows promptly.
    records_changed: asyncio.Event
    evidence: EvidenceService
    #: The registry of legal custody (imports, searches; the chains trace hops answer from).
    custody: CustodyService
    #: This country's statistics, exact (the console's statistics page, `stats local`).
    stats: LocalStats
    transport: PeerTransport
    public_key: bytes
    oprf_public_key: bytes | None  # None until the OPRF key is made (`load_keys`)
    hpke_public_key: bytes | None  # None until the HPKE key is made (`load_keys`)

    @classmethod
    async def open(
        cls,
        config: NodeConfig,
        clock: Clock | None = None,
        migrate: bool = False,
        transport: PeerTransport | None = None,
    ) -> Node:
        """Open the database and build the services.

        The database's schema must be the one this code knows (one cheap read);
        `migrate` brings an older one up to date first (`init`, `run`, `migrate`) and
        keeps this node's current signing key in its key history.

        Raises:
            SchemaVersionError: without `migrate`, a schema behind this code's (its
                message says which command migrates it); a schema ahead, always.
        """
        clock = clock or SystemClock()
        transport = transport or HttpTransport()
        db = Database(config.database_url)
        try:
            if migrate:
                await db.migrate()
            else:
                await db.check_schema(migrate_command(config))
        except BaseException:
            await db.close()
            raise
        audit_store = AuditStore(db)
        lookups_store = LookupStore(db)
        records_store = RecordsStore(db)
        reference = load_reference()
        changed = asyncio.Event()
        records = RecordsService(records_store, audit_store, reference, clock, changed.set)
        public_key = load_public_key(config.signing_key_file)
        peers = PeersService(
            PeersStore(db),
            transport,
            clock,
            config.country,
            own_key=public_key,
            own_rotation=load_rotation(config.data_dir),
        )
        delivery = DeliveryService(
            OutboxStore(db), clock, config.delivery_backoff, peers=peers, me=config.country
        )
        if migrate:  # `init` and `run`, where a new key (`identity rotate`) starts signing
            try:
                await peers.record_own_keys()
            except BaseException:
                await db.close()
                raise
        return cls(
            config=config,
            clock=clock,
            db=db,
            reference=reference,
            records=records,
            imports=ImportService(
                RECORD_ROWS, records_store, audit_store, reference, clock, "records", changed.set
            ),
            records_changed=changed,
            users=UsersService(
                UsersStore(db), audit_store, clock, LoginThrottle(config.login_throttle)
            ),
            audit=AuditService(audit_store, clock),
            audit_log=audit_store,
            peers=peers,
            delivery=delivery,
            lookup_index=LookupIndex(lookups_store, config.country, clock),
            lookups_store=lookups_store,
            evidence=EvidenceService(EvidenceStore(db)),
            custody=CustodyService(CustodyStore(db), audit_store, reference, clock),
            stats=LocalStats(
                StatsStore(db),
                audit_store,
                clock,
                config.country,
                (
                    config.trace_deadlines.urgent.total_seconds(),
                    config.trace_deadlines.routine.total_seconds(),
                ),
            ),
            transport=transport,
            public_key=public_key,
            oprf_public_key=load_oprf_public_key(config.oprf_key_file),
            hpke_public_key=load_hpke_public_key(config.hpke_key_file),
        )

    async def close(self) -> None:
        """Release the database connections and the peers' connection pool."""
        await self.transport.close()
        await self.db.close()


def traces_waiting_for(node: Node, signing_key: Ed25519PrivateKey) -> PeerHook:
    """The peer registry's hook that moves on the traces waiting for a peering with the
    peer just added (`node.trace.forward.Onward.peering_added`). Each forward it sends is
    signed (the `forward` statement vouching for the next hop's key), so whoever holds
    the key registers it: `federation`, and `peers add` on the command line when it can
    load the key (else the running node does it when it starts, `resume_waiting`).
    Trace modules load only when it runs."""

    async def added(peer: Peer) -> None:
        await _onward(node, signing_key).peering_added(peer)

    return added


async def resume_waiting(node: Node, signing_key: Ed25519PrivateKey) -> None:
    """Move on every trace waiting for a peering with a country that is our active peer by
    now (`iarms-node run`, at start)."""
    await _onward(node, signing_key).resume_waiting()


def _onward(node: Node, signing_key: Ed25519PrivateKey) -> Onward[StoreWork]:
    from node.store.trace import TraceStore
    from node.store.work import unit_of_work
    from node.trace.forward import Onward

    return Onward(
        node.config.country,
        signing_key,
        node.peers,
        node.delivery,
        node.clock,
        unit_of_work(node.db),
        node.config.trace_deadlines,
        TraceStore(node.db),
    )


async def stats_budget(node: Node) -> Budget:
    """This node's privacy budget and its ledger (no key needed to read it)."""
    from node.stats.service import read_budget
    from node.store.rounds import RoundsStore

    return await read_budget(RoundsStore(node.db), node.config.budget, node.clock.now())


def migrate_command(config: NodeConfig) -> str:
    """The command that migrates this node's database."""
    return f"iarms-node migrate --data-dir {shlex.quote(str(config.data_dir))}"


async def migrate(config: NodeConfig) -> tuple[str | None, str]:
    """Bring the node's database schema up to date; the revisions before and after.

    Raises:
        SchemaVersionError: the schema is ahead of this code's; it is left as it is.
    """
    db = Database(config.database_url)
    try:
        return await db.migrate(), SCHEMA_REVISION
    finally:
        await db.close()


@dataclass(frozen=True, slots=True)
class Federation:
    """The services that speak for this node to its peers (they need its keys)."""

    client: PeerClient
    lookups: LookupService
    dispatcher: Dispatcher[StoreWork]
    receiver: Receiver
    signing_key: Ed25519PrivateKey
    #: The key statistics shares are sealed to when this node aggregates (`node.stats.seal`).
    hpke_key: X25519PrivateKey
    #: Traces we originate, and the hop's side (its officers' answers).
    traces: TraceService[StoreWork]
    trace_hop: TraceHop[StoreWork]
    #: Reminders to overdue hops of our traces (`sweep`), and a hop's side of them.
    reminders: TraceReminders[StoreWork]
    #: Statistics rounds: requested, contributed to, aggregated (`run` carries them).
    rounds: RoundsService[StoreWork]


def federation(
    node: Node,
    keys: NodeKeys,
    rate_limit: RateLimitConfig | None = None,
    stats_noise: NoiseSource | None = None,
) -> Federation:
    """Wire the federation services of `node`, which speak with `keys`.

    `rate_limit`, if given, is every peer's evaluation limit instead of the
    config's (`[federation]` and its `peer_limits`): for tests and benchmarks.
    `stats_noise`, if given, replaces OpenDP's noise in this node's sums: for tests
    only (never configuration).
    Their modules are imported here: the commands that never speak to a peer
    do not load them.
    """
    from node.lookup.owner import LookupResponder
    from node.lookup.querier import LookupService
    from node.protocol.client import PeerClient
    from node.protocol.dispatch import Dispatcher
    from node.protocol.ratelimit import TokenBuckets
    from node.protocol.receive import Receiver
    from node.stats.service import RoundsService
    from node.store.replay import ReplayStore
    from node.store.rounds import RoundsStore
    from node.store.trace import TraceStore
    from node.store.work import unit_of_work
    from node.trace.hop import TraceHop
    from node.trace.reminders import TraceReminders
    from node.trace.replies import TraceNotices
    from node.trace.service import TraceService

    me, clock, signing_key = node.config.country, node.clock, keys.signing
    limit = node.config.max_envelope_bytes
    client = PeerClient(
        node.transport,
        signing_key,
        me,
        clock,
        node.peers,
        node.delivery.peer_heard,
        max_answer_bytes=limit,
    )
    receiver = Receiver(me, node.peers, ReplayStore(node.db), clock, signing_key, max_bytes=limit)
    responder = LookupResponder(
        node.lookups_store,
        node.audit_log,
        node.reference,
        keys.oprf,
        TokenBuckets(rate_limit)
        if rate_limit
        else TokenBuckets(node.config.rate_limit, dict(node.config.peer_rate_limits)),
        clock,
    )
    dispatcher = Dispatcher(
        receiver, node.peers, node.delivery, signing_key, me, clock, unit_of_work(node.db)
    )
    responder.register(dispatcher)
    work = unit_of_work(node.db)
    deadlines = node.config.trace_deadlines
    hop = TraceHop(
        me,
        signing_key,
        node.peers,
        node.delivery,
        node.custody,
        node.reference,
        clock,
        work,
        deadlines=deadlines,
    )
    hop.register(dispatcher)
    TraceNotices(me, node.peers, node.delivery, clock, work, signing_key, deadlines).register(
        dispatcher
    )
    node.peers.on_added(traces_waiting_for(node, signing_key))
    trace_store = TraceStore(node.db)
    traces = TraceService(
        me,
        signing_key,
        trace_store,
        node.peers,
        node.delivery,
        node.reference,
        clock,
        work,
        deadlines,
    )
    reminders = TraceReminders(
        me, signing_key, node.peers, node.delivery, trace_store, clock, work, deadlines
    )
    lookups = LookupService(
        node.peers,
        client,
        node.lookups_store,
        node.delivery,
        node.audit_log,
        node.evidence,
        clock,
    )
    rounds = RoundsService(
        me,
        signing_key,
        keys.hpke,
        node.peers,
        node.delivery,
        RoundsStore(node.db),
        StatsStore(node.db),
        node.config.budget,
        clock,
        work,
        stats_noise,
    )
    rounds.register(dispatcher)
    return Federation(
        client,
        lookups,
        dispatcher,
        receiver,
        signing_key,
        keys.hpke,
        traces,
        hop,
        reminders,
        rounds,
    )


@dataclass(frozen=True, slots=True)
class FederationApi:
    """What the node answers its peers, whatever carries it: HTTP
    (`node.web.federation_api`) or memory (`node.protocol.memory`)."""

    node: Node
    fed: Federation

    async def message(self, data: bytes) -> tuple[int, bytes]:
        """One inbound envelope's (HTTP status, signed answer).

        A carrier reads at most one byte over the envelope limit: the receiver
        answers "too large", signed.
        """
        return await self.fed.dispatcher.handle(data[: self.node.config.max_envelope_bytes + 1])

    def descriptor(self) -> bytes:
        """The node's signed descriptor, with its key rotation if it made one."""
        config = self.node.config
        return sign_descriptor(
            self.fed.signing_key,
            config.country,
            config.public_url,
            self.node.clock.now(),
            self.node.oprf_public_key,
            load_rotation(config.data_dir),
            hpke_key=self.fed.hpke_key.public_key().public_bytes_raw(),
        )
