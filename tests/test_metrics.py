"""Metrics on cases with known answers."""
import torch

from engines.metrics import FeatureNet, class_coverage, frechet_distance, kernel_distance
from engines.vae import bits_per_dim, discretized_logistic_log_prob

IDENTITY = FeatureNet(lambda x: x, 4)  # "images" that are already 4-d feature vectors


def gaussian(n, mean, seed):
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed)) + mean


def test_frechet_distance_identical_sets_is_zero():
    x = gaussian(2000, 0.0, 0)
    assert abs(frechet_distance(IDENTITY, x, x)) < 1e-4


def test_frechet_distance_of_shifted_gaussians_is_the_analytic_value():
    # N(0, I) vs N(mu, I): FD = |mu|^2 + Tr(I + I - 2 I) = |mu|^2 = 4 * 1.5^2 = 9
    fd = frechet_distance(IDENTITY, gaussian(20000, 0.0, 0), gaussian(20000, 1.5, 1))
    assert abs(fd - 9.0) < 0.15


def test_kid_near_zero_for_same_distribution_and_positive_when_shifted():
    same, _ = kernel_distance(IDENTITY, gaussian(1000, 0.0, 0), gaussian(1000, 0.0, 1), subsets=20, subset_size=200)
    shifted, _ = kernel_distance(IDENTITY, gaussian(1000, 0.0, 0), gaussian(1000, 1.0, 1), subsets=20, subset_size=200)
    assert abs(same) < 0.05 and shifted > 0.5


def test_class_coverage_extremes():
    assert class_coverage(torch.full((100,), 3))["normalized_entropy"] == 0.0
    uniform = class_coverage(torch.arange(10).repeat(10))
    assert uniform["normalized_entropy"] == 1.0 and uniform["histogram"] == [0.1] * 10


def test_discretized_logistic_is_a_distribution_over_256_levels():
    levels = torch.linspace(-1, 1, 256)
    for loc, log_scale in ((0.0, -2.0), (0.9, -4.0), (-1.5, 0.5)):
        logp = discretized_logistic_log_prob(levels, torch.tensor(loc), torch.tensor(log_scale))
        assert abs(logp.exp().sum().item() - 1.0) < 1e-4


def test_bits_per_dim_of_a_uniform_model_is_eight():
    # a model putting 1/256 on every level of every pixel: log p = D log(1/256) -> 8 bits/dim
    dims = 784
    assert abs(bits_per_dim(torch.tensor(dims * torch.log(torch.tensor(1 / 256.0))), dims).item() - 8.0) < 1e-5
