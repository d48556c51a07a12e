"""Realistic synthetic custody events for demos, tests and benchmarks.

A firearm's legal life is a supply chain: manufactured in its maker's country,
exported, imported by a licensed importer, sold to a dealer, sold to a
licence holder, perhaps transferred, exported again or destroyed. Each
country's registry holds its own stretch of that chain. `supply_chain` gives
one firearm's chain along a route of countries, split by registry (a demo
puts each country's part on its node, so that a trace crosses them all);
`generate_rows` gives the registry of one country, a chain per firearm, for
the firearms of `node.records.synthetic` (their makes, models and serials).

Everything comes from one `random.Random(seed)`: the same arguments always
give the same rows, and a smaller `n` gives a prefix of them.
"""

from __future__ import annotations

import csv
import itertools
import os
import random
import sys
from collections.abc import Iterator, Sequence
from datetime import date, timedelta

from tqdm import tqdm

from node.records.synthetic import generate_rows as generate_firearms
from node.trace.model import CUSTODY_COLUMNS, EventKind

FIRST_DATE = date(2000, 1, 1)
#: Not later than the default `FakeClock` date (2026-01-01), which refuses future events.
LAST_DATE = date(2025, 12, 31)
#: Days between one event and the next.
MIN_GAP_DAYS, MAX_GAP_DAYS = 3, 400
#: Countries a firearm is exported to, in the proportions of a European registry.
DESTINATIONS = ("DEU", "FRA", "ITA", "AUT", "BEL", "NLD", "POL", "CZE", "ESP", "SRB", "USA")
IMPORTERS = (
    "Euro Arms Import", "Continental Firearms Trading", "Transalpine Arms", "Nordic Sporting",
    "Adriatic Defence Supply", "Rhein Jagd Import", "Atlantic Shooting Supplies",
)  # fmt: skip
DEALERS = (
    "Armurerie Centrale", "Waffen Huber", "Armeria Rossi", "Zbrojownia Nowak", "Jagd & Sport Maier",
    "Armería del Norte", "Gun Room Jansen", "Oružje Petrović", "Wapenhandel De Vries",
)  # fmt: skip
_GIVEN = ("A.", "B.", "C.", "D.", "E.", "F.", "J.", "K.", "L.", "M.", "N.", "P.", "S.", "T.")
_SURNAMES = (
    "Novak", "Petrović", "Horvat", "Kowalski", "Müller", "Rossi", "García", "Silva", "Dupont",
    "Yılmaz", "Ivanova", "Popescu", "Nagy", "Jansen", "Murphy", "Schmidt", "Bernard", "Conti",
)  # fmt: skip
HOLDERS = tuple(f"{g} {s}" for g, s in itertools.product(_GIVEN, _SURNAMES))
CLUBS = ("Schützenverein Tell", "Tir Club de Lyon", "Poligono Roma Nord", "Klub Strzelecki Orzeł")
NOTES = (
    "Sold with two magazines.",
    "Licence checked in person.",
    "Returned for repair, then collected.",
    "Handed in under the amnesty.",
    "End-user certificate on file.",
)
_NOTES_RATE = 0.05
Event = dict[str, str]


class _Chain:
    """Builds one firearm's events, each registry's in its own list, dates moving forward."""

    def __init__(
        self, rng: random.Random, firearm: Event, start: date, max_gap: int = MAX_GAP_DAYS
    ) -> None:
        self._rng = rng
        self._firearm = firearm
        self._day = start
        self._max_gap = max_gap
        self.by_country: dict[str, list[Event]] = {}

    def add(
        self,
        country: str,
        event: EventKind,
        from_party: str,
        to_party: str,
        to_country: str = "",
        licence: str = "",
    ) -> bool:
        """Add an event after the last, with a licence reference of the `licence` kind (if
        given) dated like the event; False (nothing added) once the dates run out."""
        day = self._day + timedelta(days=self._rng.randint(MIN_GAP_DAYS, self._max_gap))
        if day > LAST_DATE:
            return False
        self._day = day
        if licence:
            licence = f"{country}-{licence}-{day.year}-{self._rng.randrange(1_000_000):06d}"
        notes = self._rng.choice(NOTES) if self._rng.random() < _NOTES_RATE else ""
        self.by_country.setdefault(country, []).append(
            self._firearm
            | {
                "event": event.value,
                "event_date": day.isoformat(),
                "from_party": from_party,
                "to_party": to_party,
                "to_country": to_country,
                "licence_reference": licence,
                "notes": notes,
            }
        )
        return True


