"""The report's standard errors of the set metrics, checked against the truth in a simulation: many disjoint
pairs of real Fashion-MNIST training sets in the allconv net's features (a reference of 1,000 and a "model" of
1,000 whose features are scaled by 1.1, a bias every pair shares), so the true spread of each metric across
pairs is known."""
import pytest
import torch

from engines.data.datasets import load_lab_split
from engines.measure.quality import real_set_radii, set_metric_ses, set_metrics
from engines.measure.uncertainty import half_sample_se
from engines.models.classifier import feature_nets, load_classifier

pytestmark = pytest.mark.slow
SET = 1000
PAIRS = 20        # the true SD from 20 pairs is known to about +-16%
ESTIMATED = 8     # pairs on which the estimators run (each costs 50 halves)


@pytest.fixture(scope="module")
def pairs():
    train = load_lab_split("fashion", "train").images
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:2 * SET * PAIRS]
    net = load_classifier(feature_nets("fashion")["allconv"], gate=False)
    with torch.no_grad():
        features = torch.cat([net.features(chunk) for chunk in train[order].split(1000)])
    return [(features[2 * p * SET:(2 * p + 1) * SET], 1.1 * features[(2 * p + 1) * SET:(2 * p + 2) * SET])
            for p in range(PAIRS)]


def true_and_estimated(pairs, estimator) -> dict[str, tuple[float, float]]:
    values = [set_metrics(real, fake) for real, fake in pairs]
    estimates = [estimator(real, fake, seed) for seed, (real, fake) in enumerate(pairs[:ESTIMATED])]
    return {key: (float(torch.tensor([v[key] for v in values], dtype=torch.float64).std()),
                  float(torch.tensor([e[key] for e in estimates], dtype=torch.float64).mean()))
            for key in estimates[0]}


def test_the_reports_standard_errors_match_the_true_spread_across_independent_sets(pairs):
    for key, (true_sd, estimated_se) in true_and_estimated(pairs, set_metric_ses).items():
        # Coverage's comes out conservative (about 1.3x here): it grows with n less simply than a mean.
        assert 0.75 < estimated_se / true_sd < 1.4, (key, true_sd, estimated_se)


def test_halving_the_samples_alone_understates_the_neighbour_metrics_errors(pairs):
    """Why the neighbour metrics halve both sets: with the reference fixed, their SEs come out too small."""
    def samples_only(real, fake, seed):
        radii = real_set_radii(real)
        return half_sample_se(lambda idx: set_metrics(real, fake[idx], radii), len(fake), seed=seed)
    ratios = {key: estimated / true for key, (true, estimated) in true_and_estimated(pairs, samples_only).items()}
    assert max(ratios["precision"], ratios["density"]) < 0.85, ratios
