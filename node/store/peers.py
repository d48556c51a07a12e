"""Peer nodes and this node's policy for each."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from node.auditing import AuditEvent
from node.errors import ConflictError, NotFoundError
from node.protocol.keys import fingerprint
from node.protocol.model import KnownKey, Peer, PeerStatus, Service
from node.store.audit import append_entry
from node.store.database import Database
from node.store.dialect import insert_ignoring
from node.store.tables import PeerIndexRow, PeerKeyRow, PeerRow, table

_p = table(PeerRow)
_pi = table(PeerIndexRow)
_k = table(PeerKeyRow)
_KEY_COLUMNS = ("country", "key", "valid_from_ms", "valid_until_ms", "rotation")
#: What a `Peer` holds: every column but the descriptor (kept for the admin, a few KB).
_PEER_COLUMNS = tuple(c for c in _p.c if c.name != "descriptor")


def _peer(row: Any) -> Peer:
    return Peer(
        country=row.country,
        url=row.url,
        signing_key=row.signing_key,
        fingerprint=fingerprint(row.signing_key),
        oprf_key=row.oprf_key,
        status=PeerStatus(row.status),
        policy=frozenset(Service(s) for s in row.policy),
        added_at=row.added_at,
        added_by=row.added_by,
        revoked_at=row.revoked_at,
        last_contact_at=row.last_contact_at,
        index_version=row.index_version,
        previous_key=row.previous_key,
        previous_key_until=row.previous_key_until,
        last_error_at=row.last_error_at,
        last_error=row.last_error,
        hpke_key=row.hpke_key,
    )


@functools.lru_cache(maxsize=1024)
def _policy(names: tuple[str, ...]) -> frozenset[Service]:
    return frozenset(Service(s) for s in names)


@functools.lru_cache(maxsize=1024)
def _fingerprint(key: bytes) -> str:
    return fingerprint(key)


_AT = {c.name: i for i, c in enumerate(_PEER_COLUMNS)}


def _fetched(row: tuple[Any, ...]) -> Peer:
    """A fetched row of `_PEER_COLUMNS` as a `Peer`; every peer message reads one, so the
    fingerprint and the policy of a key or list seen before are not made again."""
    values = {name: row[i] for name, i in _AT.items()}
    values["fingerprint"] = _fingerprint(values["signing_key"])
    values["status"] = PeerStatus(values["status"])
    values["policy"] = _policy(tuple(values["policy"]))
    return Peer(**values)


async def _record_keys(conn: AsyncConnection, keys: Sequence[KnownKey], at: datetime) -> None:
    """Keep `keys` in the history: a key seen before keeps its start and statement; an
    end given now (its rotation's grace period) is kept."""
    for known in keys:
        values = {name: getattr(known, name) for name in _KEY_COLUMNS}
        await conn.execute(insert_ignoring(conn.dialect.name, _k).values(**values, added_at=at))
        if known.valid_until_ms is not None:
            await conn.execute(
                update(_k)
                .where(_k.c.country == known.country, _k.c.key == known.key)
                .values(valid_until_ms=known.valid_until_ms)
            )


class PeersStore:
    """The peer registry; every change to trust carries its audit entry."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_peer(
        self,
        country: str,
        url: str,
        signing_key: bytes,
        oprf_key: bytes | None,
        descriptor: bytes,
        policy: frozenset[Service],
        at: datetime,
        audit: AuditEvent,
        *,
        hpke_key: bytes | None = None,
    ) -> Peer:
        """Register a peer; ConflictError if the country is already a peer."""
        values = {
            "country": country,
            "url": url,
            "signing_key": signing_key,
            "oprf_key": oprf_key,
            "descriptor": descriptor,
            "status": PeerStatus.ACTIVE.value,
            "policy": sorted(s.value for s in policy),
            "added_at": at,
            "added_by": audit.actor,
            "hpke_key": hpke_key,
        }
        try:
            async with self._db.write() as conn:
                row = (await conn.execute(insert(_p).values(**values).returning(*_p.c))).one()
                await _record_keys(conn, [KnownKey(country, signing_key, None, None, None)], at)
                await append_entry(conn, at, audit)
        except IntegrityError as e:
            raise ConflictError(
                f"{country} is already a peer; revoke it first to add it again"
            ) from e
        return _peer(row)

    async def get_peer(self, country: str) -> Peer:
        """One peer; NotFoundError if this node has no such peer."""
        # Every inbound message asks this: one driver round trip (`Database.fetch`).
        rows = await self._db.fetch(
            "peers.get",
            lambda: select(*_PEER_COLUMNS).where(_p.c.country == bindparam("country")),
            {"country": country},
        )
        if not rows:
            raise NotFoundError(f"{country} is not a peer of this node")
        return _fetched(rows[0])

    async def get_peers(self) -> list[Peer]:
        """Every peer, by country."""
        # Every lookup asks this: one driver round trip, as `get_peer`.
        rows = await self._db.fetch(
            "peers.all", lambda: select(*_PEER_COLUMNS).order_by(_p.c.country), {}
        )
        return [_fetched(row) for row in rows]

    async def set_peer(
        self,
        country: str,
        values: dict[str, Any],
        at: datetime,
        audit: AuditEvent | None,
        *,
        if_status: PeerStatus | None = None,
        keys: Sequence[KnownKey] = (),
    ) -> Peer:
        """Change a peer's columns (policy, status, keys, contact), with an audit entry if given,
        and keep `keys` in its key history (as `add_keys`) in the same transaction.

        A peer's cached index was built under its OPRF key: a new `oprf_key`
        drops it (and the peer's `index_version`) in the same transaction, or
        a reinstalled peer whose versions reach the cached one would be
        checked against its old index.

        Raises:
            NotFoundError: no such peer.
            ConflictError: its status is not `if_status` (nothing is written).
        """
        if "policy" in values:
            values = values | {"policy": sorted(s.value for s in values["policy"])}
        if "status" in values:
            values = values | {"status": values["status"].value}
        query = update(_p).where(_p.c.country == country)
        if if_status is not None:
            query = query.where(_p.c.status == if_status.value)
        async with self._db.write() as conn:
            rekeyed = False
            if "oprf_key" in values:
                current = select(_p.c.oprf_key).where(_p.c.country == country).with_for_update()
                rekeyed = (await conn.execute(current)).scalar() != values["oprf_key"]
            if rekeyed:
                values = values | {"index_version": None}
            row = (await conn.execute(query.values(**values).returning(*_p.c))).first()
            if row is None:
                status = (
                    await conn.execute(select(_p.c.status).where(_p.c.country == country))
                ).scalar()
                if status is None:
                    raise NotFoundError(f"{country} is not a peer of this node")
                raise ConflictError(f"{country} is {status}")
            if rekeyed:
                await conn.execute(delete(_pi).where(_pi.c.country == country))
            await _record_keys(conn, keys, at)
            if audit is not None:
                await append_entry(conn, at, audit)
        return _peer(row)

    async def add_keys(self, keys: Sequence[KnownKey], at: datetime) -> None:
        """Keep signing keys seen (this node's own): new ones added, a known one's end set."""
        async with self._db.write() as conn:
            await _record_keys(conn, keys, at)

    async def get_keys(self) -> list[KnownKey]:
        """Every signing key seen, by country."""
        rows = await self._db.fetch(
            "peer_keys.all",
            lambda: select(*(_k.c[n] for n in _KEY_COLUMNS)).order_by(_k.c.country),
            {},
        )
        return [KnownKey(*row) for row in rows]
