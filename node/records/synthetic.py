"""Realistic synthetic firearm records for demos, tests and benchmarks.

Rows look like what a national bureau imports: makes drawn by their weight in
illicit-firearm data, a type the make produces, a calibre that fits the type,
serials shaped like the make's (and typed the way officers type them: some in
lower case, some with spaces or hyphens), weighted statuses, dates, places,
agencies, case references and contacts, and now and then markings and notes.

Everything comes from one `random.Random(seed)`, so the same `(n, seed)` always
gives the same rows. Choices are drawn a chunk at a time with
`random.choices`, which keeps a million rows (CSV writing included) to a few
seconds.
"""

from __future__ import annotations

import bisect
import csv
import functools
import itertools
import os
import random
import string
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from tqdm import tqdm

from node.records.model import CSV_COLUMNS, FirearmType, Status
from node.records.reference import Make, load_reference

CHUNK_ROWS = 10_000
FIRST_DATE = date(2005, 1, 1)
#: Not later than the default `FakeClock` date (2026-01-01), which refuses future events.
LAST_DATE = date(2025, 12, 31)

STATUS_WEIGHTS: dict[Status, float] = {
    Status.STOLEN: 34,
    Status.LOST: 20,
    Status.SEIZED: 16,
    Status.TRAFFICKED: 12,
    Status.SMUGGLED: 8,
    Status.FOUND: 6,
    Status.RECOVERED: 4,
}
#: How often each type turns up, for makes whose models are not listed.
TYPE_WEIGHTS: dict[str, float] = {
    FirearmType.PISTOL: 45,
    FirearmType.REVOLVER: 12,
    FirearmType.RIFLE: 18,
    FirearmType.CARBINE: 5,
    FirearmType.SHOTGUN: 15,
    FirearmType.SUBMACHINE_GUN: 3,
    FirearmType.MACHINE_GUN: 1,
    FirearmType.OTHER: 1,
}
#: Calibre categories plausible for each type, with their share.
CATEGORY_SHARES: dict[str, dict[str, float]] = {
    FirearmType.PISTOL: {"pistol": 0.9, "rimfire": 0.1},
    FirearmType.REVOLVER: {"pistol": 0.85, "rimfire": 0.15},
    FirearmType.RIFLE: {"rifle": 0.85, "rimfire": 0.15},
    FirearmType.CARBINE: {"rifle": 0.8, "pistol": 0.2},
    FirearmType.SUBMACHINE_GUN: {"pistol": 1.0},
    FirearmType.MACHINE_GUN: {"rifle": 1.0},
    FirearmType.SHOTGUN: {"shotshell": 1.0},
    FirearmType.OTHER: {"pistol": 0.4, "rifle": 0.3, "shotshell": 0.3},
}
#: Well-known models of the most frequent makes: (model, type, calibre).
MODELS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "Glock": (("17", "pistol", "9mm Luger"), ("19", "pistol", "9mm Luger"),
              ("26", "pistol", "9mm Luger"), ("22", "pistol", ".40 S&W"),
              ("21", "pistol", ".45 ACP")),
    "Smith & Wesson": (("M&P9", "pistol", "9mm Luger"), ("SD9VE", "pistol", "9mm Luger"),
                       ("Model 10", "revolver", ".38 Special"),
                       ("Model 686", "revolver", ".357 Magnum"),
                       ("M&P15", "rifle", ".223 Remington")),
    "Beretta": (("92FS", "pistol", "9mm Luger"), ("PX4 Storm", "pistol", "9mm Luger"),
                ("84", "pistol", ".380 ACP"), ("686 Silver Pigeon", "shotgun", "12 gauge")),
    "Zastava Arms": (("M70AB2", "rifle", "7.62x39mm"), ("M70", "pistol", "7.65mm Browning"),
                     ("M57", "pistol", "7.62x25 Tokarev"), ("M92", "carbine", "7.62x39mm"),
                     ("M84", "machine gun", "7.62x54mmR")),
    "Kalashnikov Concern": (("AKM", "rifle", "7.62x39mm"), ("AK-74", "rifle", "5.45x39mm"),
                            ("AKS-74U", "carbine", "5.45x39mm"),
                            ("Saiga-12", "shotgun", "12 gauge")),
    "Norinco": (("Type 56", "rifle", "7.62x39mm"), ("Type 54", "pistol", "7.62x25 Tokarev"),
                ("Type 59", "pistol", "9x18 Makarov"), ("NP-22", "pistol", "9mm Luger")),
    "Taurus": (("PT92", "pistol", "9mm Luger"), ("G2C", "pistol", "9mm Luger"),
               ("Model 85", "revolver", ".38 Special"), ("TX22", "pistol", ".22 LR")),
    "Ruger": (("LCP", "pistol", ".380 ACP"), ("10/22", "rifle", ".22 LR"),
              ("Mini-14", "rifle", ".223 Remington"), ("GP100", "revolver", ".357 Magnum")),
    "CZ (Česká zbrojovka)": (("75 B", "pistol", "9mm Luger"), ("P-10 C", "pistol", "9mm Luger"),
                             ("Scorpion Evo 3", "submachine gun", "9mm Luger"),
                             ("vz. 58", "rifle", "7.62x39mm")),
    "Walther": (("PPK", "pistol", "7.65mm Browning"), ("P99", "pistol", "9mm Luger"),
                ("P22", "pistol", ".22 LR")),
    "Izhevsk Mechanical Plant": (("PM", "pistol", "9x18 Makarov"),
                                 ("IZh-27", "shotgun", "12 gauge"),
                                 ("IZh-79", "pistol", "8mm blank")),
    "Zoraki": (("914", "pistol", "9mm P.A.K."), ("R1", "revolver", "9mm P.A.K.")),
    "Ekol": (("Firat Magnum", "pistol", "9mm P.A.K."), ("Jackal Dual", "pistol", "9mm P.A.K.")),
    "Bruni": (("92", "pistol", "8mm blank"), ("Mini GAP", "pistol", "8mm blank")),
}  # fmt: skip
#: Generic model names for makes without listed models: prefix + number.
TYPE_PREFIX: dict[str, str] = {
    "pistol": "P", "revolver": "R", "rifle": "M", "carbine": "C", "shotgun": "SG",
    "submachine gun": "MP", "machine gun": "MG", "other": "X",
}  # fmt: skip
PLACES = (
    "Belgrade", "Sarajevo", "Zagreb", "Skopje", "Tirana", "Sofia", "Bucharest", "Kyiv",
    "Odesa", "Chisinau", "Warsaw", "Prague", "Bratislava", "Vienna", "Budapest", "Munich",
    "Berlin", "Hamburg", "Rotterdam", "Antwerp", "Brussels", "Liège", "Lyon", "Marseille",
    "Paris", "Milan", "Naples", "Palermo", "Barcelona", "Madrid", "Lisbon", "Dublin",
    "Manchester", "London", "Stockholm", "Malmö", "Copenhagen", "Helsinki", "Tallinn", "Riga",
    "Vilnius", "Istanbul", "Izmir", "Athens", "Thessaloniki", "Lagos", "Nairobi", "Johannesburg",
    "Cairo", "Casablanca", "São Paulo", "Rio de Janeiro", "Buenos Aires", "Bogotá", "Lima",
    "Mexico City", "Tijuana", "Houston", "Miami", "Toronto", "Manila", "Jakarta", "Bangkok",
)  # fmt: skip
AGENCIES = (
    "National Police", "Customs", "Border Guard", "Gendarmerie", "Criminal Police",
    "Coast Guard", "Firearms Bureau", "Organised Crime Unit", "Municipal Police",
    "Military Police", "Port Authority Police", "Financial Police",
)  # fmt: skip
_RANKS = ("Insp.", "Sgt.", "Det.", "Off.", "Lt.", "Capt.")
_SURNAMES = (
    "Novak", "Petrović", "Horvat", "Kowalski", "Müller", "Rossi", "García", "Silva", "Dupont",
    "Yılmaz", "Ivanova", "Popescu", "Nagy", "Jansen", "Murphy", "Okafor", "Mensah", "Santos",
)  # fmt: skip
IMPORT_MARKS = (
    "CAI ST ALBANS VT", "CAI GEORGIA VT", "CENTURY ARMS", "INTERARMS ALEX VA", "IMP. DE 2011",
    "IMP. AT 2016", "IMP. FR 2009", "IMP. IT 2019", "IMP. NL 2014", "IMP. UK 2008",
)  # fmt: skip
PROOF_MARKS = (
    "Birmingham crown/BP", "Liège ELG in oval", "Ferlach eagle", "Ulm antler", "Suhl eagle/N",
    "Gardone PSF", "Eibar crown", "St-Étienne", "Prague lion", "Kiel eagle/N", "none visible",
)  # fmt: skip
NOTES = (
    "Converted from a blank-firing pistol.",
    "Serial partly ground off; restored by etching.",
    "Found in a vehicle at the border crossing.",
    "Stolen in a residential burglary.",
    "Sold through an online marketplace.",
    "Recovered from a weapons cache.",
    "Part of a consignment declared as spare parts.",
    "Owner's licence expired before the loss was reported.",
    "Magazine and 50 rounds seized with it.",
    "Barrel shortened.",
)
_MARKINGS_RATE = 0.15
_MAX_LETTER_RUN = 3
#: Every string of 1, 2 and 3 capital letters, so a letter run is one draw.
_LETTERS: dict[int, tuple[str, ...]] = {
    k: tuple("".join(p) for p in itertools.product(string.ascii_uppercase, repeat=k))
    for k in range(1, _MAX_LETTER_RUN + 1)
}
_NOTES_RATE = 0.10
_MODEL_NUMBERS = (10, 12, 22, 45, 70, 92, 300)
_STATUS_VALUES = tuple(status.value for status in STATUS_WEIGHTS)
_STATUS_CUM = tuple(itertools.accumulate(STATUS_WEIGHTS.values()))


