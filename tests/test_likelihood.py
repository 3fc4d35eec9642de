"""Likelihoods on models whose answers are known in closed form.

The diffusion cases use Gaussian data x0 ~ N(mu, s^2 I) and its *exact* noise predictor
E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a): then the probability-flow ODE is linear and
maps N(m_0, v_0) to N(m_T, v_T) per dimension, and the KL terms of the variational bound have a closed-form
expectation (the posterior variance of x0 given x_t).
"""
import math

import pytest
import torch

from engines.measure.likelihood import (ContinuousTime, continuous_bits_per_dim, dequantise, diffusion_vlb,
                                discretized_gaussian_log_prob, ode_log_likelihood, vae_bits_per_dim)
from engines.sampling.schedule import NoiseSchedule
from engines.models.vae import bits_per_dim

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
    assert result["nfe"] == 160


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
