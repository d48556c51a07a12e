"""Checking a trace's chain of receipts with public keys only (docs/PROTOCOL.md §3.4).

`verify_chain` takes the originator's signed request, the receipts in hop
order (each hop's latest: final, or pending for the last), the signed
answers, the trusted keys (a `KeyHistory`: the verifier's peers and its own,
or an export file's), the signed `forward` statements, a pool of rotation
statements and, if any, the `needs_information` receipts that a hop replaced
by a later one once it had the originator's reply (each checked against the
hop's latest receipt: same link and time received, answered no later, its
answer among the answers; its question is the hop's history), and reports
every problem it finds with the hop (position, 0 for the request) and
country it concerns. It never raises on bad input: a forged, reordered or
truncated chain is what it is for. The same report tells a hop receiving a
trace where it stands (`next_hop`): the position and country expected next
and the hash its receipt must link to.

Each statement is verified under its author's key valid at the time it was
signed (`created_ms`, `received_ms` for a pending receipt, `answered_ms` for
an answered one and its answer), so a key since rotated verifies what it
signed while it was valid. Times from two countries' clocks are compared with
the protocol's clock-skew allowance (`CLOCK_SKEW_MS`); one hop's own times
strictly.

A hop whose country the trusted keys do not know is checked under the key
the chain vouches for (docs/adr/0008): the `forward` statement for its
position, signed by the hop before it (or the originator) under a key
already trusted or vouched for, names it; rotation statements from the pool
lead from it to later keys. Vouching never replaces a trusted country's keys.
Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.errors import BadSignatureError, MalformedEnvelopeError, UnknownSenderError
from node.protocol.envelope import DEFAULT_WINDOW_S, from_ms
from node.protocol.keyring import KeyHistory, follow_rotations
from node.protocol.keys import fingerprint
from node.trace.receipts import (
    FINAL_OUTCOMES,
    AnswerStatement,
    ForwardStatement,
    Outcome,
    ReceiptStatement,
    RequestStatement,
    Signed,
    digest,
    read,
    shape_fault,
    verify,
)

#: Two countries' clocks may differ by this much (the envelopes' freshness window).
CLOCK_SKEW_MS = DEFAULT_WINDOW_S * 1000


class ProblemKind(enum.StrEnum):
    """What is wrong with a statement of the chain."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    WRONG_SIGNER = "wrong_signer"
    WRONG_TRACE = "wrong_trace"
    BROKEN_LINK = "broken_link"
    ANSWER_MISMATCH = "answer_mismatch"
    TIMES_OUT_OF_ORDER = "times_out_of_order"
    NOT_FOLLOWED = "not_followed"
    NOT_FINAL = "not_final"
    AFTER_END = "after_end"
    LOOP = "loop"
    MISSING_HOP = "missing_hop"
    DUPLICATE_POSITION = "duplicate_position"
    OUT_OF_ORDER = "out_of_order"
    UNREFERENCED_ANSWER = "unreferenced_answer"


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem: at hop `position` (0: the request; None: no hop) of `country`."""

    position: int | None
    country: str | None
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        if self.position is None:
            return self.message
        where = "request" if self.position == 0 else f"hop {self.position}"
        return f"{where} ({self.country or 'unknown country'}): {self.message}"

    def to_json(self) -> dict[str, Any]:
        """As `trace verify --json` prints it."""
        return {
            "position": self.position,
            "country": self.country,
            "kind": self.kind.value,
            "message": str(self),
        }


@dataclass(frozen=True, slots=True)
class Hop:
    """One hop as its receipt (and answer) say, and whether all of it verified."""

    position: int
    country: str
    received_ms: int
    answered_ms: int | None
    outcome: Outcome | None
    next_country: str | None
    details: dict[str, str] | None
    receipt_hash: bytes
    verified: bool
    #: The questions the hop asked before its latest answer (its replaced receipts), in order.
    questions: tuple[str, ...] = ()

    @property
    def final(self) -> bool:
        """Whether this hop is done."""
        return self.outcome in FINAL_OUTCOMES

    def to_json(self) -> dict[str, Any]:
        """As `trace show --json` and `trace verify --json` print it."""
        return {
            "position": self.position,
            "country": self.country,
            "received_at": from_ms(self.received_ms).isoformat(),
            "answered_at": None
            if self.answered_ms is None
            else from_ms(self.answered_ms).isoformat(),
            "outcome": self.outcome.value if self.outcome else None,
            "next_country": self.next_country,
            "details": self.details,
            "receipt_hash": self.receipt_hash.hex(),
            "verified": self.verified,
            "questions": list(self.questions),
        }


@dataclass(frozen=True, slots=True)
class NextHop:
    """Who must sign the next receipt, at which position, linked to which hash."""

    position: int
    country: str
    prev_hash: bytes


@dataclass(frozen=True, slots=True)
class Vouch:
    """A hop's key that the chain vouched for: `by` forwarded the trace to it trusting `key`."""

    position: int
    country: str
    by: str
    key: bytes

    def to_json(self) -> dict[str, Any]:
        """As `trace verify --json` prints it."""
        return {
            "position": self.position,
            "country": self.country,
            "vouched_by": self.by,
            "fingerprint": fingerprint(self.key),
        }


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What `verify_chain` found."""

    trace_id: bytes | None
    originator: str | None
    request_hash: bytes
    hops: tuple[Hop, ...]
    problems: tuple[Problem, ...]
    next_hop: NextHop | None
    vouched: tuple[Vouch, ...] = ()

    @property
    def valid(self) -> bool:
        """Every statement verified and the chain holds together."""
        return not self.problems

    @property
    def complete(self) -> bool:
        """Valid, and the last hop closed the trace (it did not forward, it is not waiting)."""
        return (
            self.valid
            and bool(self.hops)
            and self.hops[-1].final
            and self.hops[-1].outcome is not Outcome.FORWARDED
        )

    def to_json(self) -> dict[str, Any]:
        """As `trace verify --json` prints it."""
        return {
            "valid": self.valid,
            "complete": self.complete,
            "trace_id": self.trace_id.hex() if self.trace_id else None,
            "originator": self.originator,
            "request_hash": self.request_hash.hex(),
            "hops": [hop.to_json() for hop in self.hops],
            "problems": [problem.to_json() for problem in self.problems],
            "vouched_keys": [vouch.to_json() for vouch in self.vouched],
        }


def _at(ms: int) -> str:
    return from_ms(ms).isoformat()


def _signed_at(replaced: tuple[Signed, ReceiptStatement]) -> int:
    return replaced[1].signed_ms


class _Checker:
    """The state of one `verify_chain` run: the previous receipt, what was found."""

    def __init__(
        self,
        request: bytes,
        answers: Sequence[bytes],
        keys: KeyHistory,
        forwards: Sequence[bytes] = (),
        rotations: Sequence[bytes] = (),
        superseded: Sequence[bytes] = (),
    ) -> None:
        self.keys = keys
        self.vouched: tuple[Vouch, ...] = ()
        self.request_hash = digest(request)
        self.problems: list[Problem] = []
        self.replaced: dict[int, list[tuple[Signed, ReceiptStatement]]] = {}
        for data in superseded:
            try:
                signed, old = read(data, ReceiptStatement)
            except MalformedEnvelopeError as e:
                self._add((None, None), ProblemKind.MALFORMED, f"a replaced receipt: {e}")
                continue
            self.replaced.setdefault(old.position, []).append((signed, old))
        self.hops: list[Hop] = []
        self.answers = {digest(answer): answer for answer in answers}
        self.used: set[bytes] = set()
        self.request = self._request(request)
        if self.request is not None:
            self.keys, self.vouched = vouched_keys(
                keys, self.request.originator, self.request.trace_id, forwards, rotations
            )
        self.prev: ReceiptStatement | None = None
        self.prev_hash = self.request_hash
        self.prev_position = 0
        self.countries: list[str] = []

    def _add(self, where: tuple[int | None, str | None], kind: ProblemKind, message: str) -> None:
        self.problems.append(Problem(where[0], where[1], kind, message))

    def _signature(self, where: tuple[int, str], signed: Signed, at_ms: int, what: str) -> None:
        try:
            verify(signed, where[1], at_ms, self.keys)
        except UnknownSenderError as e:
            unknown = (
                ""
                if self.keys.knows(where[1])
                else (
                    f"; no key of {where[1]} is trusted here, and no forward statement signed "
                    "by the hop before vouches for one"
                )
            )
            self._add(where, ProblemKind.WRONG_SIGNER, f"{what}: {e} ({_at(at_ms)}){unknown}")
        except BadSignatureError as e:
            self._add(where, ProblemKind.BAD_SIGNATURE, f"{what}: {e}")

    def _request(self, data: bytes) -> RequestStatement | None:
        try:
            signed, request = read(data, RequestStatement)
        except MalformedEnvelopeError as e:
            self._add((0, None), ProblemKind.MALFORMED, str(e))
            return None
        self._signature((0, request.originator), signed, request.created_ms, "request")
        return request

    def receipt(self, index: int, data: bytes) -> None:
        """Check the receipt at `index` against the request and the receipt before it."""
        before = len(self.problems)
        try:
            signed, receipt = read(data, ReceiptStatement)
        except MalformedEnvelopeError as e:
            self._add((self.prev_position + 1, None), ProblemKind.MALFORMED, str(e))
            self.prev, self.prev_hash = None, digest(data)
            self.prev_position += 1
            return
        where = (receipt.position, receipt.country)
        if fault := shape_fault(receipt):
            self._add(where, ProblemKind.MALFORMED, f"receipt: {fault}")
        self._signature(where, signed, receipt.signed_ms, "receipt")
        self._same_trace(where, receipt)
        self._position(where, receipt)
        if receipt.prev_hash != self.prev_hash:
            self._add(where, ProblemKind.BROKEN_LINK, self._link_message(index))
        self._times(where, receipt)
        self._follows(where, receipt)
        if receipt.next_country is not None and receipt.next_country in {
            *self.countries,
            receipt.country,
        }:
            self._add(
                where,
                ProblemKind.LOOP,
                f"forwarded to {receipt.next_country}, which is already on the chain",
            )
        details = self._answer(where, receipt)
        questions = self._asked(where, receipt)
        self.hops.append(
            Hop(
                receipt.position,
                receipt.country,
                receipt.received_ms,
                receipt.answered_ms,
                receipt.outcome,
                receipt.next_country,
                details,
                digest(data),
                verified=len(self.problems) == before,
                questions=questions,
            )
        )
        self.countries.append(receipt.country)
        self.prev, self.prev_hash, self.prev_position = receipt, digest(data), receipt.position

    def _same_trace(self, where: tuple[int, str], receipt: ReceiptStatement) -> None:
        if self.request and receipt.trace_id != self.request.trace_id:
            self._add(
                where,
                ProblemKind.WRONG_TRACE,
                f"the receipt is for trace {receipt.trace_id.hex()}, "
                f"not {self.request.trace_id.hex()}",
            )
        elif receipt.request_hash != self.request_hash:
            self._add(
                where, ProblemKind.WRONG_TRACE, "the receipt names another request (its hash)"
            )

    def _position(self, where: tuple[int, str], receipt: ReceiptStatement) -> None:
        position, expected = receipt.position, self.prev_position + 1
        if position == self.prev_position:
            self._add(where, ProblemKind.DUPLICATE_POSITION, "a second receipt for this hop")
        elif position < self.prev_position:
            self._add(
                where,
                ProblemKind.OUT_OF_ORDER,
                f"comes after hop {self.prev_position}'s receipt (receipts go in hop order)",
            )
        elif position > expected:
            missing = str(expected) if position == expected + 1 else f"{expected}-{position - 1}"
            self._add(where, ProblemKind.MISSING_HOP, f"hop {missing} is missing before it")

    def _link_message(self, index: int) -> str:
        if index == 0:
            return "the receipt does not link to the originator's request"
        before = f"hop {self.prev.position} ({self.prev.country})" if self.prev else "the one"
        return (
            f"the receipt does not link to the receipt before it ({before}): "
            "a receipt was changed, removed or replaced"
        )

    def _times(self, where: tuple[int, str], receipt: ReceiptStatement) -> None:
        if receipt.answered_ms is not None and receipt.answered_ms < receipt.received_ms:
            self._add(
                where,
                ProblemKind.TIMES_OUT_OF_ORDER,
                f"answered at {_at(receipt.answered_ms)}, before it received the trace "
                f"at {_at(receipt.received_ms)}",
            )
        if self.prev is not None and self.prev.answered_ms is not None:
            earliest, what = self.prev.answered_ms, f"hop {self.prev.position} answered"
        elif self.prev is None and self.prev_position == 0 and self.request is not None:
            earliest, what = self.request.created_ms, "the request was made"
        else:
            return
        if receipt.received_ms < earliest - CLOCK_SKEW_MS:
            self._add(
                where,
                ProblemKind.TIMES_OUT_OF_ORDER,
                f"received the trace at {_at(receipt.received_ms)}, before {what} "
                f"({_at(earliest)}), by more than the {CLOCK_SKEW_MS // 1000} s clocks may differ",
            )

    def _follows(self, where: tuple[int, str], receipt: ReceiptStatement) -> None:
        prev = self.prev
        if prev is None:
            return
        before = (prev.position, prev.country)
        if not prev.final:
            state = prev.outcome.value if prev.outcome else "pending"
            self._add(
                before,
                ProblemKind.NOT_FINAL,
                f"its receipt is not final ({state}), yet hop {receipt.position} follows",
            )
        elif prev.outcome is not Outcome.FORWARDED:
            self._add(
                where,
                ProblemKind.AFTER_END,
                f"follows hop {prev.position} ({prev.country}), which answered "
                f"{prev.outcome} and forwarded the trace to no one",
            )
        elif prev.next_country != receipt.country:
            self._add(
                where,
                ProblemKind.NOT_FOLLOWED,
                f"hop {prev.position} ({prev.country}) forwarded the trace to "
                f"{prev.next_country}, but this receipt is {receipt.country}'s",
            )

    def _answer(self, where: tuple[int, str], receipt: ReceiptStatement) -> dict[str, str] | None:
        if receipt.answer_hash is None or receipt.answered_ms is None:
            return None
        data = self.answers.get(receipt.answer_hash)
        if data is None:
            self._add(
                where,
                ProblemKind.ANSWER_MISMATCH,
                "no answer given matches the hash its receipt signed (missing, or altered)",
            )
            return None
        self.used.add(receipt.answer_hash)
        try:
            signed, answer = read(data, AnswerStatement)
        except MalformedEnvelopeError as e:
            self._add(where, ProblemKind.MALFORMED, str(e))
            return None
        self._signature(where, signed, receipt.answered_ms, "answer")
        said = (
            answer.trace_id,
            answer.position,
            answer.country,
            answer.outcome,
            answer.next_country,
        )
        signed_for = (
            receipt.trace_id,
            receipt.position,
            receipt.country,
            receipt.outcome,
            receipt.next_country,
        )
        if said != signed_for:
            self._add(
                where,
                ProblemKind.ANSWER_MISMATCH,
                f"the answer (hop {answer.position}, {answer.country}, {answer.outcome}, "
                f"next {answer.next_country}) is not what its receipt says",
            )
        return {str(key): value for key, value in answer.details.items()}

    def _asked(self, where: tuple[int, str], latest: ReceiptStatement) -> tuple[str, ...]:
        """Check the `needs_information` receipts the hop replaced by `latest`; their
        questions, oldest first."""
        asked = []
        for signed, old in sorted(self.replaced.pop(latest.position, []), key=_signed_at):
            if old.outcome is not Outcome.NEEDS_INFORMATION:
                self._add(
                    where,
                    ProblemKind.DUPLICATE_POSITION,
                    f"a replaced receipt says {old.outcome or 'pending'}: only a "
                    "needs_information receipt is replaced by a later one",
                )
                continue
            link = (old.trace_id, old.country, old.prev_hash, old.request_hash, old.received_ms)
            if link != (
                latest.trace_id,
                latest.country,
                latest.prev_hash,
                latest.request_hash,
                latest.received_ms,
            ):
                self._add(
                    where,
                    ProblemKind.BROKEN_LINK,
                    "a replaced needs_information receipt does not share the hop's trace, "
                    "country, link and time received with its latest receipt",
                )
            self._signature(where, signed, old.signed_ms, "replaced receipt")
            if latest.answered_ms is None or old.signed_ms > latest.answered_ms:
                self._add(
                    where,
                    ProblemKind.TIMES_OUT_OF_ORDER,
                    f"asked its question at {_at(old.signed_ms)}, after its latest receipt",
                )
            details = self._answer(where, old)
            asked.append((details or {}).get("question", ""))
        return tuple(asked)

    def finish(self) -> ChainReport:
        """The report, once every receipt was checked."""
        for position in sorted(self.replaced):
            self._add(
                (position, self.replaced[position][0][1].country),
                ProblemKind.MISSING_HOP,
                "a replaced receipt of a hop that is not on the chain",
            )
        for number, (answer_hash, _data) in enumerate(self.answers.items(), 1):
            if answer_hash not in self.used:
                self._add(
                    (None, None),
                    ProblemKind.UNREFERENCED_ANSWER,
                    f"answer {number} (hash {answer_hash.hex()[:16]}) is in no receipt",
                )
        next_hop = None
        if self.prev is not None and self.prev.next_country and self.prev.final:
            next_hop = NextHop(self.prev.position + 1, self.prev.next_country, self.prev_hash)
        return ChainReport(
            trace_id=self.request.trace_id if self.request else None,
            originator=self.request.originator if self.request else None,
            request_hash=self.request_hash,
            hops=tuple(self.hops),
            problems=tuple(self.problems),
            next_hop=next_hop,
            vouched=self.vouched,
        )


def vouched_keys(
    keys: KeyHistory,
    originator: str,
    trace_id: bytes,
    forwards: Sequence[bytes],
    rotations: Sequence[bytes] = (),
) -> tuple[KeyHistory, tuple[Vouch, ...]]:
    """`keys` and the keys the chain vouches for (docs/adr/0008), with who vouched.

    Position by position, the first `forward` for this trace that verifies, signed by
    the originator or by the country the accepted forward before named, says which
    country holds that position; if `keys` knows none of that country's keys, the key
    it names is trusted from then on, with the `rotations` that lead from it. Forwards
    that do not decode or verify, or come from anyone else, vouch for nothing.
    """
    by_position: dict[int, list[tuple[Signed, ForwardStatement]]] = {}
    for data in forwards:
        try:
            signed, forward = read(data, ForwardStatement)
        except MalformedEnvelopeError:
            continue
        if forward.trace_id == trace_id:
            by_position.setdefault(forward.position, []).append((signed, forward))
    vouched: list[Vouch] = []
    before = originator
    for position in range(1, max(by_position, default=0) + 1):
        accepted = next(
            (
                forward
                for signed, forward in by_position.get(position, ())
                if forward.country in {originator, before} and _verifies(signed, forward, keys)
            ),
            None,
        )
        if accepted is None:
            break
        country = accepted.next_country
        if not keys.knows(country):
            spans = follow_rotations(country, accepted.next_key, rotations)
            keys = keys.with_country(country, spans)
            vouched.append(Vouch(position, country, accepted.country, accepted.next_key))
        before = country
    return keys, tuple(vouched)


def _verifies(signed: Signed, forward: ForwardStatement, keys: KeyHistory) -> bool:
    try:
        verify(signed, forward.country, forward.forwarded_ms, keys)
    except (UnknownSenderError, BadSignatureError):
        return False
    return True


def verify_chain(
    request: bytes,
    receipts: Sequence[bytes],
    answers: Sequence[bytes],
    keys: KeyHistory,
    forwards: Sequence[bytes] = (),
    rotations: Sequence[bytes] = (),
    *,
    superseded: Sequence[bytes] = (),
) -> ChainReport:
    """Check a trace's whole chain (module docstring); never raises on bad input.

    Args:
        request: the originator's signed request.
        receipts: each hop's latest receipt, in hop order.
        answers: the hops' signed answers (any order), the replaced receipts' too.
        keys: the trusted keys of countries over time.
        forwards: signed `forward` statements vouching for the keys of hops `keys` does
            not know (any order).
        rotations: rotation statements (§5.2) from such a vouched key to later ones.
        superseded: the `needs_information` receipts hops replaced by a later one.
    """
    checker = _Checker(request, answers, keys, forwards, rotations, superseded)
    for index, data in enumerate(receipts):
        checker.receipt(index, data)
    return checker.finish()


def pending_receipt(
    request: bytes,
    receipts: Sequence[bytes],
    answers: Sequence[bytes],
    keys: KeyHistory,
    me: str,
    received_ms: int,
    unchecked: frozenset[str] = frozenset(),
) -> ReceiptStatement:
    """The pending receipt a hop signs (`receipts.sign_receipt`) when a trace reaches it,
    once the chain so far verifies and its last hop forwarded the trace to `me`.

    `unchecked` are the countries whose keys this hop does not hold (not its peers):
    their statements' signatures cannot be checked here (the originator checks them),
    so that they are not known is no reason to refuse; everything else must verify.

    Raises:
        MalformedEnvelopeError: the chain does not verify, or is not for this hop.
    """
    report = verify_chain(request, receipts, answers, keys)
    problems = [
        p
        for p in report.problems
        if not (p.kind is ProblemKind.WRONG_SIGNER and p.country in unchecked)
    ]
    if problems or report.trace_id is None:
        shown = "; ".join(str(problem) for problem in problems[:3])
        more = len(problems) - 3
        raise MalformedEnvelopeError(
            f"trace: the chain does not verify: {shown}"
            + (f" (and {more} more)" if more > 0 else "")
        )
    if not receipts:
        position, prev_hash = 1, report.request_hash
    elif report.next_hop is None:
        raise MalformedEnvelopeError("trace: the chain's last hop did not forward the trace")
    elif report.next_hop.country != me:
        raise MalformedEnvelopeError(
            f"trace: the chain's last hop forwarded the trace to {report.next_hop.country}, "
            f"not to {me}"
        )
    else:
        position, prev_hash = report.next_hop.position, report.next_hop.prev_hash
    return ReceiptStatement(
        report.trace_id,
        position,
        me,
        prev_hash,
        report.request_hash,
        received_ms,
        None,
        None,
        None,
        None,
    )
