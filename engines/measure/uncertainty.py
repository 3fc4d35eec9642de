"""Error bars, and what they allow a verdict to say.

Every number the report compares carries a standard error (SE), estimated in one of three ways, each stated
next to the number it belongs to:

- per-item averages (bits/dim of each test digit, the step CV of each latent path, "recognisable" of each
  sample): the SE of a mean, std / sqrt(n);
- statistics of a whole sample set: the spread over random halves drawn without replacement (half-sampling).
  For a mean of n values the variance of a random half's mean is (s^2 / (n/2)) (1 - 1/2) = s^2 / n, the
  variance of the full set's mean, so the spread of half-set statistics estimates the full set's SE without the
  duplicated points a bootstrap resample contains (duplicates shrink k-nearest-neighbour radii and bias
  precision/recall/coverage). Precision, recall, density and coverage depend on the reference set as much as on
  the samples: halves of both sets (`half_sample_se_of_both`). The Frechet distance: halves of the samples, the
  reference fixed (halving both overstates its SE, its bias grows as 1/n). A simulation on disjoint real sets
  checks both choices against the true spread (tests/test_quality_se.py): within about 15%, coverage's
  conservative (about 1.3x); halving the samples alone understated precision's and density's SEs by about 30%;
- a difference measured on the same items (two models' bits/dim of the same digits): the SE of the per-item
  differences, which removes the variation the two share.

A comparison of two numbers is decided only when their difference exceeds `TIE_SE` standard errors of the
difference; otherwise it is a tie. A verdict combines all the checks of its row (see `combine`).

Rates over a few runs (the 2-D seed study: k of n seeds collapse) are counts, not means with a normal SE:
- each rate is given as k/n with its exact 95% interval (Clopper & Pearson 1934), never "0.00 ± 0.00";
- two rates are compared by Fisher's exact test (two-sided, `ALPHA`); a difference it does not find says
  "cannot say at n seeds", with the smallest difference n seeds detect (`detectable_difference`: the power of
  that very test, by exact enumeration of every outcome of both arms);
- a claim of sameness ("as stable as", "as sharp as") agrees only when an equivalence test passes: two one-sided
  tests (Schuirmann 1987), i.e. the 90% interval of the difference inside +-margin (rates: Newcombe's 1998
  hybrid score interval from Wilson intervals, margin `RATE_MARGIN`; a mean with a normal SE: margin
  `RELATIVE_MARGIN` of the reference value).
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import torch
from scipy.stats import binom, binomtest, fisher_exact, norm

TIE_SE = 2.0            # |a - b| within 2 standard errors of the difference: a tie
HALVES = 50             # random halves for half-sampling standard errors
AGREES, DISAGREES, TIE = "agrees", "disagrees", "tie"
CANNOT_SAY = "cannot say"
DEPENDS = "depends on the feature net"   # a check whose feature nets give different verdicts
ALPHA = 0.05            # significance level of every test below (two-sided; TOST: each one-sided test)
POWER = 0.80            # the power at which `detectable_difference` states what n runs can detect
RATE_MARGIN = 0.15      # equivalence margin for two rates (absolute, in rate)
RELATIVE_MARGIN = 0.10  # equivalence margin for two means: this share of the reference value


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    """The mean of per-item values and its standard error std / sqrt(n)."""
    values = values.double().flatten()
    return float(values.mean()), float(values.std() / math.sqrt(len(values))) if len(values) > 1 else 0.0


def half_sample_se(statistic: Callable[[torch.Tensor], dict[str, float]], n: int, halves: int = HALVES,
                   seed: int = 0) -> dict[str, float]:
    """SE of each number statistic(indices of all n items) returns, from its spread over `halves` random
    halves of the items (the indices of each half are passed to statistic)."""
    generator = torch.Generator().manual_seed(seed)
    rows = [statistic(torch.randperm(n, generator=generator)[:n // 2]) for _ in range(halves)]
    return {key: float(torch.tensor([r[key] for r in rows], dtype=torch.float64).std()) for key in rows[0]}


def half_sample_se_of_both(statistic: Callable[[torch.Tensor, torch.Tensor], dict[str, float]], n_real: int,
                           n_fake: int, halves: int = HALVES, seed: int = 0) -> dict[str, float]:
    """SE of each number statistic(real indices, fake indices) returns, from its spread over `halves` random
    halves of both sets at once: the reference set's own sampling variance is counted too."""
    generator = torch.Generator().manual_seed(seed)
    rows = [statistic(torch.randperm(n_real, generator=generator)[:n_real // 2],
                      torch.randperm(n_fake, generator=generator)[:n_fake // 2]) for _ in range(halves)]
    return {key: float(torch.tensor([r[key] for r in rows], dtype=torch.float64).std()) for key in rows[0]}


def compare(a: float, b: float, se_difference: float, k: float = TIE_SE) -> int:
    """-1 if a is lower than b beyond k standard errors of their difference, +1 if higher, 0 for a tie."""
    if abs(a - b) <= k * se_difference:
        return 0
    return -1 if a < b else 1


def se_of_difference(se_a: float, se_b: float) -> float:
    """SE of a - b for independent estimates (different sample sets)."""
    return math.hypot(se_a, se_b)


def check(claim: str, outcome: int, expected: int, detail: str) -> dict:
    """One check of a folklore claim: `outcome` from `compare`, `expected` the sign the folklore predicts."""
    verdict = TIE if outcome == 0 else (AGREES if outcome == expected else DISAGREES)
    return {"claim": claim, "verdict": verdict, "detail": detail}


def combine(checks: list[dict]) -> str:
    """A row's verdict from all its checks: one word when they agree with each other, else what each said.
    A check measured in two feature nets that came out differently says "depends on the feature net"."""
    verdicts = [c["verdict"] for c in checks]
    if not verdicts:
        return "cannot say"
    if len(set(verdicts)) == 1:
        return verdicts[0] if verdicts[0] != TIE else f"tie (within {TIE_SE:g} standard errors)"
    counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
    return "mixed: " + ", ".join(f"{n} {v}" for v, n in counts.items())


def with_se(value: float, se: float | None, digits: int = 2) -> str:
    """'33.80 ± 1.20' (or the value alone when no SE was measured)."""
    return f"{value:.{digits}f}" if se is None else f"{value:.{digits}f} ± {se:.{digits}f}"


# ---------------------------------------------------------------- rates over a few runs, and sameness


def count_of(rate: float, n: int) -> int:
    """The count k behind a rate k / n stored as a share."""
    k = round(rate * n)
    if abs(k / n - rate) > 1e-9:
        raise ValueError(f"{rate} is not a share of {n} runs")
    return k


def exact_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper & Pearson 1934) interval of a binomial rate k / n: 0/20 gives 0.00-0.17."""
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def rate_text(k: int, n: int) -> str:
    """'0/20 (0.00, 95% CI 0.00-0.17)'."""
    low, high = exact_interval(k, n)
    return f"{k}/{n} ({k / n:.2f}, 95% CI {low:.2f}-{high:.2f})"


def fisher_p(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided p of Fisher's exact test that k_a of n_a and k_b of n_b come from one rate."""
    return float(fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]])[1])