@dataclass(frozen=True, slots=True)
class _Variant:
    model: str
    firearm_type: str
    calibre: str | None  # None: draw one that fits the type


@dataclass(frozen=True, slots=True)
class _MakePlan:
    make: Make
    variants: tuple[_Variant, ...]
    variant_cum: tuple[float, ...]
    #: Pattern split into (kind, text, how many values) runs; kind "A", "#" or "=".
    runs: tuple[tuple[str, str, int], ...]
    #: Where a separator may be typed between runs (character index).
    split_at: int


@dataclass(frozen=True, slots=True)
class _Plan:
    makes: tuple[_MakePlan, ...]
    make_cum: tuple[float, ...]
    calibres: dict[str, tuple[tuple[str, ...], tuple[float, ...]]]
    dates: tuple[str, ...]
    contacts: tuple[str, ...]


def _cumulative(weights: list[float]) -> tuple[float, ...]:
    return tuple(itertools.accumulate(weights))


def _runs(pattern: str) -> tuple[tuple[str, str, int], ...]:
    """Split a serial pattern into runs of letters, digits and literal text.

    Letter runs longer than `_MAX_LETTER_RUN` are split so that each run can be
    drawn with one call from the precomputed `_LETTERS` table.
    """
    runs = []
    for kind, group in itertools.groupby(pattern, key=lambda c: c if c in "A#" else "="):
        chars = "".join(group)
        if kind == "A":
            for at in range(0, len(chars), _MAX_LETTER_RUN):
                piece = chars[at : at + _MAX_LETTER_RUN]
                runs.append((kind, piece, 26 ** len(piece)))
        else:
            runs.append((kind, chars, 10 ** len(chars)))
    return tuple(runs)


