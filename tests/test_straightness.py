"""Straightness (Liu et al. 2022) on paths whose answer is known, the identity that puts diffusion on the straight
path (deterministic DDIM is Euler's method there), and the report's section on the shipped models."""
import pytest
import torch

from engines import load_engine
from engines.data.datasets import from_signed
from engines.measure.evaluation import straightness_section
from engines.measure.report_markdown import straightness_lines
from engines.measure.straightness import straightness, straightness_summary
from engines.sampling.samplers import ddim_step
from engines.sampling.schedule import NoiseSchedule


def test_a_straight_path_run_at_constant_speed_scores_zero_and_a_kinked_one_its_value():
    times = [1.0, 0.75, 0.5, 0.0]
    start, end = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    line = torch.stack([(t * start + (1 - t) * end) for t in times])      # y = (1 - t) x0 + t eps, x0 = end
    assert torch.allclose(straightness(times, line)["per_pixel"], torch.zeros(3, dtype=torch.float64), atol=1e-12)
    # one pixel: 0 -> 1 in the first half of the time, then still; chord speed 1, step speeds 2 and 0
    kinked = torch.tensor([0.0, 1.0, 1.0]).view(3, 1, 1)
    out = straightness([1.0, 0.5, 0.0], kinked)
    assert out["per_pixel"].item() == pytest.approx(1.0) and out["relative"].item() == pytest.approx(1.0)
    # the same path at uneven speed along a line is not straight in Liu's sense (a single Euler step misses it)
    assert straightness([1.0, 0.5, 0.0], torch.tensor([0.0, 0.9, 1.0]).view(3, 1, 1))["per_pixel"].item() > 0.5
    with pytest.raises(ValueError, match="descending"):
        straightness([0.0, 1.0], kinked[:2])


def test_deterministic_ddim_is_euler_on_the_straight_path():
    """x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, scaled by 1 / (sqrt(abar) + sqrt(1 - abar)), is (1 - s) x0 + s eps;
    a DDIM step (eta 0, unclipped) moves it by (s' - s) (eps_hat - x0_hat): Euler's step with flow matching's
    velocity. Any network output eps_hat: the identity is the step's algebra."""
    schedule = NoiseSchedule.from_config(1000, "linear")
    x_t, eps = torch.randn(4, 1, 5, 5, dtype=torch.float64), torch.randn(4, 1, 5, 5, dtype=torch.float64)
    for t, prev_t in ((999, 899), (500, 480), (20, -1)):
        out = ddim_step(schedule, eps, t, prev_t, x_t, eta=0.0, clip_sample=False)
        (s, scale), (s_next, scale_next) = schedule.straight_path(t), schedule.straight_path(prev_t)
        euler = scale * x_t + (s_next - s) * (out.predicted_noise - out.predicted_x0)
        assert torch.allclose(scale_next * out.prev_sample, euler, atol=1e-10)
        assert torch.allclose(scale * x_t, (1 - s) * out.predicted_x0 + s * out.predicted_noise, atol=1e-10)


def test_the_shipped_families_paths_start_from_the_same_noise_and_end_at_their_samples():
    flow, diffusion = load_engine("flow"), load_engine("diffusion")
    flow_times, flow_states = flow.straight_path_trajectory(2, seed=3, steps=4)
    times, states = diffusion.straight_path_trajectory(2, seed=3, steps=4)
    assert flow_times[0] == 1.0 and flow_times[-1] == 0.0 and times[-1] == 0.0 and 0.99 < times[0] < 1
    assert torch.equal(from_signed(flow_states[-1]), flow.sample(2, seed=3, sampler="euler", steps=4))
    _, scale = diffusion.schedule.straight_path(999)
    assert torch.allclose(states[0] / scale, flow_states[0])               # the seed's noise, for both
    summary = straightness_summary(times, states, "DDIM")
    assert summary["n"] == 2 and summary["steps"] == 4 and summary["per_pixel"] > 0


def test_the_reports_section_measures_each_ode_family_and_their_difference_path_by_path():
    section = straightness_section(["vae", "gan", "diffusion", "flow"], seed=0,
                                   settings={"straightness_n": 3, "straightness_steps": 5}, dataset="mnist")
    assert {"diffusion", "flow", "flow_minus_diffusion"} <= set(section) and "vae" not in section
    difference = section["flow"]["per_pixel"] - section["diffusion"]["per_pixel"]
    assert section["flow_minus_diffusion"]["mean"] == pytest.approx(difference, abs=2e-5)
    text = "\n".join(straightness_lines({"straightness": section}))
    assert "| flow matching | Euler | 1 to 0 |" in text and "Flow matching minus diffusion, path by path" in text
