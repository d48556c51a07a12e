"""A trace request's fields: validation, the completeness check, the first hop, the wire map."""

from __future__ import annotations

import dataclasses
import re
from datetime import date

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.errors import ValidationError
from node.records.reference import load_reference
from node.trace.request import (
    DEFAULT_QUESTIONS,
    CrimeCategory,
    FirstHopSource,
    Priority,
    Question,
    RequestFields,
    TraceRequestFields,
    TraceRequestInput,
    check_request,
    completeness,
    first_hop,
    from_wire,
    to_wire,
)

TODAY = date(2026, 3, 1)
REFERENCE = load_reference()
COMPLETE = TraceRequestInput(
    case_reference="FR-2026-0042",
    agency="OCRGDF, Nanterre",
    make="glock gmbh",
    crime="Homicide",
    recovered_at="Marseille",
    recovered_on="2026-02-14",
    serial_number="abc-1O2",
    model="17",
    firearm_type="handgun",
    calibre="9x19",
    country_of_manufacture="Austria",
    import_marking="FR-IMP 2019/331",
)


def _check(**changes: object) -> TraceRequestFields:
    return check_request(dataclasses.replace(COMPLETE, **changes), REFERENCE, TODAY)  # type: ignore[arg-type]


def test_a_complete_request_is_normalised_as_records_are() -> None:
    fields = _check()
    firearm = fields.firearm
    assert (firearm.serial_number, firearm.serial_canonical) == ("abc-1O2", "A8C102")
    assert (firearm.make, firearm.make_known) == ("Glock", True)
    assert (firearm.firearm_type, firearm.calibre) == ("pistol", "9mm Luger")
    assert firearm.country_of_manufacture == "AUT"
    assert fields.recovery.crime is CrimeCategory.HOMICIDE
    assert fields.recovery.on == date(2026, 2, 14)
    assert fields.priority is Priority.ROUTINE
    assert fields.questions == DEFAULT_QUESTIONS
    assert fields.possessor is None
    assert completeness(fields, REFERENCE) == ()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"priority": "urgent"}, "justification", "an urgent trace needs a justification"),
        ({"priority": "soon"}, "priority", "'soon' is not one of routine, urgent"),
        ({"case_reference": "  "}, "case_reference", "case_reference: required"),
        ({"case_reference": "x" * 101}, "case_reference", "at most 100 characters"),
        ({"case_reference": "FR\u202e42"}, "case_reference", "U+202E"),
        ({"agency": ""}, "agency", "agency: required"),
        ({"serial_number": ""}, "serial_number", "required; if it was removed"),
        ({"serial_number": "--//"}, "serial_number", "has no letter or digit"),
        ({"serial_number": "A" * 65}, "serial_number", "at most 64 allowed"),
        ({"make": " "}, "make", "make: required"),
        ({"make": "Glock\x00"}, "make", "control characters"),
        ({"model": "17\ud800"}, "model", "not valid text"),
        ({"country_of_manufacture": "Atlantis"}, "country_of_manufacture", "not a country"),
        ({"recovered_on": "14/02/2026"}, "recovered_on", "not a date in the form YYYY-MM-DD"),
        ({"recovered_on": "2026-03-02"}, "recovered_on", "in the future"),
        ({"recovered_at": ""}, "recovered_at", "recovered_at: required"),
        ({"crime": ""}, "crime", "crime: required, one of homicide, assault"),
        ({"crime": "jaywalking"}, "crime", "'jaywalking' is not one of homicide"),
        ({"questions": ("who",)}, "questions", "'who' is not one of last_legal_possessor"),
        ({"markings": "m" * 1001}, "markings", "1001 characters, at most 1000"),
        ({"possessor_birth_date": "1990-13-01"}, "possessor_birth_date", "not a date"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(
    changes: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)) as refused:
        _check(**changes)
    assert refused.value.field == field


def test_urgent_with_a_justification_and_chosen_questions() -> None:
    fields = _check(
        priority="URGENT",
        justification="suspect in custody\nfor 48 h",
        questions=("chain_of_custody", "last_legal_possessor", "chain_of_custody"),
    )
    assert fields.priority is Priority.URGENT
    assert fields.justification == "suspect in custody\nfor 48 h"
    assert fields.questions == (Question.CHAIN_OF_CUSTODY, Question.LAST_LEGAL_POSSESSOR)


def test_an_obliterated_serial_may_be_empty_or_partly_read() -> None:
    assert _check(serial_number="", obliterated=True).firearm.serial_canonical == ""
    partly = _check(serial_number="AB?", obliterated=True).firearm
    assert (partly.serial_canonical, partly.obliterated) == ("A8", True)


