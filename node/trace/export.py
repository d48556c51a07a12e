"""A trace's chain as a file anyone can check without a node (`trace export`, `verify-file`).

The file (docs/PROTOCOL.md §3.5) is the msgpack map, with exactly these keys:

    {"format": "iarms-trace-chain/1",
     "request": <the originator's signed request>,
     "receipts": [<each hop's latest receipt, in hop order>],
     "answers": [<the hops' signed answers>],
     "keys": [{"country": "DEU", "key": <32 bytes>, "rotations": [<statement>, ...]}, ...],
     "forwards": [<signed forward statements>],
     "rotations": [<rotation statements of the countries the forwards vouch for>]}

`keys` holds the exporter's trust roots: for the originator and each of its
peers on the chain, the key it signed with first and the rotation statements
(§5.2) that lead from it to the later ones, each signed by the key before
it. A key is valid from the rotation that introduced it (`at`) until the
grace period of the one that replaced it (`grace_until`), so a chain signed
over a rotation still checks. A hop that is not the originator's peer is
checked under the key the chain vouches for (`forwards`, docs/adr/0008), and
the `rotations` from it. As with evidence bundles, what a file proves holds
for whoever compares each root's first key with the fingerprint its admin
gave when the two peered: `verify_file` lists them, and the vouched keys
with who vouched for them. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from node.errors import TraceFileError, ValidationError
from node.protocol.keyring import KeyHistory, KeySpan, key_spans
from node.protocol.messages import Bin32
from node.trace.chain import ChainReport, verify_chain
from node.trace.receipts import (
    MAX_ANSWER_BYTES,
    MAX_FORWARD_BYTES,
    MAX_HOPS,
    MAX_RECEIPT_BYTES,
    MAX_REQUEST_BYTES,
    Country,
)

__all__ = [
    "FORMAT",
    "MAX_FILE_BYTES",
    "ChainFile",
    "KeyHistory",
    "KeySpan",
    "VerifiedFile",
    "export_chain",
    "key_spans",
    "read_file",
    "verify_file",
]

FORMAT = "iarms-trace-chain/1"
#: Rotation statements kept per country (a key rotated more often is refused).
MAX_ROTATIONS = 8
_MAX_ROTATION_BYTES = 512
#: The originator and each hop's country.
MAX_COUNTRIES = MAX_HOPS + 1
#: Forward statements kept (two per hop: the hop before's, and the originator's own).
MAX_FORWARDS = 2 * MAX_HOPS
#: The largest file: every statement at its largest, and the keys (as roots, or as the
#: rotations of vouched keys).
MAX_FILE_BYTES = (
    MAX_REQUEST_BYTES
    + MAX_HOPS * (MAX_RECEIPT_BYTES + MAX_ANSWER_BYTES)
    + MAX_FORWARDS * MAX_FORWARD_BYTES
    + 2 * MAX_COUNTRIES * (64 + MAX_ROTATIONS * _MAX_ROTATION_BYTES)
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
    forwards: Annotated[
        list[Annotated[bytes, msgspec.Meta(max_length=MAX_FORWARD_BYTES)]],
        msgspec.Meta(max_length=MAX_FORWARDS),
    ]
    rotations: Annotated[
        list[Annotated[bytes, msgspec.Meta(max_length=_MAX_ROTATION_BYTES)]],
        msgspec.Meta(max_length=MAX_COUNTRIES * MAX_ROTATIONS),
    ]


def export_chain(
    request: bytes,
    receipts: Sequence[bytes],
    answers: Sequence[bytes],
    keys: Mapping[str, tuple[bytes, Sequence[bytes]]],
    forwards: Sequence[bytes] = (),
    rotations: Sequence[bytes] = (),
) -> bytes:
    """The file of a chain; `keys` maps each trusted country to its first key and rotations;
    `forwards` vouch for the others' keys, `rotations` lead from those to later ones.

    Raises:
        TraceFileError: the chain or the keys exceed the file's limits.
    """
    chain = ChainFile(
        format=FORMAT,
        request=request,
        receipts=list(receipts),
        answers=list(answers),
        keys=[CountryKeys(c, first, list(rot)) for c, (first, rot) in sorted(keys.items())],
        forwards=list(forwards),
        rotations=list(rotations),
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
        """As `trace verify-file --json` prints it: `key_fingerprints` are the roots (to
        compare with those the admins gave), `vouched_keys` the keys the chain vouched for."""
        return self.report.to_json() | {"key_fingerprints": self.fingerprints}


def verify_file(data: bytes) -> VerifiedFile:
    """Check an exported chain with the keys it carries.

    Raises:
        TraceFileError: the file cannot be read; a chain that does not verify is reported.
    """
    chain, keys = read_file(data)
    report = verify_chain(
        chain.request, chain.receipts, chain.answers, keys, chain.forwards, chain.rotations
    )
    return VerifiedFile(report, keys.fingerprints())
