"""Our samplers against the reference implementation (diffusers), step for step, and their contracts."""
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from engines import EngineError, load_engine
from engines.data.datasets import from_signed
from engines.sampling.diffusers_adapter import PREFIX, SCHEDULERS
from engines.sampling.samplers import (
    StepOutput,
    ddim_step,
    ddpm_step,
    iterate,
    make_timesteps,
    previous_timesteps,
    sample_ddim,
    sample_ddpm,
)
from engines.sampling.schedule import NoiseSchedule

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


def compare(schedule, reference, our_step, steps, spacing, **step_kwargs):
    """Both implementations take the same x_t at every step (and the same noise draws): each of our steps, from
    our own timestep list to our own predecessor, must agree with the reference's. Then both run their own full
    trajectories, which must end together."""
    timesteps = make_timesteps(T, steps, spacing)
    assert timesteps == reference.timesteps.tolist()
    prev_timesteps = previous_timesteps(our_step, timesteps, T)
    ours_gen, ref_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ours_alone = x.clone()
    for t, prev_t in zip(timesteps, prev_timesteps):
        step = our_step(schedule, toy_model(x, t), t, prev_t, x, generator=ours_gen, **step_kwargs)
        ours, ours_x0 = step.prev_sample, step.predicted_x0
        out = reference.step(toy_model(x, t), t, x, generator=ref_gen,
                             **{k: v for k, v in step_kwargs.items() if k in ("eta", "use_clipped_model_output")})
        assert torch.allclose(ours, out.prev_sample, atol=TOLERANCE), (t, (ours - out.prev_sample).abs().max())
        assert torch.allclose(ours_x0, out.pred_original_sample, atol=x0_tolerance(schedule, t)), t
        x = out.prev_sample
    gen = torch.Generator().manual_seed(1)
    for t, prev_t in zip(timesteps, prev_timesteps):
        ours_alone = our_step(schedule, toy_model(ours_alone, t), t, prev_t, ours_alone, generator=gen,
                              **step_kwargs).prev_sample
    assert torch.allclose(ours_alone, x, atol=1e-3)


SPACINGS = ["leading", "trailing", "linspace"]
STEP_COUNTS = [7, 10, 20, 50, 999, 1000]   # 7 and 999 do not divide T = 1000


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_ddpm_matches_diffusers_step_for_step(schedule, variance_type, spacing, steps):
    reference = DDPMScheduler(num_train_timesteps=T, trained_betas=schedule.betas.float().numpy(),
                              variance_type=variance_type, clip_sample=True, timestep_spacing=spacing)
    reference.set_timesteps(steps)
    compare(schedule, reference, ddpm_step, steps, spacing, variance_type=variance_type)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_ddim_matches_diffusers_step_for_step(schedule, eta, spacing, steps):
    reference = DDIMScheduler(num_train_timesteps=T, trained_betas=schedule.betas.float().numpy(),
                              timestep_spacing=spacing, clip_sample=True, set_alpha_to_one=True)
    reference.set_timesteps(steps)
    compare(schedule, reference, ddim_step, steps, spacing, eta=eta)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_ddim_with_eps_from_the_clipped_x0_matches_diffusers(schedule, spacing):
    """The guided engine's DDIM (`use_clipped_model_output`): diffusers' option of that name, step for step."""
    reference = DDIMScheduler(num_train_timesteps=T, trained_betas=schedule.betas.float().numpy(),
                              timestep_spacing=spacing, clip_sample=True, set_alpha_to_one=True)
    reference.set_timesteps(20)
    compare(schedule, reference, ddim_step, 20, spacing, use_clipped_model_output=True)


