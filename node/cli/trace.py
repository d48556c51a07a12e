"""`trace new`, `list`, `show`, `verify`, `answer`, `reply`, `export` and `verify-file`:
tracing a recovered firearm from country to country (issue 9).

Commands that send (`new`, `answer`, `reply`) sign with the node's key and write to its
outbox, in the same unit of work as the stored trace: the running node
(`iarms-node run`) delivers them.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from node.cli.common import (
    EXIT_ERROR,
    EXIT_INCOMPLETE,
    EXIT_USAGE,
    MAX_ID,
    actor,
    count,
    echo,
    keys,
    open_node,
    print_json,
    write_new,
)
from node.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from node.app import Federation, Node
    from node.trace.chain import ChainReport
    from node.trace.request import Finding, TraceRequestInput

T = TypeVar("T")

#: `node.trace.request.CrimeCategory`, `Priority` and `node.trace.receipts.Outcome`, spelled
#: here so that `--help` loads no trace module (a test checks they agree).
CRIMES = (
    "homicide",
    "assault",
    "sexual_violence",
    "kidnapping",
    "robbery",
    "burglary_or_theft",
    "drug_trafficking",
    "firearms_trafficking",
    "illegal_possession",
    "terrorism",
    "organised_crime",
    "found",
    "other",
)
PRIORITIES = ("routine", "urgent")
OUTCOMES = ("forwarded", "end_of_chain", "not_found", "refused", "needs_information")
STATUSES = ("open", "queued", "waiting", "answered", "closed")
#: Which answer detail `--details` fills, by outcome (the others: `reason`).
DETAIL_KEYS = {"needs_information": "question"}
#: What `trace new` takes from options, by `TraceRequestInput` field.
NEW_FIELDS = (
    "serial_number",
    "make",
    "model",
    "firearm_type",
    "calibre",
    "country_of_manufacture",
    "import_marking",
    "markings",
    "recovered_on",
    "recovered_at",
    "crime",
    "case_reference",
    "agency",
    "priority",
    "justification",
)
#: What `trace new` needs when no record pre-fills it.
REQUIRED_NEW = (
    ("make", "--make"),
    ("recovered_at", "--recovered-at"),
    ("crime", "--crime"),
    ("case_reference", "--case-ref"),
    ("agency", "--agency"),
)


def trace_id(text: str) -> bytes:
    """An argparse type: a trace id, 32 hexadecimal digits."""
    if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raise argparse.ArgumentTypeError(f"expected a trace id of 32 hex digits, got {text!r}")
    return bytes.fromhex(text)


def add_commands(sub: argparse._SubParsersAction, data: argparse.ArgumentParser) -> None:
    """Add this group's commands to `sub`; `data` is the `--data-dir` parent."""
    trace = sub.add_parser(
        "trace", help="trace a recovered firearm from country to country"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    key = argparse.ArgumentParser(add_help=False)
    key.add_argument("--key-passphrase-file", type=Path)
    _add_new(trace, data, key)

    listing = trace.add_parser(
        "list", parents=[data, key], help="traces: overdue first (latest first), then newest first"
    )
    listing.set_defaults(handler=cmd_list)
    listing.add_argument("--incoming", action="store_true", help="those received as a hop")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument(
        "--overdue", action="store_true", help="only those with an answer past its deadline"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")

    show = trace.add_parser("show", parents=[data, key], help="where a trace stands, hop by hop")
    show.set_defaults(handler=cmd_show)
    show.add_argument("id", type=trace_id)
    show.add_argument("--json", action="store_true")

    verify = trace.add_parser("verify", parents=[data, key], help="check a trace's chain")
    verify.set_defaults(handler=cmd_verify)
    verify.add_argument("id", type=trace_id)
    verify.add_argument("--json", action="store_true")

    answer = trace.add_parser("answer", parents=[data, key], help="answer a trace at this hop")
    answer.set_defaults(handler=cmd_answer, check=_check_answer)
    answer.add_argument("id", type=trace_id)
    answer.add_argument("--outcome", required=True, choices=OUTCOMES)
    answer.add_argument("--next-country", metavar="XXX", help="with --outcome forwarded")
    answer.add_argument("--details", default="", metavar="TEXT")

    reply = trace.add_parser(
        "reply", parents=[data, key], help="reply to the question a hop of our trace asked"
    )
    reply.set_defaults(handler=cmd_reply)
    reply.add_argument("id", type=trace_id)
    reply.add_argument("--text", required=True, metavar="TEXT")

    export = trace.add_parser("export", parents=[data, key], help="write a chain to a file")
    export.set_defaults(handler=cmd_export)
    export.add_argument("id", type=trace_id)
    export.add_argument("--out", type=Path, required=True, metavar="FILE")

    check = trace.add_parser("verify-file", help="check a chain file (no node needed)")
    check.set_defaults(handler=cmd_verify_file)
    check.add_argument("file", type=Path)
    check.add_argument("--json", action="store_true")


def _add_new(
    trace: argparse._SubParsersAction, data: argparse.ArgumentParser, key: argparse.ArgumentParser
) -> None:
    new = trace.add_parser("new", parents=[data, key], help="start a trace")
    new.set_defaults(handler=cmd_new, check=_check_new)
    source = new.add_mutually_exclusive_group()
    source.add_argument(
        "--from-record", type=count(1, MAX_ID), metavar="ID", help="pre-fill from our record"
    )
    source.add_argument(
        "--from-evidence",
        type=count(1, MAX_ID),
        metavar="ID",
        help="pre-fill from the evidence of a hit on a peer's record (`evidence list`)",
    )
    new.add_argument("--serial", dest="serial_number", metavar="S", help="the serial as read")
    new.add_argument("--make", metavar="M")
    new.add_argument("--model", metavar="M")
    new.add_argument("--type", dest="firearm_type", metavar="T")
    new.add_argument("--calibre", metavar="C")
    new.add_argument("--country-of-manufacture", metavar="XXX")
    new.add_argument("--import-marking", metavar="TEXT")
    new.add_argument("--markings", metavar="TEXT")
    new.add_argument("--recovered-on", metavar="YYYY-MM-DD")
    new.add_argument("--recovered-at", metavar="PLACE")
    new.add_argument("--crime", choices=CRIMES)
    new.add_argument("--case-ref", dest="case_reference", metavar="R")
    new.add_argument("--agency", help="the requesting agency (default: the record's)")
    new.add_argument("--priority", choices=PRIORITIES)
    new.add_argument("--justification", metavar="TEXT", help="why (required if urgent)")
    new.add_argument("--to", metavar="XXX", help="the first country to ask")
    new.add_argument(
        "--force", metavar="REASON", default="", help="send an incomplete request, saying why"
    )
    new.add_argument("--json", action="store_true", help="the trace id and findings as JSON")


def _country(value: str | None, option: str) -> str | None:
    """`value`'s problem as an alpha-3 country code, or None."""
    from node.countries import check_alpha3

    if value is None:
        return None
    try:
        check_alpha3(value.strip().upper(), option)
    except ValidationError as e:
        return str(e)
    return None


def _check_new(args: argparse.Namespace) -> str | None:
    if args.from_evidence is not None:
        # The evidence gives the firearm and the case; the recovery and the agency are ours.
        required = [r for r in REQUIRED_NEW if r[0] not in ("make", "case_reference")]
        missing = [option for name, option in required if getattr(args, name) is None]
        if missing:
            return f"required with --from-evidence: {', '.join(missing)}"
    elif args.from_record is not None:
        if args.crime is None:
            return "--crime is required (a record does not say in which crime it was recovered)"
    else:
        missing = [option for name, option in REQUIRED_NEW if getattr(args, name) is None]
        if missing:
            return f"required without --from-record or --from-evidence: {', '.join(missing)}"
    return _country(args.to, "--to")


def _check_answer(args: argparse.Namespace) -> str | None:
    if (args.outcome == "forwarded") != (args.next_country is not None):
        return "--next-country is given exactly when --outcome is forwarded"
    return _country(args.next_country, "--next-country")


def _entry(args: argparse.Namespace, base: dict[str, str]) -> TraceRequestInput:
    from node.trace.request import TraceRequestInput

    given = {name: getattr(args, name) for name in NEW_FIELDS if getattr(args, name) is not None}
    values = {"make": "", "crime": "", "recovered_at": "", "agency": "", "case_reference": ""}
    return TraceRequestInput(**(values | base | given))


async def cmd_new(args: argparse.Namespace) -> int:
    from node.trace import prefill
    from node.trace.request import check_request, completeness

    async with open_node(args) as node:
        base: dict[str, str] = {}
        if args.from_record is not None:
            record = await _known(node.records.get(args.from_record, actor()))
            if record is None:
                return EXIT_USAGE
            base = prefill.from_record(record)
        elif args.from_evidence is not None:
            opened = await _known(node.evidence.open(args.from_evidence))
            if opened is None:
                return EXIT_USAGE
            base = prefill.from_evidence(*opened)
        fields = check_request(_entry(args, base), node.reference, node.clock.now().date())
        findings = completeness(fields, node.reference)
        forced = args.force.strip()
        if findings and not forced:
            _print_findings(None, findings, args.json)
            return EXIT_INCOMPLETE
        started = await _services(node, args).traces.start(fields, actor(), args.to, forced)
    _print_findings(started.trace_id.hex(), findings, args.json, started.first_hop)
    return 0


def _print_findings(
    trace: str | None, findings: tuple[Finding, ...], as_json: bool, to: str | None = None
) -> None:
    if as_json:
        print_json(
            {
                "trace_id": trace,
                "sent": trace is not None,
                "first_hop": to,
                "findings": [{"field": f.field, "reason": f.reason} for f in findings],
            }
        )
        return
    out = sys.stdout if trace else sys.stderr
    for f in findings:
        echo(f"incomplete: {f.field}: {f.reason}", out)
    if trace is None:
        echo("not sent: complete the request, or send it anyway with --force REASON", out)
    else:
        echo(f"trace {trace} queued for {to} (the running node delivers it)")


async def _known(call: Awaitable[T]) -> T | None:
    """`call`'s result, or None when it names something unknown (the error printed)."""
    try:
        return await call
    except NotFoundError as e:
        echo(f"iarms-node: {e}", sys.stderr)
        return None


def _services(node: Node, args: argparse.Namespace) -> Federation:
    from node.app import federation

    return federation(node, keys(node.config, args.key_passphrase_file))


async def cmd_list(args: argparse.Namespace) -> int:
    from node.trace.model import TraceStatus

    status = TraceStatus(args.status) if args.status else None
    async with open_node(args) as node:
        traces = _services(node, args).traces
        entries = await traces.listing(args.incoming, status, args.overdue)
    for entry in entries:
        if args.json:
            print_json(entry.to_json())
            continue
        t = entry.trace
        late = f"  OVERDUE by {_duration(entry.overdue_seconds)}" if entry.overdue else ""
        if entry.overdue_hops:
            late += f" ({', '.join(entry.overdue_hops)})"
        if entry.reminders:
            late += f"  {entry.reminders} reminder(s)"
        echo(
            f"{t.trace_id.hex()}  {t.created_at:%Y-%m-%d %H:%M}  {t.originator}  "
            f"{t.priority:<7} {t.status.value:<8} next {t.next_country or '-'}{late}"
            + (f"  ({t.note})" if t.note else "")
        )
    return 0


def _duration(seconds: float) -> str:
    """`seconds` as days, hours and minutes ("2 d 3 h", "5 h 10 min", "4 min")."""
    minutes = int(seconds // 60)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    parts = [f"{days} d"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes and not days else []
    return " ".join(parts) or "under a minute"


def _print_hops(hops: list[dict[str, Any]]) -> None:
    """Each hop on a line (as `ChainReport.to_json` or `TraceView.to_json` give them)."""
    for h in hops:
        details = ", ".join(f"{k}={v}" for k, v in (h["details"] or {}).items())
        late = f"  OVERDUE by {_duration(h['overdue_seconds'])}" if h.get("overdue") else ""
        if h.get("reminders"):
            late += f"  {h['reminders']} reminder(s), last {h['reminded_at']}"
        echo(
            f"  hop {h['position']}: {h['country']}  received {h['received_at']}  "
            f"answered {h['answered_at'] or '-'}  {h['outcome'] or 'pending'}"
            + (f" -> {h['next_country']}" if h["next_country"] else "")
            + (f"  ({details})" if details else "")
            + ("" if h["verified"] else "  NOT VERIFIED")
            + late
        )
        for question in h["questions"]:
            echo(f"    asked before: {question}")


async def cmd_show(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        view = await _known(_services(node, args).traces.show(args.id))
    if view is None:
        return EXIT_USAGE
    if args.json:
        print_json(view.to_json())
        return 0
    info = view.to_json()
    status = info["status"] + (f": {info['note']}" if info["note"] else "")
    where = "" if view.trace.position == 0 else f", we are hop {view.trace.position}"
    echo(f"trace {info['trace_id']}: {status} ({info['priority']}{where})")
    echo(f"started {info['created_at']} by {info['originator']}")
    if info["force_reason"]:
        echo(f"sent incomplete: {info['force_reason']}")
    _print_hops(info["hops"])
    for reply in info["replies"]:
        echo(f"  reply to hop {reply['position']} ({reply['replied_at']}): {reply['text']}")
    if info["question"]:
        q = info["question"]
        echo(f"{q['country']} (hop {q['position']}) asks: {q['text']}")
        echo(f"reply with: iarms-node trace reply {info['trace_id']} --text TEXT")
    echo("chain verifies" if view.report.valid else "CHAIN DOES NOT VERIFY: see trace verify")
    return 0


def _print_report(report: ChainReport, as_json: bool, extra: dict[str, Any] | None = None) -> int:
    if as_json:
        print_json(report.to_json() | (extra or {}))
    else:
        _print_hops(report.to_json()["hops"])
        for problem in report.problems:
            echo(f"problem: {problem}")
        echo(("valid" if report.valid else "NOT VALID") + (", complete" if report.complete else ""))
    return 0 if report.valid else EXIT_ERROR


async def cmd_verify(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        report = await _known(_services(node, args).traces.verify(args.id))
    if report is None:
        return EXIT_USAGE
    return _print_report(report, args.json)


async def cmd_answer(args: argparse.Namespace) -> int:
    from node.trace.receipts import Outcome

    details = {DETAIL_KEYS.get(args.outcome, "reason"): args.details} if args.details else {}
    nxt = args.next_country.strip().upper() if args.next_country else None
    async with open_node(args) as node:
        hop = _services(node, args).trace_hop
        try:
            await hop.answer(args.id, Outcome(args.outcome), details, nxt, actor())
        except NotFoundError as e:
            echo(f"iarms-node: {e}", sys.stderr)
            return EXIT_USAGE
    echo(f"answered {args.id.hex()}: {args.outcome} (the running node delivers it)")
    return 0


async def cmd_reply(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        try:
            country = await _services(node, args).traces.reply(args.id, args.text, actor())
        except (NotFoundError, ValidationError) as e:  # unknown, not waiting, bad text
            echo(f"iarms-node: {e}", sys.stderr)
            return EXIT_USAGE
    echo(f"replied to {country} on trace {args.id.hex()} (the running node delivers it)")
    return 0


async def cmd_export(args: argparse.Namespace) -> int:
    async with open_node(args) as node:
        data = await _known(_services(node, args).traces.export(args.id))
    if data is None:
        return EXIT_USAGE
    write_new(args.out, data)
    echo(f"wrote trace {args.id.hex()} ({len(data)} bytes) to {args.out}")
    return 0


async def cmd_verify_file(args: argparse.Namespace) -> int:
    from node.trace.export import verify_file

    try:
        data = args.file.read_bytes()
    except OSError as e:
        raise ValidationError(f"cannot read {args.file}: {e.strerror}") from e
    checked = verify_file(data)
    if not args.json:
        for country, prints in checked.fingerprints.items():
            echo(f"key of {country}: {', '.join(prints)}")
    return _print_report(checked.report, args.json, {"key_fingerprints": checked.fingerprints})
