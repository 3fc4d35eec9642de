"""Any diffusers scheduler as a sampler over our own model: `sampler="diffusers:<SchedulerClassName>"`.

The scheduler is built offline from the model's own schedule (`trained_betas`, `num_train_timesteps`,
epsilon prediction), so it integrates exactly the process the network was trained on. A new scheduler is made
for every call: `set_timesteps` and multistep solvers keep state, and two visitors must never share it.

The loop is the one diffusers' pipelines run: scale x_T by `init_noise_sigma`, and per timestep call
`scale_model_input` (Euler and Heun work in sigma space and need it), the network, then `step()`.
"""
from __future__ import annotations

import inspect

import diffusers
import numpy as np
import torch
from diffusers import SchedulerMixin

from engines.errors import EngineError
from engines.sampling.samplers import SamplerStep
from engines.sampling.schedule import NoiseSchedule

PREFIX = "diffusers:"
# The schedulers the lab tests and offers in the UI; any other diffusers scheduler class may be tried too.
SCHEDULERS = ("DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler",
              "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler", "UniPCMultistepScheduler")


def scheduler_class(name: str) -> type[SchedulerMixin]:
    cls = getattr(diffusers, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, SchedulerMixin)):
        choices = ", ".join(PREFIX + s for s in SCHEDULERS)
        raise EngineError(f"{name!r} is not a diffusers scheduler: choose one of {choices}")
    return cls


def make_scheduler(name: str, schedule: NoiseSchedule, steps: int, spacing: str | None = None,
                   **config) -> SchedulerMixin:
    """A fresh scheduler of class `name` over our betas, with its timesteps set for `steps` steps.

    `spacing` overrides the scheduler's own default timestep spacing; `config` passes other settings
    (e.g. variance_type for DDPMScheduler). A scheduler that cannot take our betas is refused."""
    cls = scheduler_class(name)
    accepted = set(inspect.signature(cls.__init__).parameters)
    if "trained_betas" not in accepted:
        raise EngineError(f"{name} cannot use our model's noise schedule (it takes no trained_betas): "
                          f"choose one of {', '.join(PREFIX + s for s in SCHEDULERS)}")
    settings = {"num_train_timesteps": schedule.num_train_timesteps,
                "trained_betas": schedule.betas.numpy().astype(np.float32),
                "prediction_type": "epsilon", **config}
    if spacing is not None:
        settings["timestep_spacing"] = spacing
    unknown = sorted(set(settings) - accepted)
    if unknown:
        raise EngineError(f"{name} has no setting {', '.join(unknown)}")
    try:
        scheduler = cls(**settings)
        scheduler.set_timesteps(steps)
    except (ValueError, TypeError, NotImplementedError) as e:
        raise EngineError(f"{name} cannot run {steps} steps on this model: {e}") from None
    return scheduler


def network_evaluations(scheduler: SchedulerMixin) -> int:
    """Model calls per sample: one per entry of `timesteps` (Heun's second-order steps appear twice)."""
    return len(scheduler.timesteps)


def _predicted_x0(schedule: NoiseSchedule, output, model_input: torch.Tensor, eps: torch.Tensor,
                  t: torch.Tensor) -> torch.Tensor:
    """The scheduler's own x0 where its step() returns one; else from eps at (possibly fractional) t, in the
    variance-preserving space that `model_input` lives in."""
    x0 = getattr(output, "pred_original_sample", None)
    if x0 is not None:
        return x0
    return schedule.predict_x0_at(model_input, float(t), eps)


def iterate_scheduler(model, schedule: NoiseSchedule, scheduler: SchedulerMixin, x: torch.Tensor,
                      generator: torch.Generator | None = None, **step_kwargs):
    """The denoising loop of a diffusers scheduler as a generator of SamplerStep, one per network call,
    from x = x_T ~ N(0, I) (scaled here by init_noise_sigma)."""
    step_params = inspect.signature(scheduler.step).parameters
    if "generator" in step_params:
        step_kwargs["generator"] = generator
    x = x * scheduler.init_noise_sigma
    for i, t in enumerate(scheduler.timesteps):
        model_input = scheduler.scale_model_input(x, t)
        eps = model(model_input, t.expand(x.shape[0]))
        output = scheduler.step(eps, t, x, return_dict=True, **step_kwargs)
        timestep = float(t) if t.is_floating_point() and not float(t).is_integer() else int(t)
        # x_t is reported as the network sees it (variance-preserving space; for sigma-space schedulers
        # x / sqrt(1 + sigma^2)), so every sampler's trace looks alike.
        yield SamplerStep(i, timestep, model_input, eps, _predicted_x0(schedule, output, model_input, eps, t),
                          output.prev_sample)
        x = output.prev_sample
