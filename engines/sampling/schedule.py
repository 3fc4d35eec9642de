"""The diffusion noise schedule: one object that owns betas, alphas_cumprod and the posterior terms.

Timesteps are 0-indexed as in diffusers: t = 0 .. T-1, where `alphas_cumprod[t]` is the signal level of x_t
(DDPM's paper counts 1 .. T; its x_0 is the data, which here is "before step 0"). Our samplers and the
diffusers adapter both read this object, so "the same schedule" holds by construction.
"""
from __future__ import annotations

import math

import numpy as np
import torch

BETA_SCHEDULES = ("linear", "cosine")


def make_betas(num_train_timesteps: int, beta_schedule: str = "linear",
               beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Betas in float64. 'linear' is DDPM's (Ho et al. 2020); 'cosine' is Nichol & Dhariwal 2021."""
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    if beta_schedule == "cosine":
        def alpha_bar(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
        steps = [min(1 - alpha_bar((i + 1) / num_train_timesteps) / alpha_bar(i / num_train_timesteps), 0.999)
                 for i in range(num_train_timesteps)]
        return torch.tensor(steps, dtype=torch.float64)
    raise ValueError(f"unknown beta_schedule {beta_schedule!r}: choose one of {BETA_SCHEDULES}")


class NoiseSchedule:
    """Forward-process quantities for T discrete steps, kept in float64 and cast on use."""

    def __init__(self, betas: torch.Tensor):
        self.betas = betas.to(torch.float64)
        self.num_train_timesteps = len(betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        # q(x_{t-1} | x_t, x_0) = N(posterior_mean_coef1 * x_0 + posterior_mean_coef2 * x_t, beta_tilde_t)
        self.posterior_variance = self.betas * (1 - self.alphas_cumprod_prev) / (1 - self.alphas_cumprod)
        self.posterior_mean_coef1 = self.betas * self.alphas_cumprod_prev.sqrt() / (1 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1 - self.alphas_cumprod_prev) * self.alphas.sqrt() / (1 - self.alphas_cumprod)

    @classmethod
    def from_config(cls, num_train_timesteps: int, beta_schedule: str, beta_start: float = 1e-4,
                    beta_end: float = 0.02) -> "NoiseSchedule":
        return cls(make_betas(num_train_timesteps, beta_schedule, beta_start, beta_end))

    def straight_path(self, t: int) -> tuple[float, float]:
        """(s, scale) writing x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps on the straight path of flow matching:
        scale x_t = (1 - s) x0 + s eps with scale = 1 / (sqrt(abar_t) + sqrt(1 - abar_t)) and s = sqrt(1 - abar_t)
        scale (Kingma & Gao 2023; Gao et al. 2024); t = -1 is the data itself (s = 0, scale 1)."""
        if t < 0:
            return 0.0, 1.0
        signal, noise = float(self.alphas_cumprod[t]) ** 0.5, float(1 - self.alphas_cumprod[t]) ** 0.5
        return noise / (signal + noise), 1 / (signal + noise)

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """values[t] cast to `like`'s dtype, shaped to broadcast over [B, C, H, W]."""
        t = torch.as_tensor(t, dtype=torch.long).cpu()  # the schedule stays on the CPU, in float64
        out = values[t].to(device=like.device, dtype=like.dtype)
        return out.reshape(-1, *([1] * (like.dim() - 1))) if out.dim() == 1 else out

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alphas_cumprod[t]) x0 + sqrt(1 - alphas_cumprod[t]) noise (closed-form forward jump)."""
        a = self._at(self.alphas_cumprod, t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
        """Invert q_sample given the predicted noise."""
        a = self._at(self.alphas_cumprod, t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def predict_x0_at(self, x_t: torch.Tensor, t: float, eps: torch.Tensor) -> torch.Tensor:
        """predict_x0 at one timestep that may be fractional (Karras-type schedulers, Euler and Heun, step between
        the trained ones): alphas_cumprod interpolated linearly between its neighbours."""
        abar = float(np.interp(float(t), np.arange(len(self.alphas_cumprod)), self.alphas_cumprod.numpy()))
        return (x_t - (1 - abar) ** 0.5 * eps) / abar ** 0.5

    def q_posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        return self._at(self.posterior_mean_coef1, t, x_t) * x0 + self._at(self.posterior_mean_coef2, t, x_t) * x_t
