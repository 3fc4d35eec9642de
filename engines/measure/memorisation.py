"""Is a model copying its training images? For each sample, its nearest training image (Euclidean distance in
pixel space, as Carlini et al. 2023 measure copies), and how near that is, read against held-out real images: a
test image was never trained on, so its distance to its nearest training image is what "a new image of this
dataset" looks like. A sample nearer to a training image than almost every test image is to its own (below the
test distances' COPY_PERCENTILE-th percentile) is a possible copy; a model that does not copy has about
COPY_PERCENTILE% of its samples there, as the test images themselves do.

Pixel space, not a feature net's: a copy is near in every space, and pixels cost a matrix product against
Fashion-MNIST's 60,000 training images where the lab net's features would cost minutes of CPU at each start of
the app. A near neighbour is a look-alike until the picture beside it says it is the same image (Meehan et al.
2020 give a sharper, cell-by-cell test of the same idea).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from engines.data.datasets import load_lab_split
from engines.measure.uncertainty import exact_interval

COPY_PERCENTILE = 5   # below the test images' 5th percentile of nearest-training distances: a possible copy


@dataclass(frozen=True)
class TrainingNeighbours:
    """A dataset's training images, and the held-out test images' nearest-training distances
    (sorted), to read a sample's distance against."""
    images: torch.Tensor           # [N, 1, 28, 28] in [0, 1]
    test_distances: torch.Tensor   # [M], sorted ascending

    def percentile(self, distance: float) -> float:
        """The share of test images (in %) nearer to their nearest training image than `distance`."""
        return 100 * int(torch.searchsorted(self.test_distances, torch.tensor(distance))) / len(self.test_distances)

    @property
    def copy_distance(self) -> float:
        """The distance under which a sample counts as a possible copy (the test distances' COPY_PERCENTILE-th
        percentile)."""
        return float(torch.quantile(self.test_distances, COPY_PERCENTILE / 100))


def _nearest(images: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's nearest reference image: (Euclidean distance over pixels, index). Found through the matrix
    product (fast), then measured directly: the product's rounding would give an image a distance of about 0.03
    to itself."""
    flat, reference = images.flatten(1), reference.flatten(1)
    indices = torch.cdist(flat, reference).argmin(dim=1)
    return (flat - reference[indices]).norm(dim=1), indices


@lru_cache(maxsize=None)
def training_neighbours(dataset: str) -> TrainingNeighbours:
    """The dataset's training images and the test images' distances to them, once per process."""
    train, test = load_lab_split(dataset, "train"), load_lab_split(dataset, "test")
    test_distances, _ = _nearest(test.images, train.images)
    return TrainingNeighbours(train.images, test_distances.sort().values)


@dataclass(frozen=True)
class Neighbours:
    """Each sample's nearest training image, its distance, and where that distance falls among the test images'."""
    indices: list[int]
    distances: list[float]
    percentiles: list[float]     # % of test images nearer to their own nearest training image
    copy_distance: float

    @property
    def possible_copies(self) -> int:
        return sum(d < self.copy_distance for d in self.distances)

    def share_se(self) -> tuple[float, float]:
        """The share of possible copies and its binomial standard error."""
        n = len(self.distances)
        share = self.possible_copies / n
        return share, math.sqrt(share * (1 - share) / n)

    def summary(self) -> str:
        n, share = len(self.distances), self.possible_copies / len(self.distances)
        return (f"{self.possible_copies} of {n} samples ({share:.0%}) are nearer to a training image than "
                f"{100 - COPY_PERCENTILE}% of held-out test images are to theirs (a model that does not copy: "
                f"about {COPY_PERCENTILE}%, as the test images themselves; distances over pixels)")


def copying_record(images: torch.Tensor, dataset: str) -> dict:
    """The report's line for a set of samples: how many are possible copies, against the COPY_PERCENTILE% that
    held-out test images show, with the exact 95% interval of the share (Clopper-Pearson)."""
    neighbours, _ = nearest_training(images, dataset)
    k, n = neighbours.possible_copies, len(neighbours.distances)
    low, high = exact_interval(k, n)
    return {"possible_copies": k, "n": n, "share": round(k / n, 4), "interval": [round(low, 4), round(high, 4)],
            "copy_distance": round(neighbours.copy_distance, 4), "expected_share": COPY_PERCENTILE / 100,
            "median_distance": round(float(torch.tensor(neighbours.distances).median()), 4)}


def copying_verdict(record: dict) -> str:
    """Whether the share of possible copies differs from what new images show, read from its exact interval."""
    low, high = record["interval"]
    if low > record["expected_share"]:
        # Pixel distances are smaller among simple shapes (a 1 is near many 1s): a family that draws such a class
        # more than its share lands here without copying anything.
        return ("more often than new images are: copies, or samples crowded where training images are densest "
                "(a simple class drawn more than its share); the pairs in the GAN tab tell which")
    if high < record["expected_share"]:
        return "less often than new images are (its samples stay away from the training images)"
    return "as often as new images are, within the interval: no sign of copying"


def nearest_training(images: torch.Tensor, dataset: str) -> tuple[Neighbours, torch.Tensor]:
    """Each sample's nearest training image (the Neighbours, and those images [n, 1, 28, 28])."""
    reference = training_neighbours(dataset)
    distances, indices = _nearest(images, reference.images)
    neighbours = Neighbours([int(i) for i in indices], [round(float(d), 4) for d in distances],
                            [reference.percentile(float(d)) for d in distances], reference.copy_distance)
    return neighbours, reference.images[indices]
