"""The peer registry: adding peers by URL and fingerprint, policy, revocation.

Trust is local and explicit: a peer is added only when the key in the
descriptor its URL serves has the fingerprint that its admin gave ours out
of band. Revocation takes effect at once, since receivers read the registry
for every message. Services that wait for a peering (a trace that could not
be forwarded) are told when a peer is added through the hooks the
composition root gives `on_added`: the kernel knows no service.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from node.auditing import AuditEvent
from node.clock import Clock
from node.countries import check_alpha3
from node.errors import ConflictError, IarmsError, ValidationError
from node.protocol.descriptor import check_current, check_node_url, verify_descriptor
from node.protocol.keyring import KeyHistory, history_of
from node.protocol.keys import fingerprint
from node.protocol.model import (
    DEFAULT_POLICY,
    KnownKey,
    Peer,
    PeerStatus,
    Reachability,
    Service,
)
from node.protocol.rotation import named_old_key, verify_rotation
from node.protocol.storage import PeerStorage
from node.protocol.transport import DESCRIPTOR_PATH, PeerTransport
from node.protocol.verified import VerifiedSignatures

MAX_DESCRIPTOR_BYTES = 16 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: A failure's reason as kept with the peer (transport messages may quote an answer).
MAX_ERROR_CHARS = 500
#: What is called with a peer once it is added (or added again after its revocation).
PeerHook = Callable[[Peer], Awaitable[None]]
log = logging.getLogger(__name__)


def parse_fingerprint(text: str) -> str:
    """A fingerprint as admins read it out (any case, spaces or colons) to 64 hex digits."""
    cleaned = re.sub(r"[\s:]", "", text).lower()
    if not _HEX64.fullmatch(cleaned):
        raise ValidationError(
            f"fingerprint: expected 64 hexadecimal digits (as 'iarms-node identity' prints), "
            f"got {text!r}",
            "fingerprint",
        )
    return cleaned


def parse_services(text: str) -> frozenset[Service]:
    """`lookups,hit-details` to a set of services; ValidationError naming the choices."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    try:
        return frozenset(Service(n) for n in names)
    except ValueError:
        choices = ", ".join(s.value for s in Service)
        raise ValidationError(
            f"allow: {text!r}: each service must be one of {choices}", "allow"
        ) from None