def test_ddpm_with_trailing_spacing_ends_on_clean_data(schedule):
    """The bug this guards against: with a fixed stride, 7 trailing steps ended at t = 0's noise level."""
    assert make_timesteps(T, 7, "trailing")[-1] == 142
    assert previous_timesteps(ddpm_step, make_timesteps(T, 7, "trailing"), T)[-1] == -1
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    clean = torch.zeros_like(x)

    def perfect(x_t, t):  # the exact noise predictor when every x0 is 0: eps = x_t / sqrt(1 - abar_t)
        return x_t / (1 - schedule.alphas_cumprod[int(t.reshape(-1)[0])].float()) ** 0.5
    out = sample_ddpm(perfect, schedule, x, make_timesteps(T, 7, "trailing"), generator=torch.Generator())
    assert torch.allclose(out, clean, atol=1e-5)


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
    with pytest.raises(EngineError, match="unknown sampler 'euler': choose one of ddpm, ddim, diffusers:DDPM"):
        next(engine.trace(1, seed=0, sampler="euler"))
    with pytest.raises(EngineError, match="'Nope' is not a diffusers scheduler: choose one of .*diffusers:Heun"):
        engine.sample(1, seed=0, sampler="diffusers:Nope", steps=5)
    with pytest.raises(EngineError, match="cannot use our model's noise schedule"):
        engine.sample(1, seed=0, sampler="diffusers:FlowMatchEulerDiscreteScheduler", steps=5)
    with pytest.raises(EngineError, match="eta applies to DDIM only"):
        engine.sample(1, seed=0, sampler="diffusers:EulerDiscreteScheduler", steps=5, eta=0.5)
    with pytest.raises(EngineError, match="variance_type applies to DDPM only"):
        engine.sample(1, seed=0, sampler="ddim", steps=5, variance_type="fixed_large")
    for steps in (0, 1001, 2.5):
        with pytest.raises(EngineError, match="steps must be an integer between 1 and 1000"):
            engine.sample(1, seed=0, sampler="diffusers:UniPCMultistepScheduler", steps=steps)
    with pytest.raises(EngineError, match="eta must be a number in"):
        engine.sample(1, seed=0, sampler="ddim", steps=5, eta=1.5)


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


def test_a_step_returns_its_output_by_name(schedule):
    """ddpm_step / ddim_step return a StepOutput (diffusers' SchedulerOutput, plus the noise), and iterate's
    SamplerStep carries exactly those tensors with where the step was taken."""
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    eps = toy_model(x, 500)
    for step_fn in (ddpm_step, ddim_step):
        prev_t = previous_timesteps(step_fn, [500, 400], T)[0]   # 400 for DDPM, 500 - T // 2 = 0 for DDIM
        out = step_fn(schedule, eps, 500, prev_t, x, generator=torch.Generator().manual_seed(1))
        assert isinstance(out, StepOutput) and out.predicted_noise is eps
        assert out.prev_sample.shape == out.predicted_x0.shape == x.shape
        first = next(iterate(step_fn, toy_model, schedule, x, [500, 400], generator=torch.Generator().manual_seed(1)))
        assert (first.index, first.timestep) == (0, 500) and first.x_t is x
        assert torch.equal(first.prev_sample, out.prev_sample) and torch.equal(first.predicted_x0, out.predicted_x0)


@pytest.mark.parametrize("family,options", [("diffusion", {"sampler": "ddim", "steps": 2}),
                                            ("diffusion", {"sampler": "ddpm", "steps": 2}),
                                            ("latent_diffusion", {"sampler": "ddpm", "steps": 2}),
                                            ("diffusion_gan", {})])
def test_every_diffusion_engine_samples_and_traces_through_the_one_loop(monkeypatch, family, options):
    """sample() and trace() of each engine run `samplers.iterate` (no private loop to drift), and sample() is the
    last step of trace(), bit for bit."""
    engine = load_engine(family)
    module = sys.modules[type(engine).__module__]
    calls = []
    monkeypatch.setattr(module, "iterate", lambda *a, **k: calls.append(a[0]) or iterate(*a, **k))
    out = engine.sample(2, seed=1, **options)
    frames = list(engine.trace(2, seed=1, **options))
    assert len(calls) == 2 and calls[0] is calls[1]
    assert torch.equal(from_signed(frames[-1].prev_sample), out)


