"""Small MLP versions of the three families for 2-D points, on the image engines' code paths.

- VAE: Gaussian encoder, Gaussian decoder with a learned per-axis std (one for the whole plane), so p(x|z) is a
  density and the ELBO a true lower bound on the model's log p(x) in nats. With a 2-D latent, that log p(x)
  can also be computed by quadrature over z, which is what "ELBO <= exact log-likelihood" is checked against.
- GAN: MLP generator and discriminator trained with `engines.models.gan`'s losses; the generator's loss is the
  non-saturating -log D(G(z)) (the default) or the minimax log(1 - D(G(z))) (`GENERATOR_LOSSES`).
- Diffusion GAN (the GAN + diffusion hybrid): `engines.models.diffusion_gan`'s few-step chain with MLPs: a
  generator G(x_t, z, t) -> x0 and a pair discriminator D(x_t', x_t, t), the same forward pairs and posterior
  draws as the image engine.
- Flow matching (and reflow): an MLP velocity v(x_t, t) on the straight path x_t = (1 - t) x_0 + t eps, trained
  as the image family is (`engines.models.flow`), sampled by `engines.sampling.flow`'s solvers on the uniform
  grid; a reflow twin trains on the flow's own (noise, sample) couplings (`engines.toy.training.ReflowTrainer`).
- Diffusion: an MLP noise predictor trained with `engines.diffusion.diffusion_loss` on an
  `engines.schedule.NoiseSchedule`, sampled with `engines.sampling.samplers` (DDPM / DDIM). Points are not images in
  [-1, 1], so the samplers run with clip_sample=False. As a score model (-eps / sqrt(1 - abar)) it also samples by
  annealed Langevin dynamics (`engines.toy.score`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engines.errors import EngineError
from engines.models.diffusion import SAMPLERS, diffusion_loss
from engines.models.diffusion_gan import alphas_cumprod_at, posterior_sample
from engines.models.gan import discriminator_loss, generator_loss
from engines.sampling import flow
from engines.sampling.samplers import SamplerStep, make_timesteps, sample_ddim, sample_ddpm
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
    def __init__(self, config: ToyVAEConfig | None = None):
        super().__init__()
        self.config = config = config or ToyVAEConfig()
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
    generator_loss: str = "non-saturating"   # one of GENERATOR_LOSSES


# The generator's loss, from the discriminator's logits l on generated points (D = sigmoid(l)). Against the optimal
# D*, the minimax loss's gradient is that of 2 JSD(p_data || p_g) (Goodfellow et al. 2014, Thm 1); the
# non-saturating one's is that of KL(p_g || p_data) - 2 JSD (Arjovsky & Bottou 2017, Thm 2.5).
GENERATOR_LOSSES = {
    "non-saturating": generator_loss,                                  # -log D(G(z)) = softplus(-l)
    "minimax": lambda fake_logits: -F.softplus(fake_logits).mean(),    # log(1 - D(G(z))) = -softplus(l)
}


def check_generator_loss(name) -> str:
    if name not in GENERATOR_LOSSES:
        raise EngineError(f"unknown GAN generator loss {name!r}: choose one of {', '.join(GENERATOR_LOSSES)}")
    return name


class ToyGAN(nn.Module):
    def __init__(self, config: ToyGANConfig | None = None):
        super().__init__()
        self.config = config = config or ToyGANConfig()
        check_generator_loss(config.generator_loss)
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
        return GENERATOR_LOSSES[self.config.generator_loss](self.logits(fake))

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

    def __init__(self, config: ToyDiffusionConfig | None = None):
        super().__init__()
        self.config = config = config or ToyDiffusionConfig()
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


# ------------------------------------------------------------------------------------------- flow matching
@dataclass
class ToyFlowConfig:
    hidden: int = 128
    time_features: int = 16
    steps: int = 50                  # the solver's default steps


class ToyFlow(nn.Module):
    """v_theta(x_t, t), t in [0, 1] (t = 1: noise), fed to the time features as 1000 t like the image model."""

    def __init__(self, config: ToyFlowConfig | None = None):
        super().__init__()
        self.config = config = config or ToyFlowConfig()
        h = config.hidden
        self.net = mlp([2 + config.time_features, h, h, h, 2])

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x_t, time_embedding(t * flow.NUM_TRAIN_TIMESTEPS, self.config.time_features)], 1))

    def loss(self, x0: torch.Tensor, generator: torch.Generator, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Conditional flow matching: uniform t, MSE of v_theta(x_t, t) against eps - x0 (eps independent of x0,
        or each x0's coupled `noise`: reflow)."""
        t = torch.rand((x0.shape[0], 1), generator=generator)
        noise = torch.randn(x0.shape, generator=generator) if noise is None else noise
        return F.mse_loss(self((1 - t) * x0 + t * noise, t[:, 0]), noise - x0)

    def sample(self, n: int, generator: torch.Generator, sampler: str = "euler", steps: int | None = None,
               callback=None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_1 ~ N(0, I) (or the given `noise`), then `steps` solver steps to t = 0 on the uniform grid."""
        x = torch.randn((n, 2), generator=generator) if noise is None else noise
        times = flow.make_flow_times(steps or self.config.steps, spacing="uniform")
        for step in flow.iterate_flow(flow.step_function(sampler), self, x, times):
            if callback is not None:
                callback(step)
            x = step.prev_sample
        return x


# ------------------------------------------------------------------------------------------- diffusion GAN
@dataclass
class ToyDiffusionGANConfig:
    hidden: int = 128
    latent_dim: int = 2
    time_features: int = 16
    num_steps: int = 4               # the chain: trailing timesteps of the toy diffusion schedule, 199 .. 49
    num_train_timesteps: int = 200
    beta_schedule: str = "cosine"
    data_variance: float = 2.0       # about the toys' per-axis variance (the ring's radius is 2)


class ToyDiffusionGAN(nn.Module):
    """G(x_t, z, t) -> x0 and D(x_t', x_t, t) -> logit, for points. G's output is preconditioned (Karras et al.
    2022, EDM): x0 = c_skip(t) x_t + c_out(t) F(x_t, z, t), with c_skip, c_out the variance-preserving weights
    for data of variance `data_variance`, so that near the data end of the chain G starts close to the right
    denoiser and F only has to learn the correction. Without it the chain's last step must first learn the
    identity, and 1500 steps leave most samples between the modes."""

    def __init__(self, config: ToyDiffusionGANConfig | None = None):
        super().__init__()
        self.config = config = config or ToyDiffusionGANConfig()
        h, tf = config.hidden, config.time_features
        self.generator = mlp([2 + config.latent_dim + tf, h, h, h, 2], nn.ReLU)
        self.discriminator = mlp([4 + tf, h, h, 1], lambda: nn.LeakyReLU(0.2))
        self.schedule = NoiseSchedule.from_config(config.num_train_timesteps, config.beta_schedule, 1e-4, 0.02)
        self.timesteps = make_timesteps(config.num_train_timesteps, config.num_steps, "trailing")

    def predicted_x0(self, x_t: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar, data = alphas_cumprod_at(self.schedule, t, x_t), self.config.data_variance
        # x_t / sqrt(abar) = x0 + sigma eps with sigma^2 = (1 - abar) / abar; EDM's c_skip and c_out for that
        # noise level, written in abar so that t = T - 1 (abar ~ 0) stays finite.
        denominator = 1 - abar + abar * data
        c_skip, c_out = data * abar.sqrt() / denominator, (data * (1 - abar) / denominator).sqrt()
        features = torch.cat([x_t, z, time_embedding(t, self.config.time_features)], dim=1)
        return c_skip * x_t + c_out * self.generator(features)

    def logits(self, x_prev: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.discriminator(torch.cat([x_prev, x_t, time_embedding(t, self.config.time_features)], 1)).squeeze(1)

    def latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn((n, self.config.latent_dim), generator=generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, callback=None) -> torch.Tensor:
        """x_T ~ N(0, I), then per step x0 = G(x_t, z, t) and x_t' ~ q(x_t' | x_t, x0); the last step returns
        G's x0. The callback gets one SamplerStep per step, so `views.trajectories` draws it like diffusion."""
        x = torch.randn((n, 2), generator=generator)
        for index, (t, prev_t) in enumerate(zip(self.timesteps, self.timesteps[1:] + [-1])):
            t_batch, prev_batch = torch.full((n,), t), torch.full((n,), prev_t)
            x0 = self.predicted_x0(x, self.latents(n, generator), t_batch)
            noise = torch.randn((n, 2), generator=generator) if prev_t >= 0 else torch.zeros_like(x)
            prev_sample = posterior_sample(self.schedule, x0, x, t_batch, prev_batch, noise)
            if callback is not None:
                abar = alphas_cumprod_at(self.schedule, t_batch, x)
                callback(SamplerStep(index, t, x, (x - abar.sqrt() * x0) / (1 - abar).sqrt(), x0, prev_sample))
            x = prev_sample
        return x
