"""The noise an aggregator adds to its sum, and the interval a released total carries
(docs/PROTOCOL.md §4.3).

Each aggregator adds, to every cell of its sum of shares, its own draw of the
discrete Laplace distribution (the two-sided geometric: `P(k) ∝ exp(−|k| / b)`
on the integers) of scale `b = sensitivity / ε`, where `sensitivity` is the
query's L1 sensitivity (how much one firearm record can change the whole vector)
and ε the round's. One such draw per cell makes the released vector
ε-differentially private; every aggregator adds a full one, so the guarantee
holds as long as one aggregator is honest, and the released total carries the
sum of `m` independent draws for `m` aggregators. The sampler is OpenDP's
(`make_laplace` on integers), never our own.

The interval: a released cell `r = total + S`, `S` the sum of the `m` noises,
has the 95 % interval `[r − t, r + t]` where `t` is the least integer with
`P(|S| ≤ t) ≥ 0.95`, computed exactly (to float precision) from the
distribution of `S`: a discrete Laplace variable is the difference of two
independent geometric ones, so `S = A − B` with `A`, `B` independent negative
binomials (`m` successes, success probability `1 − p`, `p = exp(−1/b)`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from operator import mul
from typing import Any

from node.errors import ValidationError
from node.stats.shares import MAX_AGGREGATORS

DISTRIBUTION = "discrete_laplace"
LEVEL = 0.95
#: The range of ε a round may ask for (a node's own cap is at most the top). Below the
#: bottom the noise (scale above 100 × the sensitivity) drowns any count there is.
MIN_EPSILON, MAX_EPSILON = 0.01, 100.0
#: The largest L1 sensitivity a query may declare (the catalogue's are 1): with ε ≥ 0.01
#: it keeps every scale at most 1,600, and the interval's computation within seconds.
MAX_SENSITIVITY = 16
#: Tail mass left out of the negative binomial's support: far below what shows in 0.95.
_TAIL = 1e-13

#: A noise source: (scale, cells) -> one integer noise per cell. OpenDP's in
#: production; tests pass their own (a parameter, never configuration).
NoiseSource = Callable[[float, int], Sequence[int]]


def check_epsilon(epsilon: float, cap: float = MAX_EPSILON) -> float:
    """ε as a round may use it: a number from 0.01 to `cap` (at most 100).

    Raises:
        ValidationError: naming the range (field `epsilon`).
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float):
        raise ValidationError(f"epsilon: a number, got {epsilon!r}", "epsilon")
    top = min(cap, MAX_EPSILON)
    if not (math.isfinite(epsilon) and MIN_EPSILON <= epsilon <= top):
        raise ValidationError(
            f"epsilon: from {MIN_EPSILON:g} to {top:g}, got {epsilon:g}", "epsilon"
        )
    return float(epsilon)


def noise_scale(epsilon: float, sensitivity: int) -> float:
    """The discrete Laplace scale `sensitivity / ε` that each aggregator's noise has.

    Raises:
        ValidationError: ε out of range, or a sensitivity that is not 1 to 16.
    """
    epsilon = check_epsilon(epsilon)
    if isinstance(sensitivity, bool) or not isinstance(sensitivity, int):
        raise ValidationError(f"sensitivity: an integer, got {sensitivity!r}")
    if not 1 <= sensitivity <= MAX_SENSITIVITY:
        raise ValidationError(f"sensitivity: 1 to {MAX_SENSITIVITY}, got {sensitivity}")
    return sensitivity / epsilon


def load_sampler() -> None:
    """Import OpenDP's sampler (about 100 ms, once per process): a running node does it as
    its round carrier starts, so that no round waits for it; the commands that never
    aggregate never do."""
    import opendp.domains  # not `opendp.prelude`: it imports extras a round never uses
    import opendp.measurements
    import opendp.metrics
    import opendp.mod

    opendp.mod.enable_features("contrib")  # make_laplace is contributed code in OpenDP 0.16


def _measurement(scale: float) -> Any:
    load_sampler()
    from opendp.domains import atom_domain, vector_domain
    from opendp.measurements import make_laplace
    from opendp.metrics import l1_distance

    return make_laplace(vector_domain(atom_domain(T="i64")), l1_distance(T="i64"), scale=scale)


def privacy_loss(scale: float, sensitivity: int) -> float:
    """The ε that OpenDP's privacy map gives noise of `scale` on a query of `sensitivity`."""
    return float(_measurement(scale).map(sensitivity))


