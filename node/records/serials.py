"""The one serial-number canonicaliser used for matching.

The serial number is stored exactly as the officer entered it; this module
computes the *canonical* form that local searches, duplicate detection and the
federation's private lookups compare. Every node must compute the same
canonical form for the same stamped serial, so these rules are part of the
protocol: changing them changes every node's lookup index (see
`docs/serials.md`).

Rules, applied in this order, with the character data of Unicode 14.0.0 (that
of Python 3.11; characters not assigned in 14.0.0 are removed first, so a
node on newer Unicode data computes the same form):

1. Unicode NFKC, so full-width, circled, superscript and other compatibility
   forms become their plain equivalents (``"ＡＢ１２"`` -> ``"AB12"``).
2. Upper case.
3. Cyrillic and Greek capitals that look like Latin letters become those
   letters (Cyrillic ``А В Е К М Н О Р С Т Х У Ѕ І Ј``, Greek
   ``Α Β Ε Ζ Η Ι Κ Μ Ν Ο Ρ Τ Υ Χ``): an officer whose keyboard is in Cyrillic
   or Greek mode types what he sees on the frame.
4. Every character that is not a letter or a digit is removed: spaces,
   hyphens, dots, slashes, underscores, quotes, marks. Decimal digits of other
   scripts (Arabic-Indic, Devanagari, ...) become ASCII digits.
5. Letters that are commonly misread for digits are folded to the digit:
   ``O`` and ``Q`` -> ``0``, ``I`` and ``L`` -> ``1``, ``S`` -> ``5``,
   ``Z`` -> ``2``, ``B`` -> ``8``.

Deliberately *not* folded: ``G``/``6``, ``D``/``0``, ``T``/``7``, ``A``/``4``,
``U``/``V``, leading zeros, and letters embedded in digit runs (which the US
NCIC gun file ignores): each extra rule merges serials that are truly
different, and a rule no peer applies would make lookups miss.

For ASCII input (nearly every row of a CSV import) the whole canonicalisation
is one `str.translate` with a precomputed table; other input takes a slower
exact path.
"""

from __future__ import annotations

import bisect
import functools
import unicodedata
from importlib import resources

#: The Unicode version whose character data defines the canonical form.
UNICODE_VERSION = "14.0.0"

#: Letters folded to the digit they are mistaken for (rule 5).
MISREADINGS: dict[str, str] = {
    "O": "0",
    "Q": "0",
    "I": "1",
    "L": "1",
    "S": "5",
    "Z": "2",
    "B": "8",
}

#: Cyrillic and Greek capitals mapped to the Latin capital they look like (rule 3).
LOOKALIKES: dict[str, str] = {
    # Cyrillic
    "А": "A",
    "В": "B",
    "Е": "E",
    "Ё": "E",
    "К": "K",
    "М": "M",
    "Н": "H",
    "О": "O",
    "Р": "P",
    "С": "C",
    "Т": "T",
    "Х": "X",
    "У": "Y",
    "Ү": "Y",
    "Ѕ": "S",
    "І": "I",
    "Ї": "I",
    "Ј": "J",
    "Ӏ": "I",
    "Ԛ": "Q",
    "Ԝ": "W",
    # Greek
    "Α": "A",
    "Β": "B",
    "Ε": "E",
    "Ζ": "Z",
    "Η": "H",
    "Ι": "I",
    "Κ": "K",
    "Μ": "M",
    "Ν": "N",
    "Ο": "O",
    "Ρ": "P",
    "Τ": "T",
    "Υ": "Y",
    "Χ": "X",
}


def _fold(letter: str) -> str:
    return MISREADINGS.get(letter, letter)


def _ascii_table() -> dict[int, str | None]:
    """Map every ASCII character straight to its canonical form (or delete it)."""
    table: dict[int, str | None] = {}
    for code in range(128):
        char = chr(code)
        table[code] = _fold(char.upper()) if char.isalnum() else None
    return table


_ASCII_TABLE = str.maketrans(_ascii_table())
_UNICODE_TABLE = str.maketrans(
    {**_ascii_table(), **{ord(k): _fold(v) for k, v in LOOKALIKES.items()}}
)


@functools.cache
def _assigned() -> tuple[list[int], list[int]]:
    """The first and last code points of the ranges assigned in `UNICODE_VERSION`."""
    data = resources.files("node.records").joinpath(
        "data", f"unicode-{UNICODE_VERSION}-assigned.txt"
    )
    firsts: list[int] = []
    lasts: list[int] = []
    for line in data.read_text("ascii").splitlines():
        if line and not line.startswith("#"):
            first, _, last = line.partition("..")
            firsts.append(int(first, 16))
            lasts.append(int(last, 16))
    return firsts, lasts


def assigned_in_pinned_unicode(char: str) -> bool:
    """Whether `char` was assigned in `UNICODE_VERSION` (the canonicaliser keeps no other)."""
    firsts, lasts = _assigned()
    at = bisect.bisect_right(firsts, ord(char)) - 1
    return at >= 0 and ord(char) <= lasts[at]


def _canonicalise_unicode(text: str) -> str:
    text = "".join(c for c in text if c.isascii() or assigned_in_pinned_unicode(c))
    text = unicodedata.normalize("NFKC", text).upper().translate(_UNICODE_TABLE)
    if text.isascii():
        return text
    kept: list[str] = []
    for char in text:
        if char.isascii():
            kept.append(char)
        elif char.isdecimal():
            kept.append(str(unicodedata.decimal(char)))
        elif char.isalnum():
            kept.append(char)
    return "".join(kept)


def canonicalise_serial(text: str) -> str:
    """Return the canonical form of a serial number, for matching only.

    Args:
        text: The serial number as entered or read from a CSV row.

    Returns:
        The canonical serial: for ASCII input only ``[A-Z0-9]`` without the
        letters ``B I L O Q S Z``. It may be empty (the input held no letter
        or digit); the caller rejects that.

    Example:
        >>> canonicalise_serial("abc-1O2 / s")
        'A8C1025'
    """
    if text.isascii():
        return text.translate(_ASCII_TABLE)
    # Removing marks can bring Hangul jamo together, or upper-casing can
    # produce new compatibility forms, so repeat until stable (at most a
    # couple of rounds) to keep the function idempotent.
    result = _canonicalise_unicode(text)
    for _ in range(4):
        again = _canonicalise_unicode(result)
        if again == result:
            break
        result = again
    return result
