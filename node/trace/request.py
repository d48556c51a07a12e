"""A trace request's fields: what an officer gives, validated, checked for completeness.

The fields follow the UN International Tracing Instrument (ITI, 2005, §§ 8-10
and 17) and ATF form 3312.1 (the eTrace request): a priority, the case, the
requesting agency, the firearm as recovered, the recovery, the questions
asked, and optional details of the possessor. `check_request` turns what the
console's form or the command line gives (`TraceRequestInput`, all text)
into `TraceRequestFields`, refusing bad input with a `ValidationError` naming
the field; `completeness` names each field whose absence is likely to make the
trace fail (the causes of most failed traces: no serial, a wrong make, no
import marking, no date); `first_hop` says which country the trace goes to
first. `to_wire` gives the map the originator signs (`node.trace.receipts`),
`from_wire` reads one a hop received.

The possessor's details are deliberately NOT in the signed map: the signed
request travels to every hop and is hashed into every receipt, so anything
in it reaches every country on the chain. They are kept with the trace and
sent separately, only to the hops the originator's policy allows.

Crime categories (`CrimeCategory`) are a fixed list, drawn from the sections
of the UNODC International Classification of Crime for Statistical Purposes
(ICCS, 2015) that involve firearms, so that every node reads them the same way:

    homicide              killing or attempted killing (ICCS 0101, 0102)
    assault               assault, threat or intimidation with the firearm (ICCS 0201, 0208)
    sexual_violence       (ICCS 03)
    kidnapping            kidnapping, hostage taking (ICCS 020221)
    robbery               (ICCS 0401)
    burglary_or_theft     the firearm or other goods stolen (ICCS 0501, 0502)
    drug_trafficking      recovered in a drug case (ICCS 0602)
    firearms_trafficking  illicit manufacturing or trafficking of firearms (ICCS 0901)
    illegal_possession    possession or carrying without a licence (ICCS 0901)
    terrorism             (ICCS 0906)
    organised_crime       participation in an organised criminal group (ICCS 0905)
    found                 no crime known: found, abandoned or surrendered
    other                 none of the above
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Annotated

import msgspec

from node.countries import check_alpha3
from node.errors import MalformedEnvelopeError, ValidationError
from node.lookup.text import check_case_reference, check_chars
from node.protocol.messages import NUL_FREE
from node.records.model import MAX_SERIAL_CHARS
from node.records.normalise import (
    EARLIEST_EVENT,
    check_text,
    parse_choice,
    parse_country,
    parse_date,
)
from node.records.reference import ReferenceTable
from node.records.serials import canonicalise_serial

#: Longest one-line text (make, model, agency, place...), as the protocol's `Text`.
MAX_LINE_CHARS = 200
#: Longest free text (markings, justification, possessor's address and notes).
MAX_NOTE_CHARS = 1000


class Priority(enum.StrEnum):
    """How fast each hop must answer (deadlines per hop: `[trace]` in the config)."""

    ROUTINE = "routine"
    URGENT = "urgent"


class CrimeCategory(enum.StrEnum):
    """The crime the firearm was recovered in (the module docstring lists the sources)."""

    HOMICIDE = "homicide"
    ASSAULT = "assault"
    SEXUAL_VIOLENCE = "sexual_violence"
    KIDNAPPING = "kidnapping"
    ROBBERY = "robbery"
    BURGLARY_OR_THEFT = "burglary_or_theft"
    DRUG_TRAFFICKING = "drug_trafficking"
    FIREARMS_TRAFFICKING = "firearms_trafficking"
    ILLEGAL_POSSESSION = "illegal_possession"
    TERRORISM = "terrorism"
    ORGANISED_CRIME = "organised_crime"
    FOUND = "found"
    OTHER = "other"


class Question(enum.StrEnum):
    """What the originator asks each hop (ITI § 17)."""

    LAST_LEGAL_POSSESSOR = "last_legal_possessor"
    POINT_OF_DIVERSION = "point_of_diversion"
    CHAIN_OF_CUSTODY = "chain_of_custody"


DEFAULT_QUESTIONS = (Question.LAST_LEGAL_POSSESSOR, Question.POINT_OF_DIVERSION)


@dataclass(frozen=True, slots=True)
class TraceRequestInput:
    """What an officer gives (console form, command line, a record or evidence pre-fill),
    as text; `check_request` validates it."""

    case_reference: str
    agency: str
    make: str
    crime: str
    recovered_at: str
    recovered_on: str = ""
    serial_number: str = ""
    obliterated: bool = False
    model: str = ""
    firearm_type: str = ""
    calibre: str = ""
    country_of_manufacture: str = ""
    import_marking: str = ""
    markings: str = ""
    priority: str = "routine"
    justification: str = ""
    questions: tuple[str, ...] = ()
    possessor_name: str = ""
    possessor_birth_date: str = ""
    possessor_address: str = ""
    possessor_document: str = ""
    possessor_notes: str = ""


@dataclass(frozen=True, slots=True)
class Firearm:
    """The firearm as recovered. `serial_number` is as read ("" when obliterated beyond
    reading), `make` the reference table's name when `make_known`."""

    serial_number: str
    serial_canonical: str
    obliterated: bool
    make: str
    make_known: bool
    model: str = ""
    firearm_type: str = ""
    calibre: str = ""
    country_of_manufacture: str | None = None
    import_marking: str = ""
    markings: str = ""


