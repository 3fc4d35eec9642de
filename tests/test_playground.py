"""The 2-D playground: exact densities, likelihoods with known answers, coverage, trainers, and the app tab
driven through gradio_client (lessons, state, bad input, four visitors at once)."""
import math

import pytest
import torch
from torch import nn

from engines.errors import EngineError
from engines.toy import metrics, views
from engines.toy.distributions import (PRESETS, Checkerboard, GaussianMixture, from_points, make_distribution,
                                       ring8)
from engines.toy.models import ToyVAE, ToyVAEConfig
from engines.toy.training import check_lr, make_trainer

torch.set_num_threads(1)  # the lessons' numbers are pinned for one thread; and the machine has 2 cores


def grid_integral(distribution, extent=4.5, size=241) -> float:
    ticks = torch.linspace(-extent, extent, size, dtype=torch.float64)
    cell = float(ticks[1] - ticks[0]) ** 2
    return float(distribution.log_prob(torch.cartesian_prod(ticks, ticks)).exp().sum() * cell)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_density_integrates_to_one_and_its_samples_sit_on_its_modes(name):
    distribution = make_distribution(name)
    assert grid_integral(distribution) == pytest.approx(1.0, abs=2e-3)
    x = distribution.sample(4000, seed=0)
    assert x.dtype == torch.float32 and x.shape == (4000, 2)
    assert torch.equal(x, distribution.sample(4000, seed=0)) and not torch.equal(x, distribution.sample(4000, seed=1))
    coverage = metrics.mode_coverage(distribution, x)
    assert coverage.covered == coverage.n_modes and coverage.on_support > 0.98


def test_user_points_become_a_normalised_kernel_mixture_with_clustered_modes():
    blobs = torch.cat([torch.randn(50, 2, generator=torch.Generator().manual_seed(i)) * 0.3 + 10 * i
                       for i in range(3)])
    distribution = from_points(blobs)
    assert grid_integral(distribution) == pytest.approx(1.0, abs=2e-3)
    assert distribution.n_modes == 8 and distribution.means.abs().max() <= 2.0 + 1e-9
    for bad, message in [(torch.zeros(5, 2), "between 8 and"), (torch.zeros(20, 3), r"\[n, 2\]"),
                         (torch.zeros(20, 2), "all the same point"), (torch.full((20, 2), math.nan), "finite")]:
        with pytest.raises(EngineError, match=message):
            from_points(bad)


def test_log_densities_match_closed_forms():
    one = GaussianMixture("one", torch.tensor([[1.0, -1.0]]), 0.5, torch.zeros(1))
    x = torch.tensor([[1.0, -1.0], [2.0, 0.0]], dtype=torch.float64)
    closed = -((x - torch.tensor([1.0, -1.0])) ** 2).sum(1) / (2 * 0.25) - 2 * math.log(0.5) - math.log(2 * math.pi)
    assert torch.allclose(one.log_prob(x), closed)
    board = Checkerboard()
    inside = board.log_prob(torch.tensor([[-1.5, -1.5]]))   # the centre of a black square: density 1/8
    far = board.log_prob(torch.tensor([[-1.5, -0.5], [40.0, 40.0]]))   # a white square; far away
    assert float(inside) == pytest.approx(math.log(1 / 8), abs=1e-6)
    assert torch.isfinite(far).all() and (far < math.log(1 / 8) - 20).all()
    # The data's own average log-likelihood is minus the entropy: for one Gaussian, -(1 + log(2 pi s^2)).
    assert metrics.true_log_likelihood(one, one.sample(20000, seed=0)) == pytest.approx(
        -(1 + math.log(2 * math.pi * 0.25)), abs=0.03)


def test_coverage_turns_mode_collapse_into_a_number():
    ring = ring8()
    collapsed = ring.means[3].expand(800, 2) + 0.05 * torch.randn(800, 2, generator=torch.Generator().manual_seed(0))
    coverage = metrics.mode_coverage(ring, collapsed)
    assert (coverage.covered, coverage.share, coverage.on_support) == (1, 1 / 8, 1.0)
    assert coverage.counts[3] == 800
    between = metrics.mode_coverage(ring, torch.zeros(100, 2))       # a blur at the centre: on no mode
    assert between.covered == 0 and between.on_support == 0.0
    half = metrics.mode_coverage(ring, torch.cat([ring.sample(1000, seed=1), ring.means[:4].repeat(500, 1).float()]))
    assert half.covered == 8   # over-represented modes do not hide the others


class GaussianDataEpsilon(nn.Module):
    """The exact noise predictor for data N(0, s^2 I): E[eps | x_t] = sqrt(1 - abar) x_t / (abar s^2 + 1 - abar)."""

    def __init__(self, s, schedule):
        super().__init__()
        self.s, self.schedule = s, schedule

    def forward(self, x, t):
        abar = math.exp(metrics.log_alpha_bar(self.schedule, float(t[0]))[0])
        return math.sqrt(1 - abar) * x / (abar * self.s ** 2 + 1 - abar)


