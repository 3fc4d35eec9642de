"""What every trainer shares: hyper-parameters with command-line overrides, the modules and optimisers a
checkpoint saves, one optimisation step over shards, warm-up and warm restarts.

A trainer (one module per family beside this one: vae, gan, diffusion, latent_diffusion, diffusion_gan, and
classifier for the feature nets) exposes `modules` and `optimizers` (what a checkpoint saves and a resume
restores), `train_shards(shards, step)` (one optimisation step on this process's shards of the step's batch;
`train_step(images, labels, generator, step)` is the one-batch case), and `export()`, the module that ships
(config.json + model.safetensors). Hyper-parameters live in a dataclass per family; `--set key=value` on the
command line overrides a field of it or of the model's config. `runtime` (engines/training/distributed.py) is
where gradients are averaged over processes and mixed precision applies; the default is plain single-process
torch.

The loss convention, shared with the playground's toy trainers (engines/toy/training.py): a step returns
{name: float}, with "loss" for a model trained on one objective, "d_loss" and "g_loss" for the two players of
an adversarial one, and any further keys diagnostics of the step ("reconstruction", "kl", "d_real", "d_fake",
"r1"). These are the keys of train_log.jsonl and of the playground's loss curves.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from engines.checkpoint import companion_path, load_companion
from engines.data.datasets import Digits
from engines.errors import EngineError
from engines.training.distributed import Local


def parse_overrides(pairs: list[str]) -> dict:
    """['latent_dim=16', 'channel_mults=[1,2]'] -> {'latent_dim': 16, 'channel_mults': [1, 2]}."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise EngineError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def split_overrides(overrides: dict, *dataclass_types) -> list[dict]:
    """Route each override to the dataclass that has that field; unknown keys are an error."""
    parts = [{} for _ in dataclass_types]
    for key, value in overrides.items():
        for part, cls in zip(parts, dataclass_types):
            if key in {f.name for f in dataclasses.fields(cls)}:
                part[key] = tuple(value) if isinstance(value, list) else value
                break
        else:
            known = sorted(f.name for cls in dataclass_types for f in dataclasses.fields(cls))
            raise EngineError(f"unknown setting {key!r}: known settings are {', '.join(known)}")
    return parts


@dataclass
class Shard:
    """A share of one step's batch: this process's (under torchrun), or one micro-batch of it (--grad-accum),
    with the generator its noise is drawn from."""
    images: torch.Tensor
    labels: torch.Tensor
    generator: torch.Generator


