"""Metrics on cases with known answers."""
import pytest
import torch

from engines.measure.latent import path_smoothness, path_statistics
from engines.measure.quality import (
    FeatureNet,
    class_histogram_entropy,
    frechet_distance,
    gradient_energy,
    kernel_distance,
    precision_recall,
    sharpness,
)
from engines.models.vae import bits_per_dim, discretized_logistic_log_prob

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


def test_class_histogram_entropy_extremes():
    assert class_histogram_entropy(torch.full((100,), 3))["normalized_entropy"] == 0.0
    uniform = class_histogram_entropy(torch.arange(10).repeat(10))
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


def test_precision_recall_of_identical_sets_is_one():
    x = gaussian(500, 0.0, 0)
    assert precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}


def test_precision_recall_of_far_apart_sets_is_zero():
    assert precision_recall(gaussian(300, 0.0, 0), gaussian(300, 50.0, 1)) == {"precision": 0.0, "recall": 0.0}


def test_mode_dropping_lowers_recall_not_precision():
    # fakes cover one of two real clusters: every fake is realistic (precision 1), half the reals are missed
    real = torch.cat([gaussian(400, 0.0, 0), gaussian(400, 20.0, 1)])
    fake = gaussian(400, 0.0, 2)
    result = precision_recall(real, fake)
    assert result["precision"] > 0.95 and 0.4 < result["recall"] < 0.55


def test_k_nearest_neighbour_radii_on_a_line():
    # points 0, 1, 2, ..., 9 on a line: the 3rd neighbour is 2 away (inner points) and fakes at +0.5 are inside
    real = torch.arange(10.0).reshape(-1, 1)
    assert precision_recall(real, real + 0.5, k=3)["precision"] == 1.0
    assert precision_recall(real, real + 30.0, k=3)["precision"] == 0.0


