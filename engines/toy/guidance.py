"""Classifier-free guidance on a labelled toy: each mode of a Gaussian mixture is a class, one small conditional
diffusion model learns them all, and the guidance scale w decides what a sample of class y looks like.

The model is the toy diffusion MLP told the class (an embedding added to its time features; a null class for
"none"), trained with the label dropped for `LABEL_DROPOUT` of the points (Ho & Salimans 2022, Algorithm 1), and
sampled through `engines.sampling.guidance.GuidedDenoiser`, the image model's own guidance:

    eps_w(x_t, y) = eps(x_t, none) + w (eps(x_t, y) - eps(x_t, none))

As scores this is grad log p(x_t) + w grad log p(y | x_t) (their sec. 3.2), so the sampler aims at
p(x) p(y | x)^w (approximately: guided sampling is not exact for w > 1): w = 0 ignores the class (every mode),
w = 1 samples p(x | y) (the asked mode, as wide as the data's), w > 1 sharpens p(y | x), which is most certain on
the mode's side away from the other classes: the classes are pulled apart, then past their modes, and each
class's samples narrow (less diversity). `guidance_numbers` measures exactly that.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engines.engine import class_labels, make_generator
from engines.errors import EngineError
from engines.sampling.guidance import GuidedDenoiser
from engines.sampling.samplers import make_timesteps, sample_ddpm
from engines.toy.distributions import ToyDistribution
from engines.toy.models import ToyDiffusion, ToyDiffusionConfig, time_embedding

GUIDANCE_SCALES = (0.0, 1.0, 3.0, 8.0)   # unconditional, conditional, guided, strongly guided
LABEL_DROPOUT = 0.1
SAMPLING_STEPS = 50                       # DDPM, trailing spacing: the playground's live view (its DDIM's first
                                          # step from the cosine schedule's last timestep overshoots on the toys)


@dataclass
class ToyConditionalDiffusionConfig(ToyDiffusionConfig):
    classes: int = 8   # the distribution's modes


class ToyConditionalDiffusion(ToyDiffusion):
    """eps_theta(x_t, t, y), y a mode's index or None (the null class)."""

    def __init__(self, config: ToyConditionalDiffusionConfig | None = None):
        super().__init__(config or ToyConditionalDiffusionConfig())
        self.classes = self.config.classes
        self.class_embedding = nn.Embedding(self.classes + 1, self.config.time_features)
        nn.init.zeros_(self.class_embedding.weight)   # deterministic: the playground seeds only its Linear layers

    @property
    def null_label(self) -> int:
        return self.classes

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            labels = torch.full((x_t.shape[0],), self.null_label, dtype=torch.long)
        features = time_embedding(t, self.config.time_features) + self.class_embedding(labels)
        return self.net(torch.cat([x_t, features], dim=1))

    def loss(self, x0: torch.Tensor, generator: torch.Generator, labels: torch.Tensor | None = None) -> torch.Tensor:
        """DDPM's simple loss, each label (a point off every mode: none) dropped to the null class with
        probability LABEL_DROPOUT."""
        n = x0.shape[0]
        labels = torch.full((n,), self.null_label, dtype=torch.long) if labels is None else labels.clone()
        labels[(labels < 0) | (torch.rand(n, generator=generator) < LABEL_DROPOUT)] = self.null_label
        t = torch.randint(0, self.config.num_train_timesteps, (n,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        return F.mse_loss(self(self.schedule.q_sample(x0, t, noise), t, labels), noise)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, guidance: float = 1.0, labels=None,
               steps: int = SAMPLING_STEPS, callback=None) -> torch.Tensor:
        """n points of `labels` (default: the classes in turn) at guidance scale `guidance`, by DDPM."""
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 0 <= guidance <= 20:
            raise EngineError(f"guidance must be a number from 0 (unconditional) to 20, got {guidance!r}")
        denoiser = GuidedDenoiser(self, class_labels(n, labels, self.classes), guidance)
        x = torch.randn((n, 2), generator=generator)
        timesteps = make_timesteps(self.config.num_train_timesteps, steps, "trailing")
        return sample_ddpm(denoiser, self.schedule, x, timesteps, clip_sample=False, generator=generator,
                           callback=callback)


def mode_centres(distribution: ToyDistribution) -> torch.Tensor:
    """[classes, 2]: each mode's centre (the mean of its mixture components)."""
    modes = distribution.component_mode
    return torch.stack([distribution.means[modes == k].mean(0) for k in range(distribution.n_modes)]).float()


def guidance_numbers(samples: torch.Tensor, labels: torch.Tensor, distribution: ToyDistribution) -> dict:
    """What guidance did to samples asked for `labels`:
    asked: share that lies in the asked class's mode; on_mode: share in any mode;
    outward: mean offset from the asked mode's centre along the direction from the data's centre to it, in the
        modes' noise standard deviations (> 0: pushed past the mode, away from the other classes);
    spread: the samples' standard deviation about their own class mean, in the same unit (1: as wide as the data)."""
    centres = mode_centres(distribution)
    middle = centres.mean(0)
    direction = (centres - middle) / (centres - middle).norm(dim=1, keepdim=True)
    mode = distribution.mode_index(samples)
    offset = ((samples - centres[labels]) * direction[labels]).sum(1) / distribution.noise_std
    per_class = [samples[labels == k] for k in labels.unique()]
    spread = torch.cat([x - x.mean(0) for x in per_class if len(x) > 1]).pow(2).sum(1).div(2).mean().sqrt()
    return {"asked": (mode == labels).float().mean().item(), "on_mode": (mode >= 0).float().mean().item(),
            "outward": offset.mean().item(), "spread": (spread / distribution.noise_std).item()}


@dataclass
class GuidedView:
    """The playground's own view of a conditional model: the same noise sampled at each guidance scale.
    points[w]: [n, 2]; labels: [n], the classes asked (in turn)."""
    points: dict[float, torch.Tensor]
    labels: torch.Tensor


def guided_view(model: ToyConditionalDiffusion, n: int = 400, seed: int = 0) -> GuidedView:
    labels = class_labels(n, None, model.classes)
    return GuidedView({w: model.sample(n, make_generator(seed), guidance=w, labels=labels)
                       for w in GUIDANCE_SCALES}, labels)
