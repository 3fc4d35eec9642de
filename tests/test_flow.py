"""The flow-matching family: its solvers against diffusers' FlowMatch schedulers step for step, known answers
for the loss and the solvers, and a tiny model trained by our command, loaded through the users' code path."""
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler

from engines import EngineError, load_engine
from engines.data.datasets import from_signed
from engines.models.flow import FlowConfig, FlowEngine, FlowModel, flow_matching_loss, make_flow_scheduler
from engines.sampling import flow

TINY_FLOW = ["base_channels=8", "channel_mults=[1,2]"]


def toy_velocity(x, t):
    """A deterministic stand-in for the UNet (t in [0, 1]): any smooth function exercises the solvers."""
    t = torch.as_tensor(t, dtype=torch.float32).reshape(-1, 1, 1, 1)
    return torch.tanh(0.7 * x + torch.sin(3 * t))


def oracle(target: torch.Tensor):
    """The exact velocity when the data are the one image `target`: x_t = (1 - t) target + t eps, so
    v = eps - target = (x_t - target) / t, a straight line into target from every point."""
    return lambda x, t: (x - target) / t.reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("steps", [1, 2, 7, 50])
def test_our_time_grid_is_the_flow_match_schedulers(steps):
    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(steps)
    assert flow.make_flow_times(steps) == scheduler.sigmas.tolist()


@pytest.mark.parametrize("steps", [1, 4, 25])
def test_euler_matches_diffusers_step_for_step(steps):
    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(steps)
    times = flow.make_flow_times(steps)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for timestep, t, t_next in zip(scheduler.timesteps, times[:-1], times[1:]):
        ours = flow.euler_step(toy_velocity, x, t, t_next).prev_sample
        theirs = scheduler.step(toy_velocity(x, float(timestep) / 1000), timestep, x).prev_sample
        assert torch.allclose(ours, theirs, atol=1e-6), (t, (ours - theirs).abs().max())
        x = theirs


@pytest.mark.parametrize("steps", [1, 3, 20])
def test_heun_matches_diffusers_step_for_step(steps):
    """diffusers' Heun splits each of our steps into two calls (predictor, corrector): after each pair, and
    after the last, Euler-only step onto t = 0, both hold the same x."""
    scheduler = FlowMatchHeunDiscreteScheduler()
    scheduler.set_timesteps(steps)
    times = flow.make_flow_times(steps)
    x0 = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ours, theirs, ours_at = x0, x0, []
    for t, t_next in zip(times[:-1], times[1:]):
        ours = flow.heun_step(toy_velocity, ours, t, t_next).prev_sample
        ours_at.append(ours)
    landed = []
    for i, timestep in enumerate(scheduler.timesteps):
        theirs = scheduler.step(toy_velocity(theirs, float(timestep) / 1000), timestep, theirs).prev_sample
        if scheduler.state_in_first_order or i == len(scheduler.timesteps) - 1:  # a pair, or the last Euler step
            landed.append(theirs)
    assert len(landed) == len(ours_at) == steps
    for a, b in zip(ours_at, landed):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert len(scheduler.timesteps) == flow.network_evaluations("heun", steps)


@pytest.mark.parametrize("sampler", flow.FLOW_SAMPLERS)
def test_every_solver_lands_on_the_one_image_the_exact_velocity_points_to(sampler):
    """Straight paths: with the exact velocity of a one-image data set, every solver reaches it from any noise in
    any number of steps (and its predicted x0 is that image at every step)."""
    target = torch.rand(3, 1, 8, 8) * 2 - 1
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for steps in (1, 3):
        times = flow.make_flow_times(steps)
        trajectory = list(flow.iterate_flow(flow.step_function(sampler), oracle(target), noise, times))
        assert torch.allclose(trajectory[-1].prev_sample, target, atol=1e-5)
        assert all(torch.allclose(step.predicted_x0, target, atol=1e-5) for step in trajectory)


def test_the_loss_is_zero_at_the_exact_velocity_and_positive_elsewhere():
    target = torch.rand(1, 1, 8, 8) * 2 - 1
    batch = target.expand(16, 1, 8, 8)

    class Oracle(torch.nn.Module):
        def forward(self, x, t):
            return oracle(target)(x, t)

    generator = torch.Generator().manual_seed(0)
    assert flow_matching_loss(Oracle(), batch, generator).item() < 1e-10
    model = FlowModel(FlowConfig(base_channels=8, channel_mults=[1, 2], image_size=8))
    assert flow_matching_loss(model, batch, generator).item() > 0.1