@dataclass(frozen=True, slots=True)
class Recovery:
    """Where, when and in which crime the firearm was recovered."""

    on: date | None
    place: str
    crime: CrimeCategory


@dataclass(frozen=True, slots=True)
class Possessor:
    """The person the firearm was recovered from, as far as known (never signed: see the
    module docstring)."""

    name: str = ""
    birth_date: date | None = None
    address: str = ""
    identity_document: str = ""
    notes: str = ""


@dataclass(frozen=True, slots=True)
class TraceRequestFields:
    """A validated trace request."""

    priority: Priority
    justification: str
    case_reference: str
    agency: str
    firearm: Firearm
    recovery: Recovery
    questions: tuple[Question, ...] = DEFAULT_QUESTIONS
    possessor: Possessor | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """A field whose absence makes the trace likely to fail, and why."""

    field: str
    reason: str


class FirstHopSource(enum.StrEnum):
    """Where the first hop's country came from."""

    TO = "to"
    COUNTRY_OF_MANUFACTURE = "country_of_manufacture"
    MAKE_REFERENCE = "make_reference"


@dataclass(frozen=True, slots=True)
class FirstHop:
    """The country a trace is sent to first, and why that one."""

    country: str
    source: FirstHopSource


# -- validation -------------------------------------------------------------------------


def _line(value: str, field: str, limit: int = MAX_LINE_CHARS) -> str:
    """One line of text that can travel: stripped, at most `limit`, no control character."""
    value = check_text(value, field, limit)
    check_chars(field, value)
    return value


def _note(value: str, field: str) -> str:
    """Free text over several lines (tabs and line breaks allowed)."""
    value = check_text(value, field, MAX_NOTE_CHARS)
    check_chars(field, value.replace("\n", " ").replace("\t", " "), field=field)
    return value


def _past_date(text: str, field: str, today: date) -> date | None:
    day = parse_date(text, field)
    if day is not None and not EARLIEST_EVENT <= day <= today:
        raise ValidationError(f"{field}: {day.isoformat()} is in the future or before 1800", field)
    return day


def _firearm(entry: TraceRequestInput, reference: ReferenceTable) -> Firearm:
    serial = _line(entry.serial_number, "serial_number", MAX_SERIAL_CHARS)
    canonical = canonicalise_serial(serial)
    if serial and not canonical:
        raise ValidationError(
            f"serial_number: {serial!r} has no letter or digit; give what can be read, "
            "or mark the serial obliterated",
            "serial_number",
        )
    if not canonical and not entry.obliterated:
        raise ValidationError(
            "serial_number: required; if it was removed or cannot be read, mark it obliterated "
            "(and give what can be read, if anything)",
            "serial_number",
        )
    make_text = _line(entry.make, "make")
    if not make_text:
        raise ValidationError("make: required (as marked on the firearm)", "make")
    make = reference.normalise_make(make_text)
    return Firearm(
        serial_number=serial,
        serial_canonical=canonical,
        obliterated=entry.obliterated,
        make=make.value,
        make_known=make.known,
        model=_line(entry.model, "model"),
        firearm_type=reference.normalise_type(_line(entry.firearm_type, "firearm_type")).value,
        calibre=reference.normalise_calibre(_line(entry.calibre, "calibre")).value,
        country_of_manufacture=parse_country(
            entry.country_of_manufacture, "country_of_manufacture"
        ),
        import_marking=_line(entry.import_marking, "import_marking"),
        markings=_note(entry.markings, "markings"),
    )


