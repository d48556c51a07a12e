"""The firearms reference table: makes, calibres and firearm types.

Officers write the same make many ways ("S&W", "Smith and Wesson",
"SMITH & WESSON"); the reference table maps every known spelling to one
canonical name so that records, searches and statistics agree. The table
ships as three CSV files in `node/records/data/` (format and sources in
`docs/reference-data.md`) and is loaded once per process by `load_reference`.

Matching is by *key*: the text decomposed (NFKD, which also applies the NFKC
compatibility mappings), case-folded, accents and letters with strokes folded
to their base letter (``"Łucznik"`` -> ``"lucznik"``), and every character
that is not a letter or digit removed. For calibres the key also drops a
leading ``"."`` or ``"0."``, an ``"mm"`` after a digit, and reads ``"×"`` as
``"x"``, so ``".45 ACP"``, ``"45 acp"`` and ``"0.45 ACP"`` are one calibre and
``"9x19mm"``, ``"9 × 19"`` and ``"9x19"`` another. Every key belongs to one
entry: the loader refuses a table in which two makes, two calibres or two
types claim the same key. Lookups are dictionary lookups behind a small
per-table memo, because a CSV import normalises every row.
"""

from __future__ import annotations

import csv
import functools
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources

from node.errors import ReferenceDataError
from node.records.model import FirearmType

MAKES_FILE = "makes.csv"
CALIBRES_FILE = "calibres.csv"
TYPES_FILE = "firearm_types.csv"
CALIBRE_CATEGORIES = frozenset({"pistol", "rifle", "rimfire", "shotshell"})

#: Distinct inputs remembered per lookup kind before the memo is cleared.
_MEMO_LIMIT = 65_536
_ALIAS_SEPARATOR = "|"
_TYPE_VALUES = frozenset(t.value for t in FirearmType)
_ASCII_KEY_TABLE = str.maketrans(
    {code: (chr(code).lower() if chr(code).isalnum() else None) for code in range(128)}
)
#: Letters that NFKD does not decompose but that people drop the stroke from.
_STROKED = str.maketrans(
    {"ı": "i", "ł": "l", "ø": "o", "đ": "d", "ð": "d", "ħ": "h", "þ": "th", "æ": "ae", "œ": "oe"}
)
_MM_AFTER_DIGIT = re.compile(r"(?<=\d)\s*mm", re.IGNORECASE)

KeyFunction = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Make:
    """A firearm manufacturer."""

    name: str
    aliases: tuple[str, ...]
    country: str
    weight: float
    types: tuple[str, ...]
    serial_pattern: str


@dataclass(frozen=True, slots=True)
class Calibre:
    """A cartridge or shotshell designation."""

    name: str
    aliases: tuple[str, ...]
    category: str
    weight: float


@dataclass(frozen=True, slots=True)
class Normalised:
    """The outcome of a lookup.

    `value` is the canonical name when `known`, otherwise the input without
    surrounding whitespace, kept as entered.
    """

    value: str
    known: bool


def match_key(text: str) -> str:
    """Return the key that makes and firearm types are matched by.

    Args:
        text: Any spelling.

    Returns:
        Lower-case letters and digits only; ``"S & W"`` and ``"s&w"`` both give
        ``"sw"``.
    """
    if text.isascii():
        return text.translate(_ASCII_KEY_TABLE)
    folded = unicodedata.normalize("NFKD", text).casefold().translate(_STROKED)
    return "".join(char for char in folded if char.isalnum())


def calibre_key(text: str) -> str:
    """Return the key that calibres are matched by (see the module docstring).

    Args:
        text: Any spelling of a calibre.

    Returns:
        The match key, e.g. ``"9x19"`` for ``"9 × 19 mm"``.
    """
    text = text.strip().replace("×", "x")
    if text.startswith("0."):
        text = text[2:]
    elif text.startswith("."):
        text = text[1:]
    return match_key(_MM_AFTER_DIGIT.sub("", text))


