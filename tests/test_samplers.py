"""Our samplers against the reference implementation (diffusers), step for step, and their contracts."""
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from engines import EngineError, load_engine
from engines.data import from_signed
from engines.samplers import ddim_step, ddpm_step, make_timesteps, sample_ddim, sample_ddpm
from engines.schedule import NoiseSchedule

T = 1000
# Absolute tolerance per step. Our schedule is float64; diffusers keeps alphas_cumprod in float32, where
# 1 - alphas_cumprod near t = 0 loses about four digits to cancellation (1 - 0.9999 in float32), so steps agree
# to 1e-4, not to float32's 1e-7.
TOLERANCE = 1e-4


def x0_tolerance(schedule, t):
    """predicted x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) magnifies rounding by 1 / sqrt(abar_t)."""
    return TOLERANCE / float(schedule.alphas_cumprod[t]) ** 0.5


def toy_model(x, t):
    """A deterministic stand-in for the UNet: any function of (x_t, t) exercises the step maths."""
    t = torch.as_tensor(t, dtype=torch.float32).reshape(-1, 1, 1, 1)
    return torch.tanh(0.7 * x + torch.sin(t / 97.0))


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule.from_config(T, "linear")


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 7, 50, 1000])
def test_timesteps_match_diffusers(spacing, steps):
    scheduler = DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing)
    scheduler.set_timesteps(steps)
    assert make_timesteps(T, steps, spacing) == scheduler.timesteps.tolist()


def compare(schedule, reference, our_step, steps, **step_kwargs):
    """Both implementations take the same x_t at every step (and the same noise draws): each of our steps
    must agree with the reference's. Then both run their own full trajectories, which must end together."""
    ours_gen, ref_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ours_alone = x.clone()
    for t in reference.timesteps.tolist():
        ours, ours_x0 = our_step(schedule, toy_model(x, t), t, t - T // steps, x, generator=ours_gen, **step_kwargs)
        out = reference.step(toy_model(x, t), t, x, generator=ref_gen, **({"eta": step_kwargs["eta"]}
                                                                          if "eta" in step_kwargs else {}))
        assert torch.allclose(ours, out.prev_sample, atol=TOLERANCE), (t, (ours - out.prev_sample).abs().max())
        assert torch.allclose(ours_x0, out.pred_original_sample, atol=x0_tolerance(schedule, t)), t
        x = out.prev_sample
    gen = torch.Generator().manual_seed(1)
    for t in reference.timesteps.tolist():
        ours_alone, _ = our_step(schedule, toy_model(ours_alone, t), t, t - T // steps, ours_alone, generator=gen,
                                 **step_kwargs)
    assert torch.allclose(ours_alone, x, atol=1e-3)


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("steps", [1000, 25])
def test_ddpm_matches_diffusers_step_for_step(schedule, variance_type, steps):
    reference = DDPMScheduler(num_train_timesteps=T, trained_betas=schedule.betas.float().numpy(),
                              variance_type=variance_type, clip_sample=True)
    reference.set_timesteps(steps)
    compare(schedule, reference, ddpm_step, steps, variance_type=variance_type)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("spacing,steps", [("leading", 50), ("trailing", 10), ("linspace", 20)])
def test_ddim_matches_diffusers_step_for_step(schedule, eta, spacing, steps):
    reference = DDIMScheduler(num_train_timesteps=T, trained_betas=schedule.betas.float().numpy(),
                              timestep_spacing=spacing, clip_sample=True, set_alpha_to_one=True)
    reference.set_timesteps(steps)
    compare(schedule, reference, ddim_step, steps, eta=eta)


@pytest.mark.parametrize("kwargs", [dict(sampler="ddim", steps=10), dict(sampler="ddpm", steps=10),
                                    dict(sampler="ddim", steps=7, eta=0.5, spacing="trailing"),
                                    dict(sampler="ddpm", steps=12, variance_type="fixed_large")])
def test_trace_is_one_trajectory_ending_in_sample(kwargs):
    engine = load_engine("diffusion")
    frames = list(engine.trace(3, seed=2, **kwargs))
    assert len(frames) == kwargs["steps"]
    assert [f.index for f in frames] == list(range(kwargs["steps"]))
    for before, after in zip(frames, frames[1:]):
        assert torch.equal(before.prev_sample, after.x_t)  # consecutive frames chain: one trajectory
    assert torch.equal(from_signed(frames[-1].prev_sample), engine.sample(3, seed=2, **kwargs))


def test_bad_sampler_options():
    engine = load_engine("diffusion")
    with pytest.raises(EngineError, match="unknown timestep spacing"):
        engine.sample(1, seed=0, sampler="ddim", steps=5, spacing="middle")
    with pytest.raises(EngineError, match="unknown variance_type"):
        engine.sample(1, seed=0, steps=5, variance_type="learned")
    with pytest.raises(EngineError, match="unknown sampler 'euler': choose one of ddpm, ddim"):
        next(engine.trace(1, seed=0, sampler="euler"))


def test_plain_sampler_functions_are_the_engines_loop():
    """sample_ddpm / sample_ddim (k-diffusion-style functions) give the engine's result from the same x_T."""
    engine = load_engine("diffusion")
    from engines.engine import make_generator
    for fn, kwargs in ((sample_ddim, {"eta": 0.3}), (sample_ddpm, {"variance_type": "fixed_large"})):
        generator = make_generator(4)
        x_T = torch.randn((2, 1, 28, 28), generator=generator)
        seen = []
        out = fn(engine.model, engine.schedule, x_T, make_timesteps(T, 6), generator=generator,
                 callback=seen.append, **kwargs)
        sampler = "ddim" if fn is sample_ddim else "ddpm"
        assert torch.equal(from_signed(out), engine.sample(2, seed=4, sampler=sampler, steps=6, **kwargs))
        assert [s.timestep for s in seen] == make_timesteps(T, 6)
