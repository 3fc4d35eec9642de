"""The flow-matching model's likelihood: the diffusion model's ODE bound, carried to the straight path.

A flow's ODE dx/dt = v(x, t) is a continuous normalising flow (Chen et al. 2018; Lipman et al. 2023, sec. 2), so
by the instantaneous change of variables, along a solution x_t,

    d log p_t(x_t) / dt = -div v(x_t, t),   so   log p_t0(x_t0) = log N(x_1; 0, I) + integral_t0^1 div v dt,

with div v from a Hutchinson estimate (one Rademacher probe per image for the whole path) and fixed-step RK4,
as `engines.measure.likelihood.ode_log_likelihood` does for the diffusion model's probability-flow ODE.

The data are 8-bit, so, as there, a small noise step is the dequantiser and a discretised Gaussian the decoder
(Song et al. 2021, "Maximum likelihood training of score-based diffusion models"; Ho et al. 2020's L_0):

    -log P(x) <= E_q[-log p_t0(z) + log q(z | x) - log p(x | z)],   q(z | x) = N((1 - t0) x, t0^2 I),

the three terms `flow`, `entropy` (= -D/2 log(2 pi e t0^2), analytic) and `decoder`. To be the *same* bound as
the diffusion model's, both ends are the diffusion's: t0 is the time where the straight path's noise-to-signal
t0 / (1 - t0) equals the diffusion's first step's sqrt((1 - abar_0) / abar_0) (0.01 for DDPM's schedule), so
z is the diffusion's z scaled by (1 - t0) / sqrt(abar_0), a change of units the KL does not see; and the
decoder is the diffusion's at t = 0 (mean the clipped predicted x0 = z - t0 v(z, t0), variance fixed_small).
The two models then share one floor (`decoder_floor_nats`), and with exact networks of the same data the two
bounds are equal in expectation (tested on Gaussian data).

The grid: `steps` RK4 intervals with ends uniform in log noise-to-signal log(t / (1 - t)) from t0 to 1 - t0,
the last of them running on to t = 1, where the path is exactly N(0, I) (the diffusion's grid stops short of
pure noise, at its last even timestep). Checked on the shipped MNIST flow (10 test digits, one seed): 24
intervals are within 0.001 bits/dim of 48, and 12 within 0.01.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from engines.data.datasets import to_signed
from engines.measure.likelihood import (
    _check_8bit,
    _per_image,
    decoder_floor_nats,
    discretized_gaussian_log_prob,
    model_log_variance,
)
from engines.measure.uncertainty import mean_and_se
from engines.measure.verdicts import pm
from engines.models.vae import bits_per_dim
from engines.sampling.schedule import NoiseSchedule

VelocityModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]   # v(x, t), t a float tensor per image


def start_time(schedule: NoiseSchedule) -> float:
    """t0 on the straight path with the noise-to-signal ratio of the diffusion's first step: t0 / (1 - t0) =
    sqrt((1 - abar_0) / abar_0)."""
    ratio = math.sqrt(float((1 - schedule.alphas_cumprod[0]) / schedule.alphas_cumprod[0]))
    return ratio / (1 + ratio)


def flow_grid(t0: float, steps: int) -> list[float]:
    """`steps` + 1 times from t0 to 1: uniform in log(t / (1 - t)) from t0 to 1 - t0, the last then set to 1."""
    if steps < 1 or not 0 < t0 < 0.5:
        raise ValueError(f"need steps >= 1 and 0 < t0 < 0.5 (steps = {steps}, t0 = {t0})")
    log_ratio = math.log(t0 / (1 - t0))
    times = 1 / (1 + np.exp(-np.linspace(log_ratio, -log_ratio, steps + 1)))
    return [float(t) for t in times[:-1]] + [1.0]


def _velocity_and_divergence(model: VelocityModel, x: torch.Tensor, t: float,
                             probe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v(x, t) and its Hutchinson divergence per image, probe^T (dv/dx) probe (one vector-Jacobian product)."""
    with torch.enable_grad():
        x = x.detach().float().requires_grad_(True)
        v = model(x, torch.full((x.shape[0],), t, dtype=x.dtype))
        vjp, = torch.autograd.grad((v * probe).sum(), x)
    return v.detach().double(), _per_image(vjp.double() * probe)


def flow_log_likelihood(model: VelocityModel, x: torch.Tensor, t0: float, steps: int = 24, seed: int = 0) -> dict:
    """log p_t0(x) (nats per image) of states x at time t0 under the flow's ODE, RK4 on `flow_grid(t0, steps)` to
    N(0, I) at t = 1. Returns the log density, the prior term, the grid and the network evaluations per image (4
    per interval, each a forward and a vector-Jacobian product)."""
    probe = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(seed)).float() * 2 - 1
    x = x.double()
    divergence_integral = torch.zeros(x.shape[0], dtype=torch.float64)
    grid = flow_grid(t0, steps)

    def f(state, t):
        return _velocity_and_divergence(model, state, t, probe)

    for t_from, t_to in zip(grid[:-1], grid[1:]):
        h, mid = t_to - t_from, (t_from + t_to) / 2
        k1, d1 = f(x, t_from)
        k2, d2 = f(x + 0.5 * h * k1, mid)
        k3, d3 = f(x + 0.5 * h * k2, mid)
        k4, d4 = f(x + h * k3, t_to)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        divergence_integral = divergence_integral + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    prior = -0.5 * _per_image(x.pow(2)) - 0.5 * x[0].numel() * math.log(2 * math.pi)
    return {"log_density": prior + divergence_integral, "prior": prior, "grid": grid, "nfe": 4 * (len(grid) - 1)}