# --- diffusers schedulers through the engine ------------------------------------------------------

@pytest.fixture(scope="module")
def engine():
    return load_engine("diffusion")


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_diffusers_scheduler_samples_deterministically_and_traces_one_trajectory(engine, name):
    sampler = PREFIX + name
    frames = list(engine.trace(2, seed=5, sampler=sampler, steps=6))
    assert len(frames) == engine.network_evaluations(sampler, 6)  # one frame per network call
    out = engine.sample(2, seed=5, sampler=sampler, steps=6)
    assert torch.equal(from_signed(frames[-1].prev_sample), out)  # the trace's end is sample(), bit for bit
    assert torch.equal(out, engine.sample(2, seed=5, sampler=sampler, steps=6))  # same seed, same images
    assert not torch.equal(out, engine.sample(2, seed=6, sampler=sampler, steps=6))
    assert out.shape == (2, 1, 28, 28) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    for frame in frames:  # x_t is shown in the variance-preserving space, as our samplers' frames are
        assert frame.x_t.shape == frame.predicted_x0.shape == frame.predicted_noise.shape == (2, 1, 28, 28)
        assert torch.isfinite(frame.predicted_x0).all()
    # By the end, the predicted x0 and the sample agree: the last step lands on the data.
    assert (from_signed(frames[-1].predicted_x0) - out).abs().mean() < 0.05


def test_heun_makes_two_network_calls_per_step_but_the_last(engine):
    assert engine.network_evaluations(PREFIX + "HeunDiscreteScheduler", 10) == 19
    assert engine.network_evaluations(PREFIX + "DPMSolverMultistepScheduler", 10) == 10
    assert engine.network_evaluations("ddpm", 10) == 10


@pytest.mark.parametrize("ours,theirs,kwargs", [("ddpm", "DDPMScheduler", {"steps": 20}),
                                                ("ddpm", "DDPMScheduler", {"steps": 8, "variance_type": "fixed_large"}),
                                                ("ddim", "DDIMScheduler", {"steps": 20}),
                                                ("ddim", "DDIMScheduler", {"steps": 10, "eta": 1.0}),
                                                ("ddim", "DDIMScheduler", {"steps": 10, "spacing": "trailing"})])
def test_our_samplers_and_diffusers_give_the_same_images_on_the_shipped_model(engine, ours, theirs, kwargs):
    # Same x_T, same noise draws (both use the seed's generator in the same order), same trajectory.
    a = engine.sample(3, seed=7, sampler=ours, **kwargs)
    b = engine.sample(3, seed=7, sampler=PREFIX + theirs, **kwargs)
    assert (a - b).abs().max() < 1e-3


@pytest.mark.slow  # runs the benchmark command (or 100-step solves) on the shipped model
def test_probability_flow_solvers_converge_to_one_solution(engine):
    """DPM-Solver++, UniPC and Euler integrate the same ODE from the same x_T: with enough steps they must
    land where a fine Heun solve does. A wrong init_noise_sigma or scale_model_input would not."""
    reference = engine.sample(4, seed=3, sampler=PREFIX + "HeunDiscreteScheduler", steps=100, spacing="trailing")
    for name, steps, tolerance in (("DPMSolverMultistepScheduler", 20, 0.01),
                                   ("UniPCMultistepScheduler", 20, 0.01),
                                   ("EulerDiscreteScheduler", 50, 0.01)):
        out = engine.sample(4, seed=3, sampler=PREFIX + name, steps=steps, spacing="trailing")
        assert (out - reference).abs().mean() < tolerance, name


