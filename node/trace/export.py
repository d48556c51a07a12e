"""A trace's chain as a file anyone can check without a node (`trace export`, `verify-file`).

The file (docs/PROTOCOL.md §3.5) is the msgpack map, with exactly these keys:

    {"format": "iarms-trace-chain/1",
     "request": <the originator's signed request>,
     "receipts": [<each hop's latest receipt, in hop order>],
     "answers": [<the hops' signed answers>],
     "keys": [{"country": "DEU", "key": <32 bytes>, "rotations": [<statement>, ...]}, ...]}

`keys` holds, for each country on the chain (the originator too), the key it
signed with first and the rotation statements (§5.2) that lead from it to the
later ones, each signed by the key before it. A key is valid from the
rotation that introduced it (`at`) until the grace period of the one that
replaced it (`grace_until`), so a chain signed over a rotation still checks.
As with evidence bundles, what a file proves holds for whoever compares each
country's first key with the fingerprint its admin gave when the two peered:
`verify_file` lists them. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from node.errors import TraceFileError, ValidationError
from node.protocol.envelope import key_id
from node.protocol.keys import fingerprint
from node.protocol.messages import Bin32
from node.protocol.rotation import verify_rotation
from node.trace.chain import ChainReport, verify_chain
from node.trace.receipts import (
    MAX_ANSWER_BYTES,
    MAX_HOPS,
    MAX_RECEIPT_BYTES,
    MAX_REQUEST_BYTES,
    Country,
)

FORMAT = "iarms-trace-chain/1"
#: Rotation statements kept per country (a key rotated more often is refused).
MAX_ROTATIONS = 8
_MAX_ROTATION_BYTES = 512
#: The originator and each hop's country.
MAX_COUNTRIES = MAX_HOPS + 1
#: The largest file: every statement at its largest, and the keys.
MAX_FILE_BYTES = (
    MAX_REQUEST_BYTES
    + MAX_HOPS * (MAX_RECEIPT_BYTES + MAX_ANSWER_BYTES)
    + MAX_COUNTRIES * (64 + MAX_ROTATIONS * _MAX_ROTATION_BYTES)
    + 4096
)


_Rotations = Annotated[
    list[Annotated[bytes, msgspec.Meta(max_length=_MAX_ROTATION_BYTES)]],
    msgspec.Meta(max_length=MAX_ROTATIONS),
]
_Receipts = Annotated[
    list[Annotated[bytes, msgspec.Meta(max_length=MAX_RECEIPT_BYTES)]],
    msgspec.Meta(max_length=MAX_HOPS),
]
_Answers = Annotated[
    list[Annotated[bytes, msgspec.Meta(max_length=MAX_ANSWER_BYTES)]],
    msgspec.Meta(max_length=MAX_HOPS),
]


class CountryKeys(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A country's first key and the rotation statements from it to its later keys."""

    country: Country
    key: Bin32
    rotations: _Rotations


class ChainFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The file's map."""

    format: str
    request: Annotated[bytes, msgspec.Meta(max_length=MAX_REQUEST_BYTES)]
    receipts: _Receipts
    answers: _Answers
    keys: Annotated[list[CountryKeys], msgspec.Meta(max_length=MAX_COUNTRIES)]


@dataclass(frozen=True, slots=True)
class KeySpan:
    """A key and when it was valid (ms; None: unbounded on that side)."""

    key: bytes
    valid_from_ms: int | None
    valid_until_ms: int | None

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
        old = spans[-1]
        spans[-1] = KeySpan(old.key, old.valid_from_ms, rotation.grace_until * 1000)
        spans.append(KeySpan(rotation.new_key, rotation.at * 1000, None))
    return spans


class KeyHistory:
    """Countries' keys over time: the `KeyResolver` a chain is checked with."""

    def __init__(self, spans: Mapping[str, Sequence[KeySpan]]) -> None:
        self._spans = {country: tuple(found) for country, found in spans.items()}

    def __call__(self, country: str, kid: bytes, at_ms: int) -> bytes | None:
        """The key of `country` named `kid` valid at `at_ms`, or None."""
        for span in self._spans.get(country, ()):
            if key_id(span.key) == kid and span.covers(at_ms):
                return span.key
        return None

    def fingerprints(self) -> dict[str, list[str]]:
        """Each country's keys' fingerprints, first key first."""
        return {c: [fingerprint(s.key) for s in spans] for c, spans in self._spans.items()}


def export_chain(
    request: bytes,
    receipts: Sequence[bytes],
    answers: Sequence[bytes],
    keys: Mapping[str, tuple[bytes, Sequence[bytes]]],
) -> bytes:
    """The file of a chain; `keys` maps each country to its first key and rotations.

    Raises:
        TraceFileError: the chain or the keys exceed the file's limits.
    """
    chain = ChainFile(
        format=FORMAT,
        request=request,
        receipts=list(receipts),
        answers=list(answers),
        keys=[CountryKeys(c, first, list(rot)) for c, (first, rot) in sorted(keys.items())],
    )
    data = msgspec.msgpack.encode(chain)
    read_file(data)  # what we write, we can read
    return data


def read_file(data: bytes) -> tuple[ChainFile, KeyHistory]:
    """The file's chain and keys, its rotations verified.

    Raises:
        TraceFileError: naming what is wrong with the file.
    """
    if len(data) > MAX_FILE_BYTES:
        raise TraceFileError(f"trace file: {len(data)} bytes, larger than {MAX_FILE_BYTES}")
    try:
        chain = msgspec.msgpack.decode(data, type=ChainFile)
    except msgspec.ValidationError as e:
        raise TraceFileError(f"trace file: not a trace chain file ({e})") from e
    except msgspec.DecodeError as e:
        raise TraceFileError("trace file: not a trace chain file (not msgpack)") from e
    if chain.format != FORMAT:
        raise TraceFileError(f"trace file: unknown format {chain.format[:64]!r}, not {FORMAT}")
    countries = [entry.country for entry in chain.keys]
    if len(set(countries)) != len(countries):
        raise TraceFileError("trace file: a country's keys are listed twice")
    try:
        spans = {e.country: key_spans(e.country, e.key, e.rotations) for e in chain.keys}
    except ValidationError as e:
        raise TraceFileError(f"trace file: {e}") from e
    return chain, KeyHistory(spans)


@dataclass(frozen=True, slots=True)
class VerifiedFile:
    """What a file's check found, and the keys it was checked with."""

    report: ChainReport
    fingerprints: dict[str, list[str]]

    def to_json(self) -> dict[str, Any]:
        """As `trace verify-file --json` prints it."""
        return self.report.to_json() | {"key_fingerprints": self.fingerprints}


def verify_file(data: bytes) -> VerifiedFile:
    """Check an exported chain with the keys it carries.

    Raises:
        TraceFileError: the file cannot be read; a chain that does not verify is reported.
    """
    chain, keys = read_file(data)
    report = verify_chain(chain.request, chain.receipts, chain.answers, keys)
    return VerifiedFile(report, keys.fingerprints())
