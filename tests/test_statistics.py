"""The paired seed tests claims are decided with, against independent computations."""

import math

import numpy as np
import pytest

from adabias.studies import statistics


def _binomial_tail(k: int, n: int) -> float:
    return sum(math.comb(n, j) for j in range(k, n + 1)) / 2 ** n


@pytest.mark.parametrize("k,n", [(0, 5), (3, 5), (5, 5), (7, 8), (8, 8), (12, 20)])
def test_sign_test_p_is_the_binomial_tail(k, n):
    assert statistics.sign_test_p(k, n) == pytest.approx(_binomial_tail(k, n), rel=1e-12)


def test_min_detectable_effect_is_detected_at_its_power():
    # Monte Carlo of the one-sided z-test with known spread: power ≈ 0.8 at the computed effect.
    rng = np.random.default_rng(0)
    n, spread = 16, 0.3
    effect = statistics.min_detectable_effect(spread, n)
    means = rng.normal(effect, spread / math.sqrt(n), size=200_000)
    z = 2.3263478740408408  # z_{0.99}
    assert np.mean(means / (spread / math.sqrt(n)) > z) == pytest.approx(0.8, abs=0.01)


def test_seeds_needed_reaches_the_effect_and_the_sign_floor():
    assert statistics.seeds_needed(10.0, 0.1) == 7            # 2⁻⁷ < 0.01 ≤ 2⁻⁶
    n = statistics.seeds_needed(0.05, 0.1)
    assert statistics.min_detectable_effect(0.1, n) <= 0.05 < statistics.min_detectable_effect(0.1, n - 1)


def test_paired_test_outcomes():
    rng = np.random.default_rng(1)
    a = rng.normal(size=8)
    held = statistics.paired_test(a, a + 1 + 0.1 * rng.normal(size=8), +1)
    assert held.outcome == "held" and held.p_value == 0.5 ** 8 and held.reason() == ""
    against = statistics.paired_test(a, a + 1, -1)
    assert against.outcome == "contradicted" and against.reason().startswith("contradicted")
    noise = statistics.paired_test(a, a + 0.01 * rng.normal(size=8), +1)
    assert noise.outcome == "undecided" and noise.reason().startswith("undecided")
    assert noise.min_detectable > abs(noise.mean_difference)


def test_paired_test_with_ties_counts_every_seed_and_says_so():
    a = np.ones(8)
    all_tied = statistics.paired_test(a, a, +1)
    assert (all_tied.num_seeds, all_tied.untied, all_tied.outcome) == (8, 0, "undecided")
    assert "all 8 paired differences are exactly zero" in all_tied.reason()
    b = a.copy()
    b[:7] += 1.0                                            # 7 up, 1 tie: p = 2⁻⁷ < 0.01
    some = statistics.paired_test(a, b, +1)
    assert (some.num_seeds, some.untied, some.positive, some.p_value) == (8, 7, 7, 0.5 ** 7)


def test_paired_test_refuses_bad_input():
    with pytest.raises(ValueError, match="direction"):
        statistics.paired_test([1.0], [2.0], 0)
    with pytest.raises(ValueError, match="equal-length"):
        statistics.paired_test([1.0, 2.0], [2.0], 1)
    with pytest.raises(ValueError, match="non-finite"):
        statistics.paired_test([1.0, np.nan], [2.0, 3.0], 1)
