"""Sample-quality metrics as functions over tensors, in a classifier's feature space.

The feature nets are the lab's own MNIST classifiers (the MNIST practice; Inception features mean little on
28x28 digits): every set-level metric is measured in the features of each of them (`FEATURE_NETS`). Frechet
distance: the closed form between Gaussians fitted to the two feature sets (computed as torchmetrics' FID
does, from features we extract once). KID from torchmetrics. Precision and recall: the k-NN manifolds of
Kynkaanniemi et al. 2019; density and coverage: Naeem et al. 2020 (k-NN balls around the *real* samples only).
"Recognisable" and the class-histogram entropy use the classifier's softmax. Sharpness is the mean gradient
energy of the pixels: blur lowers it, so "blurry vs sharp" becomes a ratio to real digits.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import nn
from torchmetrics.image.kid import KernelInceptionDistance

from engines.checkpoint import WEIGHTS_NAME
from engines.data.datasets import load_lab_split
from engines.measure.uncertainty import half_sample_se, half_sample_se_of_both, mean_and_se
from engines.models.classifier import Classifier, classify, feature_nets, load_classifier

CONFIDENT = 0.9
BATCH = 250  # samples per engine call when generating many
PRECISION_RECALL_K = 3    # Kynkaanniemi et al. 2019's k
DENSITY_COVERAGE_K = 5    # Naeem et al. 2020's k


class FeatureNet(nn.Module):
    """Adapter giving torchmetrics what it needs: forward(images) -> features, and `num_features`."""

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor], num_features: int):
        super().__init__()
        self.extract = features
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extract(x)


def classifier_features(classifier: Classifier) -> FeatureNet:
    return FeatureNet(classifier.features, classifier.num_features)


def given_features(num_features: int) -> FeatureNet:
    """For torchmetrics, features already extracted: passed through as they are (no second forward pass)."""
    return FeatureNet(nn.Identity(), num_features)


def frechet_distance_of_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """|mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2) between Gaussians fitted to two feature sets
    [N, F] (float64; the trace of the square root from the eigenvalues of S_r S_f, as torchmetrics does)."""
    real, fake = real.double(), fake.double()
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = torch.cov(real.T), torch.cov(fake.T)
    sqrt_trace = torch.linalg.eigvals(cov_r @ cov_f).sqrt().real.sum()
    return float((mu_r - mu_f).square().sum() + cov_r.trace() + cov_f.trace() - 2 * sqrt_trace)


@torch.no_grad()
def features_of(feature_net: FeatureNet, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """feature_net's features of images [N, ...] -> [N, F], in chunks."""
    return torch.cat([feature_net(chunk) for chunk in images.split(batch_size)])


