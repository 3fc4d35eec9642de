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
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Knob:
    """A family's fidelity-diversity knob: the sampling option that trades typical samples for varied ones,
    swept by `engines.measure.knobs` (the VAE's temperature, the GAN's truncation, guidance's scale).

    option: the keyword of the engine's `sample()` it sets.
    symbol: its name in the literature ("tau").
    values: the sweep, in the order the chart draws it; None is the option left out.
    neutral: the value that samples the model as it was trained (None: the option left out).
    folklore: what the knob is said to trade, in a phrase.
    slider: (low, high, step) of the app's slider over it. A knob whose neutral is None (the option left out)
        is left out at the slider's top, so that the slider's default samples the model as trained, bit for bit.
    unconditional: the swept value at which a conditional model is an unconditional one (guidance w = 0), to be
        scored against the unconditional parent it started from (None: none).
    """

    option: str
    symbol: str
    values: tuple
    neutral: float | None
    folklore: str
    slider: tuple[float, float, float] = (0.0, 1.0, 0.1)
    unconditional: float | None = None

    def label(self, value) -> str:
        """A swept value as the chart and the report write it ("tau = 0.8", "psi = none")."""
        return f"{self.symbol} = {'none' if value is None else f'{value:g}'}"

    def slider_default(self) -> float:
        """The slider's position for the model as trained."""
        return self.slider[1] if self.neutral is None else self.neutral

    def from_slider(self, position: float) -> float | None:
        """The option's value at a slider position (None: leave it out), or ValueError outside the slider."""
        low, high, _ = self.slider
        if not low <= position <= high:
            raise ValueError(f"{self.symbol} must be a number between {low:g} and {high:g}, got {position:g}")
        return None if self.neutral is None and position == high else position

    def slider_info(self) -> str:
        """What the slider does, in words under it."""
        trained = f"{self.slider[1]:g} = none" if self.neutral is None else f"{self.neutral:g}"
        return f"{trained}: as trained. {self.folklore[0].upper()}{self.folklore[1:]}"


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
    parents: the families a hybrid combines (empty for a family: the seed's three, flow matching).
    evaluation_options: the sampling options of its quality and speed rows in the report (and of its grid in
        the app unless `takes_sampler`).
    takes_sampler: its sampling takes the diffusion sampler and step count chosen on the command line or page.
    likelihood: the engine measures bits/dim (`Engine.likelihood`); else `no_likelihood` says why not.
    latent: the engine has a latent space to measure (`Engine.latent_space`).
    straight_path: its deterministic sampler is an ODE in pixel space on a Gaussian path, which the engine
        writes on the straight path x = (1 - s) x0 + s eps (`Engine.straight_path_trajectory`), so its
        straightness is measured (`engines.measure.straightness`).
    race_options: the sampling options of its lines in the speed race (`engines.measure.speed_race`), one line
        each, swept over step counts; empty: it is a point there, at its evaluation options.
    quality_bar: share of its samples a feature net must recognise, relative to real test images, for its card
        to call the checkpoint done (None: no bar).
    parent_options: for hybrids, the training option that names each parent's checkpoint folder
        ({"warm_start_from": "diffusion"}).
    caption: what its Side by side caption adds about how it sampled; may name its sampling options
        (" ({sampler}, the VAE's decoder)").
    own_sampler: for a family that samples with its own samplers only (not `takes_sampler`): maps a page's
        diffusion sampler and step count to its sampling options (its grid in the app follows the page's choice
        where it can).
    objective: what its training minimises, in a phrase (its cell of the report's Objective row; empty: none).
    loss_scale: the y scale of its training-loss panel in the report's figure ("log" where the loss falls by
        orders of magnitude, as the VAE's negative ELBO in nats does).
    card_targets: the target lines its model card measures (keys of `engines.measure.model_card.TARGETS`);
        each is measured against the parent that `parent_options` names (the one whose checkpoint it builds on).
    knob: its fidelity-diversity knob (`Knob`), where it has one.
    conditional: its engine's `sample()` takes `labels=`, the classes asked for (`engines.engine.class_labels`).
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
    straight_path: bool = False
    race_options: tuple[dict, ...] = ()
    quality_bar: float | None = None
    parent_options: dict = field(default_factory=dict)
    caption: str = ""
    own_sampler: Callable[[str, int], dict] | None = None
    objective: str = ""
    loss_scale: str = "linear"
    card_targets: tuple[str, ...] = ()
    knob: Knob | None = None
    conditional: bool = False

    @property
    def heading(self) -> str:
        """The title as a label or the start of a sentence ("latent diffusion" -> "Latent diffusion")."""
        return self.title[:1].upper() + self.title[1:]

    @property
    def is_hybrid(self) -> bool:
        return bool(self.parents)

    @property
    def kind(self) -> str:
        """ "hybrid" (it combines parents), "conditional" (it is asked for a class) or "family" (the seed's three,
        flow matching): the lab's rows of unconditional families compare like with like, so the conditional
        ones are listed apart."""
        return "hybrid" if self.parents else "conditional" if self.conditional else "family"

    def sampling_options(self, sampler: str, steps: int) -> dict:
        """Its sampling options when a page asks for the diffusion `sampler` at `steps` steps: those where it
        `takes_sampler`, its `own_sampler`'s mapping of them where it has one, else its `evaluation_options`."""
        if self.takes_sampler:
            return {"sampler": sampler, "steps": steps}
        return self.own_sampler(sampler, steps) if self.own_sampler else dict(self.evaluation_options)

    def trainer_class(self) -> type:
        """The trainer class named by `trainer`, imported now."""
        module, _, attribute = self.trainer.partition(":")
        return getattr(importlib.import_module(module), attribute)
