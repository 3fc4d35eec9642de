"""The trainer of the lab's feature nets (its judge of samples: `engines.models.classifier`): cross-entropy on
randomly shifted digits, cosine learning-rate decay, logged with the batch's accuracy; after the last step, the
net's typicality gate (`engines.measure.typicality`).

    python -m engines.train classifier --dataset mnist5k --out DIR
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch.nn.functional as F
from torch import nn

from engines.data.datasets import Digits
from engines.measure.typicality import fit_and_record
from engines.models.classifier import Classifier, ClassifierConfig, random_shift
from engines.training.base import Trainer


@dataclass
class ClassifierHParams:
    lr: float = 1e-3
    batch_size: int = 128
    steps: int = 2500
    warmup_steps: int = 50


class ClassifierTrainer(Trainer):
    hparams_cls, config_cls, model_cls = ClassifierHParams, ClassifierConfig, Classifier
    generative = False   # it judges samples and draws none: nothing for --eval-every to score

    def train_shards(self, shards, step):
        # Cosine decay after warm-up: a classifier, unlike the generators, should end converged.
        lr = self.lr * 0.5 * (1 + math.cos(math.pi * step / self.steps))
        self.warmup_lr(self.opt, step, lr)
        self.model.train()

        def loss_fn(i, shard):
            logits = self.model(random_shift(shard.images, shard.generator))
            accuracy = (logits.argmax(1) == shard.labels).float().mean().item()
            return F.cross_entropy(logits, shard.labels), {"accuracy": accuracy}
        return self.optimise(self.opt, self.model, shards, loss_fn)

    def export(self) -> nn.Module:
        return self.model.eval()

    def finish(self, out: Path, data: Digits, command: str) -> None:
        # The gate that keeps a blank page or noise from being "recognisable" (engines.measure.typicality).
        fit_and_record(self.export(), out, data.images, data.labels,
                       f"{command}  # typicality gate fitted after the last step")
