"""Is this image of the kind the feature net was trained on? A classifier gives every input some class, and the
lab's nets gave a blank page, uniform noise, Gaussian noise and a checkerboard a confidence of 0.93 to 1.00. So
each feature net carries a typicality gate, and `classify` reports confidence 0 for an image the gate refuses:
such an image is never "recognisable".

The gate is the Mahalanobis detector of Lee et al. 2018 ("A simple unified framework for detecting
out-of-distribution samples"), with two statistics of an image as the net sees it:
- "layers": every convolutional layer's activations summarised by each channel's spatial mean and standard
  deviation (texture and ink: noise, checkerboards and blank pages are far from any digit here), one Gaussian
  over the training images;
- "features": the penultimate features, a Gaussian per class with a covariance shared by all classes (Lee et
  al.'s class-conditional form); the distance is to the nearest class.
Covariances are Ledoit-Wolf shrunk (the layer statistic has up to 384 dimensions, MNIST's train split 4,000
images). Each distance has a threshold: its QUANTILE quantile over held-out training images (the gate is fitted
on one half of a seeded shuffle, the thresholds read on the other, then the Gaussians refitted on all). An image is
typical when both distances are within their thresholds; about 1% of real images are not, and the fit reports
the share on the held-out half.

    python -m engines.fit_typicality checkpoints/mnist/classifier --dataset mnist

fits a shipped net's gate and writes typicality.safetensors beside its weights (the net's own weights, and so
every feature distance, stay as they were); the classifier trainer fits it at the end of training.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from engines.data.datasets import to_signed
from engines.errors import EngineError

GATE_NAME = "typicality.safetensors"
QUANTILE = 0.995     # per statistic: two statistics, so about 1% of held-out real images are refused
FIT_IMAGES = 20_000  # a seeded subsample of the train split (all of MNIST's 4,000)
STATISTICS = ("layers", "features")


@torch.no_grad()
def statistics(body: nn.Sequential, images01: torch.Tensor, batch_size: int = 500) -> dict[str, torch.Tensor]:
    """The two statistics of each image: channel means and standard deviations of every convolutional ReLU
    ("layers"), and the penultimate features ("features": the body's output)."""
    layers, features = [], []
    for chunk in images01.split(batch_size):
        h, summaries = to_signed(chunk), []
        for module in body:
            h = module(h)
            if isinstance(module, nn.ReLU) and h.dim() == 4:
                summaries += [h.mean((2, 3)), h.std((2, 3))]
        layers.append(torch.cat(summaries, 1))
        features.append(h)
    return {"layers": torch.cat(layers), "features": torch.cat(features)}


def shrunk_precision(centred: torch.Tensor) -> torch.Tensor:
    from sklearn.covariance import LedoitWolf  # fitting only: loading a gate does not need scikit-learn

    estimate = LedoitWolf(assume_centered=True).fit(centred.double().numpy())
    return torch.tensor(estimate.precision_, dtype=torch.float32)


def squared_distance(x: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distance of each row of x to the nearest of `means` [K, D]."""
    d = x[:, None, :] - means[None]
    return torch.einsum("nkd,de,nke->nk", d, precision, d).min(1).values


@dataclass
class TypicalityGate:
    """The fitted Gaussians and thresholds, by statistic name."""
    means: dict[str, torch.Tensor]
    precisions: dict[str, torch.Tensor]
    thresholds: dict[str, float]

    def distances(self, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each statistic's squared distance divided by its threshold (> 1: refused by that statistic)."""
        return {name: squared_distance(stats[name], self.means[name], self.precisions[name]) / self.thresholds[name]
                for name in STATISTICS}

    def typical(self, stats: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N] bool: within every threshold."""
        return torch.stack(list(self.distances(stats).values()), 1).max(1).values <= 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{part}.{name}": tensor for name in STATISTICS for part, tensor in (
            ("means", self.means[name]), ("precision", self.precisions[name]),
            ("threshold", torch.tensor(self.thresholds[name])))}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> TypicalityGate:
        return cls({n: state[f"means.{n}"] for n in STATISTICS}, {n: state[f"precision.{n}"] for n in STATISTICS},
                   {n: float(state[f"threshold.{n}"]) for n in STATISTICS})


def gaussians(stats: dict[str, torch.Tensor], labels: torch.Tensor, num_classes: int) -> tuple[dict, dict]:
    """Means and shrunk precisions: one Gaussian for the layer statistic, one per class (shared covariance) for
    the features."""
    means, precisions = {}, {}
    for name in STATISTICS:
        x = stats[name]
        if name == "features":
            means[name] = torch.stack([x[labels == c].mean(0) for c in range(num_classes)])
            centred = x - means[name][labels]
        else:
            means[name] = x.mean(0, keepdim=True)
            centred = x - means[name]
        precisions[name] = shrunk_precision(centred)
    return means, precisions


def fit_gate(body: nn.Sequential, images01: torch.Tensor, labels: torch.Tensor, num_classes: int,
             seed: int = 0) -> tuple[TypicalityGate, float]:
    """(the gate, the share of held-out training images it refuses). Needs every class in both halves."""
    order = torch.randperm(len(images01), generator=torch.Generator().manual_seed(seed))[:FIT_IMAGES]
    images01, labels = images01[order], labels[order]
    stats = statistics(body.eval(), images01)
    half = len(images01) // 2
    if any(set(labels[part].tolist()) != set(range(num_classes)) for part in (slice(None, half), slice(half, None))):
        raise EngineError(f"fitting a typicality gate needs images of all {num_classes} classes in each half of "
                          f"{len(images01)} training images")
    first = gaussians({n: s[:half] for n, s in stats.items()}, labels[:half], num_classes)
    held_out = {n: squared_distance(s[half:], first[0][n], first[1][n]) for n, s in stats.items()}
    thresholds = {n: float(torch.quantile(d, QUANTILE)) for n, d in held_out.items()}
    refused = float(torch.stack([held_out[n] > thresholds[n] for n in STATISTICS], 1).any(1).float().mean())
    return TypicalityGate(*gaussians(stats, labels, num_classes), thresholds), refused


def save_gate(gate: TypicalityGate, directory: Path) -> None:
    temporary = directory / (GATE_NAME + ".tmp")
    safetensors.torch.save_file({k: v.contiguous() for k, v in gate.state_dict().items()}, temporary)
    temporary.replace(directory / GATE_NAME)


def load_gate(directory: Path) -> TypicalityGate:
    path = Path(directory) / GATE_NAME
    if not path.is_file():
        raise EngineError(f"{path} is missing: a feature net needs its typicality gate; fit it with "
                          f"`python -m engines.fit_typicality {directory} --dataset <its dataset>`")
    return TypicalityGate.from_state_dict(safetensors.torch.load_file(path))


def fit_and_record(net: nn.Module, directory: Path, images01: torch.Tensor, labels: torch.Tensor,
                   command: str, test_images01: torch.Tensor | None = None) -> dict:
    """Fit the gate of `net` (a feature net, loaded from `directory`) on training images, write it, and record
    how in training_info.json (the "typicality" key: command, images, the share refused of the held-out training
    images its thresholds were read on, and of `test_images01` where given, seconds)."""
    started = time.time()
    gate, refused = fit_gate(net.body, images01, labels, net.config.num_classes)
    save_gate(gate, directory)
    record = {"command": command, "images": min(len(images01), FIT_IMAGES), "quantile": QUANTILE,
              "held_out_refused": round(refused, 4), "seconds": round(time.time() - started, 1)}
    if test_images01 is not None:
        refused_test = ~gate.typical(statistics(net.body.eval(), test_images01))
        record["test_refused"] = round(float(refused_test.float().mean()), 4)
    info_path = directory / "training_info.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        info["typicality"] = record
        temporary = info_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(info, indent=1) + "\n")
        temporary.replace(info_path)
    return record
