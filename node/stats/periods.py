"""Months and periods: what every statistic is counted over.

A month is written `YYYY-MM`; a period is a closed range of months. Without
bounds, a period is the `DEFAULT_MONTHS` months ending with the current
month (the node's Clock); with only `--from`, it runs to the current month;
with only `--to`, it is the `DEFAULT_MONTHS` months ending then. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from node.errors import ValidationError

#: How many months a period without a start spans.
DEFAULT_MONTHS = 12
#: The longest period, in months (50 years): a chart or a vector per month stays bounded.
MAX_MONTHS = 600
_MONTH = re.compile(r"^(\d{4})-(\d{2})\Z")


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str, field: str = "month") -> Month:
        """`YYYY-MM` (e.g. 2025-03).

        Raises:
            ValidationError: not a month in that form, naming `field`.
        """
        found = _MONTH.match(text.strip())
        if found is None or not 1 <= int(found[2]) <= 12 or int(found[1]) < 1:
            raise ValidationError(
                f"{field}: {text!r} is not a month written YYYY-MM, such as 2025-03", field
            )
        return cls(int(found[1]), int(found[2]))

    @classmethod
    def of(cls, day: date | datetime) -> Month:
        """The month a date or time falls in."""
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def index(self) -> int:
        """Months since year 0: consecutive months differ by one."""
        return self.year * 12 + self.month - 1

    @classmethod
    def from_index(cls, index: int) -> Month:
        """The month with this `index`."""
        return cls(index // 12, index % 12 + 1)


@dataclass(frozen=True, slots=True)
class Period:
    """The months `start` to `end`, both included."""

    start: Month
    end: Month

    @classmethod
    def resolve(cls, start: str | None, end: str | None, today: date) -> Period:
        """The period an analyst asked for (`--from`, `--to`, or the form's fields).

        Raises:
            ValidationError: a month not in `YYYY-MM` form, a start after the end, or a
                period longer than `MAX_MONTHS`, naming the field.
        """
        last = Month.parse(end, "to") if end else Month.of(today)
        first = (
            Month.parse(start, "from")
            if start
            else Month.from_index(max(last.index - DEFAULT_MONTHS + 1, Month(1, 1).index))
        )
        if first > last:
            raise ValidationError(f"from: {first} is after to ({last})", "from")
        if last.index - first.index + 1 > MAX_MONTHS:
            raise ValidationError(
                f"from: {first} to {last} is longer than {MAX_MONTHS} months", "from"
            )
        return cls(first, last)

    def months(self) -> tuple[Month, ...]:
        """Every month of the period, in order."""
        return tuple(Month.from_index(i) for i in range(self.start.index, self.end.index + 1))

    def __contains__(self, month: object) -> bool:
        return isinstance(month, Month) and self.start <= month <= self.end

    def bounds(self) -> tuple[datetime, datetime | None]:
        """The period as UTC times: its first instant, and the first instant after it (None
        for a period ending in December 9999)."""
        after = Month.from_index(self.end.index + 1)
        return (
            datetime(self.start.year, self.start.month, 1, tzinfo=UTC),
            datetime(after.year, after.month, 1, tzinfo=UTC) if after.year <= 9999 else None,
        )

    def to_json(self) -> dict[str, str]:
        """`{"from": "YYYY-MM", "to": "YYYY-MM"}`."""
        return {"from": str(self.start), "to": str(self.end)}
