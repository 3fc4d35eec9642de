"""Error bars, and what they allow a verdict to say.

Every number the report compares carries a standard error (SE), estimated in one of three ways, each stated
next to the number it belongs to:

- per-item averages (bits/dim of each test digit, the step CV of each latent path, "recognisable" of each
  sample): the SE of a mean, std / sqrt(n);
- statistics of a whole sample set (Frechet distance, precision, recall, density, coverage, sharpness): the
  spread over random halves of the set drawn without replacement (half-sampling). For a mean of n values the
  variance of a random half's mean is (s^2 / (n/2)) (1 - 1/2) = s^2 / n, the variance of the full set's mean, so
  the spread of half-set statistics estimates the full set's SE without the duplicated points a bootstrap
  resample contains (duplicates shrink k-nearest-neighbour radii and bias precision/recall/coverage);
- a difference measured on the same items (two models' bits/dim of the same digits): the SE of the per-item
  differences, which removes the variation the two share.

A comparison of two numbers is decided only when their difference exceeds `TIE_SE` standard errors of the
difference; otherwise it is a tie. A verdict combines all the checks of its row (see `combine`).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

TIE_SE = 2.0            # |a - b| within 2 standard errors of the difference: a tie
HALVES = 50             # random halves for half-sampling standard errors
AGREES, DISAGREES, TIE = "agrees", "disagrees", "tie"


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


def compare(a: float, b: float, se_difference: float, k: float = TIE_SE) -> int:
    """-1 if a is lower than b beyond k standard errors of their difference, +1 if higher, 0 for a tie."""
    if abs(a - b) <= k * se_difference:
        return 0
    return -1 if a < b else 1


def se_of_difference(se_a: float, se_b: float) -> float:
    """SE of a - b for independent estimates (different sample sets)."""
    return math.hypot(se_a, se_b)


def pooled_rate_se(p_a: float, p_b: float, n_a: int, n_b: int) -> float:
    """SE of the difference of two rates (shares of n_a and n_b independent runs) under the hypothesis that they
    are equal: sqrt(p (1 - p) (1/n_a + 1/n_b)) with the pooled p (the two-proportion z-test). Unlike each
    rate's own sqrt(p (1 - p) / n), it is not 0 when one rate is 0 or 1."""
    pooled = (p_a * n_a + p_b * n_b) / (n_a + n_b)
    return math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))


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