class ReferenceTable:
    """Makes, calibres and firearm types with their spellings indexed by key."""

    __slots__ = (
        "_calibre_by_key",
        "_make_by_key",
        "_make_by_name",
        "_memo_calibre",
        "_memo_make",
        "_memo_type",
        "_type_by_key",
        "calibres",
        "makes",
    )

    def __init__(
        self,
        makes: Iterable[Make],
        calibres: Iterable[Calibre],
        type_aliases: Mapping[str, Iterable[str]],
    ) -> None:
        """Index the entries, refusing unknown types and keys claimed twice.

        Args:
            makes: The makes; each make's `types` must be `FirearmType` values.
            calibres: The calibres; `category` one of `CALIBRE_CATEGORIES`.
            type_aliases: Spellings of each `FirearmType` value, keyed by value.

        Raises:
            ReferenceDataError: An entry is invalid or two entries share a key.
        """
        self.makes: tuple[Make, ...] = tuple(makes)
        self.calibres: tuple[Calibre, ...] = tuple(calibres)
        for make in self.makes:
            _check_types(make.types, f"make {make.name!r}")
        for calibre in self.calibres:
            if calibre.category not in CALIBRE_CATEGORIES:
                raise ReferenceDataError(
                    f"calibre {calibre.name!r}: unknown category {calibre.category!r}"
                )
        _check_types(type_aliases, "firearm types")
        spellings = {t.value: (t.value, *type_aliases.get(t.value, ())) for t in FirearmType}
        self._make_by_name = {make.name: make for make in self.makes}
        self._make_by_key = _index(
            "make", ((m.name, (m.name, *m.aliases)) for m in self.makes), match_key
        )
        self._calibre_by_key = _index(
            "calibre", ((c.name, (c.name, *c.aliases)) for c in self.calibres), calibre_key
        )
        self._type_by_key = _index("firearm type", spellings.items(), match_key)
        self._memo_make: dict[str, Normalised] = {}
        self._memo_calibre: dict[str, Normalised] = {}
        self._memo_type: dict[str, Normalised] = {}

    def normalise_make(self, text: str) -> Normalised:
        """Map any spelling of a make to its canonical name.

        Args:
            text: The make as entered.

        Returns:
            The canonical make name (known) or the stripped input (unknown).
        """
        return _memoised(text, self._memo_make, self._make_by_key, match_key)

    def normalise_calibre(self, text: str) -> Normalised:
        """Map any spelling of a calibre to its canonical name.

        Args:
            text: The calibre as entered.

        Returns:
            The canonical calibre name (known) or the stripped input (unknown).
        """
        return _memoised(text, self._memo_calibre, self._calibre_by_key, calibre_key)

    def normalise_type(self, text: str) -> Normalised:
        """Map any spelling of a firearm type to a `FirearmType` value.

        Args:
            text: The type as entered ("handgun", "SMG", "shot gun", ...).

        Returns:
            The `FirearmType` value (known) or the stripped input (unknown).
        """
        return _memoised(text, self._memo_type, self._type_by_key, match_key)

    def make_key(self, text: str) -> str:
        """The key a make is found by, however it is spelt: the match key of its canonical
        name when the make is known, else of the text (so case, spaces and punctuation of
        an unknown make do not matter either). Empty if the text has no letter or digit."""
        return match_key(self.normalise_make(text).value)

    def make(self, name: str) -> Make | None:
        """Return the make with this canonical name, if there is one."""
        return self._make_by_name.get(name)

    def country_of_make(self, text: str) -> str | None:
        """Return the ISO 3166-1 alpha-3 country of a make given in any spelling."""
        found = self.normalise_make(text)
        if not found.known:
            return None
        return self._make_by_name[found.value].country


def _check_types(types: Iterable[str], where: str) -> None:
    unknown = sorted(set(types) - _TYPE_VALUES)
    if unknown:
        raise ReferenceDataError(f"{where}: unknown firearm type(s) {', '.join(unknown)}")


def _index(
    kind: str, entries: Iterable[tuple[str, Iterable[str]]], key_of: KeyFunction
) -> dict[str, str]:
    """Map every spelling's key to its entry's name; a key may have one owner only."""
    index: dict[str, str] = {}
    for name, spellings in entries:
        for spelling in spellings:
            key = key_of(spelling)
            if not key:
                raise ReferenceDataError(f"{kind} {name!r}: spelling {spelling!r} has no key")
            owner = index.setdefault(key, name)
            if owner != name:
                raise ReferenceDataError(
                    f"{kind} spelling {spelling!r} (key {key!r}) of {name!r} "
                    f"is also claimed by {owner!r}"
                )
    return index


