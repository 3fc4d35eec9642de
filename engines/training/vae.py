"""The VAE trainer: one Adam step on the negative ELBO (nats per image), logged with its two terms.

    python -m engines.train vae --dataset mnist5k --out DIR
"""
from __future__ import annotations

from dataclasses import dataclass

from engines.models.vae import VAE, VAEConfig
from engines.training.base import Trainer


@dataclass
class VAEHParams:
    lr: float = 1e-3
    batch_size: int = 128
    steps: int = 3000
    warmup_steps: int = 100


class VAETrainer(Trainer):
    hparams_cls, config_cls, model_cls = VAEHParams, VAEConfig, VAE

    def train_shards(self, shards, step):
        self.warmup_lr(self.opt, step, self.lr)

        def loss_fn(i, shard):
            elbo, reconstruction, kl = self.model.elbo(shard.images, shard.generator)
            return -elbo.mean(), {"reconstruction": -reconstruction.mean().item(), "kl": kl.mean().item()}
        return self.optimise(self.opt, self.model, shards, loss_fn, clip=100.0)