def _recovery(entry: TraceRequestInput, today: date) -> Recovery:
    place = _line(entry.recovered_at, "recovered_at")
    if not place:
        raise ValidationError(
            "recovered_at: required (where the firearm was recovered)", "recovered_at"
        )
    if not entry.crime.strip():
        raise ValidationError(
            f"crime: required, one of {', '.join(c.value for c in CrimeCategory)}", "crime"
        )
    return Recovery(
        on=_past_date(entry.recovered_on, "recovered_on", today),
        place=place,
        crime=parse_choice(entry.crime, CrimeCategory, "crime"),
    )


def _questions(texts: tuple[str, ...]) -> tuple[Question, ...]:
    if not texts:
        return DEFAULT_QUESTIONS
    chosen = [parse_choice(text, Question, "questions") for text in texts]
    return tuple(dict.fromkeys(chosen))  # each once, in the order asked


def _possessor(entry: TraceRequestInput, today: date) -> Possessor | None:
    possessor = Possessor(
        name=_line(entry.possessor_name, "possessor_name"),
        birth_date=_past_date(entry.possessor_birth_date, "possessor_birth_date", today),
        address=_note(entry.possessor_address, "possessor_address"),
        identity_document=_line(entry.possessor_document, "possessor_document"),
        notes=_note(entry.possessor_notes, "possessor_notes"),
    )
    return None if possessor == Possessor() else possessor


def _case_reference(text: str) -> str:
    """The one case-reference rule (`node.lookup.text`), with a trace's reason to require it."""
    if not text.strip():
        raise ValidationError(
            "case_reference: required (each hop is told it, so that bureaus can find the case)",
            "case_reference",
        )
    return check_case_reference(text)


def check_request(
    entry: TraceRequestInput, reference: ReferenceTable, today: date
) -> TraceRequestFields:
    """Validate and normalise a trace request.

    The serial is canonicalised as records' are (`node.records.serials`), the
    make, type and calibre normalised through the reference table (an unknown
    make is kept as typed: `completeness` reports it), the country of
    manufacture read as records read it.

    Raises:
        ValidationError: for the first invalid field, naming it.
    """
    priority = parse_choice(entry.priority or "routine", Priority, "priority")
    justification = _note(entry.justification, "justification")
    if priority is Priority.URGENT and not justification:
        raise ValidationError(
            "justification: an urgent trace needs a justification (why each hop should "
            "answer within the urgent deadline)",
            "justification",
        )
    agency = _line(entry.agency, "agency")
    if not agency:
        raise ValidationError("agency: required (the agency requesting the trace)", "agency")
    return TraceRequestFields(
        priority=priority,
        justification=justification,
        case_reference=_case_reference(entry.case_reference),
        agency=agency,
        firearm=_firearm(entry, reference),
        recovery=_recovery(entry, today),
        questions=_questions(entry.questions),
        possessor=_possessor(entry, today),
    )


# -- completeness and routing -----------------------------------------------------------


def completeness(fields: TraceRequestFields, reference: ReferenceTable) -> tuple[Finding, ...]:
    """Each missing field likely to make the trace fail; empty when the request is complete.

    An incomplete request is sent only when the officer forces it with a reason.
    """
    firearm = fields.firearm
    findings: list[Finding] = []
    if not firearm.serial_canonical and not firearm.markings and not firearm.import_marking:
        findings.append(
            Finding(
                "serial_number",
                "no serial number and no other markings: no registry can identify the firearm "
                "without one (give what can be read of the serial, or the markings on it)",
            )
        )
    if not firearm.make_known:
        findings.append(
            Finding(
                "make",
                f"the make {firearm.make!r} is not in the reference table: registries file "
                "firearms under the manufacturer's name; check the spelling and the marks "
                "on the frame",
            )
        )
    if firearm.country_of_manufacture is None and not firearm.import_marking:
        made_in = reference.country_of_make(firearm.make)
        hint = f" (the make's reference entry says {made_in}: confirm it)" if made_in else ""
        findings.append(
            Finding(
                "country_of_manufacture",
                "neither the country of manufacture nor an import marking: without them the "
                f"trace cannot find where the firearm entered legal commerce{hint}",
            )
        )
    if fields.recovery.on is None:
        findings.append(
            Finding(
                "recovered_on",
                "no recovery date: registries answer for the custody at a date, and the time "
                "from sale to crime is what the trace measures",
            )
        )
    return tuple(findings)


