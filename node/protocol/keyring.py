"""Countries' signing keys over time: which key a country signed with, and when it was valid.

A statement signed long ago (a trace receipt, an exported chain) is checked
under the key its author held when it signed, not the one it holds now. A
country's keys form chains: a first key (trusted because an admin compared
its fingerprint, or because a trusted party vouched for it) and the rotation
statements (§5.2) that lead from it to each later key, each signed by the key
before. A key is valid from the rotation that introduced it (`at`; a first
key from the beginning) until the grace period of the rotation that replaced
it ends (`grace_until`; the last key without end).

`KeyHistory` is the resolver every signed-statement check uses:
`(country, key id, time in ms) → raw public key or None`. It is built from
the spans a node keeps (`KnownKey`, the `peer_keys` table: its peers' keys
and its own, recorded as it sees descriptors and rotations) or from a file's
first keys and rotation statements (`key_spans`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from node.errors import ValidationError
from node.protocol.envelope import key_id
from node.protocol.keys import fingerprint
from node.protocol.model import KnownKey
from node.protocol.rotation import verify_rotation
from node.protocol.verified import VerifiedSignatures, verify_ed25519


@dataclass(frozen=True, slots=True)
class KeySpan:
    """A key and when it was valid (ms; None: unbounded on that side), with the rotation
    statement that introduced it (None for a first key)."""

    key: bytes
    valid_from_ms: int | None
    valid_until_ms: int | None
    rotation: bytes | None = None

    def covers(self, at_ms: int) -> bool:
        """Whether the key was valid at `at_ms`."""
        return (self.valid_from_ms is None or self.valid_from_ms <= at_ms) and (
            self.valid_until_ms is None or at_ms <= self.valid_until_ms
        )


def key_spans(country: str, first_key: bytes, rotations: Sequence[bytes]) -> list[KeySpan]:
    """A country's keys and their validity, each rotation verified under the key before.

    Raises:
        ValidationError: a statement does not verify, or is another country's.
    """
    spans = [KeySpan(first_key, None, None)]
    for number, statement in enumerate(rotations, 1):
        try:
            rotation = verify_rotation(statement, spans[-1].key)
        except ValidationError as e:
            raise ValidationError(f"{country}'s rotation {number}: {e}") from e
        if rotation.country != country:
            raise ValidationError(f"{country}'s rotation {number} is {rotation.country}'s")
        spans[-1] = replace(spans[-1], valid_until_ms=rotation.grace_until * 1000)
        spans.append(KeySpan(rotation.new_key, rotation.at * 1000, None, statement))
    return spans


def follow_rotations(country: str, first_key: bytes, pool: Iterable[bytes]) -> list[KeySpan]:
    """`key_spans` from `first_key`, taking from `pool` (any order; others' statements and
    ones that do not verify are skipped) each statement signed by the last key reached."""
    spans = [KeySpan(first_key, None, None)]
    left = list(pool)
    while True:
        for statement in left:
            try:
                rotation = verify_rotation(statement, spans[-1].key)
            except ValidationError:
                continue
            if rotation.country != country or any(s.key == rotation.new_key for s in spans):
                continue
            spans[-1] = replace(spans[-1], valid_until_ms=rotation.grace_until * 1000)
            spans.append(KeySpan(rotation.new_key, rotation.at * 1000, None, statement))
            left.remove(statement)
            break
        else:
            return spans


class KeyHistory:
    """Countries' keys over time: the `KeyResolver` a signed statement is checked with."""

    def __init__(
        self,
        spans: Mapping[str, Sequence[KeySpan]],
        verified: VerifiedSignatures | None = None,
    ) -> None:
        self._spans = {country: tuple(found) for country, found in spans.items()}
        #: The signatures this node found valid before (None: check each one).
        self.verified = verified

    def check_signature(self, public: bytes, signature: bytes, message: bytes) -> None:
        """Verify `signature` over `message` under `public` (once per exact triple when
        this history carries a node's `VerifiedSignatures`).

        Raises:
            cryptography.exceptions.InvalidSignature: it does not verify.
        """
        if self.verified is None:
            verify_ed25519(public, signature, message)
        else:
            self.verified.check(public, signature, message)

    def with_verified(self, verified: VerifiedSignatures | None) -> KeyHistory:
        """This history, remembering valid signatures in `verified`."""
        return KeyHistory(self._spans, verified)

    def __call__(self, country: str, kid: bytes, at_ms: int) -> bytes | None:
        """The key of `country` named `kid` valid at `at_ms`, or None."""
        for span in self._spans.get(country, ()):
            if key_id(span.key) == kid and span.covers(at_ms):
                return span.key
        return None

    def find(self, country: str, kid: bytes) -> bytes | None:
        """The key of `country` named `kid`, whenever it was valid, or None."""
        return next((s.key for s in self._spans.get(country, ()) if key_id(s.key) == kid), None)

    def knows(self, country: str) -> bool:
        """Whether this history holds any key of `country` (then only those are its)."""
        return bool(self._spans.get(country))

    def countries(self) -> set[str]:
        """The countries whose keys this history holds."""
        return {country for country, spans in self._spans.items() if spans}

    def spans(self, country: str) -> tuple[KeySpan, ...]:
        """A country's keys, as kept (first keys first)."""
        return self._spans.get(country, ())

    def with_country(self, country: str, spans: Sequence[KeySpan]) -> KeyHistory:
        """This history and `country`'s `spans` (replacing any it held)."""
        return KeyHistory({**self._spans, country: tuple(spans)}, self.verified)

    def fingerprints(self) -> dict[str, list[str]]:
        """Each country's keys' fingerprints, first key first."""
        return {c: [fingerprint(s.key) for s in spans] for c, spans in self._spans.items()}

    def rotation_chain(
        self, country: str, used: Iterable[bytes] = ()
    ) -> tuple[bytes, list[bytes]] | None:
        """A country's first key and the rotation statements from it to its later keys, as
        an export file carries them (`key_spans` rebuilds the spans), or None if unknown.

        A country re-added with a new key has several first keys: the one whose chain
        holds every key id in `used` is chosen, else the latest.
        """
        spans = self._spans.get(country, ())
        pool = [s.rotation for s in spans if s.rotation is not None]
        chains = [follow_rotations(country, s.key, pool) for s in spans if s.rotation is None]
        if not chains:
            return None
        wanted = set(used)
        chosen = next((c for c in chains if wanted <= {key_id(s.key) for s in c}), chains[-1])
        return chosen[0].key, [s.rotation for s in chosen[1:] if s.rotation is not None]


def history_of(known: Iterable[KnownKey]) -> KeyHistory:
    """The history of the keys a node keeps; each country's first keys (no rotation)
    first, then its rotated keys by the time they became valid."""
    by_country: dict[str, list[KeySpan]] = {}
    for entry in known:
        span = KeySpan(entry.key, entry.valid_from_ms, entry.valid_until_ms, entry.rotation)
        by_country.setdefault(entry.country, []).append(span)
    for spans in by_country.values():
        spans.sort(key=lambda s: (s.rotation is not None, s.valid_from_ms or 0))
    return KeyHistory(by_country)
