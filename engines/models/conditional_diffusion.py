"""Class-conditional diffusion with classifier-free guidance (Ho & Salimans 2022): ask for a 7.

The diffusion model's UNet with a class embedding added to its time embedding (as the diffusion GAN adds its z):

    eps_theta(x_t, t, y),   y in {0, ..., 9} or "none" (the extra, null class)

Training is DDPM's simple loss with the label replaced by "none" for a share `label_dropout` of the images (Ho &
Salimans' p_uncond, Algorithm 1), so that one network learns both the conditional and the unconditional noise
prediction. Sampling mixes the two at each step with a guidance scale w (`engines.sampling.guidance`): w = 0 is
the unconditional model, w = 1 the conditional one, larger w samples more typical of their class and less
varied. Every sampler of the diffusion model works unchanged (ours and diffusers'): guidance only changes the
network the sampler calls.

The class embedding starts at zero, so a model warm-started from the shipped unconditional diffusion model
predicts exactly what that model predicts, for every label, until training teaches it the classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engines.checkpoint import hub_metadata, load_pretrained
from engines.data.datasets import from_signed
from engines.engine import AsksForClasses, check_count
from engines.errors import EngineError
from engines.family import Family, Knob
from engines.models.diffusion import DiffusionConfig, DiffusionEngine, DiffusionModel
from engines.sampling.guidance import GuidedDenoiser, GuidedStep
from engines.sampling.samplers import run

DEFAULT_GUIDANCE = 1.0   # the conditional model as trained; the knob's sweep says what larger w buys and costs


@dataclass
class ConditionalDiffusionConfig(DiffusionConfig):
    """The diffusion model's fields plus the classes it is conditioned on."""
    num_classes: int = 10


class ConditionalDiffusionModel(DiffusionModel, **hub_metadata("diffusion", "class-conditional",
                                                                "classifier-free-guidance")):
    """The noise-prediction network, told the class: eps_theta(x_t, t, y); y None is the null class."""

    def __init__(self, config: ConditionalDiffusionConfig):
        super().__init__(config)
        self.class_embedding = nn.Embedding(config.num_classes + 1, 4 * config.base_channels)
        nn.init.zeros_(self.class_embedding.weight)   # at first, every label predicts what the warm start did

    @property
    def null_label(self) -> int:
        return self.config.num_classes

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            labels = torch.full((x_t.shape[0],), self.null_label, dtype=torch.long, device=x_t.device)
        return self.unet(x_t, t, extra_embedding=self.class_embedding(labels))