def _make_plan(make: Make, known_calibres: set[str]) -> _MakePlan:
    models = MODELS.get(make.name)
    if models:
        variants = tuple(_Variant(m, t, c) for m, t, c in models)
        weights = [1.0] * len(variants)
    else:
        variants = tuple(_Variant("", t, None) for t in make.types)
        weights = [TYPE_WEIGHTS[t] for t in make.types]
    for variant in variants:
        if variant.calibre is not None and variant.calibre not in known_calibres:
            raise ValueError(f"model {variant.model!r} of {make.name!r}: unknown calibre")
    runs = _runs(make.serial_pattern)
    return _MakePlan(make, variants, _cumulative(weights), runs, _split_at(runs))


def _split_at(runs: tuple[tuple[str, str, int], ...]) -> int:
    """Where an officer would type a separator: between letters and digits, else mid-run."""
    position = 0
    for (kind, text, _), (next_kind, _, _) in itertools.pairwise(runs):
        position += len(text)
        if kind != next_kind and "=" not in (kind, next_kind):
            return position
    starts = list(itertools.accumulate((len(text) for _, text, _ in runs), initial=0))
    longest = max(range(len(runs)), key=lambda i: len(runs[i][1]))
    return starts[longest] + max(1, len(runs[longest][1]) // 2)


@functools.cache
def _plan() -> _Plan:
    reference = load_reference()
    known = {c.name for c in reference.calibres}
    makes = tuple(_make_plan(m, known) for m in reference.makes)
    calibres = {}
    for firearm_type, shares in CATEGORY_SHARES.items():
        names, weights = [], []
        for category, share in shares.items():
            members = [c for c in reference.calibres if c.category == category]
            total = sum(c.weight for c in members)
            names += [c.name for c in members]
            weights += [share * c.weight / total for c in members]
        calibres[firearm_type] = (tuple(names), _cumulative(weights))
    days = (LAST_DATE - FIRST_DATE).days + 1
    dates = tuple((FIRST_DATE + timedelta(days=d)).isoformat() for d in range(days))
    contacts = tuple(
        f"{rank} {initial}. {surname}, firearms desk, ext. {1000 + 37 * i % 9000}"
        for i, (rank, initial, surname) in enumerate(
            itertools.product(_RANKS, "ADEJKMST", _SURNAMES)
        )
    )
    return _Plan(makes, _cumulative([m.weight for m in reference.makes]), calibres, dates, contacts)


def _pick(options: tuple[str, ...], random_: Callable[[], float]) -> str:
    # random() and indexing: a third of the cost of Random.choice in the hot loop
    return options[int(random_() * len(options))]


def _serial(plan: _MakePlan, random_: Callable[[], float]) -> str:
    parts = []
    for kind, text, scale in plan.runs:
        if kind == "#":
            parts.append(f"{int(random_() * scale):0{len(text)}d}")
        elif kind == "A":
            parts.append(_LETTERS[len(text)][int(random_() * scale)])
        else:
            parts.append(text)
    serial = "".join(parts)
    # As officers type them: mostly as stamped, sometimes otherwise.
    roll = random_()
    if roll < 0.70:
        return serial
    if roll < 0.80:
        return serial.lower()
    at = plan.split_at
    if roll < 0.90:
        return f"{serial[:at]}-{serial[at:]}"
    if roll < 0.96:
        return f"{serial[:at]} {serial[at:]}"
    return f"{serial[:at]} {serial[at:]}".lower()


def _chunk(plan: _Plan, rng: random.Random, seed: int, start: int, size: int) -> list[list[str]]:
    """Rows `start` to `start + size`; a short last chunk still draws a full chunk
    of column choices, so that the first rows never depend on `n`."""
    makes = rng.choices(plan.makes, cum_weights=plan.make_cum, k=CHUNK_ROWS)
    statuses = rng.choices(_STATUS_VALUES, cum_weights=_STATUS_CUM, k=CHUNK_ROWS)
    dates = rng.choices(plan.dates, k=CHUNK_ROWS)
    places = rng.choices(PLACES, k=CHUNK_ROWS)
    agencies = rng.choices(AGENCIES, k=CHUNK_ROWS)
    contacts = rng.choices(plan.contacts, k=CHUNK_ROWS)
    rows = []
    random_ = rng.random
    for i, make_plan in enumerate(makes[:size]):
        variant = make_plan.variants[
            bisect.bisect(make_plan.variant_cum, random_() * make_plan.variant_cum[-1])
        ]
        firearm_type, model, calibre = variant.firearm_type, variant.model, variant.calibre
        if calibre is None:
            names, cum = plan.calibres[firearm_type]
            calibre = names[bisect.bisect(cum, random_() * cum[-1])]
            if random_() < 0.6:
                model = f"{TYPE_PREFIX[firearm_type]}{_MODEL_NUMBERS[int(random_() * 7)]}"
        event_date = dates[i]
        markings = notes = ""
        if random_() < _MARKINGS_RATE:
            imported, proof = _pick(IMPORT_MARKS, random_), _pick(PROOF_MARKS, random_)
            markings = f"import mark {imported}, proof mark {proof}"
        if random_() < _NOTES_RATE:
            notes = _pick(NOTES, random_)
        make = make_plan.make
        rows.append(
            [
                _serial(make_plan, random_),
                make.name,
                model,
                firearm_type,
                calibre,
                statuses[i],
                make.country,
                event_date,
                places[i],
                agencies[i],
                f"CR-{event_date[:4]}-{int(random_() * 1_000_000):06d}",
                contacts[i],
                markings,
                notes,
                f"SYN-{seed}-{start + i}",
                # recovered firearms: recovered on the day of the event, for simplicity
                event_date if statuses[i] == "recovered" else "",
            ]
        )
    return rows


def _chunks(n: int, seed: int) -> Iterator[list[list[str]]]:
    plan = _plan()
    rng = random.Random(seed)
    for start in range(0, n, CHUNK_ROWS):
        yield _chunk(plan, rng, seed, start, min(CHUNK_ROWS, n - start))


def generate_rows(n: int, seed: int = 0) -> Iterator[dict[str, str]]:
    """Yield `n` synthetic records as dicts keyed by `CSV_COLUMNS`.

    Args:
        n: How many rows (0 yields none).
        seed: The same `(n, seed)` always gives the same rows, and a smaller
            `n` gives a prefix of them; `external_id` is ``SYN-<seed>-<index>``.

    Returns:
        An iterator over the rows, every value a string.

    Raises:
        ValueError: `n` is negative.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    return (dict(zip(CSV_COLUMNS, row, strict=True)) for chunk in _chunks(n, seed) for row in chunk)


def write_csv(path: str | os.PathLike[str], n: int, seed: int = 0, progress: bool = True) -> None:
    """Write `n` synthetic records to a UTF-8 CSV file with a `CSV_COLUMNS` header.

    Args:
        path: The file to create or overwrite.
        n: How many rows.
        seed: Passed to the generator; the same seed gives the same file.
        progress: Show a progress bar on stderr.

    Raises:
        OSError: The file cannot be written.
        ValueError: `n` is negative.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    with (
        open(path, "w", encoding="utf-8", newline="") as file,
        tqdm(total=n, unit="rows", disable=not progress, file=sys.stderr) as bar,
    ):
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        for chunk in _chunks(n, seed):
            writer.writerows(chunk)
            bar.update(len(chunk))
