"""What the lab's feature net sees in a handful of samples: each sample's predicted class and confidence, which
are not recognisable (confidence below the report's 0.9), and the class histogram of the set. The app draws this
over its grids, so that blur, broken strokes and a run of one class show at a glance.

A caveat the page repeats: "recognisable" means "confidently classified", not "a good sample". An input that is
no image of the dataset at all (a blank page, noise, a pattern) is refused by the net's typicality gate
(`engines.measure.typicality`): confidence 0, labelled "not a digit" (or "not an item")."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import torch

from engines.data.datasets import LAB_CLASS_NAMES
from engines.measure.quality import CONFIDENT
from engines.models.classifier import Classifier, classify, feature_nets, load_classifier

REFUSED_LABEL = {"mnist": "not a digit", "fashion": "not an item"}   # a page the typicality gate refuses
RECOGNITION_NET = "lenet"   # the lab net: the one the training logs and the sampler benchmark score in


@lru_cache(maxsize=None)
def recognition_net(dataset: str) -> Classifier:
    """The dataset's lab feature net, loaded once per process."""
    return load_classifier(feature_nets(dataset)[RECOGNITION_NET])


@dataclass(frozen=True)
class Recognition:
    """One set of samples as the feature net sees them."""
    classes: list[int]
    confidences: list[float]
    class_names: tuple[str, ...]
    refused_label: str = "not an image"

    @property
    def recognisable(self) -> list[bool]:
        return [c >= CONFIDENT for c in self.confidences]

    def label(self, i: int) -> str:
        """Sample i's short label: its class's name and the confidence, e.g. "7 0.98" (rounded down, so that a
        sample below the 0.9 bar never reads 0.90)."""
        if self.confidences[i] == 0:   # refused by the typicality gate: no class is worth showing
            return self.refused_label
        return f"{self.class_names[self.classes[i]]} {math.floor(self.confidences[i] * 100) / 100:.2f}"

    def histogram(self) -> list[tuple[str, int]]:
        """(class name, count) of the recognisable samples, the most frequent first."""
        counts = Counter(c for c, ok in zip(self.classes, self.recognisable) if ok)
        return [(self.class_names[c], n) for c, n in counts.most_common()]

    def summary(self) -> str:
        """The set in words: how many are recognisable, and the classes among them."""
        n, ok = len(self.classes), sum(self.recognisable)
        classes = ", ".join(f"{name} x{count}" for name, count in self.histogram())
        return (f"{ok} of {n} recognisable (confidence >= {CONFIDENT:g} in the {RECOGNITION_NET} net)"
                + (f": {classes}" if classes else ""))


def recognise(images: torch.Tensor, dataset: str) -> Recognition:
    """Classify samples in [0, 1] with the dataset's lab feature net."""
    classes, confidences, _ = classify(recognition_net(dataset), images)
    return Recognition([int(c) for c in classes], [round(float(c), 4) for c in confidences],
                       tuple(LAB_CLASS_NAMES[dataset]), REFUSED_LABEL.get(dataset, "not an image"))