@functools.lru_cache(maxsize=None)
def _fisher_rejects(n: int, alpha: float) -> np.ndarray:
    """[k_a, k_b] -> Fisher's two-sided test rejects at `alpha` and k_a > k_b (a higher rate in arm a)."""
    return np.array([[k_a > k_b and fisher_p(k_a, n, k_b, n) <= alpha for k_b in range(n + 1)]
                     for k_a in range(n + 1)])


def fisher_power(p_a: float, p_b: float, n: int, alpha: float = ALPHA) -> float:
    """The power of Fisher's test (n runs per arm) to find arm a's rate p_a higher than p_b: exact, the sum over
    every outcome (k_a, k_b) of its binomial probability where the test rejects in that direction."""
    k = np.arange(n + 1)
    return float(binom.pmf(k, n, p_a) @ _fisher_rejects(n, alpha) @ binom.pmf(k, n, p_b))


@functools.lru_cache(maxsize=None)
def detectable_difference(baseline: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The smallest rise d over the observed `baseline` rate that Fisher's test at n runs per arm finds with
    `power` (exact enumeration, on a grid of 0.001 in d); None when not even a rate of 1 would be found."""
    for d in np.arange(0.001, 1 - baseline + 1e-9, 0.001):
        if fisher_power(baseline + d, baseline, n, alpha) >= power:
            return round(float(d), 3)
    return None


def detectable_text(baseline: float, n: int) -> str:
    """What n seeds per arm can detect against `baseline`, in words."""
    d = detectable_difference(round(baseline, 6), n)
    if d is None:
        return f"at {n} seeds no rise over {baseline:.2f} is detectable with {POWER:.0%} power"
    return (f"detectable at {n} seeds with {POWER:.0%} power: {baseline + d:.2f} against {baseline:.2f}, "
            f"a difference of {d:.2f}")


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def rate_comparison(k_a: int, k_b: int, n: int, expected: int) -> tuple[str, float]:
    """(verdict, p) on "a's rate is higher (+1) / lower (-1) than b's": Fisher's exact test; "cannot say at n
    seeds" where it finds no difference."""
    p = fisher_p(k_a, n, k_b, n)
    if p > ALPHA:
        return f"{CANNOT_SAY} at {n} seeds", p
    return (AGREES if (1 if k_a > k_b else -1) == expected else DISAGREES), p


def wilson_interval(k: int, n: int, confidence: float) -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def rate_difference_interval(k_a: int, n_a: int, k_b: int, n_b: int,
                             confidence: float = 1 - 2 * ALPHA) -> tuple[float, float]:
    """Interval of p_a - p_b by Newcombe's (1998) hybrid score method (his method 10), from each rate's Wilson
    interval; at 90% it is the interval of the two one-sided tests at 5%."""
    p_a, p_b = k_a / n_a, k_b / n_b
    low_a, high_a = wilson_interval(k_a, n_a, confidence)
    low_b, high_b = wilson_interval(k_b, n_b, confidence)
    d = p_a - p_b
    return d - math.hypot(p_a - low_a, high_b - p_b), d + math.hypot(high_a - p_a, p_b - low_b)


def equivalent(interval: tuple[float, float], margin: float) -> bool:
    """Two one-sided tests (Schuirmann 1987): the difference is within +-margin when its 1 - 2 alpha interval
    lies inside (-margin, margin)."""
    return -margin < interval[0] and interval[1] < margin


def mean_difference_interval(a: float, b: float, se: float, confidence: float = 1 - 2 * ALPHA) -> tuple:
    """Normal interval of a - b with standard error `se`."""
    z = float(norm.ppf(0.5 + confidence / 2))
    return a - b - z * se, a - b + z * se


def normal_p(a: float, b: float, se: float) -> float:
    """Two-sided p of a - b = 0 under a normal SE."""
    if se <= 0:
        return 1.0 if a == b else 0.0
    return float(2 * norm.sf(abs(a - b) / se))


def sameness(is_equivalent: bool, p_difference: float, cannot: str = CANNOT_SAY) -> str:
    """A claim of sameness: agrees when the equivalence test passes, disagrees when the difference is
    significant at ALPHA (and not within the margin), else `cannot`."""
    if is_equivalent:
        return AGREES
    return DISAGREES if p_difference <= ALPHA else cannot
