"""Stepwise trainers for the playground: train N steps, look, train N more, change the learning rate, reset.

As in `engines.train`, step k draws its batch and noise from a generator seeded by (seed, k)
(`engines.engine.step_generator`), and the initial weights from one seeded by the seed alone, never from torch's
global RNG (which concurrent visitors share). So train(300) then train(700) gives bit-for-bit the weights of
train(1000), and the same seed the same numbers.

A step's losses follow the image trainers' convention (engines/training/base.py): `train_step` returns
{name: float}, "loss" for a model trained on one objective (the VAE's negative ELBO, diffusion's noise MSE),
"d_loss" and "g_loss" for the two players of the GAN and the diffusion GAN.
"""
from __future__ import annotations

import copy
import numbers
from dataclasses import replace

import torch
from torch import nn

from engines.engine import check_count, check_seed, make_generator, step_generator
from engines.errors import EngineError
from engines.models.diffusion_gan import forward_pair, posterior_sample
from engines.models.gan import discriminator_loss, generator_loss
from engines.toy.distributions import ToyDistribution
from engines.toy.guidance import ToyConditionalDiffusion, ToyConditionalDiffusionConfig
from engines.toy.models import ToyDiffusion, ToyDiffusionGAN, ToyFlow, ToyGAN, ToyVAE, check_generator_loss
from engines.training.base import ema_of

# The three families, flow matching, and the GAN + diffusion hybrid (reflow trains from a flow: `ReflowTrainer`)
FAMILIES = ("vae", "gan", "diffusion", "flow", "diffusion_gan")
CLASSIC_FAMILIES = FAMILIES[:3]
DEFAULT_LR = {"vae": 2e-3, "gan": 1e-3, "diffusion": 2e-3, "flow": 2e-3, "diffusion_gan": 1e-3,
              "conditional_diffusion": 2e-3}
MAX_LR = 0.1               # above this Adam diverges on every toy; the UI refuses it
BATCH_SIZE = 256
MAX_SAMPLES = 20_000       # per sample() call: enough for a dense scatter plot
WEIGHTS = ("ema", "raw")   # what a trainer can sample from: the EMA of its sampling network, or the raw weights


def check_lr(lr) -> float:
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr <= MAX_LR:
        raise EngineError(f"learning rate must be a number in (0, {MAX_LR}], got {lr!r}")
    return float(lr)


def check_weights(weights) -> str:
    if weights not in WEIGHTS:
        raise EngineError(f"weights must be one of {', '.join(map(repr, WEIGHTS))}, got {weights!r}")
    return weights


def with_child(model: nn.Module, name: str, child: nn.Module) -> nn.Module:
    """A shallow twin of `model` whose submodule `name` is `child`; every other submodule (and the config) is
    `model`'s own, shared, so the twin is always current. How a GAN samples from its generator's EMA."""
    twin = copy.copy(model)
    object.__setattr__(twin, "_modules", {**model._modules, name: child})
    return twin


def init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Linear initialisation (uniform in +-1/sqrt(fan_in)), drawn from our generator."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                bound = layer.in_features ** -0.5
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)


