"""Sample-quality metrics as functions over tensors, in the lab classifier's feature space.

Frechet distance and KID come from torchmetrics with our classifier as the custom feature extractor (the
MNIST practice; Inception features mean little on 28x28 digits). Class coverage and confidence use the
classifier's softmax.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from engines.classifier import Classifier, classify

CONFIDENT = 0.9


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
                    subset_size: int = 500) -> tuple[float, float]:
    """KID (mean, std over subsets): unbiased MMD^2 with a cubic polynomial kernel (Binkowski et al. 2018)."""
    subset_size = min(subset_size, len(real), len(fake))
    kid = KernelInceptionDistance(feature=feature_net, normalize=True, subsets=subsets, subset_size=subset_size)
    kid.update(real, real=True)
    kid.update(fake, real=False)
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
