"""The text an officer gives a lookup: the case reference rule, and text that can travel.

One rule for the console's form, the command line's `--case-ref` and
`LookupService.lookup`: a case reference is required (the owner of a hit is
told it, so that the two bureaus can find each other's case), trimmed, and
one line of at most `MAX_CASE_REFERENCE_CHARS` printable characters (a
bureau's file numbers are far shorter; control, formatting and line
separator characters would only disguise it on the owner's screen). What a
peer accepts on the wire is wider (`node.protocol.messages.Text`): the rule
is about what our officers send.
"""

from __future__ import annotations

import unicodedata

from node.errors import ValidationError
from node.protocol.messages import MAX_TEXT

#: The longest case reference, in characters.
MAX_CASE_REFERENCE_CHARS = 100
#: The unprintable characters that `check_chars` lets through but a case reference refuses:
#: formatting (bidirectional overrides, zero-width), private-use, unassigned, line and
#: paragraph separators.
_UNPRINTABLE = frozenset({"Cf", "Co", "Cn", "Zl", "Zp"})
FIELD = "case_reference"


def check_case_reference(text: str, name: str = FIELD) -> str:
    """The case reference of a lookup, trimmed of surrounding spaces.

    Args:
        text: as the officer typed it.
        name: how the messages name it (`--case-ref` on the command line).

    Raises:
        ValidationError: for the field `case_reference`, saying what is wrong.
    """
    trimmed = text.strip()
    if not trimmed:
        raise ValidationError(
            f"{name}: give the case this lookup is for (the owner of a hit is told it)", FIELD
        )
    if len(trimmed) > MAX_CASE_REFERENCE_CHARS:
        raise ValidationError(
            f"{name}: at most {MAX_CASE_REFERENCE_CHARS} characters (this one has {len(trimmed)})",
            FIELD,
        )
    check_chars(name, trimmed, field=FIELD)
    for i, char in enumerate(trimmed):
        if unicodedata.category(char) in _UNPRINTABLE:
            raise ValidationError(
                f"{name}: character {i + 1} (U+{ord(char):04X}) is not printable on one line; "
                "type the reference without it",
                FIELD,
            )
    return trimmed


def check_text(name: str, value: str, where: str = "") -> None:
    """A make the owner accepts (PROTOCOL.md §2), before it is sent."""
    if len(value) > MAX_TEXT:
        raise ValidationError(f"{where}{name}: longer than {MAX_TEXT} characters", name)
    check_chars(name, value, where)


def check_chars(name: str, value: str, where: str = "", field: str | None = None) -> None:
    """Text that can travel and be stored: no control characters (NUL above all: the
    owner refuses it, and PostgreSQL cannot store it); invalid bytes in a CLI argument
    arrive as lone surrogates.

    Raises:
        ValidationError: for `field` (default `name`), its message starting with `where`.
    """
    field = field or name
    for i, char in enumerate(value):
        category = unicodedata.category(char)
        if category == "Cs":
            raise ValidationError(
                f"{where}{name}: {value!r} is not valid text (invalid bytes or characters)", field
            )
        if category == "Cc":
            raise ValidationError(
                f"{where}{name}: character {i + 1} is a control character "
                f"(U+{ord(char):04X}); type the text without it",
                field,
            )
