"""Diffusion family: an epsilon-prediction UNet with a T-step noise schedule (Ho et al. 2020).

Training minimises E_{t, x0, eps} |eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)|^2 on data in
[-1, 1]; sampling runs one of the samplers in `engines.sampling.samplers` backwards from x_T ~ N(0, I).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from engines.checkpoint import hub_metadata, load_pretrained
from engines.data.datasets import from_signed, to_signed
from engines.engine import Engine, check_count, make_generator
from engines.errors import EngineError
from engines.family import Family
from engines.models.unet import UNet, UNetConfig
from engines.sampling.diffusers_adapter import (
    PREFIX,
    SCHEDULERS,
    iterate_scheduler,
    make_scheduler,
    network_evaluations,
)
from engines.sampling.samplers import (
    DEFAULT_SPACING,
    check_eta,
    check_variance_type,
    ddim_step,
    ddpm_step,
    iterate,
    make_timesteps,
    run,
)
from engines.sampling.schedule import NoiseSchedule

SAMPLERS = ("ddpm", "ddim")


@dataclass
class DiffusionConfig(UNetConfig):
    """The UNet's architecture fields (inherited) plus the image size and the noise schedule."""
    image_size: int = 28
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02


class DiffusionModel(nn.Module, PyTorchModelHubMixin, **hub_metadata("diffusion", "ddpm")):
    """The noise-prediction network plus the schedule it was trained with (the schedule is not a weight:
    it is rebuilt from the config)."""

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        self.config = config
        self.unet = UNet(config)
        self.schedule = NoiseSchedule.from_config(
            num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule,
            beta_start=config.beta_start, beta_end=config.beta_end)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t)