def test_sharpness_is_one_for_the_reference_and_lower_when_blurred():
    images = (torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    blurred = torch.nn.functional.avg_pool2d(images, 3, stride=1, padding=1)
    assert sharpness(images, images) == 1.0
    assert sharpness(blurred, images) < 0.5
    assert gradient_energy(torch.full((2, 1, 8, 8), 0.3)) == 0.0


def test_a_linear_decoder_gives_an_even_straight_path():
    a, b = gaussian(5, 0.0, 0), gaussian(5, 0.0, 1)
    result = path_smoothness(lambda z: 2 * z, lambda x: x, a, b, steps=9, method="lerp")
    assert result["step_cv"] < 1e-5 and abs(result["path_length_ratio"] - 1) < 1e-5
    assert abs(result["max_step_share"] - 1 / 8) < 1e-6
    # PPL of x -> 2x along a lerp: |2 (b - a)|^2 on average over the pairs
    assert abs(result["ppl"] - float((2 * (b - a)).pow(2).sum(1).mean())) < 1e-2 * result["ppl"]


def test_a_jump_in_the_path_is_caught():
    # the image flips from one state to another half way: all change in one step
    features = torch.zeros(3, 11, 4)
    features[:, 6:] = 1.0
    result = path_statistics(features)
    assert result["max_step_share"] == 1.0 and result["path_length_ratio"] == 1.0 and result["step_cv"] > 3


def test_frechet_distance_of_features_matches_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance

    from engines.measure.quality import frechet_distance_of_features
    real, fake = gaussian(500, 0.0, 0), gaussian(400, 0.7, 1) * 1.3
    reference = FrechetInceptionDistance(feature=IDENTITY, normalize=True)
    reference.update(real, real=True)
    reference.update(fake, real=False)
    assert abs(frechet_distance_of_features(real, fake) - float(reference.compute())) < 1e-6


def test_density_and_coverage_known_answers():
    from engines.measure.quality import density_coverage
    real = gaussian(1000, 0.0, 0)
    same = density_coverage(real, gaussian(1000, 0.0, 1))
    assert 0.85 < same["density"] < 1.15 and same["coverage"] > 0.9   # same distribution: about 1 and high
    assert density_coverage(real, gaussian(500, 40.0, 1)) == {"density": 0.0, "coverage": 0.0}
    # every fake on one real point: density counts the balls around it, coverage only the reals hit
    one = density_coverage(real, real[:1].repeat(50, 1))
    assert one["coverage"] < 0.02 and one["density"] > 0
    # ten distinct fakes (plus far outliers) cover about the ten reals they sit on and their k = 5 neighbours
    collapsed = torch.cat([real[:10].repeat(99, 1), gaussian(10, 25.0, 3)])
    assert density_coverage(real, collapsed)["coverage"] < 0.1


def test_identical_sets_give_density_one_and_coverage_one():
    # Naeem et al. 2020 count a fake inside a real ball when strictly closer than its k-th neighbour (`<`): each
    # ball holds its centre and k - 1 neighbours, so k of the N fakes per ball: density N k / (k N) = 1 (with `<=`
    # it was (k + 1) / k = 1.2); each real point's ball contains itself: coverage 1
    from engines.measure.quality import density_coverage
    x = gaussian(400, 0.0, 0)
    assert density_coverage(x, x) == {"density": 1.0, "coverage": 1.0}
    assert density_coverage(x, x, k=3) == {"density": 1.0, "coverage": 1.0}


def test_half_sampling_se_of_a_mean_matches_the_analytic_se():
    from engines.measure.uncertainty import half_sample_se, mean_and_se
    x = torch.randn(2000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    _, analytic = mean_and_se(x)
    estimated = half_sample_se(lambda idx: {"mean": float(x[idx].mean())}, len(x), halves=400)["mean"]
    assert abs(estimated / analytic - 1) < 0.15, (estimated, analytic)


def test_comparisons_call_differences_within_two_standard_errors_a_tie():
    from engines.measure.uncertainty import AGREES, DISAGREES, TIE, check, combine, compare
    assert compare(1.0, 1.5, se_difference=0.3) == 0 and compare(1.0, 1.7, 0.3) == -1 and compare(2.0, 1.0, 0.1) == 1
    assert check("x lower", compare(1.0, 2.0, 0.1), expected=-1, detail="")["verdict"] == AGREES
    assert check("x lower", compare(3.0, 2.0, 0.1), expected=-1, detail="")["verdict"] == DISAGREES
    assert check("x lower", compare(2.05, 2.0, 0.1), expected=-1, detail="")["verdict"] == TIE
    assert combine([{"verdict": AGREES}] * 2) == AGREES
    assert combine([{"verdict": TIE}]) == "tie (within 2 standard errors)"
    assert combine([{"verdict": AGREES}, {"verdict": DISAGREES}, {"verdict": AGREES}]) == \
        "mixed: 2 agrees, 1 disagrees"
    assert combine([]) == "cannot say"


@pytest.mark.slow   # scores all 1,000 judging digits in both feature nets (every quality measure)
def test_share_of_real_is_one_for_the_real_test_digits_and_zero_for_blank_images():
    """The training log's bar quantity, per feature net: the real digits are their own reference; a blank page is
    no digit to the lab net. (The all-convolutional net calls it one with confidence: its global average pooling of
    a page without strokes lands on one class. One more reason no bar rests on one net alone.)"""
    from engines.data.datasets import load_lab_split
    from engines.measure.quality import score_samples
    real = load_lab_split("mnist", "test").images
    scores = score_samples(real)
    assert scores["share_of_real"] == {"lenet": 1.0, "allconv": 1.0}
    # the quality-against-compute curve's numbers: the distance in every net, with an SE; the real set against
    # itself is at 0, and the lab net's entry is the log's headline distance
    assert set(scores["frechet_by_net"]) == {"lenet", "allconv"}
    assert all(abs(d["frechet_distance"]) < 1e-3 for d in scores["frechet_by_net"].values())
    assert scores["refused_share"] < 0.05      # the gate lets real digits through...
    blank = score_samples(torch.zeros_like(real[:50]))
    assert blank["share_of_real"]["lenet"] == 0.0 and blank["refused_share"] == 1.0   # ...and refuses a blank page
    noise = score_samples(torch.rand(200, *real.shape[1:], generator=torch.Generator().manual_seed(0)))
    for net in noise["frechet_by_net"].values():
        assert net["frechet_distance"] > 10 * net["frechet_distance_se"] > 0
    assert noise["frechet_by_net"]["lenet"]["frechet_distance"] == pytest.approx(noise["frechet_distance"], abs=1e-2)
