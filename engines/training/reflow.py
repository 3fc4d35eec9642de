"""The reflow trainer: flow matching again, on a flow model's own (noise, image) couplings (Liu et al. 2022).

The network starts from the flow model whose ODE made the couplings (`flow_from`; Liu et al. warm-start the
2-rectified flow from the 1-rectified one) and learns the straight lines between each coupled pair: the flow
trainer's loss, optimiser and EMA, with the step's batch of couplings drawn from the step's generator (so
`--resume` continues exactly) in place of the dataset's images and independent noise. The dataset named on the
command line only says whose flow model is the default `flow_from`; the couplings are the data.

    python -m engines.make_couplings --dataset mnist --out COUPLINGS
    python -m engines.train reflow --dataset mnist5k --set couplings=COUPLINGS --out DIR
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from engines.checkpoint import CHECKPOINTS, load_pretrained
from engines.errors import EngineError
from engines.measure.sampler_benchmark import weights_hash
from engines.models.flow import FlowConfig, FlowModel, flow_matching_loss
from engines.training.base import Trainer, ema_of
from engines.training.couplings import load_couplings


@dataclass
class ReflowHParams:
    lr: float = 2e-4          # a fine-tune of a trained network: below the flow's 5e-4
    batch_size: int = 64
    steps: int = 2500
    warmup_steps: int = 200
    # The EMA starts at the flow's weights, which are not the ones wanted at 1-2 steps: 0.998 leaves 0.7% of them
    # after 2,500 steps (0.999, the flow's, would leave 8%).
    ema_decay: float = 0.998
    couplings: str = ""       # the folder `python -m engines.make_couplings` wrote (required)
    flow_from: str = ""       # the flow checkpoint that made them: "" = MNIST's shipped one


COUPLING_SOURCE = "flow"   # the family whose ODE makes the couplings (its checkpoint folder's name)


def coupling_source(directory: Path | None = None):
    """The flow engine whose ODE makes reflow's couplings: the one in `directory`, else MNIST's shipped one."""
    from engines.registry import load_engine
    return load_engine(COUPLING_SOURCE, directory or CHECKPOINTS / COUPLING_SOURCE)


class ReflowTrainer(Trainer):
    hparams_cls, config_cls, model_cls = ReflowHParams, FlowConfig, FlowModel

    def build(self) -> None:
        if not self.hparams.couplings:
            raise EngineError("reflow trains on a flow model's couplings: make them with python -m "
                              "engines.make_couplings --dataset DATASET --out DIR, then pass --set couplings=DIR")
        flow_dir = Path(self.hparams.flow_from) if self.hparams.flow_from else CHECKPOINTS / "flow"
        self.noise, self.images, self.couplings_info = load_couplings(Path(self.hparams.couplings))
        if self.couplings_info["source_weights"] != weights_hash(flow_dir):
            raise EngineError(f"the couplings in {self.hparams.couplings} were made by another flow model than "
                              f"{flow_dir} (weights differ): reflow starts from the model that made its couplings")
        flow = load_pretrained(FlowModel, FlowConfig, flow_dir)
        if dataclasses.asdict(flow.config) != dataclasses.asdict(self.config):
            raise EngineError(f"{flow_dir}'s network differs from the reflow config: pass its settings with --set")
        super().build()
        self.model.load_state_dict(flow.state_dict())
        self.ema = ema_of(self.model, self.hparams.ema_decay)
        self.modules["ema"] = self.ema

    def extra_info(self) -> dict:
        return {"couplings": self.couplings_info}

    def place(self, runtime) -> None:
        super().place(runtime)
        self.noise, self.images = self.noise.to(runtime.device), self.images.to(runtime.device)

    def coupled_loss(self, shard):
        """The flow-matching loss on a batch of couplings the shard's generator draws (as many as its images)."""
        index = torch.randint(0, len(self.images), (len(shard.images),), generator=shard.generator)
        index = index.to(self.images.device)
        return flow_matching_loss(self.model, self.images[index], shard.generator, noise=self.noise[index]), {}

    def train_shards(self, shards, step):
        self.warmup_lr(self.opt, step, self.lr)
        losses = self.optimise(self.opt, self.model, shards, lambda i, s: self.coupled_loss(s))
        self.ema.update_parameters(self.model)
        return losses
