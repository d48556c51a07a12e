"""The one case-reference rule (`node.lookup.text`), which the console, the CLI and
`LookupService.lookup` all apply (their own tests check each boundary)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.errors import ValidationError
from node.lookup.text import MAX_CASE_REFERENCE_CHARS, check_case_reference


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("FR-2026-0042", "FR-2026-0042"),
        ("  DE/BKA 17/3  ", "DE/BKA 17/3"),
        ("c" * MAX_CASE_REFERENCE_CHARS, "c" * MAX_CASE_REFERENCE_CHARS),
        ("Дело № 12\u00a0345", "Дело № 12\u00a0345"),  # other scripts and no-break spaces are text
    ],
)
def test_a_case_reference_is_kept_trimmed(text: str, kept: str) -> None:
    assert check_case_reference(text) == kept


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "case_reference: give the case this lookup is for"),
        (" \t ", "case_reference: give the case this lookup is for"),
        ("c" * 101, "case_reference: at most 100 characters (this one has 101)"),
        ("FR\x001", "case_reference: character 3 is a control character (U+0000)"),
        ("FR\x1b[2J", "case_reference: character 3 is a control character (U+001B)"),
        ("FR\u202e1", "case_reference: character 3 (U+202E) is not printable on one line"),
        ("FR\u20281", "case_reference: character 3 (U+2028) is not printable on one line"),
        ("FR-\udcff", "case_reference: 'FR-\\udcff' is not valid text"),
    ],
)
def test_a_bad_case_reference_is_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_case_reference(text)
    assert str(refused.value).startswith(message)
    assert refused.value.field == "case_reference"


def test_the_messages_name_the_option_given() -> None:
    with pytest.raises(ValidationError, match=r"^--case-ref: give the case") as refused:
        check_case_reference("", "--case-ref")
    assert refused.value.field == "case_reference"


@given(st.text(max_size=150))
def test_any_text_is_refused_or_kept_as_one_printable_line(text: str) -> None:
    try:
        kept = check_case_reference(text)
    except ValidationError as e:
        field = e.field
        assert field == "case_reference"
        return
    assert kept == text.strip() and 1 <= len(kept) <= MAX_CASE_REFERENCE_CHARS
    assert all(unicodedata.category(c)[0] != "C" and c not in "\u2028\u2029" for c in kept)
