"""Which families exist, and how to load one. A family is one record (`engines.family.Family`, defined at the
end of its model module) and one line in FAMILIES below; everything that lists families reads FAMILIES.

    load_engine("diffusion")                     # from checkpoints/mnist/diffusion unless a directory is given
    load_engine("gan", dataset="fashion")        # from checkpoints/fashion/gan
    available_engines()                          # the families with a checkpoint: ['vae', 'gan', 'diffusion', ...]
"""
from __future__ import annotations

import importlib
from pathlib import Path

from engines.checkpoint import CHECKPOINTS, CONFIG_NAME, WEIGHTS_NAME, checkpoints_dir
from engines.engine import Engine
from engines.errors import EngineError
from engines.family import Family

# The modules whose records make the lab's families, one line each, in canonical order (the order of every table,
# chart and grid): the seed's three, flow matching, the hybrids, then the conditional families (asked for a
# class). Adding a family: its model module ends with
# `FAMILY = Family(...)`; add its line here.
FAMILY_MODULES = (
    "engines.models.vae",
    "engines.models.gan",
    "engines.models.diffusion",
    "engines.models.flow",
    "engines.models.reflow",
    "engines.models.latent_diffusion",
    "engines.models.diffusion_gan",
    "engines.models.conditional_vae",
    "engines.models.conditional_gan",
    "engines.models.conditional_diffusion",
)
# Families in training for their first shipped checkpoint, one line each: `python -m engines.train` trains them
# and `load_engine(name, directory)` loads a run's folder, but the lab's pages, reports and tests of shipped models
# do not list them yet. When its checkpoints ship, a family's line moves up into FAMILY_MODULES.
STAGED_MODULES: tuple[str, ...] = ()
FAMILIES: dict[str, Family] = {}
STAGED: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a family to the registry (a test's throwaway family uses this too); its name must be new."""
    if family.name in FAMILIES:
        raise EngineError(f"a family named {family.name!r} is already registered")
    unknown = [p for p in family.parents if p not in FAMILIES]
    if unknown:
        raise EngineError(f"{family.name}: register its parents first ({', '.join(unknown)})")
    FAMILIES[family.name] = family
    return family


for _module in FAMILY_MODULES:
    register_family(importlib.import_module(_module).FAMILY)
for _module in STAGED_MODULES:
    _staged = importlib.import_module(_module).FAMILY
    STAGED[_staged.name] = _staged


def families(kind: str | None = None) -> list[Family]:
    """The registered families in canonical order; kind "family" (the seed's three, flow matching), "hybrid"
    or "conditional" filters."""
    return [f for f in FAMILIES.values() if kind is None or f.kind == kind]


def family(name: str) -> Family:
    """The record of family `name` (a staged one too), or a clear error naming the lab's families."""
    if isinstance(name, str) and name in STAGED and name not in FAMILIES:
        return STAGED[name]
    if not isinstance(name, str) or name not in FAMILIES:
        raise EngineError(f"unknown engine {name!r}: choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def available_engines(root: str | Path = CHECKPOINTS) -> list[str]:
    """Names of the families with a checkpoint (config + weights) under `root`, in canonical order."""
    root = Path(root)
    return [name for name in FAMILIES
            if (root / name / CONFIG_NAME).is_file() and (root / name / WEIGHTS_NAME).is_file()]


def load_engine(name: str, directory: str | Path | None = None, dataset: str = "mnist") -> Engine:
    """Load the engine of family `name` (a key of FAMILIES) from `directory`, or else the one shipped for
    `dataset` ('mnist' or 'fashion')."""
    engine_class = family(name).engine
    if directory is None:
        directory = checkpoints_dir(dataset) / name
        if not (directory / CONFIG_NAME).is_file():
            raise EngineError(f"no {name} model ships for the {dataset} dataset (nothing in {directory}); "
                              f"the ones that do: {', '.join(available_engines(directory.parent)) or 'none'}")
    return engine_class.load(Path(directory))
