"""Small MLP versions of the three families for 2-D points, on the image engines' code paths.

- VAE: Gaussian encoder, Gaussian decoder with a learned per-axis std (one for the whole plane), so p(x|z) is a
  density and the ELBO a true lower bound on the model's log p(x) in nats. With a 2-D latent, that log p(x)
  can also be computed by quadrature over z, which is what "ELBO <= exact log-likelihood" is checked against.
- GAN: MLP generator and discriminator trained with `engines.models.gan`'s non-saturating losses.
- Diffusion: an MLP noise predictor trained with `engines.diffusion.diffusion_loss` on an
  `engines.schedule.NoiseSchedule`, sampled with `engines.sampling.samplers` (DDPM / DDIM). Points are not images in
  [-1, 1], so the samplers run with clip_sample=False. As a score model (-eps / sqrt(1 - abar)) it also samples by
  annealed Langevin dynamics (`engines.toy.score`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from engines.models.diffusion import SAMPLERS, diffusion_loss
from engines.errors import EngineError
from engines.models.gan import discriminator_loss, generator_loss
from engines.sampling.samplers import make_timesteps, sample_ddim, sample_ddpm
from engines.sampling.schedule import NoiseSchedule
from engines.toy.score import annealed_langevin, learned_score_fn

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
TOY_SAMPLERS = (*SAMPLERS, "langevin")   # the image engines' samplers, plus score-only annealed Langevin


def mlp(sizes: list[int], activation=nn.SiLU) -> nn.Sequential:
    """Linear layers of the given widths with an activation between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(exp(log_std)^2)), summed over the last axis."""
    return (-0.5 * ((x - mean) / log_std.exp()).pow(2) - log_std - HALF_LOG_2PI).sum(-1)


# ---------------------------------------------------------------------------------------------------- VAE
@dataclass
class ToyVAEConfig:
    hidden: int = 128
    latent_dim: int = 2          # 2, so that log p(x) = log of an integral over the plane, by quadrature
    min_log_std: float = -4.0    # floor of the decoder's std (e^-4 = 0.018), below the data's noise


class ToyVAE(nn.Module):
    def __init__(self, config: ToyVAEConfig = ToyVAEConfig()):
        super().__init__()
        self.config = config
        h, d = config.hidden, config.latent_dim
        self.encoder = mlp([2, h, h, 2 * d])
        self.decoder = mlp([d, h, h, 2])
        self.decoder_log_std = nn.Parameter(torch.zeros(2))   # learned, shared by all z: a smooth density

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-12, 8)

    def log_std(self) -> torch.Tensor:
        return self.decoder_log_std.clamp_min(self.config.min_log_std)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return gaussian_log_prob(x, self.decoder(z), self.log_std())

    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Single-sample ELBO per point in nats, with its reconstruction and KL terms (as engines.vae.VAE)."""
        mean, logvar = self.encode(x)
        z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=generator)
        reconstruction = self.log_px_given_z(x, z)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return reconstruction - kl, reconstruction, kl

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return -self.elbo(x, generator)[0].mean()

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draws from the model's density: decoder mean at z ~ N(0, I) plus the decoder's own noise."""
        z = torch.randn((n, self.config.latent_dim), generator=generator)
        return self.decoder(z) + self.log_std().exp() * torch.randn((n, 2), generator=generator)


# ---------------------------------------------------------------------------------------------------- GAN
@dataclass
class ToyGANConfig:
    hidden: int = 128
    latent_dim: int = 2


class ToyGAN(nn.Module):
    def __init__(self, config: ToyGANConfig = ToyGANConfig()):
        super().__init__()
        self.config = config
        h = config.hidden
        self.generator = mlp([config.latent_dim, h, h, 2], nn.ReLU)
        self.discriminator = mlp([2, h, h, 1], lambda: nn.LeakyReLU(0.2))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x).squeeze(1)

    def latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn((n, self.config.latent_dim), generator=generator)

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return discriminator_loss(self.logits(real), self.logits(fake.detach()))

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return generator_loss(self.logits(fake))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.generator(self.latents(n, generator))


# ---------------------------------------------------------------------------------------------- diffusion
@dataclass
class ToyDiffusionConfig:
    hidden: int = 128
    time_features: int = 16
    num_train_timesteps: int = 200   # enough for "5 vs 200 steps"; cosine, so x_T is pure noise at any T
    beta_schedule: str = "cosine"
    beta_start: float = 1e-4         # used by the linear schedule only
    beta_end: float = 0.02


def time_embedding(t: torch.Tensor, size: int) -> torch.Tensor:
    """Sinusoidal features of the timestep; t may be fractional (the probability-flow ODE needs that)."""
    half = size // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ToyDiffusion(nn.Module):
    """eps_theta(x_t, t) and the schedule it was trained with: the interface `diffusion_loss` and the
    samplers expect of `engines.diffusion.DiffusionModel`."""

    def __init__(self, config: ToyDiffusionConfig = ToyDiffusionConfig()):
        super().__init__()
        self.config = config
        h = config.hidden
        self.net = mlp([2 + config.time_features, h, h, h, 2])
        self.schedule = NoiseSchedule.from_config(config.num_train_timesteps, config.beta_schedule,
                                                  config.beta_start, config.beta_end)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x_t, time_embedding(t, self.config.time_features)], dim=1))

    def loss(self, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return diffusion_loss(self, x0, generator)

    def sample(self, n: int, generator: torch.Generator, sampler: str = "ddpm", steps: int | None = None,
               spacing: str = "trailing", callback=None) -> torch.Tensor:
        """x_T ~ N(0, I), then `steps` steps of `engines.sampling.samplers`' DDPM or DDIM (eta = 0), or, for
        "langevin", annealed Langevin dynamics through `steps` noise levels using only the learned score
        (`engines.toy.score.annealed_langevin`, its default steps per level and step size; the callback gets one
        SamplerStep per level, so `views.trajectories` draws it like the others).

        Trailing spacing, so that even 5 steps start at t = T - 1, where x_T really is noise."""
        if sampler not in TOY_SAMPLERS:
            raise EngineError(f"unknown sampler {sampler!r}: choose one of {', '.join(TOY_SAMPLERS)}")
        timesteps = make_timesteps(self.config.num_train_timesteps, steps or self.config.num_train_timesteps,
                                   spacing)
        x = torch.randn((n, 2), generator=generator)
        if sampler == "langevin":
            return annealed_langevin(learned_score_fn(self), self.schedule, x, generator, levels=timesteps,
                                     callback=callback)
        if sampler == "ddim":
            return sample_ddim(self, self.schedule, x, timesteps, clip_sample=False, callback=callback)
        return sample_ddpm(self, self.schedule, x, timesteps, clip_sample=False, generator=generator,
                           callback=callback)
