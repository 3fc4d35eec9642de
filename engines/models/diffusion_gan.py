"""Adversarial few-step diffusion: a denoising diffusion GAN (Xiao et al. 2022, "Tackling the generative
learning trilemma with denoising diffusion GANs").

Why it works: DDPM's reverse step p(x_{t-1} | x_t) is a Gaussian, which is accurate only when the steps are
small, hence its hundreds of steps. With a handful of large steps the true denoising distribution
q(x_{t-1} | x_t) is multimodal (many clean images are compatible with one very noisy one), and no Gaussian
fits it. A denoising diffusion GAN keeps the forward process and replaces each Gaussian reverse step by a
conditional GAN:

- the generator G(x_t, z, t) predicts a clean image x0' from the noisy x_t and a latent z ~ N(0, I), and
  x_{t-1} is drawn from the forward posterior q(x_{t-1} | x_t, x0 = x0') (Ho et al. 2020, eq. 7), so z is
  what makes the step multimodal;
- a time-conditioned discriminator D(x_{t-1}, x_t, t) tells real pairs (drawn from the forward process)
  from generated ones; at its equilibrium p_G(x_{t-1} | x_t) = q(x_{t-1} | x_t) for every step (Xiao et al.,
  eqs. 4-6), so sampling runs the same chain as diffusion but in a few steps, each as one GAN evaluation.

Our steps are `num_steps` of the shipped diffusion model's 1000 timesteps (trailing spacing: 999, 749, 499,
249 for 4), so the generator's UNet has the diffusion model's architecture and its time embedding means the
same timesteps. Training starts G from the diffusion model's weights (`warm_start_from`), with the latent z
entering through a zero-initialised embedding: at step 0, G is exactly 4-step DDPM (blurry: the posterior
mean of x0), and the adversarial loss teaches it to sharpen each step into a sample. This warm start is what
makes a CPU budget enough (in the spirit of adversarial diffusion distillation, Sauer et al. 2023); DDGAN
itself trains from scratch.

What makes training reliable, and why: the R1 gradient penalty on real pairs (Mescheder et al. 2018), as in
DDGAN; an exponential moving average of G (what ships); Adam with beta1 = 0.5. The discriminator does not
ship; the training state keeps it for `--resume`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from engines.checkpoint import hub_metadata, load_pretrained
from engines.data.datasets import from_signed
from engines.engine import Engine, check_count, make_generator
from engines.family import Family
from engines.models.unet import UNet, UNetConfig
from engines.sampling.samplers import StepOutput, iterate, make_timesteps, run
from engines.sampling.schedule import NoiseSchedule


@dataclass
class DiffusionGANConfig(UNetConfig):
    """The generator's UNet (the diffusion model's fields, inherited), the schedule its few steps are taken
    from, and the sizes of z and of the discriminator."""
    image_size: int = 28
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    num_steps: int = 4         # denoising steps (= generator evaluations per sample)
    latent_dim: int = 32       # z per step
    d_channels: int = 48       # the discriminator's width (trained; not sampled with)


def step_timesteps(config: DiffusionGANConfig) -> list[int]:
    """The timesteps of the few-step chain, descending, as "trailing" spacing picks them (so the chain starts
    at T - 1, from pure noise): [999, 749, 499, 249] for 4 of 1000."""
    return make_timesteps(config.num_train_timesteps, config.num_steps, "trailing")


def alphas_cumprod_at(schedule: NoiseSchedule, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """abar_t per image, shaped to broadcast over `like`; t = -1 (the clean end of the chain) gives 1."""
    abar = schedule.alphas_cumprod
    values = torch.where(t >= 0, abar[t.clamp_min(0)], torch.ones((), dtype=abar.dtype))
    return values.to(like).reshape((-1,) + (1,) * (like.dim() - 1))


def posterior_sample(schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                     prev_t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_{prev_t} ~ q(x_{prev_t} | x_t, x0) per image: Ho et al. 2020 eq. 7 for the jump t -> prev_t of the
    sub-chain, alpha = abar_t / abar_prev. Where prev_t = -1 the mean is x0 and the variance 0: the chain
    ends at the generator's x0. t, prev_t: [B] long."""
    abar_t, abar_prev = alphas_cumprod_at(schedule, t, x_t), alphas_cumprod_at(schedule, prev_t, x_t)
    alpha = abar_t / abar_prev
    mean = (abar_prev.sqrt() * (1 - alpha) / (1 - abar_t)) * x0 + (alpha.sqrt() * (1 - abar_prev) / (1 - abar_t)) * x_t
    variance = (1 - abar_prev) / (1 - abar_t) * (1 - alpha)
    return mean + variance.sqrt() * noise