class PeersService:
    """Adds, lists, restricts and revokes peers."""

    def __init__(
        self,
        store: PeerStorage,
        transport: PeerTransport,
        clock: Clock,
        country: str,
        own_key: bytes | None = None,
        own_rotation: bytes | None = None,
    ) -> None:
        """`own_key` (and its latest `own_rotation` statement, if it rotated) are this
        node's: kept in the key history beside the peers' (`key_history`)."""
        self._store = store
        self._transport = transport
        self._clock = clock
        self._country = country
        self._own = (own_key, own_rotation)
        self._rotation_checked: dict[str, datetime] = {}
        self._contact_written: dict[str, Peer] = {}  # the peer as `heard`/`unreachable` wrote it
        self._reason_written: dict[str, datetime] = {}
        self._hooks: list[PeerHook] = []
        self._verified = VerifiedSignatures()

    def on_added(self, hook: PeerHook) -> None:
        """Call `hook` with each peer this service adds, once it is stored."""
        self._hooks.append(hook)

    async def add(self, url: str, country: str, fingerprint_text: str, actor: str) -> Peer:
        """Fetch the descriptor at `url` and register the peer if its key has the fingerprint;
        then call the `on_added` hooks (a hook's failure is logged: the peer stays added)."""
        peer = await self._add(url, country, fingerprint_text, actor)
        for hook in self._hooks:
            try:
                await hook(peer)
            except IarmsError:
                log.exception("after adding peer %s", peer.country)
        return peer

    async def _add(self, url: str, country: str, fingerprint_text: str, actor: str) -> Peer:
        url = check_node_url(url, "URL", "url")
        country = check_alpha3(country.strip().upper(), "country")
        expected = parse_fingerprint(fingerprint_text)
        if country == self._country:
            raise ValidationError(f"country: {country} is this node's own country", "country")
        data = await self._transport.get(url + DESCRIPTOR_PATH, MAX_DESCRIPTOR_BYTES)
        descriptor = verify_descriptor(data)
        now = self._clock.now()
        check_current(descriptor, country, url, now)
        actual = fingerprint(descriptor.signing_key)
        if actual != expected:
            raise ValidationError(
                f"fingerprint mismatch: the node at {url} has key {actual}, not the {expected} "
                f"you were given; do not add it until {country}'s admin confirms the key",
                "fingerprint",
            )
        details = {"url": url, "fingerprint": actual, "policy": sorted(DEFAULT_POLICY)}
        event = AuditEvent(actor, "peer.add", f"peer/{country}", details)
        existing = {p.country: p for p in await self._store.get_peers()}.get(country)
        if existing is None:
            return await self._store.add_peer(
                country,
                url,
                descriptor.signing_key,
                descriptor.oprf_key,
                data,
                DEFAULT_POLICY,
                now,
                event,
                hpke_key=descriptor.hpke_key,
            )
        if existing.status is PeerStatus.ACTIVE:
            raise ConflictError(f"{country} is already a peer (revoke it first to replace it)")
        values = {
            "url": url,
            "signing_key": descriptor.signing_key,
            "oprf_key": descriptor.oprf_key,
            "hpke_key": descriptor.hpke_key,
            "descriptor": data,
            "status": PeerStatus.ACTIVE,
            "policy": DEFAULT_POLICY,
            "revoked_at": None,
            "added_at": now,
            "added_by": actor,
            "previous_key": None,
            "previous_key_until": None,
        }
        first = KnownKey(country, descriptor.signing_key, None, None, None)
        return await self._store.set_peer(country, values, now, event, keys=[first])

    async def list_peers(self) -> list[Peer]:
        """Every peer, by country."""
        return await self._store.get_peers()

    async def get(self, country: str) -> Peer:
        """One peer (NotFoundError if unknown)."""
        return await self._store.get_peer(country.strip().upper())

    async def set_policy(self, country: str, services: Iterable[Service], actor: str) -> Peer:
        """Replace what this node answers for `country`."""
        policy = frozenset(services)
        details = {"policy": sorted(policy)}
        return await self._store.set_peer(
            country.strip().upper(),
            {"policy": policy},
            self._clock.now(),
            AuditEvent(actor, "peer.policy", f"peer/{country.strip().upper()}", details),
        )

    async def follow_rotation(self, country: str) -> bool:
        """Check a peer's descriptor for a new key announced under the one we trust.

        Returns True if the peer's key changed (the old one stays valid until the
        statement's grace period ends). A key that changed without a valid
        statement is not followed: its admin must be asked, and the peer re-added.
        At most one check a minute per peer, whatever triggers it.
        """
        now = self._clock.now()
        last = self._rotation_checked.get(country)
        if last is not None and (now - last).total_seconds() < 60:
            return False
        self._rotation_checked[country] = now
        peer = await self._store.get_peer(country)
        if peer.status is not PeerStatus.ACTIVE:
            return False
        data = await self._transport.get(peer.url + DESCRIPTOR_PATH, MAX_DESCRIPTOR_BYTES)
        descriptor = verify_descriptor(data)
        check_current(descriptor, country, peer.url, now)
        if descriptor.signing_key == peer.signing_key or descriptor.rotation is None:
            return False
        rotation = verify_rotation(descriptor.rotation, peer.signing_key)
        if rotation.new_key != descriptor.signing_key or rotation.country != country:
            return False
        grace_until = datetime.fromtimestamp(rotation.grace_until, UTC)
        values = {
            "signing_key": rotation.new_key,
            "previous_key": peer.signing_key,
            "previous_key_until": grace_until,
            "oprf_key": descriptor.oprf_key,
            "hpke_key": descriptor.hpke_key,
            "descriptor": data,
        }
        details = {
            "fingerprint": fingerprint(rotation.new_key),
            "grace_until": grace_until.isoformat(),
        }
        await self._store.set_peer(
            country,
            values,
            now,
            AuditEvent("peer:" + country, "peer.key_rotated", f"peer/{country}", details),
            keys=rotated_keys(country, peer.signing_key, rotation.at, descriptor.rotation),
        )
        return True

    async def refresh_hpke_key(self, country: str) -> Peer:
        """Fetch a peer's descriptor and keep the HPKE key it now publishes.

        A peer added before it (or this node) knew statistics has none stored;
        a statistics round asks for it again before refusing the peer as an
        aggregator. The descriptor must be current and signed by the key this
        node trusts for the peer (a rotated key is followed by `follow_rotation`).

        Raises:
            NotFoundError: no such peer.
            PeerUnreachableError: its descriptor could not be fetched.
            ValidationError: the descriptor is malformed, not current, or signed by
                another key.
        """
        now = self._clock.now()
        peer = await self._store.get_peer(country)
        data = await self._transport.get(peer.url + DESCRIPTOR_PATH, MAX_DESCRIPTOR_BYTES)
        descriptor = verify_descriptor(data)
        check_current(descriptor, country, peer.url, now)
        if descriptor.signing_key != peer.signing_key:
            raise ValidationError(
                f"the descriptor of {country} is signed with a key this node does not trust "
                f"(fingerprint {fingerprint(descriptor.signing_key)})"
            )
        if descriptor.hpke_key == peer.hpke_key:
            return peer
        details = {"hpke_key": descriptor.hpke_key.hex() if descriptor.hpke_key else None}
        event = AuditEvent("peer:" + country, "peer.hpke_key", f"peer/{country}", details)
        return await self._store.set_peer(country, {"hpke_key": descriptor.hpke_key}, now, event)

    async def key_history(self) -> KeyHistory:
        """Every signing key this node has seen — its peers' (revoked ones too: what they
        signed while trusted stays checkable) and its own — with their validity; it
        remembers the signatures this node found valid (`node.protocol.verified`)."""
        known = await self._store.get_keys()
        return history_of([*known, *self._own_keys(known)]).with_verified(self._verified)

    def made(self, signature: bytes, message: bytes) -> None:
        """Remember a signature this node has just made with its signing key as valid
        (`VerifiedSignatures.made`): a statement it reads back is not checked again."""
        own_key = self._own[0]
        if own_key is not None:
            self._verified.made(own_key, signature, message)

    async def record_own_keys(self) -> None:
        """Keep this node's key (and the rotation that introduced it) in the key history,
        if it is not there yet: when the node opens, outside any other transaction."""
        keys = self._own_keys(await self._store.get_keys())
        if keys:
            await self._store.add_keys(keys, self._clock.now())

    def _own_keys(self, known: list[KnownKey]) -> list[KnownKey]:
        """What the history lacks of this node's own keys (none if it holds the current)."""
        own_key, statement = self._own
        mine = {k.key for k in known if k.country == self._country}
        if own_key is None or own_key in mine:
            return []
        if statement is not None:
            # Our own statement: the old key it names was ours (kept as a first key when
            # the history lacks it: a node rotated twice while stopped keeps the last two).
            rotation = verify_rotation(statement, named_old_key(statement))
            if rotation.new_key == own_key and rotation.country == self._country:
                return rotated_keys(self._country, rotation.old_key, rotation.at, statement)
        return [KnownKey(self._country, own_key, None, None, None)]

    def _latest(self, peer: Peer) -> Peer:
        """`peer`, or this service's own last write of its contact if that is newer.

        Callers hold a Peer read before their requests (a lookup sends several);
        every write here stamps the time, so the newer stamp is the newer state.
        """
        mine = self._contact_written.get(peer.country)
        if mine is None or _stamp(peer) > _stamp(mine):
            return peer
        return mine

    async def _note(self, country: str, values: dict[str, Any], now: datetime) -> None:
        self._contact_written[country] = await self._store.set_peer(country, values, now, None)

    async def heard(self, peer: Peer) -> None:
        """Note a verified message from `peer`: its last contact (at most once a minute, but
        at once if it was unreachable), which clears the last failure to reach it."""
        now = self._clock.now()
        known = self._latest(peer)
        contact = known.last_contact_at
        if (
            known.last_error_at is not None
            or contact is None
            or (now - contact).total_seconds() > 60
        ):
            values = {"last_contact_at": now, "last_error_at": None, "last_error": None}
            await self._note(peer.country, values, now)

    async def unreachable(self, peer: Peer, reason: str) -> None:
        """Note a failed request to `peer`: from when it is unreachable (the first failure
        since its last contact) and why (the latest reason, changed at most once a minute)."""
        now = self._clock.now()
        known = self._latest(peer)
        reason = reason[:MAX_ERROR_CHARS]
        if known.reachability is not Reachability.UNREACHABLE:
            await self._note(peer.country, {"last_error_at": now, "last_error": reason}, now)
            self._reason_written[peer.country] = now
        elif reason != known.last_error:
            written = self._reason_written.get(peer.country)
            if written is None or (now - written).total_seconds() > 60:
                await self._note(peer.country, {"last_error": reason}, now)
                self._reason_written[peer.country] = now

    async def revoke(self, country: str, actor: str) -> Peer:
        """Stop trusting a peer, at once; ConflictError if it is already revoked."""
        now = self._clock.now()
        country = country.strip().upper()
        try:
            return await self._store.set_peer(
                country,
                {"status": PeerStatus.REVOKED, "revoked_at": now},
                now,
                AuditEvent(actor, "peer.revoke", f"peer/{country}"),
                if_status=PeerStatus.ACTIVE,
            )
        except ConflictError:
            since = (await self._store.get_peer(country)).revoked_at
            raise ConflictError(
                f"{country} is already revoked since {since:%Y-%m-%d %H:%M} UTC"
                if since
                else f"{country} is already revoked"
            ) from None


def rotated_keys(country: str, old_key: bytes, at: int, statement: bytes) -> list[KnownKey]:
    """The history's change for a verified rotation: the old key ends with its grace
    period, the new one starts at the rotation (its statement kept)."""
    rotation = verify_rotation(statement, old_key)
    return [
        KnownKey(country, old_key, None, rotation.grace_until * 1000, None),
        KnownKey(country, rotation.new_key, at * 1000, None, statement),
    ]


def _stamp(peer: Peer) -> datetime:
    """The newest of a peer's contact stamps."""
    stamps = [t for t in (peer.last_contact_at, peer.last_error_at) if t is not None]
    return max(stamps, default=datetime.min.replace(tzinfo=UTC))