def first_hop(
    fields: TraceRequestFields, reference: ReferenceTable, to: str | None = None
) -> FirstHop:
    """The country a trace goes to first: `to` when given (`--to`), else the country of
    manufacture, else the make's country in the reference table.

    Raises:
        ValidationError: `to` is not an alpha-3 code, or no country is known.
    """
    if to is not None and to.strip():
        return FirstHop(check_alpha3(to.strip().upper(), "to"), FirstHopSource.TO)
    if fields.firearm.country_of_manufacture:
        return FirstHop(
            fields.firearm.country_of_manufacture, FirstHopSource.COUNTRY_OF_MANUFACTURE
        )
    if made_in := reference.country_of_make(fields.firearm.make):
        return FirstHop(made_in, FirstHopSource.MAKE_REFERENCE)
    raise ValidationError(
        f"to: no first hop: the country of manufacture is not given and the make "
        f"{fields.firearm.make!r} has no reference entry; name the country to ask first "
        "(--to XXX)",
        "to",
    )


# -- the signed map ---------------------------------------------------------------------

_Line = Annotated[str, msgspec.Meta(max_length=MAX_LINE_CHARS, pattern=NUL_FREE)]
_Note = Annotated[str, msgspec.Meta(max_length=MAX_NOTE_CHARS, pattern=NUL_FREE)]
_CountryOrEmpty = Annotated[str, msgspec.Meta(pattern="^([A-Z]{3})?$")]
_DateOrEmpty = Annotated[str, msgspec.Meta(pattern="^([0-9]{4}-[0-9]{2}-[0-9]{2})?$")]
_Serial = Annotated[str, msgspec.Meta(max_length=MAX_SERIAL_CHARS, pattern=NUL_FREE)]


class RequestFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The request's fields as signed: a msgpack map with exactly these keys, encoded in
    this (sorted) order. Unset text is the empty string. The possessor is not here."""

    agency: _Line
    calibre: _Line
    case_reference: _Line
    country_of_manufacture: _CountryOrEmpty
    crime: CrimeCategory
    firearm_type: _Line
    import_marking: _Line
    justification: _Note
    make: _Line
    markings: _Note
    model: _Line
    obliterated: bool
    priority: Priority
    questions: Annotated[list[Question], msgspec.Meta(min_length=1, max_length=len(Question))]
    recovered_at: _Line
    recovered_on: _DateOrEmpty
    serial_number: _Serial


def to_wire(fields: TraceRequestFields) -> RequestFields:
    """The map the originator signs (possessor details left out)."""
    firearm, recovery = fields.firearm, fields.recovery
    return RequestFields(
        agency=fields.agency,
        calibre=firearm.calibre,
        case_reference=fields.case_reference,
        country_of_manufacture=firearm.country_of_manufacture or "",
        crime=recovery.crime,
        firearm_type=firearm.firearm_type,
        import_marking=firearm.import_marking,
        justification=fields.justification,
        make=firearm.make,
        markings=firearm.markings,
        model=firearm.model,
        obliterated=firearm.obliterated,
        priority=fields.priority,
        questions=list(fields.questions),
        recovered_at=recovery.place,
        recovered_on=recovery.on.isoformat() if recovery.on else "",
        serial_number=firearm.serial_number,
    )


def from_wire(wire: RequestFields, reference: ReferenceTable) -> TraceRequestFields:
    """A received request's fields, read with this node's reference table (the serial
    canonicalised, the make normalised here: that is what the hop's registry is keyed by).

    Raises:
        MalformedEnvelopeError: `recovered_on` is not a date.
    """
    try:
        recovered_on = date.fromisoformat(wire.recovered_on) if wire.recovered_on else None
    except ValueError as e:
        raise MalformedEnvelopeError(f"$.recovered_on: {wire.recovered_on!r} is not a date") from e
    make = reference.normalise_make(wire.make)
    firearm = Firearm(
        serial_number=wire.serial_number,
        serial_canonical=canonicalise_serial(wire.serial_number),
        obliterated=wire.obliterated,
        make=make.value,
        make_known=make.known,
        model=wire.model,
        firearm_type=wire.firearm_type,
        calibre=wire.calibre,
        country_of_manufacture=wire.country_of_manufacture or None,
        import_marking=wire.import_marking,
        markings=wire.markings,
    )
    return TraceRequestFields(
        priority=wire.priority,
        justification=wire.justification,
        case_reference=wire.case_reference,
        agency=wire.agency,
        firearm=firearm,
        recovery=Recovery(recovered_on, wire.recovered_at, wire.crime),
        questions=tuple(dict.fromkeys(wire.questions)),
    )
