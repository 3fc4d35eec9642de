"""Likelihoods on models whose answers are known in closed form.

The diffusion cases use Gaussian data x0 ~ N(mu, s^2 I) and its *exact* noise predictor
E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a): then the probability-flow ODE is linear and
maps N(m_0, v_0) to N(m_T, v_T) per dimension, and the KL terms of the variational bound have a closed-form
expectation (the posterior variance of x0 given x_t). The ODE bound's tests use the same predictor at the integer
timesteps; for data that is one fixed image (s -> 0) it is a perfect model, whose bound is the decoder's floor.
"""
import math

import pytest
import torch

from engines.measure.likelihood import (
    ContinuousTime,
    continuous_bits_per_dim,
    decoder_floor_nats,
    dequantise,
    diffusion_vlb,
    discretized_gaussian_log_prob,
    ode_bound,
    ode_log_likelihood,
    vae_bits_per_dim,
)
from engines.models.vae import bits_per_dim
from engines.sampling.schedule import NoiseSchedule

MU, S = 0.1, 0.3


def exact_eps_model(schedule, mu=MU, s=S):
    time = ContinuousTime(schedule)

    def eps(x, t):
        a = torch.tensor([math.exp(time.log_alpha_bar(float(v))) for v in t], dtype=x.dtype)
        a = a.reshape(-1, *([1] * (x.dim() - 1)))
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s ** 2 + 1 - a)
    return eps


def exact_eps_at_steps(schedule, mu=MU, s=S):
    """The exact noise predictor at the schedule's integer timesteps."""
    def eps(x, t):
        a = schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1).to(x.dtype)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s ** 2 + 1 - a)
    return eps


def small_schedule(T=100):
    return NoiseSchedule.from_config(T, "linear", 1e-3, 0.2)  # same shape as DDPM's, T/10 steps


