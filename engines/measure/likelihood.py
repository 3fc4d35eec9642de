"""Likelihood in one unit: bits per dimension of the 8-bit test digits.

- VAE: the ELBO and the importance-weighted bound (IWAE, Burda et al. 2016). The decoder is a discrete
  distribution over the 256 pixel levels, so both are lower bounds on log P(x) of the discrete data.
- Diffusion, variational bound (Ho et al. 2020, eq. 5): L_prior + sum_{t>=1} KL(q(x_{t-1}|x_t,x_0) ||
  p(x_{t-1}|x_t)) + L_decoder, with the discretised Gaussian decoder over 256 levels (bin width 2/255 in
  [-1, 1]): also a bound on the discrete log P(x). The sum over the T-1 KL terms may be estimated from a
  stratified subset of timesteps (one random t per stratum and image, weighted by the stratum's size:
  unbiased; strata spaced geometrically, since the terms fall like 1/t); with as many strata as terms it is
  exact.
- Diffusion, probability-flow ODE (Song et al. 2021): the density of the ODE's flow from the data to N(0, I),
  log p(x_0) = log N(x_T) + integral of div f, with the divergence from a Hutchinson/Skilling estimate
  (one Rademacher probe per image for the whole path) and a fixed-step RK4 solver on a grid uniform in
  log(noise-to-signal). It is a *density* over continuous x, so the digits are uniformly dequantised first
  (k + u) / 256 and the density converted to bits of the 8-bit data: bpd = -log p / (D ln 2) + log2(256 / 2),
  the last term because [-1, 1] is 2 wide (the "+7" of score_sde). Dequantisation makes it a bound as well
  (in expectation over u; the Hutchinson estimate of log p is unbiased). The flow starts at the first trained
  timestep tau = 0, whose noise level sqrt(1 - abar_0) = 0.01 the data point is taken to carry (as score_sde
  starts at eps = 1e-5 rather than 0).
- GAN: an implicit model; it has no likelihood to report.

Accuracy of the defaults, checked on the shipped diffusion model (first test digits): the 50-strata VLB is within
0.01 bits/dim of the sum over all 999 terms (20 digits), and 24 RK4 steps are within 0.005 bits/dim of 48 (8 digits).

Everything here is a function of an eps-prediction callable `eps_model(x, t)` and a `NoiseSchedule`, so the
tests can plug in the exact noise predictor of Gaussian data, whose answers are known in closed form.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from engines.data.datasets import to_signed
from engines.sampling.schedule import NoiseSchedule
from engines.models.vae import bits_per_dim

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LEVELS = 256
DEQUANTISED_BIN = 2.0 / LEVELS       # width of one level in [-1, 1] after (k + u) / 256 dequantisation
VARIANCE_TYPES = ("fixed_small", "fixed_large")


def continuous_bits_per_dim(log_density_nats: torch.Tensor, dims: int,
                            bin_width: float = DEQUANTISED_BIN) -> torch.Tensor:
    """Density of dequantised data (nats per image) -> bits/dim of the discrete data:
    log P(level) >= log p(x) + log(bin width) per dimension."""
    return bits_per_dim(log_density_nats + dims * math.log(bin_width), dims)


def dequantise(x01: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """8-bit pixels in [0, 1] -> uniformly dequantised values (k + u) / 256 mapped to [-1, 1]."""
    levels = (x01 * (LEVELS - 1)).round()
    return to_signed((levels + torch.rand(x01.shape, generator=generator, dtype=x01.dtype)) / LEVELS)


# ---------------------------------------------------------------- VAE


@torch.no_grad()
def vae_bits_per_dim(engine, images: torch.Tensor, k: int = 64, seed: int = 0, batch_size: int = 250) -> dict:
    """ELBO (one draw per image) and IWAE(k) on images in [0, 1], averaged, in bits/dim and nats/image."""
    started = time.perf_counter()
    elbo, iwae = [], []
    for i, chunk in enumerate(images.split(batch_size)):
        elbo.append(engine.elbo(chunk, seed=seed + i))
        iwae.append(engine.iwae(chunk, k=k, seed=seed + i))
    elbo, iwae = torch.cat(elbo).double(), torch.cat(iwae).double()
    dims = images[0].numel()
    return {
        "elbo_bpd": float(bits_per_dim(elbo, dims).mean()), "iwae_bpd": float(bits_per_dim(iwae, dims).mean()),
        "elbo_nats": float(elbo.mean()), "iwae_nats": float(iwae.mean()), "iwae_k": k,
        "elbo_bpd_stderr": float(bits_per_dim(elbo, dims).std() / math.sqrt(len(elbo))),
        "n": len(images), "seconds": time.perf_counter() - started,
    }


# ---------------------------------------------------------------- diffusion: variational bound


def normal_kl(mean1: torch.Tensor, logvar1, mean2: torch.Tensor, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element, in nats."""
    logvar1, logvar2 = torch.as_tensor(logvar1, dtype=mean1.dtype), torch.as_tensor(logvar2, dtype=mean1.dtype)
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1)


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                                  levels: int = LEVELS) -> torch.Tensor:
    """Per-element log P(x) for x on the `levels`-point grid of [-1, 1] under N(mean, e^{2 log_scale})
    integrated over x's bin (half-width 1/255); the edge bins take the tails (Ho et al. 2020, eq. 13)."""
    half_bin = 1.0 / (levels - 1)
    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _std_normal_cdf(inv_std * (centred + half_bin))
    cdf_min = _std_normal_cdf(inv_std * (centred - half_bin))
    log_cdf_plus = torch.log(cdf_plus.clamp_min(1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp_min(1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp_min(1e-12))
    return torch.where(x < -1 + half_bin, log_cdf_plus,
                       torch.where(x > 1 - half_bin, log_one_minus_cdf_min, log_delta))


def _model_log_variance(schedule: NoiseSchedule, t: torch.Tensor, variance_type: str) -> torch.Tensor:
    """log sigma_t^2 of p(x_{t-1}|x_t): beta-tilde_t (fixed_small) or beta_t (fixed_large); at t = 0 both use
    beta-tilde_1, since beta-tilde_0 = 0 (as in Ho et al.'s and Nichol & Dhariwal's code)."""
    if variance_type == "fixed_small":
        table = torch.cat([schedule.posterior_variance[1:2], schedule.posterior_variance[1:]])
    elif variance_type == "fixed_large":
        table = torch.cat([schedule.posterior_variance[1:2], schedule.betas[1:]])
    else:
        raise ValueError(f"unknown variance_type {variance_type!r}: choose one of {VARIANCE_TYPES}")
    return table.log()[t]


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.flatten(1).sum(1)


def vlb_timesteps(num_train_timesteps: int, strata: int, n: int, generator: torch.Generator):
    """Stratified draw over the KL terms t = 1 .. T-1: per stratum, its size and one t per image [n].

    Strata are spaced geometrically (the first ones single timesteps): the terms fall roughly like 1/t, so
    each stratum then holds terms of similar size and the estimate's variance stays small."""
    strata = min(strata, num_train_timesteps - 1)
    edges = np.geomspace(1, num_train_timesteps, strata + 1).round().astype(int)
    for i in range(1, strata + 1):  # at least one timestep per stratum, ending exactly at T
        edges[i] = max(edges[i], edges[i - 1] + 1)
    for i in range(strata - 1, -1, -1):
        edges[i] = min(edges[i], edges[i + 1] - 1)
    edges[-1] = num_train_timesteps
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        t = int(lo) + torch.randint(0, int(hi - lo), (n,), generator=generator)
        out.append((int(hi - lo), t))
    return out


def _reverse_mean(eps_model: EpsModel, schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor,
                  generator: torch.Generator, clip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw x_t ~ q(x_t|x0) and return it with the mean of p(x_{t-1}|x_t) (the posterior mean at the
    predicted x0, clipped to [-1, 1] as the samplers do)."""
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    x_t = schedule.q_sample(x0, t, noise)
    x0_hat = schedule.predict_x0(x_t, t, eps_model(x_t.float(), t).double())
    if clip:
        x0_hat = x0_hat.clamp(-1, 1)
    return x_t, schedule.q_posterior_mean(x0_hat, x_t, t)


@torch.no_grad()
def diffusion_vlb(eps_model: EpsModel, schedule: NoiseSchedule, x0: torch.Tensor, strata: int = 100,
                  seed: int = 0, clip: bool = True, batch_size: int = 100) -> dict:
    """The variational bound on -log P(x0) for x0 on the 8-bit grid of [-1, 1], in nats per image, for both
    fixed variance choices (they share the eps predictions): per-image totals and their three parts."""
    T = schedule.num_train_timesteps
    generator = torch.Generator().manual_seed(seed)
    parts = {v: {"prior": [], "diffusion": [], "decoder": []} for v in VARIANCE_TYPES}
    a_last = schedule.alphas_cumprod[-1]
    for batch in x0.double().split(batch_size):
        n = len(batch)
        # L_prior = KL(q(x_{T-1} | x0) || N(0, I)): no network involved.
        prior = _per_image(normal_kl(a_last.sqrt() * batch, torch.log1p(-a_last), torch.zeros_like(batch), 0.0))
        # L_decoder = -log p(x0 | x at t = 0) with the discretised Gaussian decoder.
        t0 = torch.zeros(n, dtype=torch.long)
        _, mean0 = _reverse_mean(eps_model, schedule, batch, t0, generator, clip)
        kl_sum = {v: torch.zeros(n, dtype=torch.float64) for v in VARIANCE_TYPES}
        for weight, t in vlb_timesteps(T, strata, n, generator):
            x_t, model_mean = _reverse_mean(eps_model, schedule, batch, t, generator, clip)
            true_mean = schedule.q_posterior_mean(batch, x_t, t)
            true_logvar = schedule.posterior_variance[t].log().reshape(-1, 1, 1, 1)
            for v in VARIANCE_TYPES:
                logvar = _model_log_variance(schedule, t, v).reshape(-1, 1, 1, 1)
                kl_sum[v] += weight * _per_image(normal_kl(true_mean, true_logvar, model_mean, logvar))
        for v in VARIANCE_TYPES:
            log_scale = 0.5 * _model_log_variance(schedule, t0, v).reshape(-1, 1, 1, 1)
            parts[v]["decoder"].append(-_per_image(discretized_gaussian_log_prob(batch, mean0, log_scale)))
            parts[v]["prior"].append(prior)
            parts[v]["diffusion"].append(kl_sum[v])
    parts = {v: {k: torch.cat(x) for k, x in p.items()} for v, p in parts.items()}
    return {"nll_nats": {v: sum(p.values()) for v, p in parts.items()}, "terms_nats": parts,
            "strata": min(strata, T - 1)}


# ---------------------------------------------------------------- diffusion: probability-flow ODE


class ContinuousTime:
    """The discrete schedule read as a function of a real timestep tau in [0, T-1]: log alpha_bar
    interpolated linearly between the integer timesteps (where the network was trained)."""

    def __init__(self, schedule: NoiseSchedule):
        self.log_alpha_bar_table = schedule.alphas_cumprod.log().numpy()
        self.num_train_timesteps = schedule.num_train_timesteps

    def log_alpha_bar(self, tau: float) -> float:
        return float(np.interp(tau, np.arange(self.num_train_timesteps), self.log_alpha_bar_table))

    def dlog_alpha_bar(self, tau: float) -> float:
        """d log alpha_bar / d tau (piecewise constant; -beta(tau) in the VP-SDE's notation)."""
        i = int(min(max(math.floor(tau), 0), self.num_train_timesteps - 2))
        return float(self.log_alpha_bar_table[i + 1] - self.log_alpha_bar_table[i])

    def grid(self, steps: int) -> list[float]:
        """steps + 1 timesteps from 0 to T-1, uniform in log(sigma / alpha) (the log noise-to-signal ratio)."""
        log_snr_inv = 0.5 * (np.log(-np.expm1(self.log_alpha_bar_table)) - self.log_alpha_bar_table)
        targets = np.linspace(log_snr_inv[0], log_snr_inv[-1], steps + 1)
        return [float(t) for t in np.interp(targets, log_snr_inv, np.arange(self.num_train_timesteps))]


def _drift_and_divergence(eps_model: EpsModel, time: ContinuousTime, x: torch.Tensor, tau: float,
                          probe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PF-ODE drift f = 1/2 dlog(abar)/dtau (x - eps / sigma) and its Hutchinson divergence per image."""
    log_a = time.log_alpha_bar(tau)
    sigma = math.sqrt(-math.expm1(log_a))
    half_rate = 0.5 * time.dlog_alpha_bar(tau)
    with torch.enable_grad():
        x = x.detach().float().requires_grad_(True)
        eps = eps_model(x, torch.full((x.shape[0],), tau))
        vjp, = torch.autograd.grad((eps * probe).sum(), x)
    div_eps = _per_image(vjp.double() * probe)
    dims = x[0].numel()
    drift = half_rate * (x.detach().double() - eps.detach().double() / sigma)
    return drift, half_rate * (dims - div_eps / sigma)


def ode_log_likelihood(eps_model: EpsModel, schedule: NoiseSchedule, x: torch.Tensor, steps: int = 24,
                       seed: int = 0) -> dict:
    """log p(x) of continuous x in [-1, 1] (nats per image) under the probability-flow ODE, integrated with
    RK4 from tau = 0 to T-1, the end point scored under N(0, I). Returns the log density per image and the
    number of network evaluations (each a forward and a vector-Jacobian product) per image."""
    time = ContinuousTime(schedule)
    probe = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(seed)).float() * 2 - 1
    x = x.double()
    delta = torch.zeros(x.shape[0], dtype=torch.float64)
    grid = time.grid(steps)

    def f(state_x, tau):
        return _drift_and_divergence(eps_model, time, state_x, tau, probe)

    for t0, t1 in zip(grid[:-1], grid[1:]):
        h = t1 - t0
        k1, d1 = f(x, t0)
        k2, d2 = f(x + 0.5 * h * k1, t0 + 0.5 * h)
        k3, d3 = f(x + 0.5 * h * k2, t0 + 0.5 * h)
        k4, d4 = f(x + h * k3, t1)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        delta = delta + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    dims = x[0].numel()
    prior = -0.5 * _per_image(x.pow(2)) - 0.5 * dims * math.log(2 * math.pi)
    return {"log_density": prior + delta, "prior": prior, "nfe": 4 * steps}
