"""The serial canonicaliser: documented rules, examples and properties."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.records.serials import LOOKALIKES, MISREADINGS, canonicalise_serial

SEPARATORS = " -./\\_:#,'\"()\t"
ALNUM = string.ascii_letters + string.digits


@pytest.mark.parametrize(
    ("entered", "canonical"),
    [
        ("ABC123", "A8C123"),
        ("abc123", "A8C123"),
        ("AbC-12 3", "A8C123"),
        ("A.B/C_1:2#3", "A8C123"),
        ("  dvh 1234 ", "DVH1234"),
        ("123-45678", "12345678"),
        ("TKL12345", "TK112345"),
        ("O0Q", "000"),
        ("I1L|l", "1111"),
        ("S5Z2B8", "552288"),
        ("GUVDTAE", "GUVDTAE"),
        ("007", "007"),
    ],
)
def test_examples(entered: str, canonical: str) -> None:
    assert canonicalise_serial(entered) == canonical


def test_misreadings_fold_to_digits_in_both_cases() -> None:
    for letter, digit in MISREADINGS.items():
        assert canonicalise_serial(letter) == digit
        assert canonicalise_serial(letter.lower()) == digit


def test_letters_not_folded_are_kept() -> None:
    kept = "".join(c for c in string.ascii_uppercase if c not in MISREADINGS)
    assert canonicalise_serial(kept.lower()) == kept
    assert "G" in kept  # G/6 deliberately not folded (docs/serials.md)


def test_cyrillic_and_greek_lookalikes_match_latin() -> None:
    assert canonicalise_serial("АВ 123") == canonicalise_serial("AB 123")  # Cyrillic А, В
    assert canonicalise_serial("ЕКМНОРСТХ") == canonicalise_serial("EKMHOPCTX")
    assert canonicalise_serial("ек-мнорстх") == canonicalise_serial("EKMHOPCTX")
    assert canonicalise_serial("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ") == canonicalise_serial("ABEZHIKMNOPTYX")
    for lookalike, latin in LOOKALIKES.items():
        assert canonicalise_serial(lookalike) == canonicalise_serial(latin)


def test_nfkc_full_width_and_other_digits() -> None:
    assert canonicalise_serial("ＡＢＣ１２３") == "A8C123"
    assert canonicalise_serial("①②③") == "123"
    assert canonicalise_serial("٣٤٥") == "345"  # Arabic-Indic digits
    assert canonicalise_serial("AB\u00a012\u200b3") == "A8123"  # no-break and zero-width space


def test_other_scripts_are_kept_upper_cased() -> None:
    assert canonicalise_serial("ж-12") == "Ж12"
    assert canonicalise_serial("銃 7") == "銃7"


def test_nothing_left_is_empty() -> None:
    assert canonicalise_serial("") == ""
    assert canonicalise_serial(" - / . ") == ""


ascii_text = st.text(alphabet=st.characters(max_codepoint=127))
serial_text = st.text(alphabet=ALNUM, min_size=1, max_size=20)


@given(st.text())
def test_idempotent(text: str) -> None:
    once = canonicalise_serial(text)
    assert canonicalise_serial(once) == once


@given(ascii_text)
def test_ascii_output_alphabet(text: str) -> None:
    assert re.fullmatch(r"[ACD-HJKMNPRT-Y0-9]*", canonicalise_serial(text))


@given(serial_text, st.lists(st.tuples(st.integers(0, 20), st.sampled_from(SEPARATORS))))
def test_invariant_under_inserted_separators(serial: str, inserts: list[tuple[int, str]]) -> None:
    spaced = serial
    for position, separator in inserts:
        spaced = spaced[:position] + separator + spaced[position:]
    assert canonicalise_serial(spaced) == canonicalise_serial(serial)


@given(serial_text, st.lists(st.booleans(), min_size=20, max_size=20))
def test_invariant_under_case_changes(serial: str, upper: list[bool]) -> None:
    mixed = "".join(c.upper() if up else c.lower() for c, up in zip(serial, upper, strict=False))
    assert canonicalise_serial(mixed) == canonicalise_serial(serial)
    assert canonicalise_serial(serial.swapcase()) == canonicalise_serial(serial)


@given(serial_text)
def test_keeps_every_letter_and_digit(serial: str) -> None:
    assert len(canonicalise_serial(serial)) == len(serial)
