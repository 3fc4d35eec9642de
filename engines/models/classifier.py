"""The lab's MNIST classifier: it judges samples (class, confidence) and is the feature net for Frechet
distances, as is the practice on MNIST instead of Inception features.

A LeNet-style CNN trained on the mnist5k train split only (with random shifts of up to 2 pixels so that it
judges digits, not their exact placement). `features()` is the penultimate layer; `num_features` lets
torchmetrics use it directly as a custom feature extractor.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from engines.checkpoint import load_pretrained
from engines.data.datasets import to_signed
from engines.checkpoint import CHECKPOINTS

CLASSIFIER_DIR = CHECKPOINTS / "classifier"


@dataclass
class ClassifierConfig:
    image_channels: int = 1
    channels: int = 32
    feature_dim: int = 64
    num_classes: int = 10
    dropout: float = 0.3


class Classifier(nn.Module, PyTorchModelHubMixin):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        ch = config.channels
        self.num_features = config.feature_dim
        self.body = nn.Sequential(
            nn.Conv2d(config.image_channels, ch, 3, padding=1), nn.ReLU(),
            nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),          # 14x14
            nn.Conv2d(ch, 2 * ch, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * ch, 2 * ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 7x7
            nn.Flatten(), nn.Linear(2 * ch * 49, config.feature_dim), nn.ReLU(),
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def features(self, x01: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [N, feature_dim] of images in [0, 1]."""
        return self.body(to_signed(x01))

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        """Class logits [N, 10]."""
        return self.head(self.dropout(self.features(x01)))


def random_shift(images: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Translate each image by up to max_shift pixels (zero padding), seeded."""
    n, _, h, w = images.shape
    padded = F.pad(images, [max_shift] * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def load_classifier(directory: str | Path = CLASSIFIER_DIR) -> Classifier:
    return load_pretrained(Classifier, ClassifierConfig, directory).requires_grad_(False)


@torch.no_grad()
def classify(classifier: Classifier, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, ...]:
    """(predicted class [N], confidence = max softmax probability [N], features [N, feature_dim])."""
    classes, confidences, features = [], [], []
    for chunk in images.split(batch_size):
        f = classifier.features(chunk)
        probs = classifier.head(f).softmax(1)
        conf, cls = probs.max(1)
        classes.append(cls)
        confidences.append(conf)
        features.append(f)
    return torch.cat(classes), torch.cat(confidences), torch.cat(features)
