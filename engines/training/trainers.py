"""One trainer per family: the models, optimisers and EMA it owns, and one optimisation step.

A trainer exposes `modules` and `optimizers` (what a checkpoint saves and a resume restores),
`train_shards(shards, step) -> {loss name: float}` (one optimisation step on this process's shards of the
step's batch; `train_step(images, labels, generator, step)` is the one-batch case), and `export()`, the module
that ships (config.json + model.safetensors). Hyper-parameters live in a dataclass per family; `--set
key=value` on the command line overrides a field of it or of the model's config. `runtime` (see
engines/training/distributed.py) is where gradients are averaged over processes and mixed precision applies;
the default is plain single-process torch.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from engines.data.datasets import to_signed
from engines.errors import EngineError
from engines.models.classifier import Classifier, ClassifierConfig, random_shift
from engines.models.diffusion import DiffusionConfig, DiffusionModel, diffusion_loss
from engines.models.gan import Discriminator, GANConfig, Generator, discriminator_loss, generator_loss
from engines.models.vae import VAE, VAEConfig
from engines.training.diff_augment import check_policy, diff_augment
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
    return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


class Trainer:
    """Shared set-up and bookkeeping: hyper-parameters with command-line overrides, the shipped model (and its
    EMA when the hyper-parameters have an `ema_decay`) with one Adam optimiser, warm-up, gradient clipping.
    A family whose training needs more modules (the GAN) overrides `build`."""

    hparams_cls: type
    config_cls: type
    model_cls: type
    runtime = Local()

    def __init__(self, overrides: dict, lr: float | None = None, batch_size: int | None = None,
                 steps: int | None = None):
        hp_values, config_values = split_overrides(overrides, self.hparams_cls, self.config_cls)
        self.hparams = self.hparams_cls(**hp_values)
        self.config = self.config_cls(**config_values)
        self.lr = lr if lr is not None else self.hparams.lr
        self.batch_size = batch_size if batch_size is not None else self.hparams.batch_size
        self.steps = steps if steps is not None else self.hparams.steps
        self.warmup_from = 0  # a warm restart warms its fresh optimiser up again from here
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

    def warm_start(self, shipped: nn.Module, step: int) -> None:
        """Continue from shipped weights alone (no optimiser state): they initialise every module that
        ships; the optimiser starts fresh and warms up again. Families whose training needs more than
        what ships (the GAN's discriminator) cannot do this."""
        for module in self.warm_start_modules():
            module.load_state_dict(shipped.state_dict())
        self.warmup_from = step

    def warm_start_modules(self) -> list[nn.Module]:
        # The shipped weights are the EMA where there is one; the online model restarts from them too.
        return [self.model] + ([self.ema.module] if self.ema is not None else [])

    def warmup_lr(self, optimizer: torch.optim.Optimizer, step: int, lr: float) -> None:
        warmup = getattr(self.hparams, "warmup_steps", 0)
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step - self.warmup_from + 1) / warmup) if warmup else lr

    @staticmethod
    def update(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params, clip: float | None = 1.0) -> None:
        """One plain step on one loss (single process, no accumulation): for tests and experiments."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()


# --- diffusion ------------------------------------------------------------------------------------

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


# --- VAE ------------------------------------------------------------------------------------------

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


# --- GAN ------------------------------------------------------------------------------------------

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

    def build(self) -> None:
        self.generator = Generator(self.config)
        self.discriminator = Discriminator(self.config)
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
            fakes = [self.generator(torch.randn((len(s.images), self.config.latent_dim),
                                                generator=s.generator).to(s.images.device)) for s in shards]

        def judged(images, shard):   # D's logits, on DiffAugment's augmented images where the run asks for them
            return self.discriminator(diff_augment(images, self.hparams.diff_augment, shard.generator))

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

    def warm_start_modules(self) -> list[nn.Module]:
        raise EngineError("a GAN cannot continue from shipped weights alone: its discriminator does not ship. "
                          "Resume needs the training_state.safetensors of the run, or start a new run.")


# --- classifier (the lab's judge and feature net) -------------------------------------------------

@dataclass
class ClassifierHParams:
    lr: float = 1e-3
    batch_size: int = 128
    steps: int = 2500
    warmup_steps: int = 50


class ClassifierTrainer(Trainer):
    hparams_cls, config_cls, model_cls = ClassifierHParams, ClassifierConfig, Classifier

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


TRAINERS: dict[str, type[Trainer]] = {
    "vae": VAETrainer, "gan": GANTrainer, "diffusion": DiffusionTrainer, "classifier": ClassifierTrainer}
import engines.training.latent_trainer  # noqa: E402,F401  last: it subclasses Trainer and adds "latent_diffusion" here
import engines.training.diffusion_gan_trainer  # noqa: E402,F401  likewise: adds "diffusion_gan"