class ToyTrainer:
    """One family's model and optimiser(s) on one distribution; `losses` maps a name to [(step, value)].

    Every trainer keeps an EMA of its sampling network (the whole model, or for a GAN its generator: `ema_part`),
    with one decay for all, so that every family can be measured from the same kind of weights
    (`sampling_model`). The EMA only reads the weights: training is the same with or without it."""

    family = ""
    model_cls: type[nn.Module]
    adam_betas = (0.9, 0.999)
    loss_labels: dict[str, str] = {}   # a log key's name on the plot ("loss" -> "negative ELBO")
    ema_decay = 0.995          # a horizon of ~200 steps: follows a playground run within a few live-view updates
    ema_part: str | None = None   # the submodule that samples, when it is not the whole model (a GAN's "generator")
    view_weights = "raw"       # what the playground's views and `eval_model` sample from (diffusion: "ema")

    def __init__(self, distribution: ToyDistribution, seed: int = 0, lr: float | None = None,
                 batch_size: int = BATCH_SIZE, config=None):
        self.distribution = distribution
        self.seed = check_seed(seed)
        self.batch_size = check_count(batch_size, cap=4096, what="batch size")
        self.model = self.model_cls(config) if config is not None else self.model_cls()
        init_weights(self.model, make_generator(self.seed))
        self.optimizers = [torch.optim.Adam(params, lr=check_lr(lr if lr is not None else DEFAULT_LR[self.family]),
                                            betas=self.adam_betas) for params in self.parameter_groups()]
        self.ema = ema_of(self.sampling_network, self.ema_decay)
        self.step = 0
        self.losses: dict[str, list[tuple[int, float]]] = {}

    @property
    def eval_model(self) -> nn.Module:
        """The weights the playground's views sample and measure (`view_weights`: an EMA for diffusion)."""
        return self.sampling_model(self.view_weights)

    @property
    def sampling_network(self) -> nn.Module:
        """The raw network the EMA averages: the model, or its `ema_part`."""
        return getattr(self.model, self.ema_part) if self.ema_part else self.model

    def sampling_model(self, weights: str) -> nn.Module:
        """The model with its raw weights ("raw") or with the EMA of its sampling network ("ema"; a GAN's
        discriminator, which does not sample, stays the raw one)."""
        if check_weights(weights) == "raw":
            return self.model
        return with_child(self.model, self.ema_part, self.ema.module) if self.ema_part else self.ema.module

    def parameter_groups(self) -> list:
        return [self.model.parameters()]

    @property
    def lr(self) -> float:
        return self.optimizers[0].param_groups[0]["lr"]

    def set_lr(self, lr: float) -> None:
        """Takes effect from the next step; Adam's moment estimates are kept."""
        lr = check_lr(lr)
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def train(self, steps: int) -> None:
        steps = check_count(steps, cap=1_000_000, what="steps")
        self.model.train()
        for _ in range(steps):
            generator = step_generator(self.seed, self.step)
            batch = self.distribution.sample(self.batch_size, generator=generator)
            for name, value in self.train_step(batch, generator).items():
                self.losses.setdefault(name, []).append((self.step, value))
            self.after_step()
            self.step += 1
        self.model.eval()

    def after_step(self) -> None:
        self.ema.update_parameters(self.sampling_network)

    def labelled_losses(self) -> dict[str, list[tuple[int, float]]]:
        """The loss curves under the names a learner reads on the plot (`loss_labels`), not the log keys."""
        return {self.loss_labels.get(key, key): values for key, values in self.losses.items()}

    def train_step(self, batch: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        optimizer, = self.optimizers
        loss = self.model.loss(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, weights: str | None = None, **options) -> torch.Tensor:
        """float32 [n, 2]: the engines' `sample` contract, for points instead of images; from `weights`
        ("ema" or "raw"; by default the playground's `view_weights`)."""
        n = check_count(n, cap=MAX_SAMPLES)
        model = self.sampling_model(self.view_weights if weights is None else weights)
        return model.sample(n, make_generator(seed), **options).float()


class VAETrainer(ToyTrainer):
    family, model_cls = "vae", ToyVAE
    loss_labels = {"loss": "negative ELBO"}


class DiffusionTrainer(ToyTrainer):
    """The playground's views and likelihoods use the EMA weights, as the image trainer's do: the raw weights
    jitter with Adam's steps, and the ODE likelihood near t = 0 divides the noise error by sqrt(1 - abar_0) ~
    0.01, so a jittery net sends a few points' trajectories far out and ruins the average."""
    family, model_cls = "diffusion", ToyDiffusion
    loss_labels = {"loss": "noise MSE"}
    view_weights = "ema"


class ConditionalDiffusionTrainer(DiffusionTrainer):
    """Class-conditional diffusion with classifier-free guidance (`engines.toy.guidance`): each point's class is
    the mode it lies in (the distribution's `mode_index`; a point off every mode trains the null class). Not one
    of the playground's free-play families: the guidance lesson trains it."""
    family, model_cls = "conditional_diffusion", ToyConditionalDiffusion

    def __init__(self, distribution: ToyDistribution, seed: int = 0, lr: float | None = None,
                 batch_size: int = BATCH_SIZE, config: ToyConditionalDiffusionConfig | None = None):
        super().__init__(distribution, seed, lr, batch_size,
                         config or ToyConditionalDiffusionConfig(classes=distribution.n_modes))

    def train_step(self, batch, generator):
        optimizer, = self.optimizers
        loss = self.model.loss(batch, generator, labels=self.distribution.mode_index(batch))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}


class FlowTrainer(ToyTrainer):
    """Flow matching; its views and measurements use the EMA weights, as diffusion's do."""
    family, model_cls = "flow", ToyFlow
    loss_labels = {"loss": "velocity MSE"}
    view_weights = "ema"


