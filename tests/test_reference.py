"""The reference table: shipped data, normalisation and the loader's checks."""

from __future__ import annotations

import re

import pycountry
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.errors import ReferenceDataError
from node.records.model import FirearmType
from node.records.reference import (
    Calibre,
    Make,
    Normalised,
    ReferenceTable,
    calibre_key,
    load_reference,
    match_key,
    parse_calibres,
    parse_makes,
    parse_types,
)

REF = load_reference()


def test_shipped_table_is_large_and_well_formed() -> None:
    assert len(REF.makes) >= 170
    assert len(REF.calibres) >= 80
    types = {t.value for t in FirearmType}
    for make in REF.makes:
        assert pycountry.countries.get(alpha_3=make.country), make
        assert make.weight > 0 and make.types and set(make.types) <= types
        assert re.fullmatch(r"[A-Z0-9#\-]+", make.serial_pattern), make
    assert {c.category for c in REF.calibres} == {"pistol", "rifle", "rimfire", "shotshell"}
    assert load_reference() is REF  # loaded once


def test_heavy_makes_weigh_more_than_rare_ones() -> None:
    weight = {m.name: m.weight for m in REF.makes}
    for heavy in ("Glock", "Smith & Wesson", "Beretta", "Zastava Arms", "Kalashnikov Concern"):
        assert weight[heavy] >= 50 > weight["Fanzoj"]


@pytest.mark.parametrize(
    "spelling",
    ["S&W", "Smith and Wesson", "SMITH & WESSON", "S & W", "Smith&Wesson", "smith&wesson",
     "s&w", " s-w ", "SMITH  &  WESSON", "Smith & Wesson"],
)  # fmt: skip
def test_smith_and_wesson_spellings_are_one_make(spelling: str) -> None:
    assert REF.normalise_make(spelling) == Normalised("Smith & Wesson", known=True)


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("H&K", "Heckler & Koch"),
        ("heckler and koch", "Heckler & Koch"),
        ("česká zbrojovka", "CZ (Česká zbrojovka)"),
        ("Ceska Zbrojovka", "CZ (Česká zbrojovka)"),
        ("IZHMASH", "Kalashnikov Concern"),
        ("Концерн Калашников", "Kalashnikov Concern"),
        ("Crvena Zastava", "Zastava Arms"),
        ("Lucznik", "Fabryka Broni Łucznik"),
        ("TISAS", "Tisas"),
        ("Sarsilmaz", "Sarsılmaz"),
        ("Hammerli", "Hämmerli"),
        ("SIG-Sauer", "Sig Sauer"),
        ("fn", "FN Herstal"),
        ("Atak Arms", "Zoraki"),
    ],
)
def test_make_aliases_accents_and_scripts(spelling: str, name: str) -> None:
    assert REF.normalise_make(spelling) == Normalised(name, known=True)


def test_unknown_make_is_kept_as_entered() -> None:
    assert REF.normalise_make("  Acme Blasters Ltd. ") == Normalised("Acme Blasters Ltd.", False)
    assert REF.normalise_make("") == Normalised("", known=False)
    assert REF.country_of_make("Acme Blasters") is None


def test_make_and_country_lookups() -> None:
    glock = REF.make("Glock")
    assert glock is not None and glock.country == "AUT" and glock.serial_pattern == "AAA###"
    assert REF.make("glock") is None  # by canonical name only
    assert REF.country_of_make("smith and wesson") == "USA"
    assert REF.country_of_make("Canik55") == "TUR"
    assert REF.country_of_make("zastava") == "SRB"


NINE_MM = ["9mm Luger", "9mm", "9x19", "9 mm Luger", "9mm Parabellum", "9x19mm Parabellum",
           "9 mm", "9mm Para", "9×19", "9 X 19 MM", "9MM", " 9x19mm "]  # fmt: skip


@pytest.mark.parametrize("spelling", NINE_MM)
def test_nine_mm_spellings_are_one_calibre(spelling: str) -> None:
    assert REF.normalise_calibre(spelling) == Normalised("9mm Luger", known=True)


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        (".45 ACP", ".45 ACP"),
        ("45 auto", ".45 ACP"),
        ("0.45 ACP", ".45 ACP"),
        ("7,62x39", "7.62x39mm"),
        ("7.62 × 39 mm", "7.62x39mm"),
        ("5.56 NATO", "5.56x45mm NATO"),
        (".223 Rem", ".223 Remington"),
        ("308 win", ".308 Winchester"),
        ("7.62x51", "7.62x51mm NATO"),
        ("9mm Short", ".380 ACP"),
        ("9x17", ".380 ACP"),
        ("12/70", "12 gauge"),
        ("12 ga", "12 gauge"),
        ("7.65", "7.65mm Browning"),
        (".32 ACP", "7.65mm Browning"),
        ("22lr", ".22 LR"),
        ("7.62x54R", "7.62x54mmR"),
        ("12,7x99", ".50 BMG"),
        ("257 Roberts +P", ".257 Roberts"),
    ],
)
def test_calibre_aliases(spelling: str, name: str) -> None:
    assert REF.normalise_calibre(spelling) == Normalised(name, known=True)


