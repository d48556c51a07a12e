"""Parsing the trace forms and shaping traces for the pages: pure helpers for `views_traces`.

Every parser raises `ValidationError` naming the form field, so the views can
put the message next to it. The JSON shapes here are what the `.json` twins
of `/traces`, `/traces/incoming` and `/traces/{id}` return.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from multidict import MultiMapping

from admin_ui.forms import text_values
from node.countries import check_alpha3
from node.errors import ValidationError
from node.protocol.envelope import from_ms
from node.records.normalise import check_text
from node.trace.chain import Hop
from node.trace.model import StoredTrace, TraceStatus
from node.trace.receipts import MAX_DETAIL_CHARS, Outcome
from node.trace.request import (
    DEFAULT_QUESTIONS,
    MAX_NOTE_CHARS,
    CrimeCategory,
    Finding,
    Priority,
    Question,
    TraceRequestInput,
)
from node.trace.service import TraceEntry, TraceView

#: The new-trace form's text fields, in display order, with their labels.
TRACE_LABELS: Mapping[str, str] = {
    "priority": "Priority",
    "justification": "Justification (required if urgent)",
    "case_reference": "Case reference",
    "agency": "Requesting agency",
    "serial_number": "Serial number",
    "make": "Make",
    "model": "Model",
    "firearm_type": "Type",
    "calibre": "Calibre",
    "country_of_manufacture": "Country of manufacture",
    "import_marking": "Import marking",
    "markings": "Other markings",
    "recovered_on": "Recovered on",
    "recovered_at": "Recovered at (place)",
    "crime": "Crime category",
    "to": "First country to ask",
    "force_reason": "Reason to send it incomplete",
}
#: Besides the labelled fields: what the form posts and the views read.
NEW_FIELDS = (*TRACE_LABELS, "obliterated")
CRIMES: tuple[str, ...] = tuple(c.value for c in CrimeCategory)
PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
QUESTION_LABELS: Mapping[str, str] = {
    Question.LAST_LEGAL_POSSESSOR.value: "Identify the last legal possessor",
    Question.POINT_OF_DIVERSION.value: "Identify the point of diversion",
    Question.CHAIN_OF_CUSTODY.value: "Give the chain of custody",
}
DEFAULT_QUESTION_VALUES: tuple[str, ...] = tuple(q.value for q in DEFAULT_QUESTIONS)
OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
OUTCOME_LABELS: Mapping[str, str] = {
    Outcome.FORWARDED.value: "Forwarded: the firearm left this country",
    Outcome.END_OF_CHAIN.value: "End of chain: last legal possessor identified here",
    Outcome.NOT_FOUND.value: "Not found in our records",
    Outcome.REFUSED.value: "Refused (give the reason)",
    Outcome.NEEDS_INFORMATION.value: "Needs information (ask the originator)",
}
ANSWER_FIELDS = ("outcome", "next_country", "details")
#: What each key of a hop's answer details says (`node.trace.receipts.DetailKey`).
DETAIL_LABELS: Mapping[str, str] = {
    "party": "Party",
    "date": "Date",
    "event": "Event",
    "licence_reference": "Licence reference",
    "question": "Question",
    "reason": "Reason",
    "loop": "Loop: already on the chain",
    "note": "Note",
}
#: Which answer detail the officer's text fills, by outcome (as `trace answer --details`).
DETAIL_KEYS: Mapping[str, str] = {Outcome.NEEDS_INFORMATION.value: "question"}
STATUSES: tuple[str, ...] = tuple(s.value for s in TraceStatus)
DIRECTIONS = ("outgoing", "incoming")
FILTER_PARAMS = ("direction", "status", "priority", "overdue")


@dataclass(frozen=True, slots=True)
class NewTraceForm:
    """The new-trace form as typed: its text fields, the questions ticked, the action."""

    values: dict[str, str]
    questions: tuple[str, ...]
    send: bool

    def entry(self) -> TraceRequestInput:
        """What `check_request` validates."""
        names = set(TraceRequestInput.__dataclass_fields__) - {"obliterated", "questions"}
        given = {name: value for name, value in self.values.items() if name in names}
        return TraceRequestInput(
            **given, obliterated=bool(self.values["obliterated"]), questions=self.questions
        )

    @property
    def to(self) -> str | None:
        """The first country to ask, if the officer named one."""
        return self.values["to"].strip() or None

    @property
    def force_reason(self) -> str:
        """Why an incomplete request is sent anyway ("" when not forced)."""
        return self.values["force_reason"].strip()


def new_trace_form(form: MultiMapping[object]) -> NewTraceForm:
    """The posted new-trace form (`action` "send" sends, anything else only checks)."""
    values = form_text(form, NEW_FIELDS)
    questions = tuple(q for q in form.getall("questions", []) if isinstance(q, str))
    return NewTraceForm(values, questions, form.get("action") == "send")


def blank_values(prefill: Mapping[str, str] | None = None) -> dict[str, str]:
    """The new-trace form's values before anything is typed (routine; pre-filled if given)."""
    return dict.fromkeys(NEW_FIELDS, "") | {"priority": "routine"} | dict(prefill or {})


