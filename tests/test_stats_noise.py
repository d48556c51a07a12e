"""The aggregators' noise (node/stats/noise.py): its scale and OpenDP's privacy map, the
exact 95 % interval of m noises, OpenDP's draws, and the interval's coverage through
whole rounds of shares with a seeded noise source."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from node.errors import ValidationError
from node.stats.noise import (
    DISTRIBUTION,
    NoiseDescription,
    NoiseSource,
    check_epsilon,
    describe,
    draw_noise,
    half_width,
    noise_scale,
    opendp_noise,
    privacy_loss,
)
from node.stats.shares import add_noise, combine, reveal, split


def _laplace_pmf(scale: float, reach: int) -> dict[int, float]:
    p = math.exp(-1 / scale)
    return {k: (1 - p) / (1 + p) * p ** abs(k) for k in range(-reach, reach + 1)}


def _sum_pmf(scale: float, noises: int) -> dict[int, float]:
    """The distribution of a sum of `noises` draws by direct convolution (test's own way)."""
    one = _laplace_pmf(scale, int(60 * scale) + 60)
    total = {0: 1.0}
    for _ in range(noises):
        nxt: dict[int, float] = {}
        for a, pa in total.items():
            for b, pb in one.items():
                nxt[a + b] = nxt.get(a + b, 0.0) + pa * pb
        total = nxt
    return total


def _within(pmf: dict[int, float], t: int) -> float:
    return math.fsum(p for k, p in pmf.items() if abs(k) <= t)


@pytest.mark.parametrize(
    ("scale", "noises"),
    [(0.2, 2), (0.5, 1), (1.0, 1), (1.0, 2), (2.0, 2), (10 / 3, 3), (10.0, 2), (4.0, 5)],
)
def test_the_half_width_is_the_least_with_95_percent(scale: float, noises: int) -> None:
    pmf = _sum_pmf(scale, noises)
    t = half_width(scale, noises)
    assert _within(pmf, t) >= 0.95
    assert t == 0 or _within(pmf, t - 1) < 0.95


def test_the_half_width_of_a_single_noise_in_closed_form() -> None:
    """One discrete Laplace draw: P(|X| ≤ t) = 1 − 2 p^(t+1) / (1 + p)."""
    for scale in (0.7, 1.0, 3.0, 25.0, 400.0):
        p = math.exp(-1 / scale)
        expected = next(t for t in range(10**6) if 1 - 2 * p ** (t + 1) / (1 + p) >= 0.95)
        assert half_width(scale, 1) == expected


def test_the_widest_interval_is_computed() -> None:
    """Sensitivity 16 at ε 0.01 with 16 aggregators: the widest a round can ask for
    (within about 2 s; by the normal approximation, t is near 1.96 · b · √(2 · 16))."""
    scale = noise_scale(0.01, 16)
    t = half_width(scale, 16)
    assert 1.9 * scale * math.sqrt(32) < t < 2.1 * scale * math.sqrt(32)


@pytest.mark.parametrize(("epsilon", "sensitivity"), [(1.0, 1), (0.3, 1), (0.1, 2), (2.5, 4)])
def test_the_scale_gives_opendp_s_epsilon(epsilon: float, sensitivity: int) -> None:
    scale = noise_scale(epsilon, sensitivity)
    assert scale == sensitivity / epsilon
    assert privacy_loss(scale, sensitivity) == pytest.approx(epsilon, rel=1e-9)


@pytest.mark.parametrize(
    ("epsilon", "message"),
    [
        (0, "from 0.01 to 100, got 0"),
        (-1.0, "got -1"),
        (0.009, "got 0.009"),
        (100.5, "got 100.5"),
        (math.nan, "got nan"),
        (math.inf, "got inf"),
        (True, "a number, got True"),
        ("1", "a number, got '1'"),
    ],
)
def test_epsilon_out_of_range_is_refused(epsilon: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        check_epsilon(epsilon)  # type: ignore[arg-type]
    assert refused.value.field == "epsilon"


def test_a_node_s_cap_bounds_epsilon() -> None:
    assert check_epsilon(0.5, cap=1.0) == 0.5
    with pytest.raises(ValidationError, match=r"from 0\.01 to 1, got 1\.5"):
        check_epsilon(1.5, cap=1.0)


@pytest.mark.parametrize("sensitivity", [0, 17, True, 1.0])
def test_a_sensitivity_out_of_range_is_refused(sensitivity: object) -> None:
    with pytest.raises(ValidationError, match="sensitivity"):
        noise_scale(1.0, sensitivity)  # type: ignore[arg-type]


def test_opendp_draws_have_the_scale_s_spread() -> None:
    """20,000 draws of scale 2: variance 2p/(1−p)² (about 7.5), mean 0; wide margins."""
    draws = opendp_noise(2.0, 20_000)
    assert all(isinstance(d, int) for d in draws)
    p = math.exp(-1 / 2.0)
    variance = 2 * p / (1 - p) ** 2
    assert statistics.pvariance(draws) == pytest.approx(variance, rel=0.12)
    assert abs(statistics.fmean(draws)) < 0.15
    assert len(set(draws)) > 20


def test_opendp_sums_of_two_fall_in_the_interval_about_95_percent_of_the_time() -> None:
    first, second = opendp_noise(2.0, 10_000), opendp_noise(2.0, 10_000)
    t = half_width(2.0, 2)
    covered = sum(abs(a + b) <= t for a, b in zip(first, second, strict=True)) / 10_000
    exact = _within(_sum_pmf(2.0, 2), t)  # about 0.957
    assert exact - 0.02 < covered < exact + 0.02  # 4 standard deviations


def _seeded_laplace(seed: int) -> tuple[list[float], NoiseSource]:
    """A test-only discrete Laplace source, seeded: the difference of two geometrics."""
    rng = random.Random(seed)
    scales: list[float] = []

    def source(scale: float, cells: int) -> list[int]:
        scales.append(scale)
        p = math.exp(-1 / scale)

        def geometric() -> int:
            return int(math.log(1.0 - rng.random()) / math.log(p))

        return [geometric() - geometric() for _ in range(cells)]

    return scales, source


def test_released_totals_fall_in_their_interval_through_whole_rounds() -> None:
    """2,000 rounds of a 5-cell vector from 4 contributors with 3 aggregators, each adding
    its own noise through the injected source: the true totals fall within the stated
    intervals in about 95 % of cells (exactly reproducible: the source is seeded)."""
    scales, source = _seeded_laplace(20260101)
    rng = random.Random(7)
    noise = describe(0.5, 1, 3)
    covered = cells = 0
    for _ in range(2000):
        vectors = [[rng.randrange(50) for _ in range(5)] for _ in range(4)]
        shares = [split(v, 3) for v in vectors]
        sums = [  # each aggregator: the shares it holds, plus its own noise
            add_noise(combine([s[a] for s in shares]), draw_noise(0.5, 1, 5, source))
            for a in range(3)
        ]
        released = reveal(sums)
        for true, value in zip(map(sum, zip(*vectors, strict=True)), released, strict=True):
            low, high = noise.interval(value)
            covered += low <= true <= high
            cells += 1
    assert set(scales) == {2.0} and len(scales) == 6000
    assert 0.94 < covered / cells < 0.97


def test_an_injected_source_replaces_the_sampler() -> None:
    seen: list[tuple[float, int]] = []

    def zero(scale: float, cells: int) -> list[int]:
        seen.append((scale, cells))
        return [0] * cells

    assert draw_noise(0.25, 1, 4, zero) == (0, 0, 0, 0)
    assert seen == [(4.0, 4)]
    with pytest.raises(ValueError, match="gave 3 noises for 4 cells"):
        draw_noise(0.25, 1, 4, lambda scale, cells: [0, 0, 0])


def test_the_description_of_a_release() -> None:
    noise = describe(0.5, 1, 2)
    assert noise == NoiseDescription(DISTRIBUTION, 2.0, 2)
    assert noise.to_json() == {
        "distribution": "discrete_laplace",
        "scale": 2.0,
        "noises": 2,
        "interval_level": 0.95,
        "interval_half_width": 8,
    }
    assert noise.interval(-3) == (-11, 5)
    with pytest.raises(ValidationError, match="aggregators: 1 to 16, got 17"):
        describe(0.5, 1, 17)