def test_possessor_details_are_kept_but_not_signed() -> None:
    fields = _check(possessor_name="J. Doe", possessor_birth_date="1990-01-31")
    assert fields.possessor is not None
    assert fields.possessor.birth_date == date(1990, 1, 31)
    encoded = msgspec.msgpack.encode(to_wire(fields))
    assert b"Doe" not in encoded and b"1990-01-31" not in encoded


def _fields(findings: tuple[object, ...]) -> list[str]:
    return [f.field for f in findings]  # type: ignore[attr-defined]


def test_completeness_names_each_field_likely_to_make_the_trace_fail() -> None:
    bare = _check(
        serial_number="",
        obliterated=True,
        make="Acme Arms",
        country_of_manufacture="",
        import_marking="",
        recovered_on="",
    )
    findings = completeness(bare, REFERENCE)
    assert _fields(findings) == ["serial_number", "make", "country_of_manufacture", "recovered_on"]
    reasons = {f.field: f.reason for f in findings}
    assert "no serial number and no other markings" in reasons["serial_number"]
    assert "'Acme Arms' is not in the reference table" in reasons["make"]
    assert (
        "neither the country of manufacture nor an import marking"
        in reasons["country_of_manufacture"]
    )
    assert "reference entry" not in reasons["country_of_manufacture"]  # unknown make: no hint
    assert "no recovery date" in reasons["recovered_on"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"serial_number": "", "obliterated": True, "markings": "proof mark"}, []),
        ({"serial_number": "", "obliterated": True}, []),  # the import marking is a marking
        ({"country_of_manufacture": ""}, []),  # the import marking is enough
        ({"import_marking": ""}, []),  # the country of manufacture is enough
        ({"make": "Smith and Wesson"}, []),  # an alias is in the table
        ({"make": "Glok"}, ["make"]),
        ({"recovered_on": ""}, ["recovered_on"]),
    ],
)
def test_completeness_findings_one_at_a_time(
    changes: dict[str, object], expected: list[str]
) -> None:
    assert _fields(completeness(_check(**changes), REFERENCE)) == expected


def test_a_missing_country_is_hinted_from_the_make_s_entry() -> None:
    fields = _check(country_of_manufacture="", import_marking="")
    [finding] = completeness(fields, REFERENCE)
    assert finding.field == "country_of_manufacture"
    assert "the make's reference entry says AUT" in finding.reason


def test_the_first_hop() -> None:
    given_country = _check(country_of_manufacture="DEU")
    assert first_hop(given_country, REFERENCE).country == "DEU"
    assert first_hop(given_country, REFERENCE).source is FirstHopSource.COUNTRY_OF_MANUFACTURE
    from_make = first_hop(_check(country_of_manufacture=""), REFERENCE)
    assert (from_make.country, from_make.source) == ("AUT", FirstHopSource.MAKE_REFERENCE)
    to = first_hop(given_country, REFERENCE, to=" bel ")
    assert (to.country, to.source) == ("BEL", FirstHopSource.TO)
    with pytest.raises(ValidationError, match="'XX' is not an ISO 3166-1 alpha-3") as refused:
        first_hop(given_country, REFERENCE, to="xx")
    assert refused.value.field == "to"
    unknown = _check(country_of_manufacture="", make="Acme Arms")
    with pytest.raises(ValidationError, match=r"no first hop.*'Acme Arms'.*--to XXX"):
        first_hop(unknown, REFERENCE)


def test_the_wire_map_has_sorted_keys_and_reads_back() -> None:
    assert list(RequestFields.__struct_fields__) == sorted(RequestFields.__struct_fields__)
    fields = _check(priority="urgent", justification="why", possessor_name="J. Doe")
    wire = to_wire(fields)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(wire), type=RequestFields)
    assert from_wire(decoded, REFERENCE) == dataclasses.replace(fields, possessor=None)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"crime": "jaywalking"}, "$.crime"),
        ({"country_of_manufacture": "at"}, "$.country_of_manufacture"),
        ({"recovered_on": "14.02.2026"}, "$.recovered_on"),
        ({"questions": []}, "$.questions"),
        ({"make": "G" * 201}, "$.make"),
        ({"extra": "x"}, "extra"),
    ],
)
def test_a_received_map_is_decoded_strictly(change: dict[str, object], where: str) -> None:
    wire = msgspec.to_builtins(to_wire(_check())) | change
    with pytest.raises(msgspec.ValidationError, match=where.replace("$", r"\$")):
        msgspec.msgpack.decode(msgspec.msgpack.encode(wire), type=RequestFields)


@given(st.text(max_size=80), st.text(max_size=40), st.booleans())
def test_check_request_only_ever_raises_validation_errors(
    serial: str, make: str, obliterated: bool
) -> None:
    try:
        fields = _check(serial_number=serial, make=make, obliterated=obliterated)
    except ValidationError:
        return
    encoded = msgspec.msgpack.encode(to_wire(fields))  # what validates, travels
    msgspec.msgpack.decode(encoded, type=RequestFields)