@pytest.mark.parametrize("sampler", [*flow.FLOW_SAMPLERS, "diffusers:FlowMatchEulerDiscreteScheduler",
                                     "diffusers:FlowMatchHeunDiscreteScheduler"])
def test_network_evaluations_count_the_calls(sampler):
    model = FlowModel(FlowConfig(base_channels=8, channel_mults=[1, 2]))
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    engine = FlowEngine(model, ".")
    engine.sample(1, seed=0, sampler=sampler, steps=5)
    assert len(calls) == engine.network_evaluations(sampler=sampler, steps=5)


def test_bad_options_are_refused_in_words():
    model = FlowModel(FlowConfig(base_channels=8, channel_mults=[1, 2]))
    engine = FlowEngine(model, ".")
    with pytest.raises(EngineError, match="unknown sampler 'ddpm': choose one of euler, heun, midpoint"):
        engine.sample(1, sampler="ddpm")
    with pytest.raises(EngineError, match="steps must be an integer between 1 and 1000"):
        engine.sample(1, steps=0)
    with pytest.raises(EngineError, match="not a flow-matching scheduler"):
        make_flow_scheduler("diffusers:DDIMScheduler", 5)


@pytest.mark.slow   # trains through the command line
def test_trained_by_our_command_loaded_by_the_users_code_path(tmp_path):
    from engines.training.loop import main
    args = ["flow", "--out", str(tmp_path), "--steps", "4", "--checkpoint-every", "2", "--log-every", "1",
            "--batch-size", "8", "--threads", "1"]
    for setting in TINY_FLOW:
        args += ["--set", setting]
    assert main(args) == 0
    engine = load_engine("flow", tmp_path)
    x = engine.sample(3, seed=0, sampler="heun", steps=4)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x, load_engine("flow", tmp_path).sample(3, seed=0, sampler="heun", steps=4))
    assert not torch.equal(x, engine.sample(3, seed=1, sampler="heun", steps=4))
    steps = list(engine.trace(3, seed=0, sampler="heun", steps=4))
    assert [s.timestep for s in steps] == flow.make_flow_times(4)[:-1]
    assert torch.equal(from_signed(steps[-1].prev_sample), x)
    ours = engine.sample(3, seed=0, sampler="euler", steps=6)
    theirs = engine.sample(3, seed=0, sampler="diffusers:FlowMatchEulerDiscreteScheduler", steps=6)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_a_staged_family_trains_and_loads_from_a_folder_but_is_not_on_the_labs_pages(monkeypatch):
    """A family in training for its first checkpoint (registry.STAGED): `python -m engines.train` and
    `load_engine(name, directory)` know it; the lab's pages and reports (`families()`) do not list it yet."""
    from dataclasses import replace

    from engines import registry
    from engines.training import trainers
    staged = replace(registry.family("flow"), name="staged_flow", title="staged flow")
    monkeypatch.setitem(registry.STAGED, staged.name, staged)
    assert staged.name not in [f.name for f in registry.families()]
    assert registry.family(staged.name) is staged and trainers()[staged.name] is trainers()["flow"]
    with pytest.raises(EngineError, match="no staged_flow model ships for the mnist dataset"):
        load_engine(staged.name)


def test_the_uniform_grid_spends_every_evaluation_and_diffusers_schedulers_keep_their_own():
    """At few steps diffusers' grid (1 .. 1/1000, then 0) integrates 1 -> 0.001 in one step and spends the last
    evaluation on 0.001 -> 0; the uniform grid spends them evenly. Only our solvers take it."""
    from engines.sampling.flow import make_flow_times
    assert make_flow_times(2, spacing="uniform") == [1.0, 0.5, 0.0]
    assert make_flow_times(2) == [1.0, pytest.approx(0.001), 0.0]
    with pytest.raises(EngineError, match="unknown spacing 'even'"):
        make_flow_times(2, spacing="even")
    engine = load_engine("flow")
    uniform = engine.sample(2, seed=0, sampler="heun", steps=2, spacing="uniform")
    assert not torch.equal(uniform, engine.sample(2, seed=0, sampler="heun", steps=2))
    assert engine.network_evaluations("heun", 2, spacing="uniform") == 3
    with pytest.raises(EngineError, match="keeps its own time grid"):
        engine.sample(1, sampler="diffusers:FlowMatchEulerDiscreteScheduler", steps=2, spacing="uniform")
