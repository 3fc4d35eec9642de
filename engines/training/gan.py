"""The GAN trainer: per step, one discriminator step and one generator step (non-saturating losses) on G's
output for the step's batch, with an EMA of the generator, which is what ships. Options: a linear learning-rate
decay over the last steps, and DiffAugment (engines/training/diff_augment.py) for small data.

    python -m engines.train gan --dataset mnist5k --out DIR [--set diff_augment=translation,cutout]
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engines.data.datasets import to_signed
from engines.models.gan import Discriminator, GANConfig, Generator, discriminator_loss, generator_loss
from engines.training.base import Trainer, ema_of
from engines.training.diff_augment import check_policy, diff_augment


@dataclass
class GANHParams:
    lr: float = 2e-4
    batch_size: int = 64
    steps: int = 5000
    beta1: float = 0.5
    ema_decay: float = 0.999
    lr_decay_steps: int = 0   # the run's last N steps decay both learning rates linearly towards 0 (0: constant)
    diff_augment: str = ""    # D sees only augmented images, real and fake ("translation,cutout"; "": none)


class GANTrainer(Trainer):
    hparams_cls, config_cls, model_cls = GANHParams, GANConfig, Generator

    generator_cls, discriminator_cls = Generator, Discriminator
    companion_names = ("discriminator",)

    def build(self) -> None:
        self.generator = self.generator_cls(self.config)
        self.discriminator = self.discriminator_cls(self.config)
        self.warm_start_generator()
        self.ema = ema_of(self.generator, self.hparams.ema_decay)
        check_policy(self.hparams.diff_augment)
        betas = (self.hparams.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=betas)
        self.modules.update(generator=self.generator, discriminator=self.discriminator, ema=self.ema)
        self.optimizers.update(opt_g=self.opt_g, opt_d=self.opt_d)

    def train_shards(self, shards, step):
        if self.hparams.lr_decay_steps:
            # Annealing both players together: smaller steps settle the game's oscillation around its end point.
            factor = min(1.0, (self.steps - step) / self.hparams.lr_decay_steps)
            for optimizer in (self.opt_g, self.opt_d):
                for group in optimizer.param_groups:
                    group["lr"] = self.lr * factor
        # G's output for each shard, computed once: D learns from it (detached), then G through it.
        with self.runtime.autocast():
            fakes = [self.generated(torch.randn((len(s.images), self.config.latent_dim),
                                                generator=s.generator).to(s.images.device), s) for s in shards]
        judged = self.judged

        def d_loss(i, shard):
            real_logits = judged(to_signed(shard.images), shard)
            fake_logits = judged(fakes[i].detach(), shard)
            return discriminator_loss(real_logits, fake_logits), {
                "d_real": torch.sigmoid(real_logits).mean().item(), "d_fake": torch.sigmoid(fake_logits).mean().item()}
        d = self.optimise(self.opt_d, self.discriminator, shards, d_loss, clip=None)
        g = self.optimise(self.opt_g, self.generator, shards,
                          lambda i, shard: (generator_loss(judged(fakes[i], shard)), {}), clip=None)
        self.ema.update_parameters(self.generator)
        return {"d_loss": d.pop("loss"), "g_loss": g["loss"], **d}

    def warm_start_generator(self) -> None:
        """Where a family's generator starts from trained weights (the conditional GAN's); the GAN's: none."""

    def generated(self, z: torch.Tensor, shard) -> torch.Tensor:
        """G's images for the shard's latents z."""
        return self.generator(z)

    def judged(self, images: torch.Tensor, shard) -> torch.Tensor:
        """D's logits, on DiffAugment's augmented images where the run asks for them."""
        return self.discriminator(diff_augment(images, self.hparams.diff_augment, shard.generator))

    def warm_start_modules(self) -> list[nn.Module]:
        return [self.generator, self.ema.module]   # what ships is G's EMA; the online G restarts from it too
