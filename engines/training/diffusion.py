"""The diffusion trainer: DDPM's simple loss (the noise's mean squared error at a uniform timestep), with an
EMA of the weights, which is what ships.

    python -m engines.train diffusion --dataset mnist5k --out DIR
"""
from __future__ import annotations

from dataclasses import dataclass

from engines.data.datasets import to_signed
from engines.models.diffusion import DiffusionConfig, DiffusionModel, diffusion_loss
from engines.training.base import Trainer


@dataclass
class DiffusionHParams:
    lr: float = 5e-4
    batch_size: int = 64
    steps: int = 20000
    warmup_steps: int = 200
    ema_decay: float = 0.999


class DiffusionTrainer(Trainer):
    hparams_cls, config_cls, model_cls = DiffusionHParams, DiffusionConfig, DiffusionModel

    def train_shards(self, shards, step):
        self.warmup_lr(self.opt, step, self.lr)
        losses = self.optimise(self.opt, self.model, shards,
                               lambda i, s: (diffusion_loss(self.model, to_signed(s.images), s.generator), {}))
        self.ema.update_parameters(self.model)
        return losses
