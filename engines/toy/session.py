"""One visitor's playground: a distribution and a trainer per family, trained side by side and measured.

The UI keeps one `Playground` per visitor (in gr.State) and calls `train` in chunks, drawing a `snapshot`
between them; a lesson is the same object driven by a preset. Nothing here is shared between visitors.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engines.engine import check_count
from engines.errors import EngineError
from engines.toy import divergence, metrics, views
from engines.toy.distributions import ToyDistribution
from engines.toy.guidance import guided_view
from engines.toy.training import FAMILIES, ToyTrainer, make_trainer

SAMPLES = 1500             # points per family in the view and in the measurements
TEST_POINTS = 500          # held-out true points the likelihoods are measured on
VIEW_DIFFUSION_STEPS = 50  # sampler steps for the live view (the measurements use each row's own setting)
MAX_STEPS = 20_000         # per family per playground: a bound on one visitor's CPU time


@dataclass
class Snapshot:
    """What the live view draws after a chunk of training."""
    step: dict[str, int]
    samples: dict[str, torch.Tensor]
    losses: dict[str, dict[str, list[tuple[int, float]]]]
    coverage: dict[str, metrics.Coverage]
    sample_true_loglik: dict[str, float]
    extra: dict[str, object] = field(default_factory=dict)   # the family-specific pictures' data; for a GAN
    # also "gan_divergence", the latest `divergence.DivergenceView` (D* beside D, JSD, gap, V(D, G)), and
    # "gan_divergence_history", `Playground.divergence_history` so far


class Playground:
    def __init__(self, distribution: ToyDistribution, families=FAMILIES, seed: int = 0,
                 lr: dict[str, float] | float | None = None):
        if not families:
            raise EngineError("choose at least one family to train")
        self.distribution, self.seed = distribution, seed
        lrs = lr if isinstance(lr, dict) else {f: lr for f in families}
        self.trainers: dict[str, ToyTrainer] = {f: make_trainer(f, distribution, seed, lrs.get(f))
                                                for f in families}
        self.test_points = distribution.sample(TEST_POINTS, seed=seed + 1)
        self.history: dict[str, list[tuple[int, int, float]]] = {f: [] for f in families}  # step, covered, on
        # The GAN's divergence per checkpoint: (step, JSD, its SE, mean |D - D*|); and the view it came from.
        self.divergence_history: list[tuple[int, float, float, float]] = []
        # How diffusion samples in the view and the measurements: ddpm, ddim, or langevin (the learned score alone).
        self.diffusion_sampler = "ddpm"
        self._divergence: tuple[int, divergence.DivergenceView] | None = None

    def set_lr(self, lr: float) -> None:
        for trainer in self.trainers.values():
            trainer.set_lr(lr)

    def set_generator_loss(self, name: str) -> None:
        """The generator loss of every trainer here whose loss is selectable (`engines.toy.models.GENERATOR_LOSSES`;
        the diffusion GAN's is fixed)."""
        for trainer in self.trainers.values():
            if getattr(trainer, "generator_loss_selectable", False):
                trainer.set_generator_loss(name)

    def train(self, steps: int | dict[str, int], every: int = 250):
        """Train each family `steps` more steps (a dict gives each its own), yielding after every `every`
        steps of the slowest; interleaved so that the three views advance together."""
        todo = {}
        for family, trainer in self.trainers.items():
            n = steps.get(family, 0) if isinstance(steps, dict) else steps
            n = check_count(n, cap=MAX_STEPS, what=f"{family} steps") if n else 0
            if trainer.step + n > MAX_STEPS:
                raise EngineError(f"{family} has trained {trainer.step} steps; at most {MAX_STEPS} per playground: "
                                  f"reset to start again")
            todo[family] = n
        while any(todo.values()):
            for family, trainer in self.trainers.items():
                chunk = min(every, todo[family])
                if chunk:
                    trainer.train(chunk)
                    todo[family] -= chunk
            yield self.snapshot()

    def samples(self, family: str, n: int = SAMPLES, **options) -> torch.Tensor:
        if family == "diffusion":
            options.setdefault("steps", VIEW_DIFFUSION_STEPS)
            options.setdefault("sampler", self.diffusion_sampler)
        return self.trainers[family].sample(n, seed=self.seed + 2, **options)

    def add(self, family: str, trainer: ToyTrainer) -> None:
        """Add a trainer built from the others (a lesson's reflow of its flow), viewed and measured like them."""
        self.trainers[family] = trainer
        self.history.setdefault(family, [])

    def snapshot(self) -> Snapshot:
        samples = {f: self.samples(f) for f in self.trainers}
        coverage = {f: metrics.mode_coverage(self.distribution, x) for f, x in samples.items()}
        for family, c in coverage.items():
            step = self.trainers[family].step
            if not self.history[family] or self.history[family][-1][0] != step:
                self.history[family].append((step, c.covered, c.on_support))
        extra = {}
        for family, trainer in self.trainers.items():
            if family == "gan":
                extra["gan_divergence"] = self.gan_divergence()
                extra["gan_divergence_history"] = list(self.divergence_history)   # the curve under the loss
                extra["gan"] = extra["gan_divergence"].discriminator   # `views.discriminator_map`, computed once
            elif family == "vae":
                extra["vae"] = views.latent_maps(trainer.eval_model, self.test_points[:300])
            elif family == "diffusion_gan":
                extra["diffusion_gan"] = views.chain_trajectories(trainer.eval_model, seed=self.seed + 3)
            elif family == "conditional_diffusion":   # the same noise at each guidance scale, classes in turn
                extra[family] = guided_view(trainer.eval_model, seed=self.seed + 3)
            elif family in ("flow", "reflow"):
                extra[family] = views.trajectories(trainer.eval_model, seed=self.seed + 3, sampler="euler")
            elif family == "diffusion":
                # Deterministic DDIM paths, unless the samples come from Langevin: then its own (noisy) paths.
                sampler = "langevin" if self.diffusion_sampler == "langevin" else "ddim"
                extra["diffusion"] = views.trajectories(trainer.eval_model, seed=self.seed + 3, sampler=sampler)
        return Snapshot({f: t.step for f, t in self.trainers.items()}, samples,
                        {f: t.labelled_losses() for f, t in self.trainers.items()}, coverage,
                        {f: metrics.true_log_likelihood(self.distribution, x) for f, x in samples.items()}, extra)

    def gan_divergence(self) -> divergence.DivergenceView:
        """The GAN's `divergence_view` at its current step (computed once per step), recorded in the history."""
        step = self.trainers["gan"].step
        if self._divergence is None or self._divergence[0] != step:
            # seed + 2, the live samples' seed: fixed across checkpoints, and no seed a playground does not use already
            view = divergence.divergence_view(self.distribution, self.trainers["gan"].eval_model, seed=self.seed + 2)
            self._divergence = step, view
            self.divergence_history.append((step, view.jsd, view.jsd_se, view.gap))
        return self._divergence[1]

    def measure(self, rows: dict[str, tuple[str, dict]] | None = None) -> dict:
        """Numbers per row (a family, or a family with sampler options, e.g. diffusion at 5 steps):
        coverage, on-support share, true log-likelihood of its samples, their energy distance to fresh true
        points, and its own log-likelihood of the held-out data where it has one. `data_true_loglik` is the
        truth's own (minus the entropy)."""
        rows = rows or {f: (f, {"steps": None} if f == "diffusion" else {}) for f in self.trainers}
        out = {"data_true_loglik": metrics.true_log_likelihood(self.distribution, self.test_points), "rows": {}}
        truth = self.distribution.sample(SAMPLES, seed=self.seed + 4)   # fresh true points for the energy distance
        likelihoods = {}
        for label, (family, options) in rows.items():
            x = self.samples(family, **options)
            cov = metrics.mode_coverage(self.distribution, x)
            row = {"family": family, "step": self.trainers[family].step, "modes_covered": cov.covered,
                   "n_modes": cov.n_modes, "on_support": cov.on_support,
                   "sample_true_loglik": metrics.true_log_likelihood(self.distribution, x),
                   "energy": round(metrics.energy_distance(x, truth), 5)}
            if family not in likelihoods:
                likelihoods[family] = self._model_likelihoods(family)
            row.update(likelihoods[family])
            out["rows"][label] = row
        out["coverage_history"] = {f: list(h) for f, h in self.history.items()}
        if "gan" in self.trainers:
            out["gan_divergence"] = self.gan_divergence().numbers()
            out["divergence_history"] = list(self.divergence_history)
        return out

    def _model_likelihoods(self, family: str) -> dict:
        model = self.trainers[family].eval_model
        if family == "vae":
            return {"elbo": metrics.vae_elbo(model, self.test_points, seed=self.seed),
                    "model_loglik": metrics.vae_log_likelihood(model, self.test_points)}
        if family == "diffusion":
            return {"model_loglik": metrics.diffusion_log_likelihood(model, self.test_points)}
        return {}   # a GAN has no likelihood