def diffusion_loss(model: DiffusionModel, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The simple DDPM loss on a batch x0 in [-1, 1]: uniform t, MSE between true and predicted noise."""
    t = torch.randint(0, model.config.num_train_timesteps, (x0.shape[0],), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)  # CPU generator, any device
    x_t = model.schedule.q_sample(x0, t, noise)
    return F.mse_loss(model(x_t, t), noise)


class DiffusionEngine(Engine):
    family = "diffusion"
    # DDIM's eps re-derived from its clipped x0 (`ddim_step`): off here, as in diffusers' default and the sampler
    # benchmark; the guided engine turns it on, since guidance's eps is what clipping breaks.
    use_clipped_model_output = False

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

    def _trajectory(self, n: int, seed: int, sampler: str, steps: int | None, spacing: str | None,
                    eta: float, variance_type: str | None, denoiser: nn.Module | None = None):
        """Validate the options and return the generator of SamplerSteps of one trajectory from the
        seed's x_T (the seed's first draw, for every sampler, so samplers compare on the same noise).
        `denoiser`: the network the sampler calls, `model(x_t, t)` (default: this model; a conditional engine
        passes its guided one)."""
        model = denoiser if denoiser is not None else self.model
        if not isinstance(sampler, str) or not (sampler in SAMPLERS or sampler.startswith(PREFIX)):
            raise EngineError(f"unknown sampler {sampler!r}: choose one of {', '.join(self.samplers())}")
        eta = check_eta(eta)
        if variance_type is not None:
            check_variance_type(variance_type)
        steps = self.num_train_timesteps if steps is None else steps
        timesteps = make_timesteps(self.num_train_timesteps, steps, spacing or DEFAULT_SPACING)  # checks steps
        n = check_count(n)
        generator = make_generator(seed)
        c, s = self.config.image_channels, self.config.image_size
        x = torch.randn((n, c, s, s), generator=generator)
        if sampler == "ddpm":
            if eta:
                raise EngineError("eta applies to DDIM only (ddim or diffusers:DDIMScheduler)")
            return iterate(ddpm_step, model, self.schedule, x, timesteps, generator=generator,
                           variance_type=variance_type or "fixed_small")
        if variance_type is not None and sampler != PREFIX + "DDPMScheduler":
            raise EngineError("variance_type applies to DDPM only (ddpm or diffusers:DDPMScheduler)")
        clipped = {"use_clipped_model_output": True} if self.use_clipped_model_output else {}
        if sampler == "ddim":
            return iterate(ddim_step, model, self.schedule, x, timesteps, eta=eta, generator=generator, **clipped)
        scheduler = self.scheduler(sampler, steps, spacing, variance_type)
        step_parameters = inspect.signature(scheduler.step).parameters
        if eta and "eta" not in step_parameters:
            raise EngineError(f"{sampler} takes no eta: eta applies to DDIM only")
        options = {**({"eta": eta} if eta else {}),
                   **{name: value for name, value in clipped.items() if name in step_parameters}}
        return iterate_scheduler(model, self.schedule, scheduler, x, generator, **options)

    def scheduler(self, sampler: str, steps: int, spacing: str | None = None, variance_type: str | None = None):
        """A fresh diffusers scheduler for sampler "diffusers:<Class>" over this model's schedule."""
        config = {"variance_type": variance_type} if variance_type else {}
        return make_scheduler(sampler[len(PREFIX):], self.schedule, steps, spacing, **config)

    def samplers(self) -> list[str]:
        return list(SAMPLERS) + [PREFIX + name for name in SCHEDULERS]

    def network_evaluations(self, sampler: str = "ddpm", steps: int | None = None, spacing: str | None = None,
                            eta: float = 0.0, variance_type: str | None = None) -> int:
        """Network calls per sample for a sampler and step count (Heun makes two per step but the last); takes
        sample()'s options (spacing, eta and the variance do not change the count)."""
        steps = self.num_train_timesteps if steps is None else steps
        if isinstance(sampler, str) and sampler.startswith(PREFIX):
            return network_evaluations(self.scheduler(sampler, steps))
        return len(make_timesteps(self.num_train_timesteps, steps))

    def first_timestep(self, sampler: str, steps: int | None = None, spacing: str | None = None) -> float:
        """The timestep the chain starts from: near T - 1 the start noise is pure noise, as the samplers assume;
        with leading or linspace spacing and very few steps it is far lower (1 step: t = 0), and the noise is
        then never denoised."""
        steps = self.num_train_timesteps if steps is None else steps
        if isinstance(sampler, str) and sampler.startswith(PREFIX):
            return float(self.scheduler(sampler, steps, spacing).timesteps[0])
        return float(make_timesteps(self.num_train_timesteps, steps, spacing or DEFAULT_SPACING)[0])

    def fewest_steps(self, sampler: str, spacing: str | None = None) -> int:
        """The fewest steps whose chain starts at least halfway up the schedule (t >= T / 2): fewer start from
        an x_t that should still be mostly signal, so pure noise comes out as noise."""
        return next(s for s in range(1, self.num_train_timesteps + 1)
                    if self.first_timestep(sampler, s, spacing) >= self.num_train_timesteps / 2)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None,
               spacing: str | None = None, eta: float = 0.0, variance_type: str | None = None) -> torch.Tensor:
        """n images in [0, 1]. Default: ancestral DDPM over all T steps with the posterior variance.

        sampler: "ddpm", "ddim", or "diffusers:<SchedulerClass>"; spacing: "leading" | "trailing" |
        "linspace" (default: leading for ours, the scheduler's own default for diffusers'); eta: DDIM's
        noise (0 = deterministic); variance_type: DDPM's "fixed_small" (beta-tilde_t, default) or
        "fixed_large" (beta_t)."""
        return from_signed(run(self._trajectory(n, seed, sampler, steps, spacing, eta, variance_type)))

    @torch.no_grad()
    def trace(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None,
              spacing: str | None = None, eta: float = 0.0, variance_type: str | None = None):
        """Yield each SamplerStep of one trajectory (timestep, x_t, predicted noise, predicted x0, next x),
        in the model's [-1, 1] space; the last step's prev_sample, mapped to [0, 1], equals sample()."""
        yield from self._trajectory(n, seed, sampler, steps, spacing, eta, variance_type)

    def forward_trace(self, x0: torch.Tensor, timesteps: list[int], seed: int = 0) -> torch.Tensor:
        """The forward (noising) process of images x0 in [0, 1] at the given timesteps, with one fixed noise
        draw: [len(timesteps), N, C, H, W] in [-1, 1] space."""
        noise = torch.randn(x0.shape, generator=make_generator(seed))
        return torch.stack([self.q_sample(x0, t, noise) for t in timesteps])

    straight_path_sampler = "DDIM, eta 0, trailing timesteps, x0 unclipped"

    @torch.no_grad()
    def straight_path_trajectory(self, n: int, seed: int = 0, steps: int = 100) -> tuple[list[float], torch.Tensor]:
        """One deterministic DDIM trajectory (eta 0, trailing timesteps from T-1, x0 unclipped: the probability-flow
        ODE by Euler's method) written on flow matching's straight path (`NoiseSchedule.straight_path`): its
        times s from 0.994 down to 0 and states [steps + 1, n, C, H, W] (`engines.measure.straightness`)."""
        timesteps = make_timesteps(self.num_train_timesteps, steps, "trailing")
        c, s = self.config.image_channels, self.config.image_size
        x = torch.randn((check_count(n), c, s, s), generator=make_generator(seed))
        times, states = [], []
        for step in iterate(ddim_step, self.model, self.schedule, x, timesteps, eta=0.0, clip_sample=False):
            time, scale = self.schedule.straight_path(step.timestep)
            times.append(time)
            states.append(scale * step.x_t)
        return times + [0.0], torch.stack(states + [step.prev_sample])

    def signal_level(self, t: int) -> float:
        """sqrt(alpha-bar_t): how much of x0 is left in x_t (the rest is noise of std sqrt(1 - alpha-bar_t))."""
        return float(self.schedule.alphas_cumprod[t]) ** 0.5

    def q_sample(self, x0: torch.Tensor, t: int | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward process: x0 in [0, 1] -> x_t in the model's [-1, 1] space."""
        t_max = self.num_train_timesteps - 1
        t_tensor = torch.as_tensor(t)
        if t_tensor.dtype.is_floating_point or (t_tensor < 0).any() or (t_tensor > t_max).any():
            raise EngineError(f"t must be whole numbers in [0, {t_max}], got {t!r}")
        return self.schedule.q_sample(to_signed(x0), t_tensor, noise)

    # ---------------------------------------------------------------- the report's measurements of the family
    # (engines.measure imports this module's package, so they import engines.measure when called)

    def likelihood(self, digits: torch.Tensor, settings: dict, seed: int) -> tuple[dict, dict]:
        """The report's likelihood cell: the variational bound and the probability-flow ODE bound of 8-bit
        `digits` in [0, 1] (`engines.measure.likelihood.diffusion_likelihood`), and each digit's bits/dim per
        bound."""
        from engines.measure.likelihood import diffusion_likelihood
        return diffusion_likelihood(self, digits, settings, seed)

    @staticmethod
    def likelihood_bounds(summary: dict) -> list[tuple[str, float, float]]:
        """(bound, bits/dim, standard error) of its bounds that count: an ODE estimate below its floor is solver
        error, not a bound."""
        bounds = [("vlb", summary["vlb_bpd"]["fixed_small"], summary["vlb_bpd_se"])]
        if summary["ode_bpd"] >= summary["ode_floor_bpd"]:
            bounds.append(("ode", summary["ode_bpd"], summary["ode_bpd_se"]))
        return bounds

    @staticmethod
    def likelihood_text(summary: dict) -> dict:
        """Its likelihood in words: the comparison table's cell, the model card's line, report.md's bullets."""
        from engines.measure.likelihood import diffusion_report_lines
        from engines.measure.verdicts import pm
        d = summary
        return {"cell": f"VLB {pm(d['vlb_bpd']['fixed_small'], d['vlb_bpd_se'], 3)}, ODE bound "
                        f"{pm(d['ode_bpd'], d['ode_bpd_se'], 3)} (floor {d['ode_floor_bpd']:.3f}) bpd, "
                        f"{d['ode_seconds_per_image']:.2f} s/digit",
                "card": f"variational bound {pm(d['vlb_bpd']['fixed_small'], d['vlb_bpd_se'], 3)}, probability-flow "
                        f"ODE bound {pm(d['ode_bpd'], d['ode_bpd_se'], 3)} (floor {d['ode_floor_bpd']:.3f}) bits/dim "
                        f"on {d['n']} test digits ({d['ode_seconds_per_image']:.2f} s per digit for the ODE)",
                "report": diffusion_report_lines(d)}

    def latent_space(self, pairs: int, seed: int, digits: torch.Tensor, settings: dict, classifier) -> tuple:
        """What the report's latent section measures: x_T decoded by DDIM, `pairs` pairs of x_T to walk between,
        and the cell's other entries (DDIM inversion of `digits` and back)."""
        from engines.measure.latent import diffusion_latent_space
        return diffusion_latent_space(self, pairs, seed, digits, settings, classifier)


DESCRIPTION = ("Epsilon-prediction UNet (28->14->7, residual blocks, self-attention at 7x7), linear beta schedule "
               "1e-4..0.02 over T=1000 steps, simple DDPM loss, EMA weights (decay 0.999). Sampling: our ancestral "
               "DDPM (beta_t or beta-tilde_t variance) or DDIM (eta), any step count, or any diffusers scheduler "
               "(`sampler=\"diffusers:<Class>\"`) built from the same betas.")
FAMILY = Family(name="diffusion", title="diffusion", engine=DiffusionEngine,
                trainer="engines.training.diffusion:DiffusionTrainer", colour="tab:green", description=DESCRIPTION,
                takes_sampler=True, likelihood=True, latent=True, straight_path=True, quality_bar=0.90,
                race_options=({"sampler": "ddim", "spacing": "trailing"},
                              {"sampler": PREFIX + "DPMSolverMultistepScheduler", "spacing": "trailing"}),
                objective="denoising: eps-MSE (simple loss)")
