"""How straight a sampler's paths are, on one common path: Liu et al. 2022's straightness.

Rectified flow (Liu et al. 2022, "Flow straight and fast", def. 2.3 / eq. 5) calls an ODE Z straight when it
moves at constant velocity, and measures how far from it a flow is by

    S(Z) = integral_0^1 E || (Z_1 - Z_0) - dZ_t/dt ||^2 dt,

zero exactly when every path is a line run at constant speed, which one Euler step integrates exactly. Here
t runs from 1 (noise) to 0 (data), so the chord is the data end minus the noise end over the time taken, and
S is reported per pixel.

Comparing two families needs one time and one frame. Any Gaussian path x_tau = a_tau x0 + b_tau eps is the
straight path after a change of units (Gao et al. 2024, "Diffusion meets flow matching"; Kingma & Gao 2023):

    y = x_tau / (a_tau + b_tau) = (1 - s) x0 + s eps,   s = b_tau / (a_tau + b_tau),

and its probability-flow ODE, written in (s, y), has the flow-matching velocity dy/ds = E[eps - x0 | y]. For
the diffusion model (a = sqrt(abar), b = sqrt(1 - abar)) deterministic DDIM is exactly Euler's method on that
ODE (tested: y' - y = (s' - s)(eps_hat - x0_hat)), as flow matching's Euler sampler is on its own. So each
family's Euler trajectory, written on the straight path, is a list of times s_k and states y_k, and with the
step velocities (y_k+1 - y_k) / (s_k+1 - s_k) (the network's own velocity at y_k, for an Euler step)

    S = sum_k (s_k - s_k+1) / (s_0 - s_K) || (y_K - y_0) / (s_K - s_0) - (y_k+1 - y_k) / (s_k+1 - s_k) ||^2 / D,

Liu's integral by the left Riemann sum on the sampler's grid, over the span the sampler covers (diffusion's
starts at s = 0.994, its last timestep, not at pure noise). `relative` divides by the chord's own squared speed
per pixel, so that 0.1 reads as "the velocity strays from the chord by about a third of its length".
"""
from __future__ import annotations

import torch

from engines.measure.uncertainty import mean_and_se


def straightness(times: list[float], states: torch.Tensor) -> dict:
    """Per-path straightness of trajectories `states` [K+1, n, ...] at descending `times` s_0 > ... > s_K:
    "per_pixel" (S of the module docstring, per path) and "relative" (S over the chord's squared speed)."""
    times = torch.as_tensor(times, dtype=torch.float64)
    if times.dim() != 1 or len(times) != len(states) or len(times) < 2 or not (times[1:] < times[:-1]).all():
        raise ValueError(f"need descending times, one per state (times {len(times)}, states {len(states)})")
    states = states.double().flatten(2)                                  # [K+1, n, D]
    span = times[0] - times[-1]
    chord = (states[-1] - states[0]) / (times[-1] - times[0])           # [n, D]
    widths = times[:-1] - times[1:]                                      # [K]
    velocities = (states[1:] - states[:-1]) / (-widths).view(-1, 1, 1)   # [K, n, D]
    deviation = (velocities - chord).pow(2).mean(-1)                     # [K, n]: per pixel
    per_pixel = (widths.view(-1, 1) / span * deviation).sum(0)
    return {"per_pixel": per_pixel, "relative": per_pixel / chord.pow(2).mean(-1)}


def straightness_summary(times: list[float], states: torch.Tensor, sampler: str) -> dict:
    """The report's cell: mean ± SE over the paths of both measures, with what was integrated."""
    values = straightness(times, states)
    out = {"n": states.shape[1], "sampler": sampler, "steps": len(times) - 1,
           "span": [round(float(times[0]), 4), round(float(times[-1]), 4)]}
    for key, per_path in values.items():
        mean, se = mean_and_se(per_path)
        out[key], out[f"{key}_se"] = round(mean, 5), round(se, 5)
    return out
