"""Measurements against a known density: what the seed's table claims, as numbers.

All log-likelihoods are nats per 2-D point, averaged over points.
- `true_log_likelihood(dist, x)`: log p_true at model samples (are samples where the data is?) or at data
  (then it is -entropy, the best any model's average log-likelihood of that data can be, by Gibbs' inequality).
- `mode_coverage`: the share of true modes that receive at least a quarter of their fair share of samples;
  a sampler that puts everything on one of 8 modes scores 1/8. Mode collapse is this number dropping.
- `energy_distance`: how far a sample is from the truth as a whole (Szekely & Rizzo 2013), 0 only for equal
  distributions: what "a distance to the true distribution" means in the straight-paths lesson.
- `vae_elbo`, `vae_log_likelihood`: the VAE's bound and its exact log p(x) (quadrature over the 2-D latent).
- `diffusion_log_likelihood`: the probability-flow ODE likelihood (Song et al. 2021) with the exact
  divergence: in 2-D the Jacobian trace is two autograd calls, no Hutchinson estimate needed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engines.engine import make_generator
from engines.toy.distributions import ToyDistribution

COVERED_SHARE = 0.25        # a mode counts as covered with >= 25% of the samples it would get from the truth
LATENT_EXTENT = 6.0         # quadrature box [-6, 6]^2: the prior mass outside it is below 1e-8
LATENT_GRID = 160           # points per axis; the test against importance sampling keeps this honest


def true_log_likelihood(distribution: ToyDistribution, x: torch.Tensor) -> float:
    return float(distribution.log_prob(x).mean())


@dataclass
class Coverage:
    covered: int             # modes with >= COVERED_SHARE of their expected count
    n_modes: int
    counts: list[int]        # samples per mode
    on_support: float        # share of samples within some mode (the rest fell between the modes)

    @property
    def share(self) -> float:
        return self.covered / self.n_modes


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """The squared energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between the samples x and y (V-statistic:
    all pairs, the diagonal's zeros included), in the plane's units; 0 when the two samples are one."""
    mean_distance = lambda a, b: torch.cdist(a.double(), b.double()).mean()   # noqa: E731
    return float(2 * mean_distance(x, y) - mean_distance(x, x) - mean_distance(y, y))


def mode_coverage(distribution: ToyDistribution, x: torch.Tensor, covered_share: float = COVERED_SHARE) -> Coverage:
    mode = distribution.mode_index(x)
    counts = torch.bincount(mode[mode >= 0], minlength=distribution.n_modes)
    expected = len(x) * distribution.mode_weights()
    covered = int((counts >= covered_share * expected).sum())
    return Coverage(covered, distribution.n_modes, counts.tolist(), float((mode >= 0).double().mean()))


@torch.no_grad()
def vae_elbo(vae, x: torch.Tensor, seed: int = 0, draws: int = 16) -> float:
    """The ELBO's expectation over q(z|x), estimated with `draws` reparameterised samples per point."""
    generator = make_generator(seed)
    return float(torch.stack([vae.elbo(x, generator)[0] for _ in range(draws)]).mean())


@torch.no_grad()
def vae_log_likelihood_per_point(vae, x: torch.Tensor, extent: float = LATENT_EXTENT,
                                 grid: int = LATENT_GRID) -> torch.Tensor:
    """log p(x) = log of the integral of p(x|z) N(z; 0, I) dz, by the midpoint rule on a grid over the plane.

    Exact up to the grid: in 2-D this is cheaper and more honest than an importance-sampled estimate."""
    if vae.config.latent_dim != 2:
        raise ValueError("quadrature needs a 2-D latent")
    width = 2 * extent / grid
    ticks = -extent + width * (torch.arange(grid, dtype=torch.float32) + 0.5)
    z = torch.cartesian_prod(ticks, ticks)                                     # [G^2, 2]
    mean = vae.decoder(z).double()
    log_std = vae.log_std().double()
    log_prior = (-0.5 * z.double().pow(2) - 0.5 * math.log(2 * math.pi)).sum(1)
    out = []
    for chunk in x.double().split(64):                                        # bounds memory: 64 x G^2
        log_lik = (-0.5 * ((chunk[:, None] - mean[None]) / log_std.exp()).pow(2)
                   - log_std - 0.5 * math.log(2 * math.pi)).sum(2)
        out.append(torch.logsumexp(log_lik + log_prior, dim=1) + 2 * math.log(width))
    return torch.cat(out)


def vae_log_likelihood(vae, x: torch.Tensor) -> float:
    return float(vae_log_likelihood_per_point(vae, x).mean())


def log_alpha_bar(schedule, t: float) -> tuple[float, float]:
    """log alphas_cumprod at a fractional timestep t, linear between the integer ones, and its slope there."""
    table = schedule.alphas_cumprod.log()
    k = min(max(int(math.floor(t)), 0), len(table) - 2)
    slope = float(table[k + 1] - table[k])
    return float(table[k]) + (t - k) * slope, slope


def probability_flow(model, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """dx/dt of the probability-flow ODE of x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, and its divergence.

    With lambda(t) = log abar(t): the forward SDE has drift lambda'/2 x and squared diffusion -lambda', and the
    score is -eps / sqrt(1 - abar), so dx/dt = lambda'(t)/2 * (x - eps(x, t) / sqrt(1 - abar(t)))."""
    lam, slope = log_alpha_bar(model.schedule, t)
    sigma = math.sqrt(1 - math.exp(lam))
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        eps = model(x, torch.full((len(x),), t, dtype=torch.float32))
        flow = 0.5 * slope * (x - eps / sigma)
        # Exact trace of the 2x2 Jacobian: one backward pass per output coordinate.
        divergence = sum(torch.autograd.grad(flow[:, i].sum(), x, retain_graph=i == 0)[0][:, i] for i in range(2))
    return flow.detach(), divergence.detach()


def diffusion_log_likelihood_per_point(model, x: torch.Tensor) -> torch.Tensor:
    """log p(x) under the model's probability-flow ODE: integrate x from t = 0 to t = T - 1 (Heun, one step
    per timestep interval, where log abar is linear), accumulating the divergence, then score the end point
    under N(0, I): log p_0(x) = log N(x_T; 0, I) + integral of div f dt.

    It starts at t = 0, not at clean data: x_0 carries noise of std sqrt(1 - abar_0) (0.013 for the
    playground's cosine T = 200), far below the toys' own noise, so the difference is negligible."""
    x = x.float()
    delta = torch.zeros(len(x), dtype=torch.float64)
    for k in range(model.schedule.num_train_timesteps - 1):
        flow, div = probability_flow(model, x, float(k))
        guess = x + flow
        flow_end, div_end = probability_flow(model, guess, k + 1 - 1e-6)   # the same linear piece
        x = x + 0.5 * (flow + flow_end)
        delta += 0.5 * (div + div_end).double()
    prior = (-0.5 * x.double().pow(2) - 0.5 * math.log(2 * math.pi)).sum(1)
    return prior + delta


def diffusion_log_likelihood(model, x: torch.Tensor) -> float:
    return float(diffusion_log_likelihood_per_point(model, x).mean())