def supply_chain(
    serial: str,
    make: str,
    model: str,
    route: Sequence[str],
    *,
    seed: int = 0,
    start: date = date(2015, 3, 2),
) -> dict[str, list[Event]]:
    """One firearm's legal chain along `route`, as each country's registry holds it.

    The first country manufactures it and exports it to the next; each later
    country imports it and sells it to a dealer, who exports it on; in the last
    country the dealer sells it to a licence holder, the last legal possessor.
    Events are days to weeks apart, from `start` on.

    Args:
        serial, make, model: the firearm.
        route: the countries (ISO alpha-3), at least one, none twice.
        seed: the same arguments and seed give the same chain.
        start: the day before manufacture.

    Raises:
        ValueError: an empty route, a country twice on it, or a start too late for the
            whole chain to fit before `LAST_DATE`.
    """
    if not route or len(set(route)) != len(route):
        raise ValueError(f"a route needs at least one country and none twice, got {route}")
    rng = random.Random(f"{seed}:{serial}:{make}")
    chain = _Chain(rng, {"serial_number": serial, "make": make, "model": model}, start, 60)
    holder = f"{make} factory"
    added = [chain.add(route[0], EventKind.MANUFACTURED, "", holder)]
    for here, there in itertools.pairwise(route):
        importer = rng.choice(IMPORTERS)
        added += [
            chain.add(here, EventKind.EXPORTED, holder, importer, there, "EXP"),
            chain.add(there, EventKind.IMPORTED, holder, importer, "", "IMP"),
        ]
        holder = rng.choice(DEALERS)
        added.append(chain.add(there, EventKind.SOLD, importer, holder, "", "DL"))
    last = route[-1]
    added.append(chain.add(last, EventKind.SOLD, holder, rng.choice(HOLDERS), "", "PL"))
    if not all(added):
        raise ValueError(f"the chain from {start} does not fit before {LAST_DATE}")
    return chain.by_country


def _registry_chain(
    rng: random.Random, firearm: dict[str, str], country: str, start: date
) -> list[Event]:
    """The events `country`'s registry holds of one firearm: made here or imported, sold on,
    and sometimes transferred, exported or destroyed."""
    make = firearm["make"]
    chain = _Chain(rng, {c: firearm[c] for c in ("serial_number", "make", "model")}, start)
    made_in = firearm["country_of_manufacture"] or country
    if made_in == country:
        holder = f"{make} factory"
        chain.add(country, EventKind.MANUFACTURED, "", holder)
    else:
        importer = rng.choice(IMPORTERS)
        chain.add(country, EventKind.IMPORTED, f"{make} factory", importer, "", "IMP")
        holder = rng.choice(DEALERS)
        chain.add(country, EventKind.SOLD, importer, holder, "", "DL")
    roll = rng.random()
    if roll < 0.25:
        to = rng.choice([c for c in DESTINATIONS if c != country])
        chain.add(country, EventKind.EXPORTED, holder, rng.choice(IMPORTERS), to, "EXP")
    else:
        owner = rng.choice(HOLDERS)
        if chain.add(country, EventKind.SOLD, holder, owner, "", "PL"):
            if roll > 0.85:
                heir = rng.choice(HOLDERS + CLUBS)
                chain.add(country, EventKind.TRANSFERRED, owner, heir, "", "PL")
            elif roll > 0.80:
                chain.add(country, EventKind.DESTROYED, owner, "Police armoury")
    return chain.by_country.get(country, [])


def generate_rows(n: int, country: str = "DEU", seed: int = 0) -> Iterator[Event]:
    """Yield `n` custody events of `country`'s registry, keyed by `CUSTODY_COLUMNS`.

    Chains follow one another firearm by firearm (the firearms of
    `node.records.synthetic.generate_rows` with the same seed); the last chain
    is cut short to give exactly `n` events.

    Raises:
        ValueError: `n` is negative.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    rng = random.Random(seed)
    span = (LAST_DATE - FIRST_DATE).days - 2 * MAX_GAP_DAYS  # the first two events always fit
    # At least one event a firearm: n firearms always suffice.
    events = (
        event
        for firearm in generate_firearms(n, seed)
        for event in _registry_chain(
            rng, firearm, country, FIRST_DATE + timedelta(days=rng.randrange(span))
        )
    )
    return itertools.islice(events, n)


def write_csv(
    path: str | os.PathLike[str],
    n: int,
    country: str = "DEU",
    seed: int = 0,
    progress: bool = True,
) -> None:
    """Write `n` synthetic custody events of `country` to a UTF-8 CSV file (header first).

    Raises:
        OSError: The file cannot be written.
        ValueError: `n` is negative.
    """
    with (
        open(path, "w", encoding="utf-8", newline="") as file,
        tqdm(total=n, unit="events", disable=not progress, file=sys.stderr) as bar,
    ):
        writer = csv.writer(file)
        writer.writerow(CUSTODY_COLUMNS)
        for done, event in enumerate(generate_rows(n, country, seed), 1):
            writer.writerow([event[c] for c in CUSTODY_COLUMNS])
            if done % 10_000 == 0:
                bar.update(10_000)
        bar.update(n - bar.n)
