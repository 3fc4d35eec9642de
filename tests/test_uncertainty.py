"""The statistics behind the verdicts, on cases with known answers (fast tier)."""
import numpy as np
import pytest

from engines.measure.uncertainty import (
    AGREES,
    ALPHA,
    CANNOT_SAY,
    DISAGREES,
    count_of,
    detectable_difference,
    equivalent,
    exact_interval,
    fisher_p,
    fisher_power,
    mean_difference_interval,
    normal_p,
    rate_comparison,
    rate_difference_interval,
    rate_text,
    sameness,
)


def test_clopper_pearson_of_none_in_twenty_reaches_0_1684():
    # 0 of n: the exact upper bound solves (1 - p)^n = 0.025, p = 1 - 0.025^(1/20)
    low, high = exact_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 20)) and round(high, 4) == 0.1684
    assert rate_text(0, 20) == "0/20 (0.00, 95% CI 0.00-0.17)"
    assert exact_interval(20, 20)[0] == pytest.approx(0.025 ** (1 / 20))


def test_a_rate_is_read_back_as_its_count():
    assert count_of(0.15, 20) == 3 and count_of(0.0, 20) == 0
    with pytest.raises(ValueError, match="is not a share of 20 runs"):
        count_of(0.123, 20)


def test_fisher_exact_six_of_twenty_against_one_of_twenty_is_p_0_09_so_cannot_say():
    assert fisher_p(6, 20, 1, 20) == pytest.approx(0.0915, abs=5e-4)
    assert rate_comparison(6, 1, 20, expected=+1) == (f"{CANNOT_SAY} at 20 seeds", pytest.approx(0.0915, abs=5e-4))
    verdict, p = rate_comparison(12, 1, 20, expected=+1)
    assert verdict == AGREES and p < 0.001
    assert rate_comparison(1, 12, 20, expected=+1)[0] == DISAGREES


def test_newcombes_hybrid_score_interval_matches_his_table():
    # Newcombe (1998), Statistics in Medicine 17, 873-890, method 10: 56/70 - 48/80 and 9/10 - 3/10 at 95%
    assert rate_difference_interval(56, 70, 48, 80, 0.95) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert rate_difference_interval(9, 10, 3, 10, 0.95) == pytest.approx((0.1705, 0.8090), abs=1e-4)


def test_tost_on_rates_passes_inside_the_margin_and_fails_outside():
    assert equivalent(rate_difference_interval(0, 20, 0, 20), 0.15)        # 90% CI about +-0.12
    assert equivalent(rate_difference_interval(50, 200, 52, 200), 0.15)
    interval = rate_difference_interval(5, 20, 1, 20)                    # 0.25 vs 0.05: CI +0.01 .. +0.39
    assert not equivalent(interval, 0.15)
    assert sameness(False, fisher_p(5, 20, 1, 20), "cannot say at 20 seeds") == "cannot say at 20 seeds"


def test_tost_on_means_passes_fails_and_refutes():
    # equal within 10% of 1.0 with a tight SE: equivalent; 0.78 vs 1.0 with SE 0.01: different, and said so
    assert equivalent(mean_difference_interval(0.98, 1.0, 0.01), 0.1)
    assert sameness(equivalent(mean_difference_interval(0.98, 1.0, 0.01), 0.1), normal_p(0.98, 1.0, 0.01)) == AGREES
    assert sameness(equivalent(mean_difference_interval(0.78, 1.0, 0.01), 0.1), normal_p(0.78, 1.0, 0.01)) == DISAGREES
    # a wide SE: neither equivalent nor different
    assert sameness(equivalent(mean_difference_interval(0.95, 1.0, 0.1), 0.1), normal_p(0.95, 1.0, 0.1)) == CANNOT_SAY
    low, high = mean_difference_interval(1.0, 0.0, 1.0)
    assert (low, high) == pytest.approx((1 - 1.6449, 1 + 1.6449), abs=1e-4)   # 90%: the TOST interval


def test_the_detectable_difference_is_where_fishers_power_crosses_eighty_percent():
    d = detectable_difference(0.0, 20)
    assert fisher_power(d, 0.0, 20) >= 0.8 > fisher_power(d - 0.001, 0.0, 20)
    assert 0.25 < d < 0.4                      # twenty seeds cannot detect a rate below about 0.3 against 0
    assert fisher_power(0.2, 0.2, 20) <= ALPHA / 2   # no difference: rejections upward stay within alpha / 2
    # the enumeration agrees with a simulation of the test itself
    rng = np.random.default_rng(0)
    draws = zip(rng.binomial(20, d, 600), rng.binomial(20, 0.0, 600))
    simulated = np.mean([a > b and fisher_p(a, 20, b, 20) <= ALPHA for a, b in draws])
    assert abs(simulated - fisher_power(d, 0.0, 20)) < 0.05
