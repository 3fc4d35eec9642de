"""Our diffusion samplers: plain functions over (model, schedule, x_T), as in k-diffusion's sampling.py.

Every sampler has the same shape:

    sample_x(model, schedule, x, timesteps, ..., generator=None, callback=None) -> x_0

`model(x_t, t)` predicts the noise; `timesteps` is the descending list from `make_timesteps`; `callback`
receives a `SamplerStep` per step (the seam the step-by-step view uses, so a trace is the same loop).

The step maths follows diffusers' DDPMScheduler / DDIMScheduler exactly (same timestep spacings and defaults,
same predecessor rule `t_prev = t - T // steps`, same clipping of the predicted x0), so that a sampler name and
a step count mean the same trajectory here and there; tests check this step for step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from engines.errors import EngineError
from engines.schedule import NoiseSchedule

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
DEFAULT_SPACING = "leading"  # diffusers' default for DDPMScheduler and DDIMScheduler
VARIANCE_TYPES = ("fixed_small", "fixed_large")  # beta-tilde_t (posterior) or beta_t, as in DDPM's paper


@dataclass
class SamplerStep:
    """What one denoising step saw and produced."""
    index: int                    # 0 .. steps-1
    timestep: int | float         # the t of x_t
    x_t: torch.Tensor             # the input of this step
    predicted_noise: torch.Tensor
    predicted_x0: torch.Tensor
    prev_sample: torch.Tensor     # x at the next (lower) timestep


Callback = Callable[[SamplerStep], None]


def make_timesteps(num_train_timesteps: int, steps: int, spacing: str = DEFAULT_SPACING) -> list[int]:
    """The descending timesteps diffusers' set_timesteps(steps) picks for DDPM/DDIM (steps_offset=0)."""
    T = num_train_timesteps
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or not 1 <= steps <= T:
        raise EngineError(f"steps must be an integer between 1 and {T}, got {steps!r}")
    if spacing == "linspace":
        ts = np.linspace(0, T - 1, steps).round()[::-1]
    elif spacing == "leading":
        ts = (np.arange(0, steps) * (T // steps)).round()[::-1]
    elif spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / steps)) - 1
    else:
        raise EngineError(f"unknown timestep spacing {spacing!r}: choose one of {', '.join(TIMESTEP_SPACINGS)}")
    return [int(t) for t in ts.astype(np.int64)]


def _alpha_prod(schedule: NoiseSchedule, t: int, final: float = 1.0) -> float:
    return float(schedule.alphas_cumprod[t]) if t >= 0 else final


def ddpm_step(schedule: NoiseSchedule, eps: torch.Tensor, t: int, prev_t: int, x_t: torch.Tensor,
              variance_type: str = "fixed_small", clip_sample: bool = True,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ancestral step x_t -> x_{prev_t} (Ho et al. 2020, eq. 7, generalised to skipped steps).

    Returns (prev_sample, predicted_x0). Noise is added for every t > 0."""
    alpha_prod_t = _alpha_prod(schedule, t)
    alpha_prod_prev = _alpha_prod(schedule, prev_t)
    beta_prod_t = 1 - alpha_prod_t
    current_alpha = alpha_prod_t / alpha_prod_prev
    current_beta = 1 - current_alpha

    predicted_x0 = (x_t - beta_prod_t ** 0.5 * eps) / alpha_prod_t ** 0.5
    if clip_sample:
        predicted_x0 = predicted_x0.clamp(-1, 1)
    # Mean of the posterior q(x_prev | x_t, x0) at the predicted x0.
    mean = (alpha_prod_prev ** 0.5 * current_beta / beta_prod_t) * predicted_x0 \
        + (current_alpha ** 0.5 * (1 - alpha_prod_prev) / beta_prod_t) * x_t
    if t > 0:
        if variance_type == "fixed_small":
            variance = max((1 - alpha_prod_prev) / (1 - alpha_prod_t) * current_beta, 1e-20)
        else:
            variance = current_beta
        noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)
        mean = mean + variance ** 0.5 * noise
    return mean, predicted_x0


def ddim_step(schedule: NoiseSchedule, eps: torch.Tensor, t: int, prev_t: int, x_t: torch.Tensor,
              eta: float = 0.0, clip_sample: bool = True,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """DDIM step x_t -> x_{prev_t} (Song et al. 2021, eq. 12); eta=0 is deterministic, eta=1 is DDPM-like.

    Returns (prev_sample, predicted_x0)."""
    alpha_prod_t = _alpha_prod(schedule, t)
    alpha_prod_prev = _alpha_prod(schedule, prev_t)
    beta_prod_t = 1 - alpha_prod_t

    predicted_x0 = (x_t - beta_prod_t ** 0.5 * eps) / alpha_prod_t ** 0.5
    if clip_sample:
        predicted_x0 = predicted_x0.clamp(-1, 1)
    variance = (1 - alpha_prod_prev) / beta_prod_t * (1 - alpha_prod_t / alpha_prod_prev)
    std = eta * variance ** 0.5
    direction = max(1 - alpha_prod_prev - std ** 2, 0.0) ** 0.5 * eps
    prev_sample = alpha_prod_prev ** 0.5 * predicted_x0 + direction
    if eta > 0:
        prev_sample = prev_sample + std * torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)
    return prev_sample, predicted_x0


def iterate(step_fn, model, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int], **step_kwargs):
    """The denoising loop as a generator of SamplerStep: one trajectory, observed as it advances."""
    stride = schedule.num_train_timesteps // len(timesteps)
    for i, t in enumerate(timesteps):
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        prev, predicted_x0 = step_fn(schedule, eps, t, t - stride, x, **step_kwargs)
        yield SamplerStep(i, t, x, eps, predicted_x0, prev)
        x = prev


def _run(step_fn, model, schedule, x, timesteps, callback, **step_kwargs) -> torch.Tensor:
    for step in iterate(step_fn, model, schedule, x, timesteps, **step_kwargs):
        if callback is not None:
            callback(step)
        x = step.prev_sample
    return x


@torch.no_grad()
def sample_ddpm(model, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int],
                variance_type: str = "fixed_small", clip_sample: bool = True,
                generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
    """Ancestral DDPM sampling from x = x_T along `timesteps`."""
    if variance_type not in VARIANCE_TYPES:
        raise EngineError(f"unknown variance_type {variance_type!r}: choose one of {', '.join(VARIANCE_TYPES)}")
    return _run(ddpm_step, model, schedule, x, timesteps, callback, variance_type=variance_type,
                clip_sample=clip_sample, generator=generator)


@torch.no_grad()
def sample_ddim(model, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int], eta: float = 0.0,
                clip_sample: bool = True, generator: torch.Generator | None = None,
                callback: Callback | None = None) -> torch.Tensor:
    """DDIM sampling from x = x_T along `timesteps`; deterministic when eta = 0."""
    if not isinstance(eta, (int, float)) or isinstance(eta, bool) or not 0.0 <= eta <= 1.0:
        raise EngineError(f"eta must be a number in [0, 1], got {eta!r}")
    return _run(ddim_step, model, schedule, x, timesteps, callback, eta=float(eta), clip_sample=clip_sample,
                generator=generator)
