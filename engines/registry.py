"""Which engines exist, and how to load one. Adding a family is one module under engines/models/ and one
line in ENGINES.

    load_engine("diffusion")                     # from checkpoints/mnist/diffusion unless a directory is given
    load_engine("gan", dataset="fashion")        # from checkpoints/fashion/gan
    available_engines()                          # the families with a checkpoint: ['vae', 'gan', 'diffusion', ...]
"""
from __future__ import annotations

from pathlib import Path

from engines.checkpoint import CHECKPOINTS, CONFIG_NAME, WEIGHTS_NAME, checkpoints_dir
from engines.engine import Engine
from engines.errors import EngineError
from engines.models.diffusion import DiffusionEngine
from engines.models.diffusion_gan import DiffusionGANEngine
from engines.models.gan import GANEngine
from engines.models.latent_diffusion import LatentDiffusionEngine
from engines.models.vae import VAEEngine

ENGINES: dict[str, type[Engine]] = {
    "vae": VAEEngine,
    "gan": GANEngine,
    "diffusion": DiffusionEngine,
    "latent_diffusion": LatentDiffusionEngine,
    "diffusion_gan": DiffusionGANEngine,
}


def available_engines(root: str | Path = CHECKPOINTS) -> list[str]:
    """Names of the families with a checkpoint (config + weights) under `root`, in canonical order."""
    root = Path(root)
    return [name for name in ENGINES
            if (root / name / CONFIG_NAME).is_file() and (root / name / WEIGHTS_NAME).is_file()]


def load_engine(name: str, directory: str | Path | None = None, dataset: str = "mnist") -> Engine:
    """Load the `name` engine ('vae', 'gan', 'diffusion', 'latent_diffusion' or 'diffusion_gan') from
    `directory`, or else the one shipped for `dataset` ('mnist' or 'fashion')."""
    if not isinstance(name, str) or name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    if directory is None:
        directory = checkpoints_dir(dataset) / name
        if not (directory / CONFIG_NAME).is_file():
            raise EngineError(f"no {name} model ships for the {dataset} dataset (nothing in {directory}); "
                              f"the ones that do: {', '.join(available_engines(directory.parent)) or 'none'}")
    return ENGINES[name].load(Path(directory))
