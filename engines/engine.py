"""The one sampling interface every family implements, and the checks its arguments go through.

    x = engine.sample(16, seed=0)       # float32 [16, 1, 28, 28] in [0, 1], on CPU, bit-identical per seed

Family-specific abilities (VAE encode/decode, GAN latents, diffusion trace) are methods of each engine;
`engines.registry` knows which engines exist and loads them.
"""
from __future__ import annotations

import json
import numbers
from pathlib import Path

import torch

from engines.checkpoint import CONFIG_NAME, TRAINING_INFO_NAME
from engines.errors import EngineError

MAX_SAMPLES = 1024  # per call: bounds memory and time on a CPU
# The one cap on seeds, for the engines, the app, its API and the commands alike: 2**31 - 1 is the range
# seeds conventionally take (numpy, JAX), and a browser's number field holds every such integer exactly
# (it cannot hold all of torch's 64-bit range).
MAX_SEED = 2**31 - 1


def check_count(n, cap: int = MAX_SAMPLES, what: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise EngineError(f"{what} must be a whole number, got {n!r}")
    if not 1 <= n <= cap:
        raise EngineError(f"{what} must be between 1 and {cap}, got {n}")
    return int(n)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise EngineError(f"seed must be a whole number, got {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise EngineError(f"seed must be between 0 and {MAX_SEED} (2**31-1), got {seed}")
    return int(seed)


def make_generator(seed) -> torch.Generator:
    """A private CPU generator per call: results depend on the seed alone, never on global RNG state or on
    other requests running at the same time."""
    return torch.Generator(device="cpu").manual_seed(check_seed(seed))


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of training step `step` of a run seeded by `seed` (its batch and noise), for the image
    trainers and the playground's alike: a run resumed at any step draws what the uninterrupted run drew."""
    # Distinct, reproducible stream per (seed, step); the multiplier keeps seeds' streams apart.
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def class_labels(n: int, labels, classes: int) -> torch.Tensor:
    """The classes a class-conditional engine asks for, as n whole numbers: `labels` None for the classes in turn
    (0, 1, ..., classes - 1, 0, ...: a grid shows every class), one class for all, or one per sample; EngineError
    for anything else."""
    if labels is None:
        return torch.arange(n) % classes
    if isinstance(labels, int) and not isinstance(labels, bool):
        labels = [labels] * n
    try:
        labels = torch.as_tensor(labels).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as e:
        raise EngineError(f"labels must be a class number or one per sample, got {labels!r}") from e
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or len(labels) != n:
        raise EngineError(f"labels must be {n} whole numbers (one per sample), got {labels.tolist()}")
    if (labels < 0).any() or (labels >= classes).any():
        raise EngineError(f"labels must be classes 0 to {classes - 1}, got {labels.tolist()}")
    return labels.long()


class AsksForClasses:
    """What every class-conditional engine shares (before its family's engine in the bases): its model's classes,
    the labels a call asks for (`class_labels`), and those it asks for when given none (each class in turn)."""

    @property
    def num_classes(self) -> int:
        return self.model.config.num_classes

    def labels_for(self, n: int, labels=None) -> torch.Tensor:
        """`labels` as a tensor of n classes, checked."""
        return class_labels(n, labels, self.num_classes)

    def asked_classes(self, n: int) -> torch.Tensor:
        return self.labels_for(n)


class Engine:
    """Base of the engines. Subclasses set `family` and implement `load` and `sample`."""

    family: str = ""

    def __init__(self, model: torch.nn.Module, directory: Path):
        self.model = model.eval().requires_grad_(False)
        self.directory = Path(directory)

    @classmethod
    def load(cls, directory: Path) -> "Engine":
        raise NotImplementedError

    @property
    def info(self) -> dict:
        training = {}
        info_path = self.directory / TRAINING_INFO_NAME
        if info_path.is_file():
            training = json.loads(info_path.read_text())
        config = json.loads((self.directory / CONFIG_NAME).read_text())
        return {
            "family": self.family,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "dataset": training.get("dataset", "unknown"),
            "training_steps": training.get("step"),
            "training_time_s": training.get("wall_time_s"),
            "hardware": training.get("hardware"),
            "command": training.get("command"),
            "config": config,
            "checkpoint": str(self.directory),
        }

    def sample(self, n: int, seed: int = 0, **options) -> torch.Tensor:
        raise NotImplementedError

    def asked_classes(self, n: int) -> torch.Tensor | None:
        """The classes `sample(n, ...)` asks for when no labels are given (a class-conditional engine: each class
        in turn), so that a score can check each sample is of the class asked; None for an unconditional one."""
        return None

    def network_evaluations(self, **sampling_options) -> int:
        """Network calls per sample when `sample` is called with the same options: the cost unit that compares
        one-pass models with iterative samplers. Every engine says its own; there is no default."""
        raise NotImplementedError(f"{type(self).__name__} does not say its network evaluations per sample")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} from {self.directory}>"