def _lookup(text: str, index: Mapping[str, str], key_of: KeyFunction) -> Normalised:
    stripped = text.strip()
    name = index.get(key_of(stripped))
    if name is None:
        return Normalised(stripped, known=False)
    return Normalised(name, known=True)


def _memoised(
    text: str, memo: dict[str, Normalised], index: Mapping[str, str], key_of: KeyFunction
) -> Normalised:
    """`_lookup` behind a per-table memo (a CSV import normalises every row)."""
    found = memo.get(text)
    if found is None:
        found = _lookup(text, index, key_of)
        _remember(memo, text, found)
    return found


def _remember(memo: dict[str, Normalised], text: str, found: Normalised) -> None:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[text] = found


# -- CSV parsing ---------------------------------------------------------------


def _rows(text: str, source: str, header: tuple[str, ...]) -> Iterable[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text))
    first = next(reader, None)
    if first is None or tuple(first) != header:
        raise ReferenceDataError(f"{source}: header must be {','.join(header)}, got {first}")
    for row in reader:
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ReferenceDataError(
                f"{source} line {reader.line_num}: expected {len(header)} columns, got {len(row)}"
            )
        yield reader.line_num, [cell.strip() for cell in row]


def _split(cell: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in cell.split(_ALIAS_SEPARATOR) if part.strip())


def _weight(cell: str, source: str, line: int) -> float:
    try:
        weight = float(cell)
    except ValueError:
        weight = -1.0
    if not weight > 0:
        raise ReferenceDataError(f"{source} line {line}: weight must be a positive number")
    return weight


def parse_makes(text: str, source: str = MAKES_FILE) -> tuple[Make, ...]:
    """Parse `makes.csv` (columns name,aliases,country,weight,types,serial_pattern).

    Raises:
        ReferenceDataError: A row is malformed.
    """
    makes = []
    header = ("name", "aliases", "country", "weight", "types", "serial_pattern")
    for line, (name, aliases, country, weight, types, pattern) in _rows(text, source, header):
        if not name or not pattern:
            raise ReferenceDataError(f"{source} line {line}: name and serial_pattern required")
        if not re.fullmatch(r"[A-Z]{3}", country):
            raise ReferenceDataError(f"{source} line {line}: country must be ISO alpha-3")
        make_types = _split(types)
        if not make_types:
            raise ReferenceDataError(f"{source} line {line}: at least one type required")
        makes.append(
            Make(name, _split(aliases), country, _weight(weight, source, line), make_types, pattern)
        )
    return tuple(makes)


def parse_calibres(text: str, source: str = CALIBRES_FILE) -> tuple[Calibre, ...]:
    """Parse `calibres.csv` (columns name,aliases,category,weight).

    Raises:
        ReferenceDataError: A row is malformed.
    """
    calibres = []
    for line, (name, aliases, category, weight) in _rows(
        text, source, ("name", "aliases", "category", "weight")
    ):
        if not name:
            raise ReferenceDataError(f"{source} line {line}: name required")
        calibres.append(Calibre(name, _split(aliases), category, _weight(weight, source, line)))
    return tuple(calibres)


def parse_types(text: str, source: str = TYPES_FILE) -> dict[str, tuple[str, ...]]:
    """Parse `firearm_types.csv` (columns type,aliases) into value -> spellings.

    Raises:
        ReferenceDataError: A row is malformed or a type is listed twice.
    """
    types: dict[str, tuple[str, ...]] = {}
    for line, (value, aliases) in _rows(text, source, ("type", "aliases")):
        if value in types:
            raise ReferenceDataError(f"{source} line {line}: type {value!r} listed twice")
        types[value] = _split(aliases)
    return types


def _read(name: str) -> str:
    return resources.files("node.records").joinpath("data").joinpath(name).read_text("utf-8")


@functools.cache
def load_reference() -> ReferenceTable:
    """Load the reference table shipped with the package (once per process).

    Raises:
        ReferenceDataError: The shipped data is malformed or ambiguous.
    """
    return ReferenceTable(
        parse_makes(_read(MAKES_FILE)),
        parse_calibres(_read(CALIBRES_FILE)),
        parse_types(_read(TYPES_FILE)),
    )
