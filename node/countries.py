"""Country codes (ISO 3166-1 alpha-3) from pycountry, the maintained ISO database."""

from __future__ import annotations

from functools import cache

import pycountry

from node.errors import ValidationError


@cache
def _alpha3_codes() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.countries)


def alpha3_codes() -> frozenset[str]:
    """Every ISO 3166-1 alpha-3 country code."""
    return _alpha3_codes()


def check_alpha3(code: str, field: str = "country") -> str:
    """Return `code` if it is an ISO 3166-1 alpha-3 country code, else raise ValidationError."""
    if code in _alpha3_codes():
        return code
    hint = ""
    if len(code) == 2 and (found := pycountry.countries.get(alpha_2=code.upper())):
        hint = f" (did you mean {found.alpha_3}, {found.name}?)"
    raise ValidationError(
        f"{field}: {code!r} is not an ISO 3166-1 alpha-3 country code such as FRA or DEU{hint}",
        field,
    )


@cache
def to_alpha3(text: str) -> str | None:
    """Map a country as officers write it (FRA, FR, France) to alpha-3; None if unknown."""
    text = text.strip()
    if not text:
        return None
    upper = text.upper()
    if upper in _alpha3_codes():
        return upper
    if len(upper) == 2 and (found := pycountry.countries.get(alpha_2=upper)):
        return str(found.alpha_3)
    try:
        return str(pycountry.countries.lookup(text).alpha_3)
    except LookupError:
        return None


def country_name(code: str) -> str:
    """The English short name of an alpha-3 code (the code itself if unknown)."""
    found = pycountry.countries.get(alpha_3=code)
    return str(found.name) if found else code