def test_two_threads_with_different_samplers_match_sequential_runs(engine):
    jobs = [("diffusers:DPMSolverMultistepScheduler", 8), ("diffusers:EulerAncestralDiscreteScheduler", 8),
            ("diffusers:UniPCMultistepScheduler", 6), ("ddpm", 8)]
    sequential = [engine.sample(2, seed=i, sampler=s, steps=n) for i, (s, n) in enumerate(jobs)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parallel = list(pool.map(lambda job: engine.sample(2, seed=job[0], sampler=job[1][0], steps=job[1][1]),
                                 enumerate(jobs)))
    for a, b in zip(sequential, parallel):
        assert torch.equal(a, b)


@pytest.mark.slow  # runs the benchmark command (or 100-step solves) on the shipped model
def test_sampler_benchmark_measures_each_row_once_and_keeps_them_across_runs(tmp_path, monkeypatch, capsys):
    from engines.measure import sampler_benchmark
    out = tmp_path / "bench.json"
    args = ["--samplers", "ddim", "diffusers:HeunDiscreteScheduler", "--steps", "2", "--n", "70", "--out", str(out)]
    assert sampler_benchmark.main(args) == 0
    bench = json.loads(out.read_text())
    assert [(r["sampler"], r["steps"], r["nfe"]) for r in bench["rows"]] == [
        ("ddim", 2, 2), ("diffusers:HeunDiscreteScheduler", 2, 3)]
    for row in bench["rows"]:
        assert row["seconds_for_64"] > 0 and row["frechet_distance"] > 0 and 0 <= row["confident_share"] <= 1
    assert bench["verdict"] is None  # no 1000-step DDPM reference measured
    printed = capsys.readouterr().out
    assert "| diffusers:HeunDiscreteScheduler | 2 | 3 |" in printed
    # each row records how many pages the gate refused, so no share is marked as of unknown provenance
    assert all("refused_share" in r for r in bench["rows"]) and "no refused share recorded" not in printed
    del bench["rows"][0]["refused_share"]
    assert sampler_benchmark.table(bench).count(" *") == 1   # a row without it (an old one) is marked
    # A rerun on the same weights measures nothing again; new step counts are added.
    monkeypatch.setattr(sampler_benchmark, "measure", lambda *a: pytest.fail("re-measured a kept row"))
    assert sampler_benchmark.main(args) == 0
    assert sampler_benchmark.main(["--samplers", "nope", "--out", str(out)]) == 2
    assert "unknown sampler 'nope'" in capsys.readouterr().err


@pytest.mark.slow  # runs the benchmark command (or 100-step solves) on the shipped model
def test_benchmark_retime_times_every_kept_row_again_and_keeps_its_distances(tmp_path, capsys):
    from engines.measure import sampler_benchmark
    out = tmp_path / "bench.json"
    args = ["--samplers", "ddim", "diffusers:EulerDiscreteScheduler", "--steps", "1", "--n", "70", "--out", str(out)]
    assert sampler_benchmark.main(args) == 0
    before = json.loads(out.read_text())
    for row in before["rows"]:
        row["seconds_for_64"] = 1e6   # as if timed under some other load
    out.write_text(json.dumps(before))
    assert sampler_benchmark.main(["--retime", "--out", str(out)]) == 0
    after = json.loads(out.read_text())
    assert [(r["sampler"], r["steps"], r["frechet_distance"]) for r in after["rows"]] == \
        [(r["sampler"], r["steps"], r["frechet_distance"]) for r in before["rows"]]
    assert all(0 < r["seconds_for_64"] < 1e6 for r in after["rows"])
    assert after["timing_command"].endswith("--retime --out " + str(out))
    after["weights_sha256"] = "other"
    out.write_text(json.dumps(after))
    assert sampler_benchmark.main(["--retime", "--out", str(out)]) == 2
    assert "measured on other weights" in capsys.readouterr().err


@pytest.mark.slow  # runs the benchmark command (or 100-step solves) on the shipped model
def test_benchmark_merges_the_rows_of_parallel_runs_and_refuses_other_weights(tmp_path, capsys):
    from engines.measure import sampler_benchmark
    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "bench.json"
    assert sampler_benchmark.main(["--samplers", "ddim", "--steps", "1", "--n", "70", "--out", str(a)]) == 0
    assert sampler_benchmark.main(["--samplers", "diffusers:EulerDiscreteScheduler", "ddim", "--steps", "1",
                                   "--n", "70", "--out", str(b)]) == 0   # ddim 1 measured twice: kept once
    assert sampler_benchmark.main(["--merge", str(a), str(b), "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert [(r["sampler"], r["steps"]) for r in merged["rows"]] == [
        ("ddim", 1), ("diffusers:EulerDiscreteScheduler", 1)]
    assert merged["n"] == 70 and merged["command"].startswith("python -m engines.sampler_benchmark --n 70")
    other = json.loads(b.read_text())
    other["seed"] = 1
    b.write_text(json.dumps(other))
    assert sampler_benchmark.main(["--merge", str(a), str(b), "--out", str(out)]) == 2
    assert "other weights, n or seed" in capsys.readouterr().err


def test_benchmark_verdict_compares_the_best_20_step_sampler_with_1000_step_ddpm():
    from engines.measure.sampler_benchmark import verdict
    rows = [{"sampler": "ddpm", "steps": 1000, "frechet_distance": 100.0, "seconds_for_64": 600.0},
            {"sampler": "ddim", "steps": 20, "frechet_distance": 120.0, "seconds_for_64": 10.0},
            {"sampler": "x", "steps": 20, "frechet_distance": 105.0, "seconds_for_64": 11.0}]
    assert verdict(rows).startswith("Best 20-step sampler: x at Frechet distance 105.0 = 1.05x")
    assert verdict(rows).endswith("is met.")
    rows[2]["frechet_distance"] = 115.0
    assert verdict(rows).endswith("is not met.")


def test_benchmark_says_which_kind_of_sampler_wins_at_each_step_count():
    from engines.measure.sampler_benchmark import stochastic_vs_deterministic
    rows = [{"sampler": "ddpm", "steps": 10, "frechet_distance": 90.0},
            {"sampler": "ddim", "steps": 10, "frechet_distance": 80.0},
            {"sampler": "diffusers:EulerAncestralDiscreteScheduler", "steps": 20, "frechet_distance": 40.0},
            {"sampler": "ddpm", "steps": 20, "frechet_distance": 45.0},
            {"sampler": "ddim", "steps": 20, "frechet_distance": 60.0},
            {"sampler": "ddpm", "steps": 1000, "frechet_distance": 30.0}]   # no deterministic row: no line
    assert stochastic_vs_deterministic(rows) == [
        "10 steps: best stochastic ddpm FD 90.0, best deterministic ddim FD 80.0: deterministic wins",
        "20 steps: best stochastic diffusers:EulerAncestralDiscreteScheduler FD 40.0, best deterministic ddim "
        "FD 60.0: stochastic wins"]


@pytest.mark.slow  # runs the benchmark command (or 100-step solves) on the shipped model
def test_benchmark_leaves_autograd_on_for_the_rest_of_the_process(tmp_path):
    from engines.measure import sampler_benchmark
    sampler_benchmark.main(["--samplers", "ddim", "--steps", "1", "--n", "70", "--out", str(tmp_path / "b.json")])
    assert torch.is_grad_enabled()


def test_the_unet_runs_a_large_batch_in_chunks_without_a_gradient_giving_the_same_numbers(monkeypatch):
    import engines.models.unet as unet_module
    from engines.models.unet import UNet, UNetConfig

    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=8)).eval()
    x, t, extra = torch.randn(10, 1, 28, 28), torch.arange(10) * 97, torch.randn(10, 32)
    calls = []
    monkeypatch.setattr(net, "predict", lambda *a, inner=net.predict: calls.append(len(a[0])) or inner(*a))
    with torch.no_grad():
        whole = net(x, t, extra)
        monkeypatch.setattr(unet_module, "INFERENCE_CHUNK", 4)
        chunked = net(x, t, extra)
    assert calls == [10, 4, 4, 2] and torch.allclose(whole, chunked, rtol=1e-4, atol=1e-5)   # up to rounding
    calls.clear()
    net(x, t, extra).sum().backward()   # training: one pass, whatever the batch
    assert calls == [10]
