"""The lab's MNIST classifiers: they judge samples (class, confidence) and are the feature nets for Frechet
distances, precision/recall and density/coverage, as is the practice on MNIST instead of Inception features.

Two architectures, trained independently on the mnist5k train split only (with random shifts of up to 2 pixels
so that they judge digits, not their exact placement), so that no verdict rests on one net's idea of a digit:
- "lenet" (checkpoints/mnist/classifier): convolutions, max pooling and a fully connected feature layer;
- "allconv" (checkpoints/mnist/classifier_allconv): strided convolutions with batch norm and global average
  pooling (Springenberg et al. 2015 style): no pooling layers, no fully connected features.
`features()` is the penultimate layer; `num_features` lets torchmetrics use it as a custom feature extractor.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from engines.checkpoint import CHECKPOINTS, checkpoints_dir, hub_metadata, load_pretrained
from engines.data.datasets import to_signed
from engines.measure.typicality import TypicalityGate, load_gate, statistics

CLASSIFIER_DIR = CHECKPOINTS / "classifier"
# The feature nets every quality number is measured in, by name (the name is the checkpoint folder).
FEATURE_NETS = {"lenet": CLASSIFIER_DIR, "allconv": CHECKPOINTS / "classifier_allconv"}
ARCHITECTURES = tuple(FEATURE_NETS)


def feature_nets(dataset: str = "mnist") -> dict[str, Path]:
    """The feature nets of a lab dataset (each dataset ships its own two, trained on its train split)."""
    root = checkpoints_dir(dataset)
    return {name: root / directory.name for name, directory in FEATURE_NETS.items()}


@dataclass
class ClassifierConfig:
    image_channels: int = 1
    channels: int = 32
    feature_dim: int = 64
    num_classes: int = 10
    dropout: float = 0.3
    architecture: str = "lenet"   # or "allconv"


def lenet_body(c: ClassifierConfig) -> nn.Sequential:
    ch = c.channels
    return nn.Sequential(
        nn.Conv2d(c.image_channels, ch, 3, padding=1), nn.ReLU(),
        nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),          # 14x14
        nn.Conv2d(ch, 2 * ch, 3, padding=1), nn.ReLU(),
        nn.Conv2d(2 * ch, 2 * ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 7x7
        nn.Flatten(), nn.Linear(2 * ch * 49, c.feature_dim), nn.ReLU(),
    )


def allconv_body(c: ClassifierConfig) -> nn.Sequential:
    ch = c.channels

    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(
        *block(c.image_channels, ch), *block(ch, ch, stride=2),                # 14x14
        *block(ch, 2 * ch), *block(2 * ch, 2 * ch, stride=2),                  # 7x7
        *block(2 * ch, c.feature_dim), nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # global average pool
    )


class Classifier(nn.Module, PyTorchModelHubMixin,
                 **hub_metadata("classifier", pipeline_tag="image-classification")):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        if config.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {config.architecture!r}: choose one of {ARCHITECTURES}")
        self.config = config
        self.num_features = config.feature_dim
        self.body = lenet_body(config) if config.architecture == "lenet" else allconv_body(config)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, config.num_classes)
        self.gate: TypicalityGate | None = None   # loaded beside the weights by load_classifier

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


def load_classifier(directory: str | Path = CLASSIFIER_DIR, gate: bool = True) -> Classifier:
    """A feature net by folder; `load_classifier(FEATURE_NETS["allconv"])` for the second one. With its
    typicality gate (`engines.measure.typicality`; refused if the folder has none) unless gate=False."""
    net = load_pretrained(Classifier, ClassifierConfig, directory).requires_grad_(False)
    net.gate = load_gate(Path(directory)) if gate else None
    return net


@torch.no_grad()
def classify(classifier: Classifier, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, ...]:
    """(predicted class [N], confidence [N], features [N, feature_dim]). The confidence is the max softmax
    probability, and 0 for an image the net's typicality gate refuses (blank pages, noise, patterns: no image of
    the kind it was trained on), so that such an image is never "recognisable"."""
    classes, confidences, features = [], [], []
    for chunk in images.split(batch_size):
        stats = statistics(classifier.body, chunk) if classifier.gate is not None else None
        f = stats["features"] if stats is not None else classifier.features(chunk)
        conf, cls = classifier.head(f).softmax(1).max(1)
        if stats is not None:
            conf = torch.where(classifier.gate.typical(stats), conf, torch.zeros_like(conf))
        classes.append(cls)
        confidences.append(conf)
        features.append(f)
    return torch.cat(classes), torch.cat(confidences), torch.cat(features)