def findings_map(findings: tuple[Finding, ...]) -> dict[str, str]:
    """The completeness check's findings by field, to show beside each field."""
    return {f.field: f.reason for f in findings}


def findings_json(findings: tuple[Finding, ...]) -> list[dict[str, str]]:
    """As `trace new --json` prints them."""
    return [{"field": f.field, "reason": f.reason} for f in findings]


def form_text(form: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The text fields `names` of a posted form, line breaks as "\n": browsers send a
    textarea's as "\r\n", and a carriage return is a control character the node refuses."""
    return {
        name: value.replace("\r\n", "\n").replace("\r", "\n")
        for name, value in text_values(form, names).items()
    }


def reply_text(form: Mapping[str, Any]) -> str:
    """The reply to a hop's question as typed, its lines joined by spaces: a reply is one
    paragraph (`node.trace.replies.check_reply_text` refuses line breaks)."""
    return " ".join(form_text(form, ("text",))["text"].split("\n"))


def check_force_reason(text: str) -> str:
    """The reason to send an incomplete request, as stored with it (ValidationError if too
    long or holding control characters)."""
    return check_text(text, "force_reason", MAX_NOTE_CHARS)


def parse_answer(form: Mapping[str, Any]) -> tuple[Outcome, dict[str, str], str | None]:
    """An officer's answer: the outcome, its details and the next country.

    Raises:
        ValidationError: naming the field (an unknown outcome, a forward without a
            country or a country without a forward, details too long or with control
            characters).
    """
    values = form_text(form, ANSWER_FIELDS)
    if values["outcome"] not in OUTCOMES:
        raise ValidationError(f"outcome: choose one of {', '.join(OUTCOMES)}", "outcome")
    outcome = Outcome(values["outcome"])
    country = values["next_country"].strip().upper() or None
    if outcome is Outcome.FORWARDED and country is None:
        raise ValidationError(
            "next_country: a forwarded trace needs the country the firearm went to",
            "next_country",
        )
    if outcome is not Outcome.FORWARDED and country is not None:
        raise ValidationError(
            "next_country: only a forwarded trace names a next country; clear it or choose "
            "forwarded",
            "next_country",
        )
    if country is not None:
        check_alpha3(country, "next_country")
    text = check_text(values["details"], "details", MAX_DETAIL_CHARS)
    details = {DETAIL_KEYS.get(outcome.value, "reason"): text} if text else {}
    return outcome, details, country


@dataclass(frozen=True, slots=True)
class ListFilter:
    """The traces list's filters: a direction, a status, a priority, only overdue ones."""

    incoming: bool
    status: TraceStatus | None
    priority: str
    overdue: bool

    def keeps(self, entry: TraceEntry) -> bool:
        """Whether `entry` passes the priority and overdue filters (status: the service's)."""
        if self.priority and entry.trace.priority != self.priority:
            return False
        return not self.overdue or entry.overdue


def _choice(params: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = params.get(name, "").strip()
    if value and value not in choices:
        raise ValidationError(f"{name}: choose one of {', '.join(choices)}", name)
    return value


def list_filter(params: Mapping[str, str]) -> ListFilter:
    """The list's filters from its query (ValidationError naming a bad one)."""
    direction = _choice(params, "direction", DIRECTIONS) or "outgoing"
    status = _choice(params, "status", STATUSES)
    return ListFilter(
        incoming=direction == "incoming",
        status=TraceStatus(status) if status else None,
        priority=_choice(params, "priority", PRIORITIES),
        overdue=params.get("overdue", "") not in ("", "0", "false"),
    )


def late_text(late: timedelta) -> str:
    """A duration as an officer reads it: "3 d 4 h", "5 h 12 min", "40 min", "12 s"."""
    seconds = int(late.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    minutes = seconds // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One trace of the list, with whether (and how long) it is overdue at `now`."""

    trace: StoredTrace
    overdue: bool
    late: timedelta | None

    @property
    def trace_hex(self) -> str:
        """The trace id as the pages' addresses spell it."""
        return self.trace.trace_id.hex()

    @property
    def late_text(self) -> str:
        """How late it is, or ""."""
        return late_text(self.late) if self.late is not None else ""

    def to_json(self) -> dict[str, Any]:
        """As `/traces.json` lists it (the keys of `trace list --json`, and how late)."""
        t = self.trace
        return {
            "trace_id": self.trace_hex,
            "position": t.position,
            "originator": t.originator,
            "from": t.prev_country,
            "priority": t.priority,
            "status": t.status.value,
            "created_at": t.created_at,
            "deadline_at": t.deadline_at,
            "overdue": self.overdue,
            "late_seconds": int(self.late.total_seconds()) if self.late is not None else None,
            "outcome": t.outcome,
            "next_country": t.next_country,
            "note": t.note or None,
        }


def trace_row(trace: StoredTrace, overdue_seconds: float) -> TraceRow:
    """`trace` as the list shows it, `overdue_seconds` late (at the originator: its latest
    hop; at a hop: ours; `TraceService.listing` and `TraceView` reckon it)."""
    late = timedelta(seconds=overdue_seconds) if overdue_seconds > 0 else None
    return TraceRow(trace, late is not None, late)


def entry_rows(entries: list[TraceEntry]) -> list[TraceRow]:
    """`TraceService.listing`'s entries (overdue first, the latest first) as rows."""
    return [trace_row(e.trace, e.overdue_seconds) for e in entries]


def view_json(view: TraceView, row: TraceRow) -> dict[str, Any]:
    """A trace's page as `/traces/{id}.json` gives it: `trace show --json`, the request's
    fields, where it stands here and the chain's problems."""
    incoming = view.trace.position > 0
    return (
        view.to_json()
        | row.to_json()
        | {
            "status": view.status.value,
            "direction": "incoming" if incoming else "outgoing",
            "request": {name: getattr(view.fields, name) for name in view.fields.__struct_fields__},
            "problems": [p.to_json() for p in view.report.problems],
            "complete": view.report.complete,
            "export": None if incoming else f"/traces/{row.trace_hex}/export",
        }
    )


@dataclass(frozen=True, slots=True)
class HopLine:
    """One hop of a trace's timeline: what its receipt and answer say, with times."""

    hop: Hop
    received_at: datetime
    answered_at: datetime | None

    @property
    def took(self) -> str:
        """How long the hop took to answer, or ""."""
        if self.answered_at is None:
            return ""
        return late_text(self.answered_at - self.received_at)


def timeline(view: TraceView) -> list[HopLine]:
    """The trace's hops in order, with their times as datetimes."""
    return [
        HopLine(
            hop,
            from_ms(hop.received_ms),
            from_ms(hop.answered_ms) if hop.answered_ms is not None else None,
        )
        for hop in view.report.hops
    ]