def conditional_diffusion_loss(model: ConditionalDiffusionModel, x0: torch.Tensor, labels: torch.Tensor,
                               generator: torch.Generator, label_dropout: float) -> torch.Tensor:
    """DDPM's simple loss on x0 in [-1, 1] with each label dropped to the null class with probability
    `label_dropout` (Ho & Salimans, Algorithm 1)."""
    n = x0.shape[0]
    t = torch.randint(0, model.config.num_train_timesteps, (n,), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    dropped = (torch.rand(n, generator=generator) < label_dropout).to(x0.device)
    labels = torch.where(dropped, torch.full_like(labels, model.null_label), labels)
    return F.mse_loss(model(model.schedule.q_sample(x0, t, noise), t, labels), noise)


class ConditionalDiffusionEngine(AsksForClasses, DiffusionEngine):
    """The diffusion engine's samplers, asked for classes at a guidance scale. `labels`: None (the classes in
    turn, 0, 1, ..., 9, 0, ...: a grid shows every class), one class for all, or one per sample."""
    family = "conditional_diffusion"
    # Guidance's eps at w > 1 lies far outside what clipped x0 allows: DDIM then re-derives eps from the clipped x0
    # (without it, asked for 7s at w = 3, DDIM drew 0s and 6s; tests/test_conditional_diffusion.py).
    use_clipped_model_output = True
    likelihood_text = None   # the diffusion model's words are of its bounds on log p(x); none is measured here

    @classmethod
    def load(cls, directory: Path) -> "ConditionalDiffusionEngine":
        return cls(load_pretrained(ConditionalDiffusionModel, ConditionalDiffusionConfig, directory), directory)

    def denoiser(self, n: int, labels=None, guidance: float = DEFAULT_GUIDANCE,
                 keep_both: bool = False) -> GuidedDenoiser:
        """The network a sampler calls for n samples of `labels` at guidance scale `guidance` (`keep_both`: both
        predictions at every w, for a view that shows them)."""
        if not isinstance(guidance, (int, float)) or isinstance(guidance, bool) or not 0 <= guidance <= 20:
            raise EngineError(f"guidance must be a number from 0 (unconditional) to 20, got {guidance!r}")
        return GuidedDenoiser(self.model, self.labels_for(check_count(n), labels), guidance, keep_both)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None,
               spacing: str | None = None, eta: float = 0.0, variance_type: str | None = None, labels=None,
               guidance: float = DEFAULT_GUIDANCE) -> torch.Tensor:
        """n images in [0, 1] of `labels` at guidance scale `guidance`; the samplers' options as the diffusion
        engine's. The same seed gives the same start noise whatever the labels and guidance."""
        denoiser = self.denoiser(n, labels, guidance)
        return from_signed(run(self._trajectory(n, seed, sampler, steps, spacing, eta, variance_type, denoiser)))

    @torch.no_grad()
    def trace(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None,
              spacing: str | None = None, eta: float = 0.0, variance_type: str | None = None, labels=None,
              guidance: float = DEFAULT_GUIDANCE):
        """The diffusion engine's trace (SamplerSteps), guided: its last prev_sample is sample()'s."""
        denoiser = self.denoiser(n, labels, guidance)
        yield from self._trajectory(n, seed, sampler, steps, spacing, eta, variance_type, denoiser)

    @torch.no_grad()
    def guided_trace(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None,
                     spacing: str | None = None, eta: float = 0.0, variance_type: str | None = None, labels=None,
                     guidance: float = DEFAULT_GUIDANCE):
        """trace() with both predictions computed at every step (at any w, so twice the network evaluations
        where w is 0 or 1): yields a GuidedStep per network call, the conditional and unconditional x0 beside the
        sampler's guided one, from the same start noise as sample()."""
        denoiser = self.denoiser(n, labels, guidance, keep_both=True)
        for step in self._trajectory(n, seed, sampler, steps, spacing, eta, variance_type, denoiser):
            conditional, unconditional = (self.schedule.predict_x0_at(step.x_t, float(step.timestep),
                                                                      denoiser.last[which])
                                          for which in ("conditional", "unconditional"))
            yield GuidedStep(step, conditional, unconditional)

    def network_evaluations(self, sampler: str = "ddpm", steps: int | None = None, spacing: str | None = None,
                            eta: float = 0.0, variance_type: str | None = None, labels=None,
                            guidance: float = DEFAULT_GUIDANCE) -> int:
        """The diffusion engine's count, doubled where guidance needs both predictions at each step."""
        per_step = GuidedDenoiser(self.model, torch.zeros(1, dtype=torch.long), guidance).evaluations_per_step
        return per_step * super().network_evaluations(sampler, steps, spacing, eta, variance_type)


DESCRIPTION = ("The diffusion model's UNet, told the class: a class embedding (zero at the start) added to the time "
               "embedding, trained with DDPM's simple loss and the label dropped to a null class for a share of the "
               "images, so that one network is both conditional and unconditional (classifier-free guidance, Ho & "
               "Salimans 2022). Warm-started from the shipped diffusion model. Sampling: every sampler of the "
               "diffusion model, at a guidance scale w (0: unconditional, 1: conditional, more: guided). EMA "
               "weights.")
FAMILY = Family(name="conditional_diffusion", title="conditional diffusion", engine=ConditionalDiffusionEngine,
                trainer="engines.training.conditional_diffusion:ConditionalDiffusionTrainer", colour="tab:cyan",
                description=DESCRIPTION, takes_sampler=True, quality_bar=0.95, conditional=True,
                parent_options={"diffusion_from": "diffusion"},
                no_likelihood="not measured: told a class its bounds are on log p(x | y), not the others' log p(x) "
                              "(told none, w = 0, it is an unconditional model whose bounds the diffusion row's "
                              "method would give)",
                objective="denoising: eps-MSE, told the class (dropped to none for a share)",
                knob=Knob("guidance", "w", (0.0, 1.0, 2.0, 3.0, 5.0), DEFAULT_GUIDANCE,
                          "guidance buys quality with diversity (Ho & Salimans 2022: FID against IS)",
                          slider=(0.0, 8.0, 0.5), unconditional=0.0))

__all__ = ["FAMILY", "ConditionalDiffusionConfig", "ConditionalDiffusionEngine", "ConditionalDiffusionModel"]
