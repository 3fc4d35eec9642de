"""Flow-matching samplers: ODE solvers over a learned velocity field, plain functions as in k-diffusion.

The flow family learns v_theta(x_t, t) on the linear path between data and noise (Lipman et al. 2023, eq. 20
with sigma_min = 0; Liu et al. 2022's rectified flow, eq. 1):

    x_t = (1 - t) x_0 + t eps,   t in [0, 1],   d x_t / dt = eps - x_0,

so sampling integrates dx/dt = v_theta(x, t) from t = 1 (pure noise) down to t = 0 (an image). The velocity
at x_t also names the two ends it points between (each step reports those of its first evaluation, the
network's prediction at x_t, which the step-by-step view shows):

    predicted x_0 = x_t - t v,   predicted eps = x_t + (1 - t) v.

Every solver step has the same shape, `step(model, x_t, t, t_next) -> StepOutput` (the network is called
inside: Heun and midpoint evaluate it twice per step), and one loop, `iterate_flow`, yields a SamplerStep per
step, as the diffusion samplers' `iterate` does; `run` (shared) takes its last. The time grid is diffusers'
FlowMatchEulerDiscreteScheduler's (the solvers equal its Euler and FlowMatchHeunDiscreteScheduler's Heun step for
step; tests check it): `steps` times from 1 to 1/1000 evenly spaced, then 0. Heun takes Euler's step on its
last interval, where t_next = 0, as Karras et al. 2022's Algorithm 1 and diffusers do.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from engines.errors import EngineError
from engines.sampling.samplers import SamplerStep, StepOutput

FLOW_SAMPLERS = ("euler", "heun", "midpoint")
NUM_TRAIN_TIMESTEPS = 1000  # diffusers' flow-matching convention: timestep = 1000 t; the grid stops at t = 1/1000
MAX_STEPS = 1000


SPACINGS = ("diffusers", "uniform")


def make_flow_times(steps: int, shift: float = 1.0, spacing: str = "diffusers") -> list[float]:
    """Descending times from t_0 = 1 to t_steps = 0. "diffusers": t_0 = 1 > ... > t_{steps-1} = 1/1000, then 0, as
    FlowMatchEulerDiscreteScheduler.set_timesteps(steps) computes them (float32); at few steps its last interval,
    1/1000 to 0, is a nearly wasted evaluation (2 steps integrate 1 -> 0.001 in one). "uniform": t_k = 1 - k /
    steps, the grid of Lipman et al. 2023 and Liu et al. 2022 (evenly spent evaluations). `shift` > 1 spends more
    steps near the noise (Esser et al. 2024, eq. 23: t' = shift t / (1 + (shift - 1) t))."""
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise EngineError(f"steps must be an integer between 1 and {MAX_STEPS}, got {steps!r}")
    if spacing not in SPACINGS:
        raise EngineError(f"unknown spacing {spacing!r}: choose one of {', '.join(SPACINGS)}")
    if spacing == "uniform":
        times = np.linspace(1.0, 0.0, steps + 1)[:-1]
        return [float(t) for t in shift * times / (1 + (shift - 1) * times)] + [0.0]
    t_min = float(np.float32(1) / np.float32(NUM_TRAIN_TIMESTEPS))  # as diffusers computes it, in float32
    times = np.linspace(NUM_TRAIN_TIMESTEPS, NUM_TRAIN_TIMESTEPS * t_min, steps) / NUM_TRAIN_TIMESTEPS
    times = shift * times / (1 + (shift - 1) * times)
    return [float(t) for t in torch.from_numpy(times).float()] + [0.0]


def velocity(model, x: torch.Tensor, t: float) -> torch.Tensor:
    """v_theta(x, t) for a batch at one time t."""
    return model(x, torch.full((x.shape[0],), t, dtype=x.dtype))


def ends(x_t: torch.Tensor, t: float, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted x_0, predicted eps) of x_t along velocity v: the path x_t = (1 - t) x_0 + t eps solved with
    v = eps - x_0."""
    return x_t - t * v, x_t + (1 - t) * v


def euler_step(model, x_t: torch.Tensor, t: float, t_next: float) -> StepOutput:
    """x_{t_next} = x_t + (t_next - t) v(x_t, t): one network evaluation (FlowMatchEulerDiscreteScheduler.step)."""
    v = velocity(model, x_t, t)
    return StepOutput(x_t + (t_next - t) * v, *ends(x_t, t, v))


def heun_step(model, x_t: torch.Tensor, t: float, t_next: float) -> StepOutput:
    """Heun's second-order step (Karras et al. 2022, Algorithm 1, lines 5-8): an Euler predictor, then the mean
    of the velocities at both ends; Euler alone onto t_next = 0."""
    v = velocity(model, x_t, t)
    x_next = x_t + (t_next - t) * v
    if t_next > 0:
        x_next = x_t + (t_next - t) * (v + velocity(model, x_next, t_next)) / 2
    return StepOutput(x_next, *ends(x_t, t, v))


def midpoint_step(model, x_t: torch.Tensor, t: float, t_next: float) -> StepOutput:
    """The explicit midpoint rule (second order, two evaluations): the velocity half-way along an Euler step."""
    v = velocity(model, x_t, t)
    t_mid = (t + t_next) / 2
    v_mid = velocity(model, x_t + (t_mid - t) * v, t_mid)
    return StepOutput(x_t + (t_next - t) * v_mid, *ends(x_t, t, v))


STEPS = {"euler": euler_step, "heun": heun_step, "midpoint": midpoint_step}


def step_function(sampler: str):
    if sampler not in STEPS:
        raise EngineError(f"unknown flow sampler {sampler!r}: choose one of {', '.join(FLOW_SAMPLERS)}")
    return STEPS[sampler]


def network_evaluations(sampler: str, steps: int) -> int:
    """Network calls per sample: Euler one per step, midpoint two, Heun two but one on its last step (to t = 0)."""
    step_function(sampler)
    return {"euler": steps, "midpoint": 2 * steps, "heun": 2 * steps - 1}[sampler]


def iterate_flow(step_fn, model, x: torch.Tensor, times: list[float]) -> Iterator[SamplerStep]:
    """The one integration loop, from x = x_1 (noise) along descending `times`, as a generator of SamplerStep
    (timestep: the t of x_t in [0, 1]; predicted_noise and predicted_x0: the two ends the velocity names)."""
    for i, (t, t_next) in enumerate(zip(times[:-1], times[1:])):
        out = step_fn(model, x, t, t_next)
        yield SamplerStep(i, t, x, out.predicted_noise, out.predicted_x0, out.prev_sample)
        x = out.prev_sample
