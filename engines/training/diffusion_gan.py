"""The denoising diffusion GAN trainer: one discriminator step and one generator step on the step's batch.

Each image of the batch gets a step k of the few-step chain (uniform), a real pair (x_{t_{k-1}}, x_{t_k})
from the forward process and a generated pair (x'_{t_{k-1}}, x_{t_k}), x'_{t_{k-1}} drawn from
q(x_{t_{k-1}} | x_{t_k}, x0 = G(x_{t_k}, z, t_k)). D minimises the GAN loss on the two plus gamma times the
R1 penalty on the real pairs; G minimises the non-saturating loss -log D(fake pair). For the first
`d_warmup_steps` only D trains. All noise comes from
the shard's generator, so `--resume` continues exactly.

G starts from the shipped diffusion model's UNet (`warm_start_from`; see engines/models/diffusion_gan.py
for why), which must have G's architecture and schedule; "none" trains from scratch.

    python -m engines.train diffusion_gan --dataset mnist5k --out DIR [--set warm_start_from=DIR|none]
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engines.checkpoint import CHECKPOINTS, load_pretrained
from engines.data.datasets import to_signed
from engines.errors import EngineError
from engines.models.diffusion import DiffusionConfig, DiffusionModel
from engines.models.diffusion_gan import (
    DenoisingGenerator,
    DiffusionGANConfig,
    PairDiscriminator,
    forward_pair,
    posterior_sample,
    r1_penalty,
    step_timesteps,
)
from engines.models.gan import discriminator_loss, generator_loss
from engines.training.base import Trainer, ema_of

DEFAULT_WARM_START = CHECKPOINTS / "diffusion"


@dataclass
class DiffusionGANHParams:
    # G starts from a trained model and D from nothing: with equal rates (1e-4, 2e-4) D stayed at chance for
    # 3000 steps while G drifted on its noise (lab-net FD 308 at step 750, 2100 at 3000). A gentle G and a
    # fast D (two time-scale rule, Heusel et al. 2017) let D lead.
    lr: float = 2e-5
    d_lr: float = 4e-4
    batch_size: int = 64
    steps: int = 3000
    beta1: float = 0.5
    beta2: float = 0.9
    ema_decay: float = 0.999
    r1_gamma: float = 0.05
    # D alone for the first steps (G frozen): a random D is fooled by tiny changes of G's output (adversarial
    # examples), so G must not follow it until it has learnt what real denoising pairs look like.
    d_warmup_steps: int = 300
    # A diffusion checkpoint whose UNet initialises G: "" = MNIST's shipped one (engines.train names the run's own
    # lab dataset's, loop.with_parent); "none" = G from scratch.
    warm_start_from: str = ""


def diffusion_weights(directory: Path, config: DiffusionGANConfig) -> dict:
    """The UNet weights of the diffusion checkpoint in `directory`, refused unless its UNet and schedule are
    the generator's (G's timesteps must mean what they meant to the diffusion model)."""
    diffusion = load_pretrained(DiffusionModel, DiffusionConfig, directory)
    ours = dataclasses.asdict(config)
    different = {k: (v, ours[k]) for k, v in dataclasses.asdict(diffusion.config).items() if ours.get(k) != v}
    if different:
        raise EngineError(f"cannot warm-start from {directory}: its config differs from the generator's in "
                          + ", ".join(f"{k} ({a} there, {b} here)" for k, (a, b) in different.items())
                          + "; pass the same settings with --set, or --set warm_start_from=none")
    return diffusion.unet.state_dict()


class DiffusionGANTrainer(Trainer):
    hparams_cls, config_cls, model_cls = DiffusionGANHParams, DiffusionGANConfig, DenoisingGenerator
    from_scratch = "warm_start_from=none"
    companion_names = ("discriminator",)

    def build(self) -> None:
        self.generator = DenoisingGenerator(self.config)
        self.discriminator = PairDiscriminator(self.config)
        source = self.hparams.warm_start_from
        if source != "none":
            self.generator.unet.load_state_dict(diffusion_weights(Path(source) if source else DEFAULT_WARM_START,
                                                                  self.config))
        self.ema = ema_of(self.generator, self.hparams.ema_decay)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr,
                                      betas=(self.hparams.beta1, self.hparams.beta2))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.d_lr,
                                      betas=(self.hparams.beta1, self.hparams.beta2))
        self.modules.update(generator=self.generator, discriminator=self.discriminator, ema=self.ema)
        self.optimizers.update(opt_g=self.opt_g, opt_d=self.opt_d)
        timesteps = step_timesteps(self.config)
        self.timesteps = torch.tensor(timesteps)
        self.previous = torch.tensor(timesteps[1:] + [-1])

    def pairs(self, shard):
        """(step index, t, real x_prev, x_t, generated x_prev) for one shard; the generated one carries G's graph."""
        x0 = to_signed(shard.images)
        n, device, generator = len(x0), x0.device, shard.generator
        step = torch.randint(0, len(self.timesteps), (n,), generator=generator)
        noises = [torch.randn(x0.shape, generator=generator).to(device) for _ in range(3)]
        z = torch.randn((n, self.config.latent_dim), generator=generator).to(device)
        t, prev_t = self.timesteps[step], self.previous[step]
        x_prev, x_t = forward_pair(self.generator.schedule, x0, t, prev_t, (noises[0], noises[1]))
        with self.runtime.autocast():
            predicted_x0 = self.generator(x_t, t.to(device), z)
        fake_prev = posterior_sample(self.generator.schedule, predicted_x0, x_t, t, prev_t, noises[2])
        return step.to(device), x_prev, x_t, fake_prev

    def phase_starts(self) -> list[int]:
        return [0, self.hparams.d_warmup_steps]   # D alone, then D and G

    def optimizer_steps(self, steps: int) -> dict[str, int]:
        return {"opt_d": steps, "opt_g": max(0, steps - self.hparams.d_warmup_steps)}

    def train_shards(self, shards, step):
        train_g = step >= self.hparams.d_warmup_steps
        with torch.set_grad_enabled(train_g):
            batches = [self.pairs(s) for s in shards]
        gamma = self.hparams.r1_gamma

        def d_loss(i, shard):
            k, x_prev, x_t, fake_prev = batches[i]
            real_logits, r1 = r1_penalty(self.discriminator, x_prev, x_t, k)
            fake_logits = self.discriminator(fake_prev.detach(), x_t, k)
            return discriminator_loss(real_logits, fake_logits) + gamma * r1, {
                "r1": r1.item(), "d_real": torch.sigmoid(real_logits).mean().item(),
                "d_fake": torch.sigmoid(fake_logits).mean().item()}
        d = self.optimise(self.opt_d, self.discriminator, shards, d_loss, clip=None)
        if not train_g:
            return {"d_loss": d.pop("loss"), **d}

        def g_loss(i, shard):
            k, _, x_t, fake_prev = batches[i]
            return generator_loss(self.discriminator(fake_prev, x_t, k)), {}
        g = self.optimise(self.opt_g, self.generator, shards, g_loss, clip=None)
        self.ema.update_parameters(self.generator)
        return {"d_loss": d.pop("loss"), "g_loss": g["loss"], **d}

    def export(self):
        return self.ema.module

    def warm_start_modules(self) -> list[nn.Module]:
        return [self.generator, self.ema.module]   # what ships is G's EMA; the online G restarts from it too