@pytest.mark.parametrize("s", [0.3, 1.0, 2.0])
def test_ode_likelihood_of_a_known_gaussian_matches_the_closed_form(s):
    model = GaussianDataEpsilon(s, make_trainer("diffusion", ring8()).model.schedule)
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0)) * s
    exact = (-0.5 * (x.double() / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)).sum(1)
    ode = metrics.diffusion_log_likelihood_per_point(model, x)
    assert (ode - exact).abs().max() < 0.02


def test_vae_quadrature_is_exact_for_a_linear_decoder_and_the_elbo_is_below_it():
    vae = make_trainer("vae", ring8(), seed=0).model
    vae.decoder = nn.Linear(2, 2)   # p(x) = N(b, W W^T + sigma^2 I): known in closed form
    with torch.no_grad():
        vae.decoder.weight.copy_(torch.tensor([[0.8, 0.3], [-0.2, 0.5]]))
        vae.decoder.bias.copy_(torch.tensor([0.5, -0.25]))
        vae.decoder_log_std.fill_(math.log(0.3))
    w, b = vae.decoder.weight.detach().double(), vae.decoder.bias.detach().double()
    exact = torch.distributions.MultivariateNormal(b, w @ w.T + 0.09 * torch.eye(2, dtype=torch.float64))
    torch.manual_seed(0)
    x = exact.sample((100,)).float()   # typical points: their posteriors lie inside the quadrature box
    quadrature = metrics.vae_log_likelihood_per_point(vae, x)
    assert (quadrature - exact.log_prob(x.double())).abs().max() < 1e-3
    assert metrics.vae_elbo(vae, x) < float(quadrature.mean())


def test_trained_vae_elbo_below_exact_which_matches_importance_sampling():
    ring = ring8()
    trainer = make_trainer("vae", ring, seed=0)
    trainer.train(400)
    vae, x = trainer.eval_model, ring.sample(100, seed=5)
    exact = metrics.vae_log_likelihood_per_point(vae, x)
    with torch.no_grad():   # importance sampling with the encoder as proposal, K = 4000
        mean, logvar = vae.encode(x)
        std = (0.5 * logvar).exp()
        z = mean + std * torch.randn((4000, *mean.shape), generator=torch.Generator().manual_seed(0))
        normal = torch.distributions.Normal(0, 1)
        log_w = vae.log_px_given_z(x, z) + normal.log_prob(z).sum(-1) \
            - torch.distributions.Normal(mean, std).log_prob(z).sum(-1)
        importance = torch.logsumexp(log_w.double(), 0) - math.log(4000)
    assert float((importance - exact).mean()) == pytest.approx(0, abs=0.05)
    assert metrics.vae_elbo(vae, x) < float(exact.mean()) < metrics.true_log_likelihood(ring, x)


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion"])
def test_training_is_seeded_resumable_and_keeps_the_sample_contract(family):
    ring = ring8()
    whole, pieces, other = (make_trainer(family, ring, seed=s) for s in (3, 3, 4))
    whole.train(30)
    pieces.train(12)
    pieces.train(18)
    other.train(30)
    for a, b in zip(whole.eval_model.state_dict().values(), pieces.eval_model.state_dict().values()):
        assert torch.equal(a, b)
    x = whole.sample(64, seed=1)
    assert x.shape == (64, 2) and x.dtype == torch.float32
    assert torch.equal(x, pieces.sample(64, seed=1)) and not torch.equal(x, other.sample(64, seed=1))
    assert whole.step == 30 and len(next(iter(whole.losses.values()))) == 30
    whole.set_lr(1e-4)
    assert whole.lr == 1e-4


def test_bad_settings_raise_engine_errors_that_say_what_to_do():
    for lr in (0, -1e-3, 1.0, "fast", True):
        with pytest.raises(EngineError, match="learning rate must be a number in"):
            check_lr(lr)
    with pytest.raises(EngineError, match="unknown distribution"):
        make_distribution("spiral")
    with pytest.raises(EngineError, match="unknown family"):
        make_trainer("flow", ring8())
    with pytest.raises(EngineError, match="unknown sampler"):
        make_trainer("diffusion", ring8()).sample(4, sampler="euler")


def test_views_have_the_shapes_the_app_draws():
    ring = ring8()
    trainers = {f: make_trainer(f, ring) for f in ("vae", "gan", "diffusion")}
    assert views.true_density(ring, 50).shape == (50, 50)
    assert views.discriminator_map(trainers["gan"].model, 40).shape == (40, 40)
    means, lines = views.latent_maps(trainers["vae"].model, ring.sample(30))
    assert means.shape == (30, 2) and lines.shape == (22, 60, 2)
    assert views.trajectories(trainers["diffusion"].eval_model, n=5, steps=10).shape == (11, 5, 2)
