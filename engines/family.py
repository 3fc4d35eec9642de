"""What the lab knows about a model family, in one record (timm's `_registry.py` pattern).

Each family's model module ends with its record, next to the engine it describes:

    FAMILY = Family(name="vae", title="VAE", engine=VAEEngine, trainer="engines.training.vae:VAETrainer",
                    colour="tab:blue", description="Convolutional VAE: ...", likelihood=True, latent=True)

and `engines.registry` lists the records, one line each. Everything that lists, measures, draws or documents
families (the app, evaluation, verdicts, model cards, the report, training) loops over `registry.FAMILIES` and
asks the record or the engine; nothing outside a family's own files branches on its name.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Family:
    """One model family (or a hybrid of two) of the lab.

    name: the key everywhere (checkpoint folder `checkpoints/<dataset>/<name>`, `load_engine(name)`, report.json).
    title: how pages and reports call it ("latent diffusion").
    engine: the `Engine` subclass that loads its checkpoint and samples.
    trainer: "module:Class" of its trainer, imported on first use (training pulls in accelerate; sampling must
        not).
    colour: its matplotlib colour in every chart.
    description: the first paragraph of its model card.
    parents: the families a hybrid combines (empty for the three families of the seed).
    evaluation_options: the sampling options of its quality and speed rows in the report (and of its grid in
        the app unless `takes_sampler`).
    takes_sampler: its sampling takes the diffusion sampler and step count chosen on the command line or page.
    likelihood: the engine measures bits/dim (`Engine.likelihood`); else `no_likelihood` says why not.
    latent: the engine has a latent space to measure (`Engine.latent_space`).
    quality_bar: share of its samples a feature net must recognise, relative to real test images, for its card
        to call the checkpoint done (None: no bar).
    parent_options: for hybrids, the training option that names each parent's checkpoint folder
        ({"warm_start_from": "diffusion"}).
    caption: what its Side by side caption adds about how it sampled.
    """

    name: str
    title: str
    engine: type
    trainer: str
    colour: str
    description: str
    parents: tuple[str, ...] = ()
    evaluation_options: dict = field(default_factory=dict)
    takes_sampler: bool = False
    likelihood: bool = False
    no_likelihood: str = ""
    latent: bool = False
    quality_bar: float | None = None
    parent_options: dict = field(default_factory=dict)
    caption: str = ""

    @property
    def is_hybrid(self) -> bool:
        return bool(self.parents)

    @property
    def kind(self) -> str:
        return "hybrid" if self.parents else "family"

    def trainer_class(self) -> type:
        """The trainer class named by `trainer`, imported now."""
        module, _, attribute = self.trainer.partition(":")
        return getattr(importlib.import_module(module), attribute)
