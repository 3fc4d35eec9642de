"""Flow-matching family: a velocity-prediction UNet on the straight path from data to noise.

Conditional flow matching (Lipman et al. 2023, eqs. 20-23 with sigma_min = 0; Liu et al. 2022's rectified flow)
trains v_theta on x_t = (1 - t) x_0 + t eps, t ~ U[0, 1], to minimise

    E_{t, x_0, eps} |v_theta(x_t, t) - (eps - x_0)|^2,

whose minimiser is the velocity of an ODE carrying N(0, I) at t = 1 to the data at t = 0. Sampling integrates
that ODE (`engines.sampling.flow`: Euler, Heun, midpoint; or diffusers' FlowMatch schedulers). The network is
the diffusion model's UNet, same size; only its target and its time (continuous, fed as 1000 t, diffusers'
convention) differ. A Gaussian-path flow is a diffusion model with another schedule and parameterisation: on
this path alpha_t = 1 - t and sigma_t = t, and v = alpha_t' x_0 + sigma_t' eps.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import diffusers
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from engines.checkpoint import hub_metadata, load_pretrained
from engines.data.datasets import from_signed
from engines.engine import Engine, check_count, make_generator
from engines.errors import EngineError
from engines.family import Family
from engines.models.unet import UNet, UNetConfig
from engines.sampling import flow
from engines.sampling.diffusers_adapter import PREFIX
from engines.sampling.samplers import SamplerStep, run

# diffusers' flow-matching schedulers, run over our velocity network (FlowMatchEulerDiscreteScheduler equals our
# Euler, FlowMatchHeunDiscreteScheduler our Heun, step for step).
FLOW_SCHEDULERS = ("FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler")


@dataclass
class FlowConfig(UNetConfig):
    """The UNet's architecture fields (inherited) plus the image size."""
    image_size: int = 28


class FlowModel(nn.Module, PyTorchModelHubMixin, **hub_metadata("flow-matching", "rectified-flow")):
    """The velocity network v_theta(x_t, t), t in [0, 1] (t = 1: pure noise)."""

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        self.unet = UNet(config)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t * flow.NUM_TRAIN_TIMESTEPS)


def flow_matching_loss(model: FlowModel, x0: torch.Tensor, generator: torch.Generator,
                       noise: torch.Tensor | None = None) -> torch.Tensor:
    """The conditional flow-matching loss on a batch x0 in [-1, 1]: uniform t, MSE between v_theta(x_t, t) and
    the path's velocity eps - x0; eps drawn independently of x0, or each x0's coupled `noise` (reflow)."""
    t = torch.rand((x0.shape[0],), generator=generator).to(x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)  # CPU generator, any device
    t_ = t.view(-1, 1, 1, 1)
    x_t = (1 - t_) * x0 + t_ * noise
    return F.mse_loss(model(x_t, t), noise - x0)


class FlowEngine(Engine):
    family = "flow"

    def __init__(self, model: FlowModel, directory: Path):
        super().__init__(model, directory)
        self.config = model.config

    @classmethod
    def load(cls, directory: Path) -> "FlowEngine":
        return cls(load_pretrained(FlowModel, FlowConfig, directory), directory)

    def samplers(self) -> list[str]:
        return list(flow.FLOW_SAMPLERS) + [PREFIX + name for name in FLOW_SCHEDULERS]

    def _trajectory(self, n: int, seed: int, sampler: str, steps: int, spacing: str = "diffusers"):
        """Validate the options and return the generator of SamplerSteps from the seed's x_1 (its first draw)."""
        if not isinstance(sampler, str) or sampler not in self.samplers():
            raise EngineError(f"unknown sampler {sampler!r}: choose one of {', '.join(self.samplers())}")
        times = flow.make_flow_times(steps, spacing=spacing)  # checks steps and spacing
        if spacing != "diffusers" and sampler.startswith(PREFIX):
            raise EngineError(f"{sampler} keeps its own time grid: spacing={spacing!r} applies to our solvers "
                              f"({', '.join(flow.FLOW_SAMPLERS)})")
        n = check_count(n)
        c, s = self.config.image_channels, self.config.image_size
        x = torch.randn((n, c, s, s), generator=make_generator(seed))
        if sampler.startswith(PREFIX):
            return iterate_flow_scheduler(self.model, make_flow_scheduler(sampler, steps), x)
        return flow.iterate_flow(flow.step_function(sampler), self.model, x, times)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, sampler: str = "euler", steps: int = 50,
               spacing: str = "diffusers") -> torch.Tensor:
        """n images in [0, 1]: the ODE from the seed's noise at t = 1 to t = 0, `steps` solver steps of `sampler`
        ("euler", "heun", "midpoint" or "diffusers:<FlowMatch scheduler>") on the time grid `spacing` names
        (`flow.make_flow_times`: diffusers' by default, or "uniform")."""
        return from_signed(run(self._trajectory(n, seed, sampler, steps, spacing)))

    @torch.no_grad()
    def trace(self, n: int, seed: int = 0, sampler: str = "euler", steps: int = 50, spacing: str = "diffusers"):
        """Yield each SamplerStep (t, x_t, the velocity's predicted noise and x_0, the next x) in [-1, 1]
        space; the last step's prev_sample, mapped to [0, 1], equals sample()."""
        yield from self._trajectory(n, seed, sampler, steps, spacing)

    def network_evaluations(self, sampler: str = "euler", steps: int = 50, spacing: str = "diffusers") -> int:
        """Network calls per sample for sample()'s options (the spacing does not change the count)."""
        if isinstance(sampler, str) and sampler.startswith(PREFIX):
            return len(make_flow_scheduler(sampler, steps).timesteps)
        return flow.network_evaluations(sampler, steps)

    straight_path_sampler = "Euler"

    @torch.no_grad()
    def straight_path_trajectory(self, n: int, seed: int = 0, steps: int = 100) -> tuple[list[float], torch.Tensor]:
        """One Euler trajectory, on its own straight path already: times t from 1 to 0 and states [steps + 1, n,
        C, H, W] (`engines.measure.straightness`)."""
        times, states = [], []
        for step in self.trace(n, seed, "euler", steps):
            times.append(float(step.timestep))
            states.append(step.x_t)
        return times + [0.0], torch.stack(states + [step.prev_sample])

    # ---------------------------------------------------------------- the report's measurements of the family

    def likelihood(self, digits: torch.Tensor, settings: dict, seed: int) -> tuple[dict, dict]:
        """The report's likelihood cell: the ODE bound of 8-bit `digits` in [0, 1] with the diffusion bound's
        dequantiser and decoder (`engines.measure.flow_likelihood`), and each digit's bits/dim."""
        from engines.measure.flow_likelihood import flow_likelihood
        return flow_likelihood(self, digits, settings, seed)

    @staticmethod
    def likelihood_bounds(summary: dict) -> list[tuple[str, float, float]]:
        """(bound, bits/dim, standard error): the ODE bound, where it is one (an estimate below its floor is
        solver error)."""
        if summary["ode_bpd"] < summary["ode_floor_bpd"]:
            return []
        return [("ode", summary["ode_bpd"], summary["ode_bpd_se"])]

    @staticmethod
    def likelihood_text(summary: dict) -> dict:
        from engines.measure.flow_likelihood import flow_likelihood_text
        return flow_likelihood_text(summary)


