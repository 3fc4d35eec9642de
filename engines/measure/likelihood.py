"""Likelihood in one unit: bits per dimension of the 8-bit test digits.

- VAE: the ELBO and the importance-weighted bound (IWAE, Burda et al. 2016). The decoder is a discrete
  distribution over the 256 pixel levels, so both are lower bounds on log P(x) of the discrete data.
- Diffusion, variational bound (Ho et al. 2020, eq. 5): L_prior + sum_{t>=1} KL(q(x_{t-1}|x_t,x_0) ||
  p(x_{t-1}|x_t)) + L_decoder, with the discretised Gaussian decoder over 256 levels (bin width 2/255 in
  [-1, 1]): also a bound on the discrete log P(x). The sum over the T-1 KL terms may be estimated from a
  stratified subset of timesteps (one random t per stratum and image, weighted by the stratum's size:
  unbiased; strata spaced geometrically, since the terms fall like 1/t); with as many strata as terms it is
  exact.
- Diffusion, probability-flow ODE (Song et al. 2021): the density of the ODE's flow from the first trained
  timestep tau = 0 to N(0, I), log p_ODE(z) = log N(z_end) + integral of div f, with the divergence from a
  Hutchinson/Skilling estimate (one Rademacher probe per image for the whole path) and a fixed-step RK4 solver.
  The grid holds even timesteps only, roughly uniform in log(noise-to-signal) from 0 to the last even timestep
  (T-2 when T is even; points merged by rounding are dropped), so RK4's midpoints are integers too and the
  network is evaluated only at timesteps it was trained at; the drift's rate d log abar / d tau there is a
  central difference. (It used to run on fractional timesteps, where the network was never trained.)
- Diffusion, ODE bound on the 8-bit data (`ode_bound`; Song et al. 2021, "Maximum likelihood training of
  score-based diffusion models", with Ho et al.'s L_0 decoder): the first diffusion step is the dequantiser.
  With q(z|x) = N(sqrt(abar_0) x, (1 - abar_0) I), the forward process at t = 0, and p(x|z) the VLB's decoder
  at t = 0 (discretised Gaussian, mean the posterior mean at the clipped predicted x0, variance fixed_small),

      log P(x) >= E_q[log p_ODE(z) - log q(z|x) + log p(x|z)],   i.e.
      -log P(x) <= nll(x) = KL(q(.|x) || p_ODE) + E_q[-log p(x|z)]  (= flow + entropy + decoder below).

  The floor: KL >= 0, and at t = 0 the posterior mean is the predicted x0 itself (coefficients 1 and 0),
  clipped to [-1, 1]; a discretised Gaussian of fixed variance puts the most mass on x's bin when its mean is
  at x (for the edge levels, at or beyond the edge, which the clipping stops at the edge). So for any network

      nll(x) >= floor(x) = -sum_i log P_decoder(x_i | mean = x_i)     (`decoder_floor_nats`),

  which a perfect model of a one-point data set reaches; an estimate below it is solver or Monte Carlo error.
  It bounds the discrete P(x) = integral of p_ODE(z) p(x|z) dz of the ODE model, with the VLB's own decoder
  term (the same z ~ q(z|x), the same decoder), so the two are in the same units and share this floor.
  The number this module used to report was not such a bound: it took uniformly dequantised digits
  (k + u) / 256 as the ODE's state at tau = 0 and converted density to bits with the bin width 2/256,
  bpd = -log p / (D ln 2) + log2(256 / 2). But the state at tau = 0 carries noise of std sqrt(1 - abar_0)
  (0.01 for DDPM's schedule), wider than a bin, so even the exact marginal there (the data blurred by that
  noise) has a density of at most 1 / (sqrt(2 pi) 0.01) per dimension near a level, and a perfect model could
  not go below -log2((2/256) / (sqrt(2 pi) 0.01)), about 1.68 bits/dim. Values under that measured the
  network's error at the fractional timesteps (RK4's midpoints), not better modelling. `dequantise` and
  `continuous_bits_per_dim` remain for densities of continuous data.
- GAN: an implicit model; it has no likelihood to report.

Accuracy of the defaults, checked on the shipped diffusion model (first test digits): the 50-strata VLB is within
0.01 bits/dim of the sum over all 999 terms (20 digits). The ODE's step-count check was made on the former
fractional-timestep grid and does not carry over to the even-timestep grid (which, near tau = 0, merges points
and so takes fewer intervals than asked): compare `ode_bound` at `steps` and twice that to check a setting. Too
few steps underestimate the flow term (they do on the Gaussian tests' coarse grids) and can put the estimate
below its floor: an estimate under `floor_nats` means the solver is too coarse.

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
from engines.measure.uncertainty import mean_and_se
from engines.measure.verdicts import pm
from engines.models.vae import bits_per_dim
from engines.sampling.schedule import NoiseSchedule

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
    """ELBO (one draw per image) and IWAE(k) on images in [0, 1], averaged (± standard error over the images),
    in bits/dim and nats/image; "per_image_bpd" holds each image's bits/dim for paired comparisons, and
    "elbo_terms_bpd" the ELBO's reconstruction and KL parts (they sum to -ELBO)."""
    started = time.perf_counter()
    parts, iwae = [], []
    for i, chunk in enumerate(images.split(batch_size)):
        parts.append(engine.elbo_parts(chunk, seed=seed + i))
        iwae.append(engine.iwae(chunk, k=k, seed=seed + i))
    parts = {name: torch.cat([p[name] for p in parts]).double() for name in parts[0]}
    elbo, iwae = parts.pop("elbo"), torch.cat(iwae).double()
    dims = images[0].numel()
    per_image = {"elbo": bits_per_dim(elbo, dims), "iwae": bits_per_dim(iwae, dims)}
    out = {"elbo_nats": float(elbo.mean()), "iwae_nats": float(iwae.mean()), "iwae_k": k, "n": len(images),
           "seconds": time.perf_counter() - started, "per_image_bpd": per_image,
           "elbo_terms_bpd": {name: float(bits_per_dim(-nats, dims).mean()) for name, nats in parts.items()}}
    for name, values in per_image.items():
        out[f"{name}_bpd"], out[f"{name}_bpd_se"] = mean_and_se(values)
    return out


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


