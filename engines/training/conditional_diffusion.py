"""The class-conditional diffusion trainer: the diffusion trainer's loss, optimiser, schedule and EMA, told each
image's class and dropping it to the null class for `label_dropout` of the images (classifier-free guidance).

The UNet starts from a shipped diffusion model (`diffusion_from`; "" = MNIST's, and `engines.train` names the
run's own dataset's) with the class embedding at zero, so training starts from the unconditional model and only
has to learn what each class adds; "none" trains from scratch.

    python -m engines.train conditional_diffusion --dataset mnist5k --out DIR
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engines.data.datasets import to_signed
from engines.errors import EngineError
from engines.models.conditional_diffusion import (
    ConditionalDiffusionConfig,
    ConditionalDiffusionModel,
    conditional_diffusion_loss,
)
from engines.models.diffusion import DiffusionConfig, DiffusionModel
from engines.training.base import Trainer, ema_of


@dataclass
class ConditionalDiffusionHParams:
    lr: float = 2e-4          # a fine-tune of a trained network: below the diffusion model's 5e-4
    batch_size: int = 64
    steps: int = 6000
    warmup_steps: int = 200
    ema_decay: float = 0.999
    label_dropout: float = 0.1   # Ho & Salimans' p_uncond (they found 0.1 and 0.2 best)
    # The class embedding starts at zero beside a trained network: at the network's fine-tuning rate it barely
    # moves (a first MNIST run: its rows averaged 0.008 after 1,250 steps against the time embedding's 0.2-0.8,
    # and samples were of the class asked at chance), so it learns at this multiple of `lr`.
    embedding_lr_scale: float = 10.0
    diffusion_from: str = ""     # the diffusion checkpoint to start from: "" = MNIST's shipped one; "none"


class ConditionalDiffusionTrainer(Trainer):
    hparams_cls = ConditionalDiffusionHParams
    config_cls, model_cls = ConditionalDiffusionConfig, ConditionalDiffusionModel
    from_scratch = "diffusion_from=none"

    def build(self) -> None:
        if not 0 < self.hparams.label_dropout < 1:
            raise EngineError(f"label_dropout must be between 0 and 1 (exclusive): the network must see both "
                              f"labelled and unlabelled images, got {self.hparams.label_dropout}")
        super().build()
        embedding = list(self.model.class_embedding.parameters())
        rest = [p for name, p in self.model.named_parameters() if not name.startswith("class_embedding.")]
        self.opt = torch.optim.Adam([{"params": rest}, {"params": embedding,
                                                        "lr_scale": self.hparams.embedding_lr_scale}], lr=self.lr)
        self.optimizers["opt"] = self.opt
        source = self.hparams.diffusion_from
        if source != "none":
            diffusion = self.unconditional_parent(DiffusionModel, DiffusionConfig, source, "diffusion")
            self.model.unet.load_state_dict(diffusion.unet.state_dict())
            self.ema = ema_of(self.model, self.hparams.ema_decay)
            self.modules["ema"] = self.ema

    def train_shards(self, shards, step):
        self.warmup_lr(self.opt, step, self.lr)
        dropout = self.hparams.label_dropout
        losses = self.optimise(self.opt, self.model, shards, lambda i, s: (conditional_diffusion_loss(
            self.model, to_signed(s.images), s.labels.to(s.images.device), s.generator, dropout), {}))
        self.ema.update_parameters(self.model)
        return losses