def test_pf_ode_log_density_of_gaussian_data_matches_closed_form():
    schedule = small_schedule()
    x = MU + S * torch.randn(16, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    result = ode_log_likelihood(exact_eps_model(schedule), schedule, x, steps=40)
    time = ContinuousTime(schedule)
    a0, aT = math.exp(time.log_alpha_bar(0.0)), math.exp(time.log_alpha_bar(schedule.num_train_timesteps - 1))
    v0, vT = a0 * S ** 2 + 1 - a0, aT * S ** 2 + 1 - aT
    # The exact flow is the affine map that standardises N(m_0, v_0) into N(m_T, v_T), dimension by dimension;
    # the model then scores the end point under its N(0, 1) prior.
    y = aT ** 0.5 * MU + (vT / v0) ** 0.5 * (x.double() - a0 ** 0.5 * MU)
    expected = (-0.5 * y ** 2 - 0.5 * math.log(2 * math.pi) + 0.5 * math.log(vT / v0)).flatten(1).sum(1)
    assert torch.allclose(result["log_density"], expected, atol=2e-3), (result["log_density"] - expected).abs().max()
    # the even-timestep grid drops the points that rounding merges near tau = 0: 4 evaluations per interval taken
    assert result["nfe"] == 4 * (len(result["grid"]) - 1) and len(result["grid"]) - 1 <= 40


def eight_bit(levels, shape=(1, 1, 2, 2)):
    return (torch.tensor(levels, dtype=torch.float64) / 255 * 2 - 1).reshape(shape)


def test_ode_grid_is_even_timesteps_from_zero_to_the_last_even_one():
    for T, steps in ((100, 40), (1000, 24), (1000, 3), (101, 12)):
        grid = ContinuousTime(NoiseSchedule.from_config(T, "linear")).even_grid(steps)
        assert grid[0] == 0 and grid[-1] == 2 * ((T - 1) // 2)
        assert all(t % 2 == 0 for t in grid) and all(a < b for a, b in zip(grid[:-1], grid[1:]))
        assert len(grid) - 1 <= steps


def test_ode_evaluates_the_network_only_at_integer_timesteps():
    # DDPM's T = 1000: the former grid, uniform in log noise-to-signal, put RK4's points at fractional timesteps
    schedule = NoiseSchedule.from_config(1000, "linear")
    exact, seen = exact_eps_at_steps(schedule), []

    def recording(x, t):
        if torch.is_floating_point(t) and not (t == t.round()).all():
            raise AssertionError(f"fractional timestep {t}")
        seen.append(t.long())
        return exact(x, t.long())
    x0 = eight_bit([0, 30, 140, 255])
    for steps in (5, 12, 24):
        out = ode_bound(recording, schedule, x0, steps=steps)
        assert torch.isfinite(out["nll_nats"]).all()
    ode_log_likelihood(recording, schedule, x0.expand(3, 1, 2, 2), steps=24)
    seen = torch.cat(seen)
    assert seen.min() == 0 and seen.max() == 998 and (seen % 2 == 1).any()  # midpoints are odd sometimes


def test_ode_bound_flow_term_converges_to_its_closed_form_on_gaussian_data():
    # x0 ~ N(MU, S^2) per pixel: the exact flow is linear, and the N(0, 1) prior at the grid's end pulls back
    # to p_ODE(z) = N(m, v) at tau = 0 with m = m0 - sqrt(v0 / vT) mT, v = v0 / vT (m0 = sqrt(a0) MU,
    # v0 = a0 S^2 + 1 - a0, the same at the end: m ~ m0, v ~ v0, to within the prior's tiny mismatch there).
    # Then E_q[-log p_ODE(z)] = sum over pixels of 1/2 log(2 pi v) + ((sqrt(a0) x - m)^2 + 1 - a0) / (2 v).
    schedule = small_schedule()
    x0, n = eight_bit([0, 30, 140, 255]), 4000
    a = schedule.alphas_cumprod
    end = ContinuousTime(schedule).even_grid(1)[-1]
    (a0, aT) = float(a[0]), float(a[end])
    v0, vT = a0 * S ** 2 + 1 - a0, aT * S ** 2 + 1 - aT
    m, v = a0 ** 0.5 * MU - (v0 / vT) ** 0.5 * aT ** 0.5 * MU, v0 / vT
    expected = float((0.5 * math.log(2 * math.pi * v) + ((a0 ** 0.5 * x0 - m) ** 2 + 1 - a0) / (2 * v)).sum())
    errors = []
    for steps in (4, 8, 24):  # the same seed draws the same z and probes: only the solver's error changes
        flow = ode_bound(exact_eps_at_steps(schedule), schedule, x0.expand(n, 1, 2, 2), steps=steps,
                         batch_size=n)["terms_nats"]["flow"]
        errors.append(abs(float(flow.mean()) - expected))
        stderr = float(flow.std()) / n ** 0.5
    # at 24 steps: within 4 standard errors of the Monte Carlo average (~0.013 nats) plus 0.01 for the solver
    assert errors[-1] < 4 * stderr + 0.01, (errors, stderr)
    assert errors[0] > errors[1] > errors[2], errors


def test_ode_bound_is_flow_plus_entropy_plus_decoder_and_above_its_floor():
    schedule = small_schedule(20)
    x0 = torch.randint(0, 256, (6, 1, 2, 2), generator=torch.Generator().manual_seed(0)).double() / 255 * 2 - 1
    for eps_model in (lambda x, t: 0.5 * x, exact_eps_at_steps(schedule)):
        out = ode_bound(eps_model, schedule, x0, steps=6, batch_size=4)
        terms = out["terms_nats"]
        assert torch.allclose(out["nll_nats"], terms["flow"] + terms["entropy"] + terms["decoder"])
        # entropy is E_q[log q(z|x)] = -H[q] = -D/2 log(2 pi e (1 - abar_0)), as the docstring says
        sigma2 = float(1 - schedule.alphas_cumprod[0])
        assert torch.allclose(terms["entropy"], torch.tensor(-2 * math.log(2 * math.pi * math.e * sigma2),
                                                             dtype=torch.float64))
        # the decoder term is at least the floor image by image; the bound (KL >= 0 on top) for these poor models
        assert (terms["decoder"] >= out["floor_nats"] - 1e-9).all()
        assert (out["nll_nats"] > out["floor_nats"]).all()
        assert out["nfe"] == 4 * (len(ContinuousTime(schedule).even_grid(6)) - 1) + 1
    # a model that predicts x0 = -3 everywhere: its decoder mean is clipped to -1, so on the lowest level it
    # meets the floor but cannot beat it (unclipped, the tail below -3 would hold nearly all the mass)
    def beyond_edge(x, t):
        a = schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1).to(x.dtype)
        return (x + 3 * a.sqrt()) / (1 - a).sqrt()
    black = torch.full((2, 1, 2, 2), -1.0, dtype=torch.float64)
    out = ode_bound(beyond_edge, schedule, black, steps=4)
    assert torch.allclose(out["terms_nats"]["decoder"], out["floor_nats"])
    # the floor: per pixel -log of the decoder's mass on its own level when the mean is exact
    log_scale = 0.5 * (schedule.posterior_variance[1]).log()
    levels = eight_bit([0, 255, 1, 128], (4,))
    per_pixel = -discretized_gaussian_log_prob(levels, levels, log_scale)
    s = float(log_scale.exp())
    phi = 0.5 * (1 + math.erf(1 / 255 / s / math.sqrt(2)))
    assert torch.allclose(per_pixel, torch.tensor([-math.log(phi)] * 2 + [-math.log(2 * phi - 1)] * 2,
                                                  dtype=torch.float64))
    assert torch.allclose(decoder_floor_nats(schedule, levels.reshape(1, 1, 2, 2)), per_pixel.sum().reshape(1))


def test_ode_bound_of_a_perfect_model_of_one_image_approaches_its_floor():
    # data = one fixed 8-bit image (S -> 0): the exact model predicts x0 exactly, p_ODE at tau = 0 is q(z|x) up
    # to a KL of order (S^2 / (1 - abar_0))^2, and the decoder's mean is x itself: the bound is the floor. The
    # one-draw estimate scatters (flow + entropy is a chi-square draw around its mean), hence many copies.
    schedule = NoiseSchedule.from_config(1000, "linear")
    x0, n = eight_bit([0, 30, 140, 255]), 8000
    out = ode_bound(exact_eps_at_steps(schedule, mu=x0, s=1e-4), schedule, x0.expand(n, 1, 2, 2), steps=24,
                    batch_size=n)
    gap = out["nll_nats"] - out["floor_nats"]
    assert abs(float(gap.mean())) < 0.08, float(gap.mean())  # ~5 standard errors (0.016 nats)
    assert torch.allclose(out["terms_nats"]["decoder"], out["floor_nats"], atol=1e-3)
    # a model of wider data (S = 0.3) is far from it
    wide = ode_bound(exact_eps_at_steps(schedule, mu=x0, s=S), schedule, x0.expand(500, 1, 2, 2), steps=24,
                     batch_size=500)
    assert float((wide["nll_nats"] - wide["floor_nats"]).mean()) > 5


def test_ode_bound_is_seeded_and_checks_its_input():
    schedule = small_schedule(20)
    x0 = eight_bit([3, 77, 200, 254])
    first, again, other = (ode_bound(exact_eps_at_steps(schedule), schedule, x0.expand(3, 1, 2, 2), steps=5, seed=s)
                           for s in (0, 0, 1))
    assert torch.equal(first["nll_nats"], again["nll_nats"])
    assert all(torch.equal(first["terms_nats"][k], again["terms_nats"][k]) for k in first["terms_nats"])
    assert not torch.equal(first["nll_nats"], other["nll_nats"])
    with pytest.raises(ValueError):
        ode_bound(exact_eps_at_steps(schedule), schedule, (x0 + 1) / 2, steps=5)  # [0, 1] data, off the grid


def test_vlb_kl_terms_of_gaussian_data_match_their_expected_value():
    T, dims = 50, 4
    schedule = NoiseSchedule.from_config(T, "linear", 2e-3, 0.4)
    x0 = MU + S * torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    eps = exact_eps_at_steps(schedule)

    full = diffusion_vlb(eps, schedule, x0, strata=T, clip=False, batch_size=4000)
    a = schedule.alphas_cumprod
    var_x0_given_xt = S ** 2 * (1 - a) / (a * S ** 2 + 1 - a)
    # fixed_small: model variance = posterior variance, so KL_t = coef1_t^2 E|x0 - x0_hat|^2 / (2 beta-tilde_t)
    per_t = schedule.posterior_mean_coef1 ** 2 * var_x0_given_xt / (2 * schedule.posterior_variance)
    expected = dims * float(per_t[1:].sum())
    measured = float(full["terms_nats"]["fixed_small"]["diffusion"].mean())
    assert abs(measured - expected) < 0.03 * expected, (measured, expected)
    # The stratified estimate (10 strata for 49 terms) is unbiased: it agrees within Monte Carlo error.
    strat = float(diffusion_vlb(eps, schedule, x0, strata=10, clip=False, batch_size=4000)
                  ["terms_nats"]["fixed_small"]["diffusion"].mean())
    assert abs(strat - expected) < 0.05 * expected, (strat, expected)


def test_vlb_total_is_prior_plus_diffusion_plus_decoder():
    schedule = small_schedule(20)
    x0 = torch.randint(0, 256, (3, 1, 2, 2), generator=torch.Generator().manual_seed(0)).double() / 255 * 2 - 1
    out = diffusion_vlb(lambda x, t: torch.zeros_like(x), schedule, x0, strata=19)
    for v, parts in out["terms_nats"].items():
        assert torch.allclose(out["nll_nats"][v], parts["prior"] + parts["diffusion"] + parts["decoder"])
        assert (parts["prior"] >= 0).all() and (parts["diffusion"] >= 0).all() and (parts["decoder"] >= 0).all()


def test_discretized_gaussian_is_a_distribution_over_256_levels():
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)
    for mean, log_scale in ((0.0, -3.0), (0.95, -5.0), (-1.2, 0.0), (0.3, -8.0)):
        logp = discretized_gaussian_log_prob(levels, torch.tensor(mean), torch.tensor(log_scale))
        assert abs(logp.exp().sum().item() - 1.0) < 1e-6