def model_log_variance(schedule: NoiseSchedule, t: torch.Tensor, variance_type: str) -> torch.Tensor:
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
    """Stratified draw over the KL terms t = 1 .. T-1: per stratum, its first and last timestep and one t per
    image [n] (the stratum's size, last - first + 1, weights the drawn term).

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
        out.append((int(lo), int(hi) - 1, t))
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
    fixed variance choices (they share the eps predictions): per-image totals and their three parts, and the
    KL part split by stratum ("bands": first and last timestep of each; "band_nats": [images, strata]) - the
    bound of diffusion read as a hierarchical VAE, one term per level of its latent hierarchy."""
    T = schedule.num_train_timesteps
    generator = torch.Generator().manual_seed(seed)
    parts = {v: {"prior": [], "diffusion": [], "decoder": []} for v in VARIANCE_TYPES}
    band_nats = {v: [] for v in VARIANCE_TYPES}
    bands = []
    a_last = schedule.alphas_cumprod[-1]
    for batch in x0.double().split(batch_size):
        n = len(batch)
        # L_prior = KL(q(x_{T-1} | x0) || N(0, I)): no network involved.
        prior = _per_image(normal_kl(a_last.sqrt() * batch, torch.log1p(-a_last), torch.zeros_like(batch), 0.0))
        # L_decoder = -log p(x0 | x at t = 0) with the discretised Gaussian decoder.
        t0 = torch.zeros(n, dtype=torch.long)
        _, mean0 = _reverse_mean(eps_model, schedule, batch, t0, generator, clip)
        kl_sum = {v: torch.zeros(n, dtype=torch.float64) for v in VARIANCE_TYPES}
        per_band = {v: [] for v in VARIANCE_TYPES}
        bands = []
        for first, last, t in vlb_timesteps(T, strata, n, generator):
            bands.append((first, last))
            x_t, model_mean = _reverse_mean(eps_model, schedule, batch, t, generator, clip)
            true_mean = schedule.q_posterior_mean(batch, x_t, t)
            true_logvar = schedule.posterior_variance[t].log().reshape(-1, 1, 1, 1)
            for v in VARIANCE_TYPES:
                logvar = model_log_variance(schedule, t, v).reshape(-1, 1, 1, 1)
                term = (last - first + 1) * _per_image(normal_kl(true_mean, true_logvar, model_mean, logvar))
                kl_sum[v] += term
                per_band[v].append(term)
        for v in VARIANCE_TYPES:
            band_nats[v].append(torch.stack(per_band[v], dim=1))
            log_scale = 0.5 * model_log_variance(schedule, t0, v).reshape(-1, 1, 1, 1)
            parts[v]["decoder"].append(-_per_image(discretized_gaussian_log_prob(batch, mean0, log_scale)))
            parts[v]["prior"].append(prior)
            parts[v]["diffusion"].append(kl_sum[v])
    parts = {v: {k: torch.cat(x) for k, x in p.items()} for v, p in parts.items()}
    return {"nll_nats": {v: sum(p.values()) for v, p in parts.items()}, "terms_nats": parts,
            "strata": min(strata, T - 1), "bands": bands,
            "band_nats": {v: torch.cat(b) for v, b in band_nats.items()}}


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

    def dlog_alpha_bar_at_step(self, t: int) -> float:
        """d log alpha_bar / d tau at an integer timestep, as a central difference: the slope of a smooth curve
        through the table (log alpha_bar = 0 before step 0, where the data has no noise), not the piecewise
        linear one, whose one-sided slope at t belongs to the middle of [t, t + 1]. With the network evaluated
        only at integer timesteps, the one-sided slope puts the drift's rate half a step out of phase with the
        noise level the network sees, and the ODE's solution no longer converges as its steps shrink."""
        table, last = self.log_alpha_bar_table, self.num_train_timesteps - 1
        if not 0 <= t <= last:
            raise ValueError(f"timestep {t} outside [0, {last}]")
        if t == last:  # one-sided, second order
            return float(1.5 * table[t] - 2.0 * table[t - 1] + 0.5 * table[t - 2])
        before = table[t - 1] if t > 0 else 0.0
        return float(0.5 * (table[t + 1] - before))

    def grid(self, steps: int) -> list[float]:
        """steps + 1 timesteps from 0 to T-1, uniform in log(sigma / alpha) (the log noise-to-signal ratio)."""
        log_snr_inv = 0.5 * (np.log(-np.expm1(self.log_alpha_bar_table)) - self.log_alpha_bar_table)
        targets = np.linspace(log_snr_inv[0], log_snr_inv[-1], steps + 1)
        return [float(t) for t in np.interp(targets, log_snr_inv, np.arange(self.num_train_timesteps))]

    def even_grid(self, steps: int) -> list[int]:
        """The ODE grid: even timesteps from 0 to the last even one <= T-1 (T-2 when T is even), roughly uniform
        in log(sigma / alpha): the `steps` + 1 uniform points rounded to the nearest even timestep, duplicates
        (near tau = 0, where the log noise-to-signal ratio moves fastest) dropped, so there may be fewer than
        `steps` intervals. Both ends of each interval being even, RK4's midpoints are integers as well."""
        end = 2 * ((self.num_train_timesteps - 1) // 2)
        if end < 2 or steps < 1:
            raise ValueError(f"need T >= 3 and steps >= 1 (T = {self.num_train_timesteps}, steps = {steps})")
        table = self.log_alpha_bar_table[:end + 1]
        log_snr_inv = 0.5 * (np.log(-np.expm1(table)) - table)
        targets = np.linspace(log_snr_inv[0], log_snr_inv[-1], steps + 1)
        taus = np.interp(targets, log_snr_inv, np.arange(end + 1))
        even = 2 * np.round(taus / 2).astype(int)
        even[0], even[-1] = 0, end
        return [int(t) for t in np.unique(even)]


def _drift_and_divergence(eps_model: EpsModel, time: ContinuousTime, x: torch.Tensor, t: int,
                          probe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PF-ODE drift f = 1/2 dlog(abar)/dtau (x - eps / sigma) at the integer timestep t, and its Hutchinson
    divergence per image. The network sees t as integer (long) timesteps, as in training."""
    log_a = float(time.log_alpha_bar_table[t])
    sigma = math.sqrt(-math.expm1(log_a))
    half_rate = 0.5 * time.dlog_alpha_bar_at_step(t)
    with torch.enable_grad():
        x = x.detach().float().requires_grad_(True)
        eps = eps_model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        vjp, = torch.autograd.grad((eps * probe).sum(), x)
    div_eps = _per_image(vjp.double() * probe)
    dims = x[0].numel()
    drift = half_rate * (x.detach().double() - eps.detach().double() / sigma)
    return drift, half_rate * (dims - div_eps / sigma)


def ode_log_likelihood(eps_model: EpsModel, schedule: NoiseSchedule, x: torch.Tensor, steps: int = 24,
                       seed: int = 0) -> dict:
    """log p(x) of continuous x in [-1, 1] (nats per image) under the probability-flow ODE, integrated with
    RK4 from tau = 0 to the end of `ContinuousTime.even_grid(steps)` (the last even timestep, T-2 when T is
    even), the end point scored under N(0, I). The grid holds even timesteps only, so every evaluation,
    midpoints included, is at an integer timestep the network was trained at (this replaced a grid of
    fractional timesteps, where the network was never trained), and rounding may leave fewer than `steps`
    intervals. Returns the log density per image, the prior term, the grid, and the number of network
    evaluations (each a forward and a vector-Jacobian product) per image: 4 per interval actually taken."""
    time = ContinuousTime(schedule)
    probe = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(seed)).float() * 2 - 1
    x = x.double()
    delta = torch.zeros(x.shape[0], dtype=torch.float64)
    grid = time.even_grid(steps)

    def f(state_x, t):
        return _drift_and_divergence(eps_model, time, state_x, t, probe)

    for t0, t1 in zip(grid[:-1], grid[1:]):
        h, mid = t1 - t0, (t0 + t1) // 2
        k1, d1 = f(x, t0)
        k2, d2 = f(x + 0.5 * h * k1, mid)
        k3, d3 = f(x + 0.5 * h * k2, mid)
        k4, d4 = f(x + h * k3, t1)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        delta = delta + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    dims = x[0].numel()
    prior = -0.5 * _per_image(x.pow(2)) - 0.5 * dims * math.log(2 * math.pi)
    return {"log_density": prior + delta, "prior": prior, "grid": grid, "nfe": 4 * (len(grid) - 1)}


# ---------------------------------------------------------------- diffusion: ODE bound on the 8-bit data


def _check_8bit(x0: torch.Tensor) -> None:
    levels = (x0.double() + 1) * (LEVELS - 1) / 2
    if not ((levels >= -1e-3) & (levels <= LEVELS - 1 + 1e-3)).all() or (levels - levels.round()).abs().max() > 1e-3:
        raise ValueError("x0 must be 8-bit data on the grid of [-1, 1] (k / 255 * 2 - 1)")


def decoder_floor_nats(schedule: NoiseSchedule, x0: torch.Tensor) -> torch.Tensor:
    """-log p(x0 | z) per image (nats) for the t = 0 decoder of `ode_bound` and `diffusion_vlb` when its mean
    is x0 itself: the discretised Gaussian N(x0, sigma^2), sigma^2 = `model_log_variance(schedule, 0,
    "fixed_small")`.exp(), scored on x0's own bin (the edge levels take the tails). No decoder with a mean in
    [-1, 1] puts more mass on x0, so no model reaches a bound below this."""
    x0 = x0.double()
    log_scale = 0.5 * model_log_variance(schedule, torch.tensor(0), "fixed_small")
    return -_per_image(discretized_gaussian_log_prob(x0, x0, log_scale))


@torch.no_grad()
def ode_bound(eps_model: EpsModel, schedule: NoiseSchedule, x0: torch.Tensor, steps: int = 24, seed: int = 0,
              batch_size: int = 50) -> dict:
    """A variational bound on -log P(x0) of 8-bit x0 on the grid of [-1, 1] (nats per image), with the first
    diffusion step as the dequantiser (see the module docstring): one draw z ~ q(z | x0) = N(sqrt(abar_0) x0,
    (1 - abar_0) I) per image, then

        nll_nats = flow + entropy + decoder, where
        flow     = -log p_ODE(z)            (`ode_log_likelihood` from tau = 0, Hutchinson; one draw),
        entropy  = E_q[log q(z | x0)] = -H[q] = -D/2 log(2 pi e (1 - abar_0))   (analytic; the *negative*
                   entropy, positive when 1 - abar_0 < 1 / (2 pi e), as for every usable schedule),
        decoder  = -log p(x0 | z)           (discretised Gaussian, mean the posterior mean at the clipped
                   predicted x0 from z at t = 0, variance fixed_small: the VLB's decoder term).

    Each is an unbiased one-sample estimate (up to the ODE solver's error) of its expectation, so nll_nats is
    an estimate of an upper bound on -log P(x0). Returns per-image tensors: "nll_nats", "terms_nats" (the
    three above), "floor_nats" (`decoder_floor_nats`: what a perfect model reaches), and "nfe", the network
    evaluations per image: 4 per ODE interval (forward + vector-Jacobian product) plus the decoder's one
    forward. Seeded: z and the Hutchinson probes come from `seed` (and, like `diffusion_vlb`, depend on
    batch_size)."""
    _check_8bit(x0)
    generator = torch.Generator().manual_seed(seed)
    dims = x0[0].numel()
    entropy = -0.5 * dims * math.log(2 * math.pi * math.e * float(1 - schedule.alphas_cumprod[0]))
    log_scale = 0.5 * model_log_variance(schedule, torch.tensor(0), "fixed_small")
    terms = {"flow": [], "entropy": [], "decoder": []}
    nfe = None
    for batch in x0.double().split(batch_size):
        t0 = torch.zeros(len(batch), dtype=torch.long)
        z, mean0 = _reverse_mean(eps_model, schedule, batch, t0, generator, clip=True)
        ode_seed = int(torch.randint(0, 2 ** 62, (), generator=generator))
        ode = ode_log_likelihood(eps_model, schedule, z, steps=steps, seed=ode_seed)
        nfe = ode["nfe"] + 1
        terms["flow"].append(-ode["log_density"])
        terms["entropy"].append(torch.full((len(batch),), entropy, dtype=torch.float64))
        terms["decoder"].append(-_per_image(discretized_gaussian_log_prob(batch, mean0, log_scale)))
    terms = {k: torch.cat(v) for k, v in terms.items()}
    return {"nll_nats": terms["flow"] + terms["entropy"] + terms["decoder"], "terms_nats": terms,
            "floor_nats": decoder_floor_nats(schedule, x0), "nfe": nfe}


# ---------------------------------------------------------------- the report's likelihood cells


def rounded(result):
    """Floats rounded to 4 places, in nested dicts and lists too (report.json's precision)."""
    if isinstance(result, dict):
        return {k: rounded(v) for k, v in result.items()}
    if isinstance(result, list):
        return [rounded(v) for v in result]
    return round(result, 4) if isinstance(result, float) else result


ODE_METHOD = ("variational bound on the 8-bit likelihood with the first diffusion step as the dequantiser "
              "(z ~ q(x at t = 0 | x), the VLB's discretised-Gaussian decoder p(x | z)); the flow's "
              "log-density by RK4 on even integer timesteps (the network only sees timesteps it was "
              "trained at), roughly uniform in log noise-to-signal, with a Hutchinson trace (one "
              "Rademacher probe per image; a forward and a vector-Jacobian product per evaluation)")


@torch.no_grad()
def diffusion_likelihood(engine, digits: torch.Tensor, settings: dict, seed: int) -> tuple[dict, dict]:
    """The variational bound and the probability-flow ODE bound of a diffusion engine on `digits` (8-bit, in
    [0, 1]), in bits/dim, with their costs (`DiffusionEngine.likelihood`); and each digit's bits/dim per bound."""
    from engines.measure.hierarchy import bound_by_level  # it imports this module
    x0 = to_signed(digits)
    dims = x0[0].numel()

    def bpd(nats):
        return bits_per_dim(-nats, dims)
    started = time.perf_counter()
    vlb = diffusion_vlb(engine.model, engine.schedule, x0, strata=settings["vlb_strata"], seed=seed)
    vlb_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ode = ode_bound(engine.model, engine.schedule, x0, steps=settings["ode_steps"], seed=seed)
    ode_seconds = time.perf_counter() - started
    vlb_bpd, ode_bpd = bpd(vlb["nll_nats"]["fixed_small"]), bpd(ode["nll_nats"])
    summary = {
        "n": len(digits),
        "vlb_bpd": {v: round(float(bpd(t).mean()), 4) for v, t in vlb["nll_nats"].items()},
        "vlb_bpd_se": round(mean_and_se(vlb_bpd)[1], 4),
        "vlb_terms_bpd": {v: {k: round(float(bpd(t).mean()), 4) for k, t in parts.items()}
                          for v, parts in vlb["terms_nats"].items()},
        "vlb_strata": vlb["strata"], "vlb_nfe_per_image": vlb["strata"] + 1, "vlb_seconds": round(vlb_seconds, 1),
        "vlb_by_level": rounded(bound_by_level(vlb, dims)),
        "ode_bpd": round(float(ode_bpd.mean()), 4), "ode_bpd_se": round(mean_and_se(ode_bpd)[1], 4),
        "ode_floor_bpd": round(float(bpd(ode["floor_nats"]).mean()), 4),
        "ode_terms_bpd": {k: round(float(bpd(t).mean()), 4) for k, t in ode["terms_nats"].items()},
        "ode_steps": settings["ode_steps"], "ode_nfe_per_image": ode["nfe"],
        "ode_seconds": round(ode_seconds, 1), "ode_seconds_per_image": round(ode_seconds / len(digits), 3),
        "ode_method": ODE_METHOD,
    }
    return summary, {"vlb": vlb_bpd, "ode": ode_bpd}


def diffusion_report_lines(d: dict) -> list[str]:
    """report.md's bullets on a `diffusion_likelihood` summary: each bound with its parts and cost."""
    terms, ode_terms = d["vlb_terms_bpd"]["fixed_small"], d["ode_terms_bpd"]
    return [f"Diffusion, variational bound: {pm(d['vlb_bpd']['fixed_small'], d['vlb_bpd_se'], 4)} bits/dim "
            f"with sigma_t^2 = beta-tilde_t (fixed_small), {d['vlb_bpd']['fixed_large']:.4f} with beta_t "
            f"(fixed_large); parts (fixed_small): prior {terms['prior']:.4f}, KL terms "
            f"{terms['diffusion']:.4f}, decoder {terms['decoder']:.4f}. The sum over the T-1 KL terms is "
            f"estimated from {d['vlb_strata']} geometrically spaced strata (one random t each, unbiased); "
            f"{d['vlb_seconds']:.0f} s.",
            f"Diffusion, probability-flow ODE bound: {pm(d['ode_bpd'], d['ode_bpd_se'], 4)} bits/dim, "
            f"no lower than its floor {d['ode_floor_bpd']:.4f} (what a perfect model reaches with this start "
            f"and decoder) - {'as a bound must be' if d['ode_bpd'] >= d['ode_floor_bpd'] else 'BELOW IT'}; "
            f"parts: flow {ode_terms['flow']:.4f}, entropy {ode_terms['entropy']:.4f}, decoder "
            f"{ode_terms['decoder']:.4f}. {d['ode_nfe_per_image']} network evaluations per digit, "
            f"{d['ode_seconds']:.0f} s = {d['ode_seconds_per_image']:.2f} s per digit (all 1,000 test digits "
            f"would take {d['ode_seconds_per_image'] * 1000 / 60:.0f} min). Method: {d['ode_method']}."]