@torch.no_grad()
def flow_ode_bound(model: VelocityModel, schedule: NoiseSchedule, x0: torch.Tensor, steps: int = 24, seed: int = 0,
                   batch_size: int = 50) -> dict:
    """The bound of the module docstring on -log P(x0) of 8-bit x0 on the grid of [-1, 1] (nats per image), with
    the diffusion `schedule`'s first step as dequantiser and decoder: per-image "nll_nats", "terms_nats" (flow,
    entropy, decoder), "floor_nats" (the diffusion's floor, shared), and "nfe" per image (the ODE's, plus the
    decoder's one forward). Seeded: z and the probes come from `seed` (and depend on batch_size)."""
    _check_8bit(x0)
    generator = torch.Generator().manual_seed(seed)
    t0 = start_time(schedule)
    entropy = -0.5 * x0[0].numel() * math.log(2 * math.pi * math.e * t0 ** 2)
    log_scale = 0.5 * model_log_variance(schedule, torch.tensor(0), "fixed_small")
    terms = {"flow": [], "entropy": [], "decoder": []}
    nfe = None
    for batch in x0.double().split(batch_size):
        z = (1 - t0) * batch + t0 * torch.randn(batch.shape, generator=generator, dtype=torch.float64)
        v = model(z.float(), torch.full((len(batch),), t0)).double()
        predicted_x0 = (z - t0 * v).clamp(-1, 1)
        ode = flow_log_likelihood(model, z, t0, steps, seed=int(torch.randint(0, 2 ** 62, (), generator=generator)))
        nfe = ode["nfe"] + 1
        terms["flow"].append(-ode["log_density"])
        terms["entropy"].append(torch.full((len(batch),), entropy, dtype=torch.float64))
        terms["decoder"].append(-_per_image(discretized_gaussian_log_prob(batch, predicted_x0, log_scale)))
    terms = {k: torch.cat(v) for k, v in terms.items()}
    return {"nll_nats": terms["flow"] + terms["entropy"] + terms["decoder"], "terms_nats": terms,
            "floor_nats": decoder_floor_nats(schedule, x0), "nfe": nfe}


METHOD = ("the diffusion model's ODE bound on the straight path: the same dequantiser (a noise step at the "
          "diffusion's first noise-to-signal ratio, 0.01) and decoder, so the same floor; the flow's "
          "log-density by RK4 from that step to N(0, I) at t = 1, uniform in log noise-to-signal, with a "
          "Hutchinson trace (one Rademacher probe per image; a forward and a vector-Jacobian product per evaluation)")


def flow_likelihood(engine, digits: torch.Tensor, settings: dict, seed: int) -> tuple[dict, dict]:
    """The report's likelihood cell of a flow engine: its ODE bound on `digits` (8-bit, in [0, 1]) in bits/dim,
    at the diffusion's `ode_steps`, with its parts, floor and cost; and each digit's bits/dim."""
    x0 = to_signed(digits)
    dims = x0[0].numel()
    schedule = NoiseSchedule.from_config(1000, "linear")   # the diffusion model's, whose first step dequantises
    started = time.perf_counter()
    bound = flow_ode_bound(engine.model, schedule, x0, steps=settings["ode_steps"], seed=seed)
    seconds = time.perf_counter() - started
    per_digit = bits_per_dim(-bound["nll_nats"], dims)
    summary = {
        "n": len(digits), "ode_bpd": round(float(per_digit.mean()), 4),
        "ode_bpd_se": round(mean_and_se(per_digit)[1], 4),
        "ode_floor_bpd": round(float(bits_per_dim(-bound["floor_nats"], dims).mean()), 4),
        "ode_terms_bpd": {k: round(float(bits_per_dim(-t, dims).mean()), 4) for k, t in bound["terms_nats"].items()},
        "ode_steps": settings["ode_steps"], "ode_nfe_per_image": bound["nfe"], "ode_seconds": round(seconds, 1),
        "ode_seconds_per_image": round(seconds / len(digits), 3), "ode_method": METHOD,
    }
    return summary, {"ode": per_digit}


def flow_likelihood_text(d: dict) -> dict:
    """A flow's likelihood in words: the comparison table's cell, the model card's line, report.md's bullet."""
    bound = pm(d["ode_bpd"], d["ode_bpd_se"], 3)
    terms = d["ode_terms_bpd"]
    return {"cell": f"ODE bound {bound} (floor {d['ode_floor_bpd']:.3f}) bpd, {d['ode_seconds_per_image']:.2f} s/digit",
            "card": f"ODE bound {bound} (floor {d['ode_floor_bpd']:.3f}) bits/dim on {d['n']} test digits "
                    f"({d['ode_seconds_per_image']:.2f} s per digit)",
            "report": [f"Flow matching, ODE bound: {pm(d['ode_bpd'], d['ode_bpd_se'], 4)} bits/dim, no lower than "
                       f"its floor {d['ode_floor_bpd']:.4f} (the diffusion bound's) - "
                       f"{'as a bound must be' if d['ode_bpd'] >= d['ode_floor_bpd'] else 'BELOW IT'}; parts: "
                       f"flow {terms['flow']:.4f}, entropy {terms['entropy']:.4f}, decoder {terms['decoder']:.4f}. "
                       f"{d['ode_nfe_per_image']} network evaluations per digit, {d['ode_seconds']:.0f} s. Method: "
                       f"{d['ode_method']}."]}