def posterior_step(schedule: NoiseSchedule, x0: torch.Tensor, t: int, prev_t: int, x_t: torch.Tensor,
                   generator: torch.Generator | None = None) -> StepOutput:
    """The chain's step as a sampler step function (`engines.sampling.samplers.iterate` calls it with the
    generator's output): x_{prev_t} ~ q(x_{prev_t} | x_t, x0) (`posterior_sample`), its noise drawn but for the
    last step; the predicted noise is the one x0 implies, eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""
    n = x_t.shape[0]
    noise = torch.randn(x_t.shape, generator=generator) if prev_t >= 0 else torch.zeros_like(x_t)
    prev_sample = posterior_sample(schedule, x0, x_t, torch.full((n,), t), torch.full((n,), prev_t), noise)
    abar = float(schedule.alphas_cumprod[t])
    return StepOutput(prev_sample, x0, (x_t - abar ** 0.5 * x0) / (1 - abar) ** 0.5)


def forward_pair(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, prev_t: torch.Tensor,
                 noises: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A real pair (x_{prev_t}, x_t) from the forward process, per image: x_{prev_t} ~ q(. | x0) (x0 itself
    where prev_t = -1), then x_t ~ q(x_t | x_{prev_t}) = N(sqrt(alpha) x_prev, (1 - alpha) I), alpha =
    abar_t / abar_prev. t, prev_t: [B] long."""
    abar_t, abar_prev = alphas_cumprod_at(schedule, t, x0), alphas_cumprod_at(schedule, prev_t, x0)
    x_prev = abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * noises[0]
    alpha = abar_t / abar_prev
    return x_prev, alpha.sqrt() * x_prev + (1 - alpha).sqrt() * noises[1]


class DenoisingGenerator(nn.Module, PyTorchModelHubMixin, **hub_metadata("diffusion-gan", "gan", "diffusion")):
    """G(x_t, z, t) -> predicted x0 in [-1, 1]: the diffusion UNet's noise prediction turned into x0, with z
    added to the UNet's time embedding through a zero-initialised MLP (so z = anything gives the plain
    diffusion model's x0 at initialisation)."""

    def __init__(self, config: DiffusionGANConfig):
        super().__init__()
        self.config = config
        self.unet = UNet(config)
        emb_dim = 4 * config.base_channels
        self.z_mlp = nn.Sequential(nn.Linear(config.latent_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        nn.init.zeros_(self.z_mlp[-1].weight)
        nn.init.zeros_(self.z_mlp[-1].bias)
        self.schedule = NoiseSchedule.from_config(config.num_train_timesteps, config.beta_schedule,
                                                  config.beta_start, config.beta_end)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        eps = self.unet(x_t, t, self.z_mlp(z))
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])
        return self.schedule.predict_x0(x_t, t, eps).clamp(-1, 1)