def test_bits_per_dim_of_a_uniform_density_on_the_data_range_is_eight():
    # density (1/2)^D on [-1, 1]^D puts 1/256 on each dequantised level: 8 bits/dim, the "+7" offset included
    dims = 784
    log_density = torch.tensor(dims * math.log(0.5))
    assert abs(continuous_bits_per_dim(log_density, dims).item() - 8.0) < 1e-9


def test_bits_per_dim_of_a_factorised_gaussian_matches_its_closed_form():
    # N(0, s^2) per pixel: E[-log p] = 0.5 log(2 pi e s^2) nats/dim, scored on its own samples
    dims, s = 50, 0.2
    x = s * torch.randn(20000, dims, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    log_p = (-0.5 * (x / s) ** 2 - 0.5 * math.log(2 * math.pi * s ** 2)).sum(1)
    expected = 0.5 * math.log(2 * math.pi * math.e * s ** 2) / math.log(2) + 7
    assert abs(continuous_bits_per_dim(log_p, dims).mean().item() - expected) < 0.01


def test_dequantise_stays_inside_each_pixels_bin():
    x01 = torch.arange(256, dtype=torch.float32).reshape(1, 1, 16, 16) / 255
    x = dequantise(x01, torch.Generator().manual_seed(0))
    lower = (x01 * 255).round() / 256 * 2 - 1
    assert ((x >= lower) & (x < lower + 2 / 256)).all()


@pytest.fixture(scope="module")
def vae():
    from engines import load_engine
    return load_engine("vae")


def test_vae_elbo_is_below_the_iwae_bound(vae):
    from engines.data.datasets import load_mnist5k
    digits = load_mnist5k("test").images[:12]
    result = vae_bits_per_dim(vae, digits, k=64)
    # bits/dim are -log p: the tighter (larger) IWAE bound gives fewer bits
    assert result["iwae_bpd"] <= result["elbo_bpd"]
    assert result["iwae_nats"] >= result["elbo_nats"]
    elbo_nats = torch.tensor(result["elbo_nats"], dtype=torch.float64)
    assert abs(result["elbo_bpd"] - float(bits_per_dim(elbo_nats, 784))) < 1e-9


def test_ddim_inversion_of_gaussian_data_with_the_exact_model_returns_the_data():
    from engines.measure.latent import ddim_invert
    from engines.sampling.samplers import make_timesteps, sample_ddim
    # DDPM's schedule; DDIM steps are first-order, so the round trip is exact only as the steps shrink
    schedule = NoiseSchedule.from_config(1000, "linear")
    eps = exact_eps_at_steps(schedule)

    x0 = MU + S * torch.randn(8, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    errors = []
    for steps in (50, 500):
        x_T = ddim_invert(eps, schedule, x0, steps=steps)
        back = sample_ddim(eps, schedule, x_T, make_timesteps(1000, steps), clip_sample=False)
        errors.append(float((back - x0).abs().max()))
    assert errors[1] < 0.01 and errors[1] < errors[0] / 5, errors
    assert (x_T - x0).abs().mean() > 0.3  # it did travel to the noise end


def test_vlb_bands_of_gaussian_data_match_each_timesteps_closed_form_kl():
    """One band per timestep (as many strata as terms): each band is that level's KL, whose expectation for
    Gaussian data and the exact noise predictor is closed form; the bands add up to the KL part."""
    T, dims = 30, 4
    schedule = NoiseSchedule.from_config(T, "linear", 2e-3, 0.4)
    x0 = MU + S * torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(2))
    out = diffusion_vlb(exact_eps_at_steps(schedule), schedule, x0, strata=T, clip=False, batch_size=4000)
    assert out["bands"] == [(t, t) for t in range(1, T)]
    a = schedule.alphas_cumprod
    var_x0_given_xt = S ** 2 * (1 - a) / (a * S ** 2 + 1 - a)
    expected = dims * schedule.posterior_mean_coef1 ** 2 * var_x0_given_xt / (2 * schedule.posterior_variance)
    measured = out["band_nats"]["fixed_small"].mean(0)
    assert torch.allclose(measured, expected[1:], rtol=0.06), (measured, expected[1:])
    assert torch.allclose(out["band_nats"]["fixed_small"].sum(1), out["terms_nats"]["fixed_small"]["diffusion"])


def test_the_report_pairs_each_two_likelihood_families_later_minus_earlier_under_one_key():
    """report.json's paired differences: for each two families that measure bits/dim (registry order), the later's
    bounds minus the earlier's per digit, under "<later>_minus_<earlier>_bpd"; a family without a likelihood (the
    GAN) is in no pair, and the order names are given in does not matter."""
    from engines.measure.verdicts import likelihood_pairs, paired_key
    pairs = [(earlier.name, later.name) for earlier, later in likelihood_pairs(["diffusion", "gan", "vae"])]
    assert pairs == [("vae", "diffusion")] and paired_key("diffusion", "vae") == "diffusion_minus_vae_bpd"
    assert likelihood_pairs(["vae", "gan"]) == []


def test_an_ode_estimate_below_its_floor_is_not_counted_as_a_bound():
    """The verdict compares the better of diffusion's bounds with the VAE's IWAE; an ODE estimate under its floor
    is solver error (too few steps), so only the variational bound counts then."""
    from engines.models.diffusion import DiffusionEngine
    from engines.models.vae import VAEEngine
    summary = {"vlb_bpd": {"fixed_small": 1.7}, "vlb_bpd_se": 0.02, "ode_bpd": 0.5, "ode_bpd_se": 0.01,
               "ode_floor_bpd": 0.6}
    assert [bound for bound, _, _ in DiffusionEngine.likelihood_bounds(summary)] == ["vlb"]
    summary["ode_bpd"] = 1.6
    assert DiffusionEngine.likelihood_bounds(summary) == [("vlb", 1.7, 0.02), ("ode", 1.6, 0.01)]
    assert VAEEngine.likelihood_bounds({"iwae_bpd": 1.8, "iwae_bpd_se": 0.06}) == [("iwae", 1.8, 0.06)]
