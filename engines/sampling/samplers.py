"""Our diffusion samplers: plain functions over (model, schedule, x_T), as in k-diffusion's sampling.py.

Every sampler has the same shape:

    sample_x(model, schedule, x, timesteps, ..., generator=None, callback=None) -> x_0

`model(x_t, t)` predicts the noise; `timesteps` is the descending list from `make_timesteps`; `callback`
receives a `SamplerStep` per step (the seam the step-by-step view uses, so a trace is the same loop).

Underneath is one loop, `iterate(step_fn, model, schedule, x_T, timesteps)`, a generator of SamplerStep; a
step function (`ddpm_step`, `ddim_step`, the diffusion GAN's posterior step) maps one model output to a
`StepOutput`, as a diffusers scheduler's `step()` does. Engines build their sample() and trace() on it: trace()
yields its steps, sample() is `run(...)`, the last step's prev_sample. (Only diffusers' own schedulers keep
their pipeline loop, `diffusers_adapter.iterate_scheduler`: they own timesteps, input scaling and state.)

The step maths follows diffusers' DDPMScheduler / DDIMScheduler exactly (same timestep spacings and defaults,
same clipping of the predicted x0, and each its own predecessor rule: DDPM steps to the next entry of its
timestep list, DDIM to t - T // steps), so that a sampler name and a step count mean the same trajectory here
and there; tests check this step for step for every spacing and for step counts that do and do not divide T.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from engines.errors import EngineError
from engines.sampling.schedule import NoiseSchedule

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
DEFAULT_SPACING = "leading"  # diffusers' default for DDPMScheduler and DDIMScheduler
VARIANCE_TYPES = ("fixed_small", "fixed_large")  # beta-tilde_t (posterior) or beta_t, as in DDPM's paper


@dataclass(frozen=True)
class StepOutput:
    """What one sampler step returns, as diffusers' `step()` returns `SchedulerOutput(prev_sample,
    pred_original_sample)`: the next, less noisy sample, the clean image predicted on the way, and the noise
    that prediction implies (the network's own output for an epsilon-predictor). The loop adds where the step
    happened (index, timestep, x_t) to make the SamplerStep it yields."""
    prev_sample: torch.Tensor     # x at the next (lower) timestep
    predicted_x0: torch.Tensor    # diffusers' pred_original_sample
    predicted_noise: torch.Tensor


@dataclass
class SamplerStep:
    """One step of a trajectory as `iterate` yields it and a callback sees it: a StepOutput and where it was
    taken (the positional order is the one every caller builds it in)."""
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
              generator: torch.Generator | None = None) -> StepOutput:
    """Ancestral step x_t -> x_{prev_t}: Ho et al. 2020, Algorithm 2 line 4, in the eq. 7 form (the posterior
    mean at the predicted x0) that diffusers' DDPMScheduler uses, so x0 can be clipped before it is used.

    A skipped-step chain (prev_t < t - 1) is a DDPM of its own with alpha = abar_t / abar_prev: the paper's
    alpha_t and beta_t below are that chain's. Noise is added for every t > 0 (the paper's t > 1, 1-indexed)."""
    alpha_prod_t = _alpha_prod(schedule, t)                 # abar_t
    alpha_prod_prev = _alpha_prod(schedule, prev_t)         # abar_{t-1}; 1 past the last step (clean data)
    beta_prod_t = 1 - alpha_prod_t                          # 1 - abar_t
    current_alpha = alpha_prod_t / alpha_prod_prev          # alpha_t
    current_beta = 1 - current_alpha                        # beta_t

    # eq. 15: x0 ~ (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t), eq. 4 solved for x0.
    predicted_x0 = (x_t - beta_prod_t ** 0.5 * eps) / alpha_prod_t ** 0.5
    if clip_sample:  # the data lie in [-1, 1] (the paper's sampler clips x0 too, in its code)
        predicted_x0 = predicted_x0.clamp(-1, 1)
    # eq. 7: mu~_t(x_t, x0) = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1}) /
    # (1 - abar_t) x_t, the mean of q(x_{t-1} | x_t, x0) (eq. 6); with the unclipped x0 this is eq. 11's mu_theta.
    mean = (alpha_prod_prev ** 0.5 * current_beta / beta_prod_t) * predicted_x0 \
        + (current_alpha ** 0.5 * (1 - alpha_prod_prev) / beta_prod_t) * x_t
    prev_sample = mean
    if t > 0:
        # Section 3.2: sigma_t^2 = beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t (eq. 7, "fixed_small") or
        # beta_t ("fixed_large"); the floor keeps the square root finite where beta~ rounds to 0.
        if variance_type == "fixed_small":
            variance = max((1 - alpha_prod_prev) / (1 - alpha_prod_t) * current_beta, 1e-20)
        else:
            variance = current_beta
        z = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)
        prev_sample = mean + variance ** 0.5 * z  # Algorithm 2, line 4: x_{t-1} = mu + sigma_t z
    return StepOutput(prev_sample, predicted_x0, eps)


def ddim_step(schedule: NoiseSchedule, eps: torch.Tensor, t: int, prev_t: int, x_t: torch.Tensor,
              eta: float = 0.0, clip_sample: bool = True, use_clipped_model_output: bool = False,
              generator: torch.Generator | None = None) -> StepOutput:
    """DDIM step x_t -> x_{prev_t} (Song et al. 2021, eq. 12, with sigma_t(eta) of eq. 16): eta = 0 is the
    deterministic DDIM, eta = 1 has DDPM's posterior variance. The paper's alpha_t is our abar_t.
    `use_clipped_model_output` (diffusers' name; GLIDE's practice): re-derive eps from the clipped x0, so that the
    step's two terms describe one x_t. Guidance needs it: at w > 1 the guided eps points far outside the data
    range, and the clipped x0 beside the unclipped eps walks the sample to another class."""
    alpha_prod_t = _alpha_prod(schedule, t)                 # alpha_t in the paper
    alpha_prod_prev = _alpha_prod(schedule, prev_t)         # alpha_{t-1}; 1 past the last step
    beta_prod_t = 1 - alpha_prod_t

    # eq. 12, "predicted x0": (x_t - sqrt(1 - alpha_t) eps_theta) / sqrt(alpha_t).
    predicted_x0 = (x_t - beta_prod_t ** 0.5 * eps) / alpha_prod_t ** 0.5
    if clip_sample:
        predicted_x0 = predicted_x0.clamp(-1, 1)
        if use_clipped_model_output:   # eq. 12's x0 solved for eps: the eps that the clipped x0 and x_t imply
            eps = (x_t - alpha_prod_t ** 0.5 * predicted_x0) / beta_prod_t ** 0.5
    # eq. 16: sigma_t(eta)^2 = eta^2 (1 - alpha_{t-1}) / (1 - alpha_t) (1 - alpha_t / alpha_{t-1}).
    variance = (1 - alpha_prod_prev) / beta_prod_t * (1 - alpha_prod_t / alpha_prod_prev)
    std = eta * variance ** 0.5
    # eq. 12, "direction pointing to x_t": sqrt(1 - alpha_{t-1} - sigma_t^2) eps_theta (the floor guards rounding).
    direction = max(1 - alpha_prod_prev - std ** 2, 0.0) ** 0.5 * eps
    # eq. 12: x_{t-1} = sqrt(alpha_{t-1}) x0 + direction + sigma_t eps_t ("random noise", absent when eta = 0).
    prev_sample = alpha_prod_prev ** 0.5 * predicted_x0 + direction
    if eta > 0:
        prev_sample = prev_sample + std * torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)
    return StepOutput(prev_sample, predicted_x0, eps)


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
    """The timestep each step of `step_fn` lands on: DDIM's stride rule for ddim_step, the next entry of the list
    (down to -1, the clean data) for every other step (ddpm_step, the diffusion GAN's posterior step)."""
    rule = ddim_previous_timesteps if step_fn is ddim_step else ddpm_previous_timesteps
    return rule(timesteps, num_train_timesteps)


def iterate(step_fn, model, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int],
            **step_kwargs) -> Iterator[SamplerStep]:
    """The one denoising loop, as a generator of SamplerStep from x = x_T: every engine's sample() and trace()
    and the sample_* functions below run it (sample() is its last step, `run`).

    Per timestep: `model(x_t, t)` (t a [N] long tensor), then `step_fn(schedule, model_output, t, prev_t, x_t,
    **step_kwargs) -> StepOutput`, as diffusers' pipelines call the network and then `scheduler.step`."""
    prev_timesteps = previous_timesteps(step_fn, timesteps, schedule.num_train_timesteps)
    for i, (t, prev_t) in enumerate(zip(timesteps, prev_timesteps)):
        model_output = model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        out = step_fn(schedule, model_output, t, prev_t, x, **step_kwargs)
        yield SamplerStep(i, t, x, out.predicted_noise, out.predicted_x0, out.prev_sample)
        x = out.prev_sample


def run(steps: Iterable[SamplerStep], callback: Callback | None = None) -> torch.Tensor:
    """Drive a trajectory to its end and return the last step's prev_sample (x_0), showing each step to
    `callback` on the way: sample() is the last step of trace() by construction."""
    x = None
    for step in steps:
        if callback is not None:
            callback(step)
        x = step.prev_sample
    return x


@torch.no_grad()
def sample_ddpm(model, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int],
                variance_type: str = "fixed_small", clip_sample: bool = True,
                generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
    """Ancestral DDPM sampling from x = x_T along `timesteps`."""
    return run(iterate(ddpm_step, model, schedule, x, timesteps, variance_type=check_variance_type(variance_type),
                       clip_sample=clip_sample, generator=generator), callback)


@torch.no_grad()
def sample_ddim(model, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int], eta: float = 0.0,
                clip_sample: bool = True, generator: torch.Generator | None = None,
                callback: Callback | None = None) -> torch.Tensor:
    """DDIM sampling from x = x_T along `timesteps`; deterministic when eta = 0."""
    return run(iterate(ddim_step, model, schedule, x, timesteps, eta=check_eta(eta), clip_sample=clip_sample,
                       generator=generator), callback)