def opendp_noise(scale: float, cells: int) -> tuple[int, ...]:
    """One discrete Laplace draw of `scale` per cell, from OpenDP's sampler.

    The measurement is applied to the zero vector, so its output is the noise
    itself: the aggregator adds it to its sum of shares modulo 2^64
    (`shares.add_noise`), and the released total is the true total plus the
    noises, exactly what the mechanism applied to the true total would release.
    """
    return tuple(int(n) for n in _measurement(scale)([0] * cells))


def draw_noise(
    epsilon: float, sensitivity: int, cells: int, source: NoiseSource | None = None
) -> tuple[int, ...]:
    """An aggregator's noise for a sum of `cells` cells: OpenDP's, or `source`'s in tests."""
    scale = noise_scale(epsilon, sensitivity)
    noise = tuple((source or opendp_noise)(scale, cells))
    if len(noise) != cells:
        raise ValueError(f"the noise source gave {len(noise)} noises for {cells} cells")
    return noise


def _negative_binomial(p: float, successes: int) -> list[float]:
    """P(A = a) for a = 0, 1, … until what is left of the tail is below 1e-13.

    Past the mode the ratio `r` of one term to the one before decreases, so the
    tail after a term `P` is below `P · r / (1 − r)`: a bound that holds whatever
    rounding the running sum carries.
    """
    pmf = [(1 - p) ** successes]
    while True:
        a = len(pmf) - 1
        ratio = p * (a + successes) / (a + 1)  # P(a + 1) / P(a)
        if ratio < 1 and pmf[a] * ratio / (1 - ratio) < _TAIL:
            return pmf
        pmf.append(pmf[a] * ratio)


@lru_cache(maxsize=64)
def half_width(scale: float, noises: int, level: float = LEVEL) -> int:
    """The least `t` with `P(|S| ≤ t) ≥ level`, `S` the sum of `noises` independent
    discrete Laplace draws of `scale`.

    With `S = A − B`, `A` and `B` independent negative binomials `NB(noises, 1 − p)`,
    `P(|S| ≤ t) = Σ_a P(A = a) · P(a − t ≤ B ≤ a + t)`, evaluated for each `t` by
    bisection over the support of `A` (cut where less than 1e-13 of its mass is left):
    at most about 2 s for the widest a round can have (scale 1,600, 16 noises).
    """
    if not (scale > 0 and math.isfinite(scale)) or noises < 1 or not 0 < level < 1:
        raise ValueError("a positive finite scale, one noise or more, a level in (0, 1)")
    pmf = _negative_binomial(math.exp(-1 / scale), noises)
    cdf = list(accumulate(pmf))
    size = len(pmf)

    def within(t: int) -> float:  # Σ_a P(A = a) · (CDF(a + t) − CDF(a − t − 1))
        upper = cdf[t:] + [cdf[-1]] * min(t, size)
        lower = [0.0] * min(t + 1, size) + cdf[: max(size - t - 1, 0)]
        return math.fsum(map(mul, pmf, upper)) - math.fsum(map(mul, pmf, lower))

    low, high = 0, size
    while low < high:
        middle = (low + high) // 2
        if within(middle) >= level:
            high = middle
        else:
            low = middle + 1
    return low


@dataclass(frozen=True, slots=True)
class NoiseDescription:
    """The noise in a released total: its distribution, each draw's scale, how many draws
    (one per aggregator), and the resulting 95 % interval's half-width per cell."""

    distribution: str
    scale: float
    noises: int

    @property
    def half_width(self) -> int:
        """`t` of every cell's 95 % interval `[value − t, value + t]`."""
        return half_width(self.scale, self.noises)

    def interval(self, value: int) -> tuple[int, int]:
        """The 95 % interval of a released cell's true total (bounds may be negative)."""
        t = self.half_width
        return value - t, value + t

    def to_json(self) -> dict[str, Any]:
        """As a released result states it (`stats round show --json`'s `noise`)."""
        return {
            "distribution": self.distribution,
            "scale": self.scale,
            "noises": self.noises,
            "interval_level": LEVEL,
            "interval_half_width": self.half_width,
        }


def describe(epsilon: float, sensitivity: int, aggregators: int) -> NoiseDescription:
    """The noise of a round with `aggregators` aggregators, each adding its own draw."""
    if not 1 <= aggregators <= MAX_AGGREGATORS:
        raise ValidationError(
            f"aggregators: 1 to {MAX_AGGREGATORS}, got {aggregators}", "aggregators"
        )
    return NoiseDescription(DISTRIBUTION, noise_scale(epsilon, sensitivity), aggregators)
