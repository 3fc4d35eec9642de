"""The flow-matching trainer: the conditional flow-matching loss (velocity MSE on the straight path at a uniform
t), with an EMA of the weights, which is what ships; the diffusion trainer's optimiser, schedule and batch, so
the two families differ only in what the same network learns.

    python -m engines.train flow --dataset mnist5k --out DIR
"""
from __future__ import annotations

from dataclasses import dataclass

from engines.data.datasets import to_signed
from engines.models.flow import FlowConfig, FlowModel, flow_matching_loss
from engines.training.base import Trainer


@dataclass
class FlowHParams:
    lr: float = 5e-4
    batch_size: int = 64
    steps: int = 20000
    warmup_steps: int = 200
    ema_decay: float = 0.999


class FlowTrainer(Trainer):
    hparams_cls, config_cls, model_cls = FlowHParams, FlowConfig, FlowModel

    def train_shards(self, shards, step):
        self.warmup_lr(self.opt, step, self.lr)
        losses = self.optimise(self.opt, self.model, shards,
                               lambda i, s: (flow_matching_loss(self.model, to_signed(s.images), s.generator), {}))
        self.ema.update_parameters(self.model)
        return losses
