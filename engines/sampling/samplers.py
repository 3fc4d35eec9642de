"""Our diffusion samplers: plain functions over (model, schedule, x_T), as in k-diffusion's sampling.py.

Every sampler has the same shape:

    sample_x(model, schedule, x, timesteps, ..., generator=None, callback=None) -> x_0

`model(x_t, t)` predicts the noise; `timesteps` is the descending list from `make_timesteps`; `callback`
receives a `SamplerStep` per step (the seam the step-by-step view uses, so a trace is the same loop).

The step maths follows diffusers' DDPMScheduler / DDIMScheduler exactly (same timestep spacings and defaults,
same clipping of the predicted x0, and each its own predecessor rule: DDPM steps to the next entry of its
timestep list, DDIM to t - T // steps), so that a sampler name and a step count mean the same trajectory here
and there; tests check this step for step for every spacing and for step counts that do and do not divide T.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from engines.errors import EngineError
from engines.sampling.schedule import NoiseSchedule

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


def check_eta(eta) -> float:
    """DDIM's eta: a number in [0, 1] (0 = deterministic, 1 = DDPM-like noise)."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
        raise EngineError(f"eta must be a number in [0, 1], got {eta!r}")
    return float(eta)


def check_variance_type(variance_type) -> str:
    if variance_type not in VARIANCE_TYPES:
        raise EngineError(f"unknown variance_type {variance_type!r}: choose one of {', '.join(VARIANCE_TYPES)}")
    return variance_type


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


def ddpm_previous_timesteps(timesteps: list[int], num_train_timesteps: int) -> list[int]:
    """DDPM's predecessor of each timestep: the next entry of the list, and -1 (clean data) after the last one
    (DDPMScheduler.previous_timestep). With linspace or trailing spacing the entries are not evenly spaced, so
    a fixed stride would step to a t other than the one the next network call is told, or stop short of t = -1."""
    return list(timesteps[1:]) + [-1]


def ddim_previous_timesteps(timesteps: list[int], num_train_timesteps: int) -> list[int]:
    """DDIM's predecessor rule: t - T // steps (DDIMScheduler.step); below 0 means the clean data."""
    stride = num_train_timesteps // len(timesteps)
    return [t - stride for t in timesteps]


def previous_timesteps(step_fn, timesteps: list[int], num_train_timesteps: int) -> list[int]:
    """The timestep each step of `step_fn` (ddpm_step or ddim_step) lands on."""
    rule = ddpm_previous_timesteps if step_fn is ddpm_step else ddim_previous_timesteps
    return rule(timesteps, num_train_timesteps)


def iterate(step_fn, model, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int], **step_kwargs):
    """The denoising loop as a generator of SamplerStep: one trajectory, observed as it advances."""
    prev_timesteps = previous_timesteps(step_fn, timesteps, schedule.num_train_timesteps)
    for i, (t, prev_t) in enumerate(zip(timesteps, prev_timesteps)):
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        prev, predicted_x0 = step_fn(schedule, eps, t, prev_t, x, **step_kwargs)
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
    return _run(ddpm_step, model, schedule, x, timesteps, callback,
                variance_type=check_variance_type(variance_type), clip_sample=clip_sample, generator=generator)


@torch.no_grad()
def sample_ddim(model, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int], eta: float = 0.0,
                clip_sample: bool = True, generator: torch.Generator | None = None,
                callback: Callback | None = None) -> torch.Tensor:
    """DDIM sampling from x = x_T along `timesteps`; deterministic when eta = 0."""
    return _run(ddim_step, model, schedule, x, timesteps, callback, eta=check_eta(eta), clip_sample=clip_sample,
                generator=generator)
