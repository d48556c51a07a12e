"""The receiving shell around `open_envelope`: peer lookup, replay cache, signed error answers.

Flow of one inbound envelope (a request, or the answer to one of ours)::

    bytes ─ read_header (unverified: sender, key id)
          ─ PeerRegistry.get(sender) → select_key  the accepted key (one registry read)
          ─ open_envelope (pure: size, decoding, key, signature, revocation,
                           recipient, freshness)
          ─ SeenMessages.add_seen(sender, id)       the replay cache, in the database
          → (Envelope, Peer), body still undecoded; the caller dispatches on its type

Any failure is a `ProtocolError`; `answer_error` turns it into the signed
error envelope that goes back on the same HTTP exchange.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.clock import Clock
from node.errors import EnvelopeTooLargeError, IarmsError, NotFoundError, ProtocolError, ReplayError
from node.protocol.envelope import (
    DEFAULT_MAX_BYTES,
    DEFAULT_WINDOW_S,
    Envelope,
    PeerKey,
    from_ms,
    key_id,
    open_envelope,
    read_header,
    seal_error,
    to_ms,
)
from node.protocol.model import Peer, PeerStatus

#: The recipient of an error answer to bytes whose sender cannot be read (ICAO's
#: "unspecified nationality"; no ISO 3166 country has it).
UNADDRESSED = "XXX"


class SeenMessages(Protocol):
    """The replay cache (`node.store.replay.ReplayStore`)."""

    async def add_seen(self, sender: str, message_id: bytes, expires_at: datetime) -> bool:
        """Record an id; False if it was already there."""
        ...

    async def delete_expired(self, now: datetime) -> int:
        """Forget ids that expired before `now`."""
        ...


class PeerRegistry(Protocol):
    """The peers this node knows (`node.protocol.peers.PeersService`)."""

    async def get(self, country: str) -> Peer:
        """One peer; NotFoundError if `country` is not one."""
        ...


def select_key(peer: Peer, kid: bytes, now: datetime) -> PeerKey | None:
    """The peer's key whose id is `kid`: its current key, or its previous one in the grace period.

    A revoked peer's keys are still returned (flagged) so that the refusal
    says "revoked" and not "unknown sender".
    """
    revoked = peer.status is PeerStatus.REVOKED
    if key_id(peer.signing_key) == kid:
        return PeerKey(peer.signing_key, revoked)
    previous, until = peer.previous_key, peer.previous_key_until
    if previous is not None and until is not None and now <= until and key_id(previous) == kid:
        return PeerKey(previous, revoked)
    return None


class Receiver:
    """Accepts inbound envelopes for this node and builds its signed error answers."""

    def __init__(
        self,
        me: str,
        peers: PeerRegistry,
        seen: SeenMessages,
        clock: Clock,
        signing_key: Ed25519PrivateKey,
        *,
        window_s: int = DEFAULT_WINDOW_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._me = me
        self._peers = peers
        self._seen = seen
        self._clock = clock
        self._signing_key = signing_key
        self._window_s = window_s
        self._max_bytes = max_bytes

    async def accept(self, data: bytes) -> tuple[Envelope, Peer]:
        """Verify `data` and record its message id; the envelope (body undecoded) and its sender.

        The sender's keys come from the registry on every message, so a
        revocation takes effect at once. A message id is kept until the
        message's timestamp plus the window: after that, a repeat is refused
        as stale by `open_envelope` before the replay cache is asked, so
        forgetting it then (`prune`) is safe.

        Raises:
            ProtocolError: the first check that failed; `ReplayError` if this
                sender's message id was accepted before (also across restarts).
        """
        header = read_header(data, self._max_bytes)
        try:
            peer: Peer | None = await self._peers.get(header.sender)
        except NotFoundError:
            peer = None
        now = self._clock.now()
        key = select_key(peer, header.key_id, now) if peer is not None else None

        def keys(sender: str, kid: bytes) -> PeerKey | None:
            return key if (sender, kid) == (header.sender, header.key_id) else None

        envelope = open_envelope(
            data,
            me=self._me,
            now_ms=to_ms(now),
            keys=keys,
            window_s=self._window_s,
            max_bytes=self._max_bytes,
        )
        assert peer is not None  # open_envelope refuses a sender without a key
        expires_at = from_ms(envelope.timestamp_ms + self._window_s * 1000)
        if not await self._seen.add_seen(envelope.sender, envelope.message_id, expires_at):
            raise ReplayError(
                f"message {envelope.message_id.hex()} from {envelope.sender} was already accepted"
            )
        return envelope, peer

    def answer_error(self, error: IarmsError, data: bytes) -> bytes:
        """The signed error envelope answering `data` with `error`.

        It is addressed to the sender the header claims, and refers to its
        message id, whenever the header can be decoded, even if the sender
        is unknown or its signature is bad: the answer goes back on the same
        HTTP exchange, and it states only that this node refused that id.
        When the header cannot be read (too large, malformed) it is addressed
        to `UNADDRESSED` with no reference.
        """
        recipient, ref = UNADDRESSED, None
        if not isinstance(error, EnvelopeTooLargeError):
            try:
                header = read_header(data, self._max_bytes)
            except ProtocolError:
                pass
            else:
                recipient, ref = header.sender, header.message_id
        now_ms = to_ms(self._clock.now())
        return seal_error(self._signing_key, self._me, recipient, error, ref, now_ms)

    async def prune(self) -> int:
        """Forget message ids that can no longer be replayed (run it now and then)."""
        return await self._seen.delete_expired(self._clock.now())