def test_nato_and_commercial_cartridges_stay_separate() -> None:
    assert REF.normalise_calibre("5.56x45").value != REF.normalise_calibre(".223").value
    assert REF.normalise_calibre("7.62x51").value != REF.normalise_calibre(".308").value


def test_unknown_calibre_is_kept() -> None:
    assert REF.normalise_calibre(" 13mm Gyrojet ") == Normalised("13mm Gyrojet", known=False)


@pytest.mark.parametrize(
    ("spelling", "value"),
    [
        ("handgun", "pistol"),
        ("Semi-Automatic Pistol", "pistol"),
        ("pistolet", "pistol"),
        ("SMG", "submachine gun"),
        ("machine pistol", "submachine gun"),
        ("assault rifle", "rifle"),
        ("sporting rifle", "rifle"),
        ("shot gun", "shotgun"),
        ("LMG", "machine gun"),
        ("HMG", "machine gun"),
        ("REVOLVER", "revolver"),
        ("Submachine-Gun", "submachine gun"),
    ],
)
def test_firearm_types(spelling: str, value: str) -> None:
    assert REF.normalise_type(spelling) == Normalised(value, known=True)


def test_every_firearm_type_value_is_known() -> None:
    for firearm_type in FirearmType:
        assert REF.normalise_type(firearm_type.value) == Normalised(firearm_type.value, True)
    assert REF.normalise_type("slingshot") == Normalised("slingshot", known=False)


def _make(name: str, aliases: tuple[str, ...] = ()) -> Make:
    return Make(name, aliases, "AUT", 1.0, ("pistol",), "AAA###")


def test_two_makes_claiming_one_key_are_refused() -> None:
    with pytest.raises(ReferenceDataError, match=r"'S & W'.*'Smith & Wesson'"):
        ReferenceTable([_make("Smith & Wesson", ("S&W",)), _make("Sw Arms", ("S & W",))], [], {})


def test_make_name_equal_to_another_make_alias_is_refused() -> None:
    with pytest.raises(ReferenceDataError, match="also claimed"):
        ReferenceTable([_make("Zastava Arms", ("Zastava",)), _make("ZASTAVA")], [], {})


def test_two_calibres_claiming_one_key_are_refused() -> None:
    calibres = [
        Calibre("9mm Luger", ("9x19",), "pistol", 1),
        Calibre("9x19 NATO", ("9 × 19 mm",), "pistol", 1),
    ]
    with pytest.raises(ReferenceDataError, match="calibre spelling"):
        ReferenceTable([], calibres, {})


def test_a_spelling_shared_by_two_types_is_refused() -> None:
    with pytest.raises(ReferenceDataError, match="firearm type"):
        ReferenceTable([], [], {"pistol": ("MP",), "submachine gun": ("M.P.",)})


def test_one_makes_own_spellings_may_share_a_key() -> None:
    table = ReferenceTable([_make("Glock", ("GLOCK", "glock"))], [], {})
    assert table.normalise_make("G L O C K").known


def test_invalid_entries_are_refused() -> None:
    with pytest.raises(ReferenceDataError, match="unknown firearm type"):
        ReferenceTable([Make("X", (), "AUT", 1, ("ray gun",), "#")], [], {})
    with pytest.raises(ReferenceDataError, match="unknown category"):
        ReferenceTable([], [Calibre("X", (), "artillery", 1)], {})
    with pytest.raises(ReferenceDataError, match="no key"):
        ReferenceTable([_make("Glock", ("&",))], [], {})


def test_parsers_report_the_line() -> None:
    header = "name,aliases,country,weight,types,serial_pattern\n"
    with pytest.raises(ReferenceDataError, match="line 2: country"):
        parse_makes(header + "Glock,,Austria,1,pistol,AAA###\n")
    with pytest.raises(ReferenceDataError, match="line 2: weight"):
        parse_makes(header + "Glock,,AUT,heavy,pistol,AAA###\n")
    with pytest.raises(ReferenceDataError, match="line 2: expected 4 columns"):
        parse_calibres("name,aliases,category,weight\n9mm,pistol,1\n")
    with pytest.raises(ReferenceDataError, match="header"):
        parse_calibres("calibre,category\n")
    with pytest.raises(ReferenceDataError, match="listed twice"):
        parse_types("type,aliases\npistol,handgun\npistol,sidearm\n")
    makes = parse_makes(
        header + 'Ruger,"Sturm, Ruger & Co.|Sturm Ruger",USA,2.5,pistol|rifle,###\n'
    )
    assert makes == (
        Make(
            "Ruger", ("Sturm, Ruger & Co.", "Sturm Ruger"), "USA", 2.5, ("pistol", "rifle"), "###"
        ),
    )


@given(st.text())
def test_keys_are_idempotent_letters_and_digits(text: str) -> None:
    key = match_key(text)
    assert match_key(key) == key
    assert all(c.isalnum() for c in key)
    assert all(c.isalnum() for c in calibre_key(text))
