"""The one sampling interface over the three families, and the registry that loads shipped checkpoints.

    eng = load_engine("diffusion")      # checkpoints/mnist/diffusion unless a directory is given
    x = eng.sample(16, seed=0)          # float32 [16, 1, 28, 28] in [0, 1], on CPU, bit-identical per seed

Family-specific abilities (VAE encode/decode, GAN latents, diffusion trace) are methods of each engine.
"""
from __future__ import annotations

import importlib
import json
import numbers
from pathlib import Path

import torch

from engines.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from engines.errors import EngineError

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = REPO_ROOT / "checkpoints" / "mnist"
MAX_SAMPLES = 1024  # per call: bounds memory and time on a CPU
MAX_SEED = 2**63 - 1
TRAINING_INFO_NAME = "training_info.json"
FAMILIES = {
    "vae": "engines.vae:VAEEngine",
    "gan": "engines.gan:GANEngine",
    "diffusion": "engines.diffusion:DiffusionEngine",
}


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
        raise EngineError(f"seed must be between 0 and 2**63-1, got {seed}")
    return int(seed)


def make_generator(seed) -> torch.Generator:
    """A private CPU generator per call: results depend on the seed alone, never on global RNG state or on
    other requests running at the same time."""
    return torch.Generator(device="cpu").manual_seed(check_seed(seed))


class Engine:
    """Base of the three engines. Subclasses set `family` and implement `sample`."""

    family: str = ""

    def __init__(self, model: torch.nn.Module, directory: Path):
        self.model = model.eval().requires_grad_(False)
        self.directory = Path(directory)

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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} from {self.directory}>"


def _engine_class(name: str) -> type[Engine]:
    if not isinstance(name, str) or name not in FAMILIES:
        raise EngineError(f"unknown engine {name!r}: choose one of {', '.join(FAMILIES)}")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def available_engines(root: str | Path = CHECKPOINTS) -> list[str]:
    """Names of the families with a checkpoint (config + weights) under `root`, in canonical order."""
    root = Path(root)
    return [name for name in FAMILIES
            if (root / name / CONFIG_NAME).is_file() and (root / name / WEIGHTS_NAME).is_file()]


def load_engine(name: str, directory: str | Path | None = None) -> Engine:
    """Load the `name` engine ('vae', 'gan' or 'diffusion') from `directory` or the shipped checkpoint."""
    cls = _engine_class(name)
    return cls.load(Path(directory) if directory is not None else CHECKPOINTS / name)