class PairDiscriminator(nn.Module):
    """D(x_{t-1}, x_t, step) -> one logit: is x_{t-1} a real denoising of x_t at this step? The two images are
    stacked as channels; the step index enters as a learned per-channel bias after the first convolution."""

    def __init__(self, config: DiffusionGANConfig):
        super().__init__()
        ch, c = config.d_channels, config.image_channels
        self.step_embedding = nn.Embedding(config.num_steps, ch)
        self.conv_in = nn.Conv2d(2 * c, ch, 3, padding=1)
        self.net = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.LeakyReLU(0.2),        # 14x14
            nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), nn.LeakyReLU(0.2),                       # 7x7
            nn.Conv2d(4 * ch, 4 * ch, 3, 2, 1), nn.LeakyReLU(0.2),                       # 4x4
            nn.Flatten(), nn.Linear(4 * ch * 16, 1),
        )

    def forward(self, x_prev: torch.Tensor, x_t: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(torch.cat([x_prev, x_t], dim=1)) + self.step_embedding(step)[:, :, None, None]
        return self.net(h).squeeze(1)


def r1_penalty(discriminator: PairDiscriminator, x_prev: torch.Tensor, x_t: torch.Tensor,
               step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D's logits on the real pairs, the R1 penalty E ||grad_{x_prev} D||^2 / 2 on them; Mescheder et al. 2018):
    penalising D's slope on real data is what keeps a GAN's training converging locally."""
    x_prev = x_prev.detach().requires_grad_(True)
    logits = discriminator(x_prev, x_t, step)
    (grad,) = torch.autograd.grad(logits.sum(), x_prev, create_graph=True)
    return logits, 0.5 * grad.pow(2).flatten(1).sum(1).mean()


class DiffusionGANEngine(Engine):
    family = "diffusion_gan"

    def __init__(self, model: DenoisingGenerator, directory: Path):
        super().__init__(model, directory)
        self.config = model.config
        self.schedule = model.schedule
        self.timesteps = step_timesteps(self.config)

    @classmethod
    def load(cls, directory: Path) -> "DiffusionGANEngine":
        return cls(load_pretrained(DenoisingGenerator, DiffusionGANConfig, directory), directory)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def network_evaluations(self) -> int:
        """One generator call per denoising step."""
        return len(self.timesteps)

    def _trajectory(self, n: int, seed: int):
        """SamplerSteps of one chain: the samplers' one loop (`iterate`) with the generator as the model and
        `posterior_step` as the step, each step to the next timestep of the chain and the last to -1. Draws, in
        order: x_T, then per step z (at the generator's call) and (but for the last step) the posterior noise,
        all from the seed's one generator."""
        n, generator = check_count(n), make_generator(seed)
        c, s = self.config.image_channels, self.config.image_size
        x = torch.randn((n, c, s, s), generator=generator)

        def denoiser(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # x0 = G(x_t, z, t), a fresh z per call
            return self.model(x_t, t, torch.randn((n, self.latent_dim), generator=generator))
        return iterate(posterior_step, denoiser, self.schedule, x, self.timesteps, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """n images [n, 1, 28, 28] in [0, 1], in `num_steps` generator evaluations each."""
        return from_signed(run(self._trajectory(n, seed)))

    @torch.no_grad()  # torch applies it to each resumption of the generator, not to the caller's code
    def trace(self, n: int, seed: int = 0):
        """Yield each SamplerStep (timestep, x_t, the noise implied by x0', the generator's x0', next x) in
        [-1, 1] space, as DiffusionEngine.trace does; the last step's prev_sample, mapped to [0, 1], equals
        sample()."""
        yield from self._trajectory(n, seed)


# Why the report has no bits/dim for it.
NO_LIKELIHOOD = ("none: each step's generator is implicit (x0 is a learned function of x_t and z), so the chain "
                 "assigns no tractable probability to a test digit (Xiao et al. 2022 report none either)")
DESCRIPTION = ("Denoising diffusion GAN (Xiao et al. 2022): four large denoising steps at t = 999, 749, 499, 249 of "
               "the diffusion model's linear schedule. The generator G(x_t, z, t) is the diffusion model's UNet, "
               "started from its weights, with a 32-d z added to its time embedding through a zero-initialised MLP; "
               "it predicts x0, and the next x is drawn from the forward posterior q(x_t' | x_t, x0). A "
               "time-conditioned discriminator on (x_t', x_t, step) is trained with the non-saturating "
               "loss and an R1 penalty on real pairs; it trains alone for the first steps (`d_warmup_steps`: a "
               "random discriminator is fooled by tiny changes of G's output) and then at a higher learning rate "
               "than G (`d_lr`); Adam(0.5, 0.9); the shipped generator is the EMA of G (decay 0.999). Sampling: its "
               "four steps, one generator call each.")
FAMILY = Family(name="diffusion_gan", title="diffusion GAN", engine=DiffusionGANEngine,
                trainer="engines.training.diffusion_gan:DiffusionGANTrainer", colour="tab:red",
                description=DESCRIPTION, parents=("gan", "diffusion"), no_likelihood=NO_LIKELIHOOD,
                quality_bar=0.90, parent_options={"warm_start_from": "diffusion"},
                card_targets=("fd_against_ddpm", "speed_against_ddpm", "speed_frontier", "stability_against_parent"),
                caption=" (its own few steps, one generator call each, whatever the sampler)")
