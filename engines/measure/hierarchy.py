"""Diffusion read as a hierarchical VAE, next to the VAE it generalises (Ho et al. 2020, sec. 2 and eq. 5;
Sohl-Dickstein et al. 2015; Kingma et al. 2021).

A VAE has one latent level: an encoder q(z|x) it learns, a decoder p(x|z) it learns, a prior N(0, I), and

    -ELBO = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I))               (reconstruction + one KL).

A diffusion model has T latent levels x_0 .. x_{T-1} (timesteps 0-indexed as everywhere in the lab; the data is
"before step 0"). Its encoder is *fixed*, q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I), nothing to
learn; its decoder is learned, one step per level, p(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I). The
same derivation as the VAE's gives one term per level:

    -ELBO = KL(q(x_{T-1} | x) || N(0, I))                                       the prior term, L_T
          + sum_{t >= 1} E_q KL(q(x_{t-1} | x_t, x) || p(x_{t-1} | x_t))          one KL per level, L_{t-1}
          + E_q[-log p(x | x_0)]                                                the decoder, L_0.

The VAE's single KL is the counterpart of the whole sum: both price, in bits, how much the latents tell about
the image beyond what the prior already says. `elbo_by_level` splits the lab's variational bound
(`likelihood.diffusion_vlb`, the number in the report) over bands of t; `latent_hierarchy` shows one digit's
levels under the fixed encoder next to what the learned decoder makes of each.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engines.data.datasets import from_signed, to_signed
from engines.engine import make_generator
from engines.errors import EngineError
from engines.measure.likelihood import diffusion_vlb, model_log_variance
from engines.models.vae import bits_per_dim

DEFAULT_LEVELS = (0, 50, 100, 200, 300, 500, 700, 999)   # spread where the picture changes (noise grows fast early)
DECADES = (1, 10, 100, 1000, 10_000)                     # the report's bands of t: 1-9, 10-99, 100-999, ...


@dataclass
class Hierarchy:
    """One digit's latent levels: images in [0, 1], [levels, 1, H, W] each."""
    levels: list[int]
    encoded: torch.Tensor          # x_t drawn by the fixed encoder, one q(x_t | x_{t-1}) step at a time
    predicted_x0: torch.Tensor     # the network's guess of the clean digit from x_t (clipped to [-1, 1])
    decoded_mean: torch.Tensor     # the mean of the learned decoder p(x_{t-1} | x_t): one level down
    decoded_draw: torch.Tensor     # one draw of it


def check_levels(levels, num_train_timesteps: int) -> list[int]:
    levels = sorted({int(t) for t in levels})
    if not levels or levels[0] < 0 or levels[-1] >= num_train_timesteps:
        raise EngineError(f"levels must be timesteps in 0 .. {num_train_timesteps - 1}, got {levels}")
    return levels


@torch.no_grad()
def latent_hierarchy(engine, x01: torch.Tensor, levels=DEFAULT_LEVELS, seed: int = 0) -> Hierarchy:
    """Encode one digit [1, 1, H, W] in [0, 1] level by level and decode each chosen level one step down."""
    schedule = engine.schedule
    levels = check_levels(levels, schedule.num_train_timesteps)
    generator = make_generator(seed)
    x = to_signed(x01.double())
    kept = {}
    for t in range(levels[-1] + 1):   # the Markov chain itself, not the closed-form jump: it is the encoder
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        x = schedule.alphas[t].sqrt() * x + schedule.betas[t].sqrt() * noise
        if t in levels:
            kept[t] = x
    x_t = torch.cat([kept[t] for t in levels])
    t = torch.tensor(levels)
    x0_hat = schedule.predict_x0(x_t, t, engine.model(x_t.float(), t).double()).clamp(-1, 1)
    mean = schedule.q_posterior_mean(x0_hat, x_t, t)
    std = (0.5 * model_log_variance(schedule, t, "fixed_small")).exp().reshape(-1, 1, 1, 1)
    draw = mean + std * torch.randn(mean.shape, generator=generator, dtype=torch.float64)
    images = [from_signed(v.clamp(-1, 1)).float() for v in (x_t, x0_hat, mean, draw)]
    return Hierarchy(levels, *images)


@torch.no_grad()
def elbo_by_level(engine, x01: torch.Tensor, strata: int = 50, seed: int = 0) -> dict:
    """The variational bound (fixed_small, as in the report) of digits in [0, 1], split by level, in bits/dim,
    averaged over the digits: {"prior", "decoder", "total", "bands": {"first", "last", "bpd"}}. The parts sum
    to the total by construction (tested), since they are the very terms `diffusion_vlb` adds."""
    x0 = to_signed(x01.double())
    vlb = diffusion_vlb(engine.model, engine.schedule, x0, strata=strata, seed=seed)
    return bound_by_level(vlb, x0[0].numel())


def bound_by_level(vlb: dict, dims: int, variance: str = "fixed_small") -> dict:
    """`diffusion_vlb`'s output -> mean bits/dim per part and per band of timesteps."""
    def bpd(nats: torch.Tensor) -> float:
        return float(bits_per_dim(-nats, dims).mean())
    terms = vlb["terms_nats"][variance]
    bands = vlb["band_nats"][variance]
    return {"prior": bpd(terms["prior"]), "decoder": bpd(terms["decoder"]), "total": bpd(vlb["nll_nats"][variance]),
            "bands": {"first": [a for a, _ in vlb["bands"]], "last": [b for _, b in vlb["bands"]],
                      "bpd": [bpd(bands[:, i]) for i in range(bands.shape[1])]}}


def group_by_decade(bands: dict, edges=DECADES) -> list[dict]:
    """Bands of t summed into decades of t (1-9, 10-99, ...): rows {"first", "last", "bpd"} for a short table.
    Each stratum falls wholly in one decade when the strata edges include the decade edges; otherwise it is
    counted where it starts."""
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = [i for i, first in enumerate(bands["first"]) if lo <= first < hi]
        if inside:
            rows.append({"first": bands["first"][inside[0]], "last": bands["last"][inside[-1]],
                         "bpd": sum(bands["bpd"][i] for i in inside)})
    return rows


@torch.no_grad()
def vae_elbo_terms(engine, x01: torch.Tensor, seed: int = 0) -> dict:
    """The VAE's -ELBO of digits in [0, 1] in bits/dim (mean over digits), split into reconstruction and KL."""
    parts = engine.elbo_parts(x01, seed=seed)
    dims = x01[0].numel()
    return {name: float(bits_per_dim(-nats.double(), dims).mean()) for name, nats in
            (("reconstruction", parts["reconstruction"]), ("kl", parts["kl"]), ("total", -parts["elbo"]))}
