"""Diffusion family: an epsilon-prediction UNet with a T-step noise schedule (Ho et al. 2020).

Training minimises E_{t, x0, eps} |eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)|^2 on data in
[-1, 1]; sampling runs one of the samplers in `engines.samplers` backwards from x_T ~ N(0, I).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from engines.checkpoint import load_pretrained
from engines.data import from_signed, to_signed
from engines.engine import Engine, check_count, make_generator
from engines.errors import EngineError
from engines.samplers import DEFAULT_SPACING, VARIANCE_TYPES, ddim_step, ddpm_step, iterate, make_timesteps
from engines.schedule import NoiseSchedule
from engines.unet import UNet, UNetConfig

SAMPLERS = ("ddpm", "ddim")


@dataclass
class DiffusionConfig:
    image_channels: int = 1
    image_size: int = 28
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    blocks_per_level: int = 1
    attention_at_lowest: bool = True
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02


class DiffusionModel(nn.Module, PyTorchModelHubMixin):
    """The noise-prediction network plus the schedule it was trained with (the schedule is not a weight:
    it is rebuilt from the config)."""

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        self.config = config
        self.unet = UNet(UNetConfig(config.image_channels, config.base_channels, tuple(config.channel_mults),
                                    config.blocks_per_level, config.attention_at_lowest))
        self.schedule = NoiseSchedule.from_config(config.num_train_timesteps, config.beta_schedule,
                                                  config.beta_start, config.beta_end)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t)


def diffusion_loss(model: DiffusionModel, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The simple DDPM loss on a batch x0 in [-1, 1]: uniform t, MSE between true and predicted noise."""
    t = torch.randint(0, model.config.num_train_timesteps, (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    x_t = model.schedule.q_sample(x0, t, noise)
    return F.mse_loss(model(x_t, t), noise)


class DiffusionEngine(Engine):
    family = "diffusion"

    def __init__(self, model: DiffusionModel, directory: Path):
        super().__init__(model, directory)
        self.schedule = model.schedule
        self.config = model.config

    @classmethod
    def load(cls, directory: Path) -> "DiffusionEngine":
        return cls(load_pretrained(DiffusionModel, DiffusionConfig, directory), directory)

    @property
    def num_train_timesteps(self) -> int:
        return self.config.num_train_timesteps

    def _start(self, n: int, seed: int, sampler: str, steps: int | None, spacing: str, eta: float,
               variance_type: str):
        """Validate the options and return (step function, its arguments, x_T, timesteps)."""
        if sampler not in SAMPLERS:
            raise EngineError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if variance_type not in VARIANCE_TYPES:
            raise EngineError(f"unknown variance_type {variance_type!r}: choose one of {', '.join(VARIANCE_TYPES)}")
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
            raise EngineError(f"eta must be a number in [0, 1], got {eta!r}")
        steps = self.num_train_timesteps if steps is None else steps
        timesteps = make_timesteps(self.num_train_timesteps, steps, spacing)
        n = check_count(n)
        generator = make_generator(seed)
        c, s = self.config.image_channels, self.config.image_size
        x = torch.randn((n, c, s, s), generator=generator)  # x_T: the seed's first draw, for every sampler
        if sampler == "ddpm":
            return ddpm_step, {"variance_type": variance_type, "generator": generator}, x, timesteps
        return ddim_step, {"eta": float(eta), "generator": generator}, x, timesteps

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None,
               spacing: str = DEFAULT_SPACING, eta: float = 0.0, variance_type: str = "fixed_small") -> torch.Tensor:
        """n images in [0, 1]. Default: ancestral DDPM over all T steps with the posterior variance."""
        step_fn, kwargs, x, timesteps = self._start(n, seed, sampler, steps, spacing, eta, variance_type)
        for step in iterate(step_fn, self.model, self.schedule, x, timesteps, **kwargs):
            x = step.prev_sample
        return from_signed(x)

    @torch.no_grad()
    def trace(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None,
              spacing: str = DEFAULT_SPACING, eta: float = 0.0, variance_type: str = "fixed_small"):
        """Yield each SamplerStep of one trajectory (timestep, x_t, predicted noise, predicted x0, next x),
        in the model's [-1, 1] space; the last step's prev_sample, mapped to [0, 1], equals sample()."""
        step_fn, kwargs, x, timesteps = self._start(n, seed, sampler, steps, spacing, eta, variance_type)
        yield from iterate(step_fn, self.model, self.schedule, x, timesteps, **kwargs)

    def forward_trace(self, x0: torch.Tensor, timesteps: list[int], seed: int = 0) -> torch.Tensor:
        """The forward (noising) process of images x0 in [0, 1] at the given timesteps, with one fixed noise
        draw: [len(timesteps), N, C, H, W] in [-1, 1] space."""
        noise = torch.randn(x0.shape, generator=make_generator(seed))
        return torch.stack([self.q_sample(x0, t, noise) for t in timesteps])

    def q_sample(self, x0: torch.Tensor, t: int | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward process: x0 in [0, 1] -> x_t in the model's [-1, 1] space."""
        t_max = self.num_train_timesteps - 1
        t_tensor = torch.as_tensor(t)
        if t_tensor.dtype.is_floating_point or (t_tensor < 0).any() or (t_tensor > t_max).any():
            raise EngineError(f"t must be whole numbers in [0, {t_max}], got {t!r}")
        return self.schedule.q_sample(to_signed(x0), t_tensor, noise)