def ema_of(module: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of `module`'s weights and buffers (batch-norm statistics included, so the
    average samples as the module does)."""
    return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


class Trainer:
    """Shared set-up and bookkeeping: hyper-parameters with command-line overrides, the shipped model (and its
    EMA when the hyper-parameters have an `ema_decay`) with one Adam optimiser, warm-up, gradient clipping.
    A family whose training needs more modules (the GAN) overrides `build`."""

    hparams_cls: type
    config_cls: type
    model_cls: type
    runtime = Local()
    # Its checkpoints sample, so --eval-every can score them (the feature nets' classifier does not).
    generative = True
    # For a hybrid that can also train without its parent: the --set that does so, for the error that says
    # no parent ships for the run's data ("" where the parent is needed).
    from_scratch = ""

    def __init__(self, overrides: dict, lr: float | None = None, batch_size: int | None = None,
                 steps: int | None = None):
        hp_values, config_values = split_overrides(overrides, self.hparams_cls, self.config_cls)
        self.hparams = self.hparams_cls(**hp_values)
        self.config = self.config_cls(**config_values)
        self.lr = lr if lr is not None else self.hparams.lr
        self.batch_size = batch_size if batch_size is not None else self.hparams.batch_size
        self.steps = steps if steps is not None else self.hparams.steps
        self.warmup_from = 0  # a warm restart warms its fresh optimiser up again from here
        self.parent_info: dict | None = None   # the parent it is built on, as it was (engines/training/lineage.py)
        # What a checkpoint saves and a resume restores, by name (the names are the keys in the state file).
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.build()

    def build(self) -> None:
        self.model = self.model_cls(self.config)
        self.modules["model"] = self.model
        decay = getattr(self.hparams, "ema_decay", None)
        self.ema = ema_of(self.model, decay) if decay else None
        if self.ema is not None:
            self.modules["ema"] = self.ema
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        self.optimizers["opt"] = self.opt

    def place(self, runtime: Local) -> None:
        """Run on `runtime`: its device (a no-op on the CPU) and its gradient averaging / mixed precision."""
        self.runtime = runtime
        for module in self.modules.values():
            module.to(runtime.device)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
                   step: int) -> dict[str, float]:
        """One optimisation step on one batch."""
        return self.train_shards([Shard(images, labels, generator)], step)

    def train_shards(self, shards: list[Shard], step: int) -> dict[str, float]:
        raise NotImplementedError

    def optimise(self, optimizer: torch.optim.Optimizer, module: nn.Module, shards: list[Shard], loss_fn,
                 clip: float | None = 1.0) -> dict[str, float]:
        """One step of `optimizer` on the mean of the shards' losses: `loss_fn(i, shard) -> (loss, {name:
        float})`, each shard's backward pass accumulating its share of the gradient; then the runtime averages
        the gradients over processes, and they are clipped and applied. Returns the mean loss and extras."""
        optimizer.zero_grad(set_to_none=True)
        logged: dict[str, float] = {}
        for i, shard in enumerate(shards):
            with self.runtime.autocast():
                loss, extras = loss_fn(i, shard)
            self.runtime.backward(loss / len(shards) if len(shards) > 1 else loss)
            for name, value in {"loss": loss.item(), **extras}.items():
                logged[name] = logged.get(name, 0.0) + value / len(shards)
        self.runtime.reduce_gradients(optimizer, module)
        if clip:
            nn.utils.clip_grad_norm_(module.parameters(), clip)
        self.runtime.step(optimizer)
        self.runtime.average_batch_norm(module)
        return logged

    def export(self) -> nn.Module:
        """The module that ships: the EMA of the weights where there is one."""
        return self.ema.module if self.ema is not None else self.model

    def phase_starts(self) -> list[int]:
        """The steps from which a training step does other work than before (the compute record counts one step
        of each phase): [0] when every step is alike."""
        return [0]

    def optimizer_steps(self, steps: int) -> dict[str, int]:
        """How many times each optimiser has stepped after `steps` training steps (each once a step here)."""
        return {name: steps for name in self.optimizers}

    def extra_info(self) -> dict:
        """What a family adds to training_info.json beyond the loop's record (reflow: its couplings' record)."""
        return {}

    def finish(self, out: Path, data: Digits, command: str) -> None:
        """On rank 0 after the last step, what a family adds to its finished checkpoint (nothing by default; the
        classifier fits its typicality gate)."""

    # The networks this family trains beyond the one it ships (attributes of the trainer, by name): saved beside
    # it at every checkpoint (`save_companions`) so that a shipped checkpoint can be trained on. The GANs' D.
    companion_names: tuple[str, ...] = ()

    def companions(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in self.companion_names}

    def warm_start(self, shipped: nn.Module, step: int, folder: Path) -> None:
        """Continue from the shipped weights in `folder` alone (no optimiser state): they initialise every module
        that ships, the companions load from their files beside them; the optimiser starts fresh and warms up
        again."""
        refusal = self.warm_start_refusal(folder)
        if refusal is not None:
            raise EngineError(refusal)
        for module in self.warm_start_modules():
            module.load_state_dict(shipped.state_dict())
        for name, module in self.companions().items():
            load_companion(folder, name, module)
        self.warmup_from = step

    def warm_start_modules(self) -> list[nn.Module]:
        # The shipped weights are the EMA where there is one; the online model restarts from them too.
        return [self.model] + ([self.ema.module] if self.ema is not None else [])

    def warm_start_refusal(self, folder: Path) -> str | None:
        """Why this family cannot continue from the shipped weights in `folder` alone (None: it can): a companion
        missing (weights shipped before the discriminator shipped beside them)."""
        missing = [companion_path(folder, name).name for name in self.companions()
                   if not companion_path(folder, name).is_file()]
        if not missing:
            return None
        return (f"{type(self).__name__.removesuffix('Trainer')} training goes on from shipped weights only with "
                f"{' and '.join(missing)} beside them, and {folder} has none (shipped before the discriminator "
                f"shipped). Resume needs the run's training_state.safetensors, or start a new run")

    def unconditional_parent(self, model_cls: type, config_cls: type, source: str, shipped: str) -> nn.Module:
        """The unconditional checkpoint a class-conditional model starts from (`source`: its folder; "": MNIST's
        shipped `shipped` model), refused unless its network is this config's but for the classes."""
        from engines.checkpoint import CHECKPOINTS, load_pretrained
        directory = Path(source) if source else CHECKPOINTS / shipped
        parent = load_pretrained(model_cls, config_cls, directory)
        ours = {k: v for k, v in dataclasses.asdict(self.config).items() if k != "num_classes"}
        if dataclasses.asdict(parent.config) != ours:
            raise EngineError(f"{directory}'s network differs from this config: pass its settings with --set, "
                              f"or --set {self.from_scratch}")
        return parent

    def warmup_lr(self, optimizer: torch.optim.Optimizer, step: int, lr: float) -> None:
        """Each parameter group at `lr` (times the group's own "lr_scale", where it has one), warmed up."""
        warmup = getattr(self.hparams, "warmup_steps", 0)
        for group in optimizer.param_groups:
            scaled = lr * group.get("lr_scale", 1.0)
            group["lr"] = scaled * min(1.0, (step - self.warmup_from + 1) / warmup) if warmup else scaled

    @staticmethod
    def update(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params, clip: float | None = 1.0) -> None:
        """One plain step on one loss (single process, no accumulation): for tests and experiments."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