def frechet_distance(feature_net: FeatureNet, real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between two image sets in feature_net's features."""
    return frechet_distance_of_features(features_of(feature_net, real), features_of(feature_net, fake))


@torch.no_grad()
def kernel_distance(feature_net: FeatureNet, real: torch.Tensor, fake: torch.Tensor, subsets: int = 50,
                    subset_size: int = 500, seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over subsets): unbiased MMD^2 with a cubic polynomial kernel (Binkowski et al. 2018).
    The random subsets come from torch's global generator: seeded here, and its state restored after."""
    subset_size = min(subset_size, len(real), len(fake))
    kid = KernelInceptionDistance(feature=feature_net, normalize=True, subsets=subsets, subset_size=subset_size)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return float(mean), float(std)


def class_histogram_entropy(classes: torch.Tensor, num_classes: int = 10) -> dict:
    """Histogram of predicted classes and its entropy normalised to [0, 1] (1 = uniform, 0 = one class; 0 and an
    all-zero histogram for no images). (Not Naeem et al.'s coverage, which is `density_coverage`.)"""
    counts = torch.bincount(classes, minlength=num_classes).double()
    if counts.sum() == 0:
        return {"histogram": [0.0] * num_classes, "normalized_entropy": 0.0}
    p = counts / counts.sum()
    nonzero = p[p > 0]
    entropy = float(-(nonzero * nonzero.log()).sum() / math.log(num_classes))
    return {"histogram": [round(float(v), 4) for v in p], "normalized_entropy": round(abs(entropy), 4)}


def judge(classifier: Classifier, images: torch.Tensor) -> dict:
    """What the classifier thinks of a set of images: share recognisable, mean confidence, class spread."""
    classes, confidence, _ = classify(classifier, images)
    return judge_predictions(classes, confidence, classifier.config.num_classes)


def judge_predictions(classes: torch.Tensor, confidence: torch.Tensor, num_classes: int) -> dict:
    """`judge` from predictions already made (classes and confidences of one `classify` call). The class histogram
    and its entropy count only the images the net's typicality gate accepts (`classify` gives a refused one
    confidence 0): a blank page or noise has an argmax but no class, and counting it would paint a model that
    draws noise as one that draws a class; `refused_share` says how many were left out."""
    accepted = confidence > 0
    spread = class_histogram_entropy(classes[accepted], num_classes)
    return {
        "confident_share": round(float((confidence >= CONFIDENT).float().mean()), 4),
        "mean_confidence": round(float(confidence.mean()), 4),
        "refused_share": round(float((~accepted).float().mean()), 4),
        "class_histogram": spread["histogram"],
        "class_entropy": spread["normalized_entropy"],
    }


def _kth_neighbour_radii(features: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    radii = []
    for block in features.split(chunk):
        d = torch.cdist(block.double(), features.double())
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the smallest distance is the point itself (0)
    return torch.cat(radii)


def _inside_manifold(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
                     chunk: int = 1024) -> torch.Tensor:
    """For each point: is it within the k-NN ball of at least one centre?"""
    inside = []
    for block in points.split(chunk):
        d = torch.cdist(block.double(), centres.double())
        inside.append((d <= radii[None]).any(dim=1))
    return torch.cat(inside)


def precision_recall(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = PRECISION_RECALL_K,
                     real_radii: torch.Tensor | None = None) -> dict:
    """Improved precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the union of balls
    around its points with radius = distance to the k-th nearest neighbour (k = 3 as in the paper).
    Precision = share of fakes inside the real manifold (fidelity); recall = share of reals inside the fake
    manifold (diversity). `real_radii`: the real set's k-NN radii where the caller has them (they depend on the
    real set alone, so a half-sampling loop over the fakes computes them once)."""
    if real_radii is None:
        real_radii = _kth_neighbour_radii(real_features, k)
    fake_radii = _kth_neighbour_radii(fake_features, k)
    precision = _inside_manifold(fake_features, real_features, real_radii).double().mean()
    recall = _inside_manifold(real_features, fake_features, fake_radii).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = DENSITY_COVERAGE_K,
                     real_radii: torch.Tensor | None = None) -> dict:
    """Density and coverage (Naeem et al. 2020), from k-NN balls around the real samples only (k = 5 as in the
    paper). Density = (1 / kM) sum over fakes of the number of real balls containing it (about 1 when fakes are
    distributed like reals; above 1 where they crowd into dense regions); coverage = share of real samples whose
    ball contains at least one fake (diversity that, unlike recall, outliers among the fakes cannot inflate).
    `real_radii`: as in `precision_recall`."""
    radii = _kth_neighbour_radii(real_features, k) if real_radii is None else real_radii
    inside = []
    for block, block_radii in zip(real_features.split(1024), radii.split(1024)):
        # Strictly inside, as Naeem et al.'s code (`<`): each ball then holds its centre and k - 1 neighbours, so
        # identical sets give density 1 (with `<=`, (k + 1) / k) and coverage 1 (each real ball holds itself).
        # Distances from the real points, blocked as their radii are, so that a fake equal to a real neighbour
        # is at that neighbour's distance to the last bit (cdist is not bitwise symmetric).
        inside.append(torch.cdist(block.double(), fake_features.double()) < block_radii[:, None])
    inside = torch.cat(inside)                      # [reals, fakes]
    return {"density": float(inside.double().sum() / (k * len(fake_features))),
            "coverage": float(inside.any(dim=1).double().mean())}


def gradient_energies(images: torch.Tensor) -> torch.Tensor:
    """Mean squared finite-difference gradient (horizontal + vertical) of each image in [0, 1], [N]:
    a blurred image has less of it than a sharp one with the same content."""
    images = images.double()
    dx = (images[..., :, 1:] - images[..., :, :-1]).pow(2).flatten(1).mean(1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).pow(2).flatten(1).mean(1)
    return dx + dy


def gradient_energy(images: torch.Tensor) -> float:
    return float(gradient_energies(images).mean())


def sharpness(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Gradient energy relative to real digits: 1 = as sharp as the reference, < 1 blurrier, > 1 noisier."""
    return gradient_energy(images) / gradient_energy(reference)


def set_metrics(real_features: torch.Tensor, fake_features: torch.Tensor,
                real_radii: dict[int, torch.Tensor] | None = None) -> dict[str, float]:
    """The metrics of a generated set against the real one that need the whole set: Frechet distance,
    precision/recall and density/coverage. `real_radii`: `real_set_radii(real_features)`, where computed once."""
    real_radii = real_radii or real_set_radii(real_features)
    return {"frechet_distance": frechet_distance_of_features(real_features, fake_features),
            **precision_recall(real_features, fake_features, real_radii=real_radii[PRECISION_RECALL_K]),
            **density_coverage(real_features, fake_features, real_radii=real_radii[DENSITY_COVERAGE_K])}


def real_set_radii(real_features: torch.Tensor) -> dict[int, torch.Tensor]:
    """The real set's k-NN radii for precision/recall's k and density/coverage's k."""
    return {k: _kth_neighbour_radii(real_features, k) for k in (PRECISION_RECALL_K, DENSITY_COVERAGE_K)}


def neighbour_metrics(real_features: torch.Tensor, fake_features: torch.Tensor) -> dict[str, float]:
    """Precision/recall and density/coverage, the real set's radii computed from `real_features` itself."""
    radii = real_set_radii(real_features)
    return {**precision_recall(real_features, fake_features, real_radii=radii[PRECISION_RECALL_K]),
            **density_coverage(real_features, fake_features, real_radii=radii[DENSITY_COVERAGE_K])}


def set_metric_ses(real_features: torch.Tensor, fake_features: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """The SEs of `set_metrics` (engines/measure/uncertainty.py says why each way, and a simulation test checks
    them): the Frechet distance from halves of the samples, the neighbour metrics from halves of both sets."""
    frechet = half_sample_se(
        lambda idx: {"frechet_distance": frechet_distance_of_features(real_features, fake_features[idx])},
        len(fake_features), seed=seed)
    neighbours = half_sample_se_of_both(
        lambda real_idx, fake_idx: neighbour_metrics(real_features[real_idx], fake_features[fake_idx]),
        len(real_features), len(fake_features), seed=seed)
    return {**frechet, **neighbours}


def scores_in_features(real_features: torch.Tensor, fake_features: torch.Tensor,
                       fake_confidence: torch.Tensor, seed: int = 0) -> dict:
    """Everything measured in one feature net, each number with its standard error (`set_metric_ses`), the
    recognisable share as a mean of 0/1 per sample."""
    radii = real_set_radii(real_features)
    out = {k: round(v, 4) for k, v in set_metrics(real_features, fake_features, radii).items()}
    out.update({f"{k}_se": round(v, 4) for k, v in set_metric_ses(real_features, fake_features, seed).items()})
    share, share_se = mean_and_se((fake_confidence >= CONFIDENT).double())
    out.update(confident_share=round(share, 4), confident_share_se=round(share_se, 4))
    return out


def sharpness_with_se(images: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """Sharpness (gradient energy relative to the reference set) and its SE over the images."""
    return mean_and_se(gradient_energies(images) / gradient_energy(reference))


def generate(engine, n: int, seed: int, options: dict) -> tuple[torch.Tensor, float]:
    """n samples in batches (seed + batch index per batch), and the wall time they took."""
    start = time.perf_counter()
    chunks = [engine.sample(min(BATCH, n - i), seed=seed + i // BATCH, **options) for i in range(0, n, BATCH)]
    return torch.cat(chunks), time.perf_counter() - start


def score_samples(images: torch.Tensor, dataset: str = "mnist") -> dict:
    """Confident share, class entropy (1 = all ten classes equally, 0 = one: collapse) and Frechet distance of
    images against the lab dataset's test split, in its lab net's features: the checkpoint score that training
    logs (short, so it fits in a JSON line), with the share the net's typicality gate refused as no image at all
    (a refused page never counts as recognisable). `share_of_real` is what the model cards' quality bars check,
    in every feature net shipped for the dataset: the share recognised with confidence >= 0.9 over the real test
    digits' share (one net's score alone can mislead: the bars must hold in both)."""
    classifier = load_classifier(feature_nets(dataset)["lenet"])
    result = judge(classifier, images)
    reference = load_lab_split(dataset, "test").images
    distance = frechet_distance(classifier_features(classifier), reference, images)
    return {"confident_share": result["confident_share"], "class_entropy": result["class_entropy"],
            "refused_share": result["refused_share"],
            "frechet_distance": round(distance, 3), "share_of_real": shares_of_real(images, reference, dataset),
            "frechet_by_net": frechet_in_every_net(images, reference, dataset)}


def frechet_with_se(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """The Frechet distance between two feature sets and its SE from halves of the fake set."""
    se = half_sample_se(lambda idx: {"d": frechet_distance_of_features(real, fake[idx])}, len(fake))["d"]
    return {"frechet_distance": round(frechet_distance_of_features(real, fake), 4), "frechet_distance_se": round(se, 4)}


def frechet_in_every_net(images: torch.Tensor, reference: torch.Tensor, dataset: str) -> dict[str, dict]:
    """Per shipped feature net: the Frechet distance of images to the reference set and its SE (from halves of
    the images, as the report's): what a training run's quality-against-compute curve plots."""
    out = {}
    for name, directory in feature_nets(dataset).items():
        if (directory / WEIGHTS_NAME).is_file():
            features = classifier_features(load_classifier(directory))
            out[name] = frechet_with_se(features_of(features, reference), features_of(features, images))
    return out


def shares_of_real(images: torch.Tensor, reference: torch.Tensor, dataset: str) -> dict[str, float]:
    """Per shipped feature net: share of images recognised (confidence >= 0.9) / the reference digits' share."""
    shares = {}
    for name, directory in feature_nets(dataset).items():
        if (directory / WEIGHTS_NAME).is_file():   # a dataset being set up may lack its second net yet
            net = load_classifier(directory)
            shares[name] = round(judge(net, images)["confident_share"] / judge(net, reference)["confident_share"], 4)
    return shares
