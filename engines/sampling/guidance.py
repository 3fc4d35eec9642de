"""Classifier-free guidance (Ho & Salimans 2022): one network that predicts the noise with and without the class,
mixed at each step of any sampler.

    eps_guided(x_t, t, y) = eps(x_t, t, none) + w * (eps(x_t, t, y) - eps(x_t, t, none))

w = 0 samples the unconditional model, w = 1 the conditional one, w > 1 pushes each step further along the
direction that makes x_t more like class y than like any digit: samples more typical of their class (and less
varied). Ho & Salimans write the same mix as (1 + w') eps(y) - w' eps(none) with w' = w - 1 (their eq. 6);
diffusers' pipelines use this file's w as `guidance_scale`. Seen as scores, eps(y) - eps(none) is proportional to
-grad log p(y | x_t), an implicit classifier's gradient (their sec. 3.2), which is where the name comes
from.

`GuidedDenoiser` wraps a conditional network as the plain `model(x_t, t)` every sampler takes (ours and diffusers'
through the adapter), so guidance changes no sampler: one forward pass of the doubled batch per step (two network
evaluations per sample) where both predictions are needed, one where w is 0 or 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engines.sampling.samplers import SamplerStep


class GuidedDenoiser(nn.Module):
    """`model(x_t, t, labels)` (labels None: the unconditional prediction) as `denoiser(x_t, t)` for `labels`
    [n] at guidance scale `w`. `last` keeps the last call's two predictions (empty where one was skipped);
    `keep_both` computes both at every w, for a view that shows them (the step-by-step view)."""

    def __init__(self, model: nn.Module, labels: torch.Tensor, w: float, keep_both: bool = False):
        super().__init__()
        self.model, self.labels, self.w, self.keep_both = model, labels, float(w), keep_both
        self.last: dict[str, torch.Tensor] = {}

    @property
    def evaluations_per_step(self) -> int:
        """Network evaluations per sample per denoising step: both predictions unless one of them is unused."""
        return 1 if self.skips_one else 2

    @property
    def skips_one(self) -> bool:
        """w = 0 or 1 gives one of the two predictions weight 0: it need not be computed."""
        return self.w in (0.0, 1.0) and not self.keep_both

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.skips_one:
            self.last = {}
            return self.model(x_t, t, self.labels if self.w else None)
        n = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(n)
        both = self.model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([self.labels, self.null_labels(n)]))
        conditional, unconditional = both[:n], both[n:]
        self.last = {"conditional": conditional, "unconditional": unconditional}
        return unconditional + self.w * (conditional - unconditional)

    def null_labels(self, n: int) -> torch.Tensor:
        """The "no class" label the network was trained on when the label was dropped."""
        return torch.full((n,), self.model.null_label, dtype=torch.long, device=self.labels.device)


@dataclass
class GuidedStep:
    """One step of a guided trajectory for the step-by-step view: the sampler's step (its x0 the guided one, as
    the sampler used it) and the x0 each prediction alone points to from the same x_t. Since x0 is linear in eps
    at a fixed x_t and t, the guided x0 before any clipping is unconditional_x0 + w (conditional_x0 -
    unconditional_x0): eq. 6 seen in image space, past the conditional x0 where w > 1."""
    step: SamplerStep
    conditional_x0: torch.Tensor
    unconditional_x0: torch.Tensor
