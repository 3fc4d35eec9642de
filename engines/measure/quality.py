"""Sample-quality metrics as functions over tensors, in the lab classifier's feature space.

Frechet distance and KID come from torchmetrics with our classifier as the custom feature extractor (the
MNIST practice; Inception features mean little on 28x28 digits). Precision and recall are the k-NN manifold
estimates of Kynkaanniemi et al. 2019 (torchmetrics has none), in the same feature space. Class coverage and
confidence use the classifier's softmax. Sharpness is the mean gradient energy of the pixels: blur lowers it,
so "blurry vs sharp" becomes a ratio to real digits.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from engines.data.datasets import load_mnist5k
from engines.models.classifier import Classifier, classify, load_classifier

CONFIDENT = 0.9
BATCH = 250  # samples per engine call when generating many


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


@torch.no_grad()
def frechet_distance(feature_net: FeatureNet, real: torch.Tensor, fake: torch.Tensor,
                     batch_size: int = 500) -> float:
    """|mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2) between the two sets' features."""
    fid = FrechetInceptionDistance(feature=feature_net, normalize=True)
    for chunk in real.split(batch_size):
        fid.update(chunk, real=True)
    for chunk in fake.split(batch_size):
        fid.update(chunk, real=False)
    return float(fid.compute())


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


def class_coverage(classes: torch.Tensor, num_classes: int = 10) -> dict:
    """Histogram of predicted classes and its entropy normalised to [0, 1] (1 = uniform, 0 = one class)."""
    counts = torch.bincount(classes, minlength=num_classes).double()
    p = counts / counts.sum()
    nonzero = p[p > 0]
    entropy = float(-(nonzero * nonzero.log()).sum() / math.log(num_classes))
    return {"histogram": [round(float(v), 4) for v in p], "normalized_entropy": round(abs(entropy), 4)}


def judge(classifier: Classifier, images: torch.Tensor) -> dict:
    """What the classifier thinks of a set of images: share recognisable, mean confidence, class spread."""
    classes, confidence, _ = classify(classifier, images)
    coverage = class_coverage(classes, classifier.config.num_classes)
    return {
        "confident_share": round(float((confidence >= CONFIDENT).float().mean()), 4),
        "mean_confidence": round(float(confidence.mean()), 4),
        "class_histogram": coverage["histogram"],
        "class_entropy": coverage["normalized_entropy"],
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


def precision_recall(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 3) -> dict:
    """Improved precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the union of balls
    around its points with radius = distance to the k-th nearest neighbour (k = 3 as in the paper).
    Precision = share of fakes inside the real manifold (fidelity); recall = share of reals inside the fake
    manifold (diversity)."""
    real_radii = _kth_neighbour_radii(real_features, k)
    fake_radii = _kth_neighbour_radii(fake_features, k)
    precision = _inside_manifold(fake_features, real_features, real_radii).double().mean()
    recall = _inside_manifold(real_features, fake_features, fake_radii).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def gradient_energy(images: torch.Tensor) -> float:
    """Mean squared finite-difference gradient (horizontal + vertical) per pixel of images in [0, 1]:
    a blurred image has less of it than a sharp one with the same content."""
    images = images.double()
    dx = images[..., :, 1:] - images[..., :, :-1]
    dy = images[..., 1:, :] - images[..., :-1, :]
    return float(dx.pow(2).mean() + dy.pow(2).mean())


def sharpness(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Gradient energy relative to real digits: 1 = as sharp as the reference, < 1 blurrier, > 1 noisier."""
    return gradient_energy(images) / gradient_energy(reference)


def generate(engine, n: int, seed: int, options: dict) -> tuple[torch.Tensor, float]:
    """n samples in batches (seed + batch index per batch), and the wall time they took."""
    start = time.perf_counter()
    chunks = [engine.sample(min(BATCH, n - i), seed=seed + i // BATCH, **options) for i in range(0, n, BATCH)]
    return torch.cat(chunks), time.perf_counter() - start


def score_samples(images: torch.Tensor) -> dict:
    """Confident share, class entropy (1 = all ten digits equally, 0 = one: collapse) and Frechet distance of
    images against the test split: the checkpoint score that training logs (short, so it fits in a JSON line)."""
    classifier = load_classifier()
    result = judge(classifier, images)
    distance = frechet_distance(classifier_features(classifier), load_mnist5k("test").images, images)
    return {"confident_share": result["confident_share"], "class_entropy": result["class_entropy"],
            "frechet_distance": round(distance, 3)}