class ReflowTrainer(FlowTrainer):
    """Reflow (Liu et al. 2022) of a trained toy flow: it starts from the flow's EMA weights and learns the
    straight lines between `couplings` pairs (noise z, the flow's `steps`-step Euler image of z), a batch of
    them per step drawn from the step's generator, at the flow's learning rate."""
    family = "reflow"

    def __init__(self, source: FlowTrainer, couplings: int = 20_000, steps: int = 100):
        super().__init__(source.distribution, seed=source.seed, lr=source.lr, batch_size=source.batch_size)
        flow = source.eval_model
        self.model.load_state_dict(flow.state_dict())
        self.ema = ema_of(self.model, self.ema_decay)
        with torch.no_grad():
            generator = make_generator(source.seed + 5)
            self.noise = torch.randn((couplings, 2), generator=generator)
            self.images = flow.sample(couplings, generator, steps=steps, noise=self.noise)

    def train_step(self, batch, generator):
        optimizer, = self.optimizers
        index = torch.randint(0, len(self.noise), (len(batch),), generator=generator)
        loss = self.model.loss(self.images[index], generator, noise=self.noise[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}


class GANTrainer(ToyTrainer):
    """`generator_loss`: "non-saturating" -log D(G(z)) (the default) or "minimax" log(1 - D(G(z)))
    (`engines.toy.models.GENERATOR_LOSSES`)."""
    family, model_cls = "gan", ToyGAN
    loss_labels = {"d_loss": "discriminator", "g_loss": "generator"}
    adam_betas = (0.5, 0.999)   # the DCGAN setting, as the image GAN uses
    generator_loss_selectable = True
    ema_part = "generator"

    def __init__(self, *args, generator_loss: str = "non-saturating", **kwargs):
        super().__init__(*args, **kwargs)
        self.set_generator_loss(generator_loss)

    @property
    def generator_loss(self) -> str:
        return self.model.config.generator_loss

    def set_generator_loss(self, name: str) -> None:
        """Takes effect from the next step, like `set_lr`; the weights and Adam's moments are kept."""
        self.model.config = replace(self.model.config, generator_loss=check_generator_loss(name))

    def parameter_groups(self):
        return [self.model.discriminator.parameters(), self.model.generator.parameters()]

    def train_step(self, batch, generator):
        opt_d, opt_g = self.optimizers
        fake = self.model.sample(len(batch), generator)
        d_loss = self.model.discriminator_loss(batch, fake)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = self.model.generator_loss(fake)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}


class DiffusionGANTrainer(GANTrainer):
    """The image diffusion GAN's step on points: a real pair (x_t', x_t) from the forward process at one of the
    chain's steps per point, a fake pair (x_t' from the posterior at G's x0, x_t), non-saturating losses.
    No R1: on these toys the plain GAN setting trains it. Its generator's EMA, like the GAN's, is kept for
    measuring (`sampling_model("ema")`); the playground's views sample its raw weights."""
    family, model_cls = "diffusion_gan", ToyDiffusionGAN
    generator_loss_selectable = False   # its recipe (Xiao et al. 2022) is non-saturating

    @property
    def generator_loss(self) -> str:
        return "non-saturating"

    def set_generator_loss(self, name: str) -> None:
        if name != "non-saturating":
            raise EngineError(f"the diffusion GAN trains with the non-saturating generator loss only, got {name!r}")

    def parameter_groups(self):
        return [self.model.discriminator.parameters(), self.model.generator.parameters()]

    def train_step(self, batch, generator):
        opt_d, opt_g, model, n = *self.optimizers, self.model, len(batch)
        timesteps = torch.tensor(model.timesteps)
        previous = torch.tensor(model.timesteps[1:] + [-1])
        step = torch.randint(0, len(timesteps), (n,), generator=generator)
        t, prev_t = timesteps[step], previous[step]
        noises = [torch.randn(batch.shape, generator=generator) for _ in range(3)]
        real_prev, x_t = forward_pair(model.schedule, batch, t, prev_t, (noises[0], noises[1]))
        x0 = model.predicted_x0(x_t, model.latents(n, generator), t)
        fake_prev = posterior_sample(model.schedule, x0, x_t, t, prev_t, noises[2])
        d_loss = discriminator_loss(model.logits(real_prev, x_t, t), model.logits(fake_prev.detach(), x_t, t))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = generator_loss(model.logits(fake_prev, x_t, t))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}


TRAINERS = {"vae": VAETrainer, "gan": GANTrainer, "diffusion": DiffusionTrainer, "flow": FlowTrainer,
            "diffusion_gan": DiffusionGANTrainer, "conditional_diffusion": ConditionalDiffusionTrainer}


def make_trainer(family: str, distribution: ToyDistribution, seed: int = 0, lr: float | None = None,
                 **kwargs) -> ToyTrainer:
    if family not in TRAINERS:
        raise EngineError(f"unknown family {family!r}: choose one of {', '.join(FAMILIES)}")
    return TRAINERS[family](distribution, seed=seed, lr=lr, **kwargs)