def make_flow_scheduler(sampler: str, steps: int):
    """A fresh diffusers flow-matching scheduler ("diffusers:<Class>"), its timesteps set for `steps` steps, with
    its defaults (shift 1: the grid of `flow.make_flow_times`)."""
    name = sampler[len(PREFIX):]
    if name not in FLOW_SCHEDULERS:
        raise EngineError(f"{name} is not a flow-matching scheduler: choose one of "
                          f"{', '.join(PREFIX + s for s in FLOW_SCHEDULERS)}")
    flow.make_flow_times(steps)  # the same check of steps as our samplers
    scheduler = getattr(diffusers, name)(num_train_timesteps=flow.NUM_TRAIN_TIMESTEPS)
    scheduler.set_timesteps(steps)
    return scheduler


def iterate_flow_scheduler(model, scheduler, x: torch.Tensor):
    """diffusers' pipeline loop over our velocity network: per timestep (1000 t), v_theta, then `step()`; a
    SamplerStep per call (Heun's corrector calls are steps of their own, as in diffusers)."""
    for i, timestep in enumerate(scheduler.timesteps):
        t = float(timestep) / flow.NUM_TRAIN_TIMESTEPS
        v = flow.velocity(model, x, t)
        prev_sample = scheduler.step(v, timestep, x).prev_sample
        yield SamplerStep(i, t, x, *reversed(flow.ends(x, t, v)), prev_sample)
        x = prev_sample


def own_sampler(sampler: str, steps: int) -> dict:
    """The page's diffusion sampler and step count as the flow's, at as many network evaluations per sample: its
    Heun for a Heun sampler (2 per step but the last, as diffusers' HeunDiscreteScheduler), else its Euler (one per
    step, as DDPM, DDIM and the multistep solvers)."""
    return {"sampler": "heun" if "heun" in str(sampler).lower() else "euler", "steps": steps}


DESCRIPTION = ("Velocity-prediction UNet, the diffusion model's architecture and size, trained by conditional flow "
               "matching on the straight path x_t = (1 - t) x_0 + t eps (Lipman et al. 2023; Liu et al. 2022), "
               "continuous t ~ U[0, 1], EMA weights (decay 0.999). Sampling integrates the ODE dx/dt = v from noise "
               "at t = 1 to t = 0: our Euler, Heun or midpoint, or diffusers' FlowMatch Euler and Heun schedulers.")
FAMILY = Family(name="flow", title="flow matching", engine=FlowEngine, trainer="engines.training.flow:FlowTrainer",
                colour="tab:brown", description=DESCRIPTION, evaluation_options={"sampler": "euler", "steps": 100},
                own_sampler=own_sampler, caption=" ({sampler}, {steps} steps)", quality_bar=0.90,
                likelihood=True, straight_path=True,
                # the race on the uniform grid: diffusers' spends one of few evaluations on t = 1/1000 -> 0
                race_options=({"sampler": "euler", "spacing": "uniform"}, {"sampler": "heun", "spacing": "uniform"}),
                objective="flow matching: velocity MSE on the straight path")
