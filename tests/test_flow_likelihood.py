"""The flow-matching model's ODE bound on models whose answers are known in closed form.

Gaussian data x0 ~ N(mu, s^2 I) on the straight path x_t = (1 - t) x0 + t eps has the marginal N(m_t, v_t) per
dimension, m_t = (1 - t) mu, v_t = (1 - t)^2 s^2 + t^2, and the exact velocity E[eps - x0 | x_t] is the affine
field that carries it: v(x, t) = -mu + (t - (1 - t) s^2) / v_t (x - m_t). Its diffusion twin (the exact noise
predictor of the same data) is in tests/test_likelihood.py: the two bounds must agree.
"""
import math

import pytest
import torch
from test_likelihood import MU, S, eight_bit, exact_eps_at_steps

from engines.measure.flow_likelihood import flow_grid, flow_log_likelihood, flow_ode_bound, start_time
from engines.measure.likelihood import ode_bound
from engines.sampling.schedule import NoiseSchedule

DDPM = NoiseSchedule.from_config(1000, "linear")


def exact_velocity(mu=MU, s=S):
    def v(x, t):
        t = t.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        variance = (1 - t) ** 2 * s ** 2 + t ** 2
        return -mu + (t - (1 - t) * s ** 2) / variance * (x - (1 - t) * mu)
    return v


def test_the_start_is_the_diffusions_first_noise_to_signal_and_the_grid_runs_to_pure_noise():
    t0 = start_time(DDPM)
    a0 = float(DDPM.alphas_cumprod[0])
    assert t0 / (1 - t0) == pytest.approx(math.sqrt((1 - a0) / a0)) and t0 == pytest.approx(0.0099, abs=1e-4)
    grid = flow_grid(t0, 24)
    assert len(grid) == 25 and grid[0] == pytest.approx(t0) and grid[-1] == 1.0
    assert grid[-2] == pytest.approx(1 - flow_grid(t0, 24)[1], rel=1e-9) and grid == sorted(grid)
    with pytest.raises(ValueError, match="steps >= 1"):
        flow_grid(t0, 0)


def test_the_flows_log_density_of_gaussian_data_matches_its_closed_form():
    t0 = 0.05
    x = (1 - t0) * MU + math.sqrt((1 - t0) ** 2 * S ** 2 + t0 ** 2) * torch.randn(
        16, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = flow_log_likelihood(exact_velocity(), x, t0, steps=24)
    variance = (1 - t0) ** 2 * S ** 2 + t0 ** 2
    expected = (-0.5 * ((x - (1 - t0) * MU) ** 2 / variance + math.log(2 * math.pi * variance))).sum((1, 2, 3))
    # a diagonal Jacobian: Hutchinson's estimate is exact, so only RK4's error remains
    assert torch.allclose(result["log_density"], expected, atol=2e-3), (result["log_density"] - expected).abs().max()
    assert result["nfe"] == 4 * 24


def test_with_exact_networks_the_flows_bound_equals_the_diffusion_models():
    """The same Gaussian data, modelled exactly by a flow and by a diffusion model: one dequantiser (up to units),
    one decoder, one density, so one bound in expectation and one floor."""
    x0, n = eight_bit([0, 30, 140, 255]), 4000
    flow = flow_ode_bound(exact_velocity(), DDPM, x0.expand(n, 1, 2, 2), steps=24, batch_size=n)
    diffusion = ode_bound(exact_eps_at_steps(DDPM), DDPM, x0.expand(n, 1, 2, 2), steps=24, batch_size=n)
    assert torch.equal(flow["floor_nats"], diffusion["floor_nats"])
    se = math.hypot(float(flow["nll_nats"].std()), float(diffusion["nll_nats"].std())) / n ** 0.5
    gap = float(flow["nll_nats"].mean() - diffusion["nll_nats"].mean())
    assert abs(gap) < 4 * se + 0.02, (gap, se)
    assert float((flow["nll_nats"] - flow["floor_nats"]).mean()) > 5      # wide data: far above the floor
    terms = flow["terms_nats"]
    assert torch.allclose(flow["nll_nats"], terms["flow"] + terms["entropy"] + terms["decoder"])
    assert flow["nfe"] == 4 * 24 + 1


def test_the_bound_of_a_perfect_flow_of_one_image_approaches_the_floor():
    x0, n = eight_bit([0, 30, 140, 255]), 8000
    out = flow_ode_bound(exact_velocity(mu=x0, s=1e-4), DDPM, x0.expand(n, 1, 2, 2), steps=24, batch_size=n)
    gap = out["nll_nats"] - out["floor_nats"]
    assert abs(float(gap.mean())) < 0.08, float(gap.mean())
    assert torch.allclose(out["terms_nats"]["decoder"], out["floor_nats"], atol=1e-3)


def test_the_bound_is_seeded_and_checks_its_input():
    x0 = eight_bit([3, 77, 200, 254]).expand(3, 1, 2, 2)
    first, again, other = (flow_ode_bound(exact_velocity(), DDPM, x0, steps=4, seed=s) for s in (0, 0, 1))
    assert torch.equal(first["nll_nats"], again["nll_nats"]) and not torch.equal(first["nll_nats"], other["nll_nats"])
    with pytest.raises(ValueError, match="8-bit"):
        flow_ode_bound(exact_velocity(), DDPM, x0 + 0.001, steps=4)
