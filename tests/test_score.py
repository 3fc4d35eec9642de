"""Diffusion as score matching on the 2-D toys: exact noised densities and scores against closed forms and finite
differences, Tweedie's formula, the relative score error's known answers, and annealed Langevin sampling with the
true and with a learned score."""
import math

import pytest
import torch
from torch import nn

from engines.engine import make_generator
from engines.errors import EngineError
from engines.sampling.samplers import make_timesteps, sample_ddim, sample_ddpm
from engines.toy import score, views
from engines.toy.distributions import Checkerboard, GaussianMixture, ToyDistribution, make_distribution
from engines.toy.metrics import mode_coverage
from engines.toy.models import ToyDiffusion, ToyDiffusionConfig
from engines.toy.training import make_trainer

torch.set_num_threads(1)  # 2 cores, one busy

SCHEDULE = ToyDiffusion().schedule   # the playground's: cosine, T = 200
MU, S = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.3


def one_gaussian() -> GaussianMixture:
    return GaussianMixture("one", MU[None], S, torch.zeros(1))


def points(n=64, scale=2.0, seed=0) -> torch.Tensor:
    return scale * torch.randn((n, 2), generator=make_generator(seed), dtype=torch.float64)


def finite_difference_score(distribution, x, alpha_bar, h=1e-5) -> torch.Tensor:
    columns = []
    for d in range(2):
        step = torch.zeros(2, dtype=torch.float64)
        step[d] = h
        columns.append((score.noised_log_prob(distribution, x + step, alpha_bar)
                        - score.noised_log_prob(distribution, x - step, alpha_bar)) / (2 * h))
    return torch.stack(columns, dim=1)


class TrueEpsilon(nn.Module):
    """The optimal noise predictor built from the exact score: eps*(x, t) = -sqrt(1 - abar_t) grad log p_t(x)."""

    def __init__(self, distribution, schedule=SCHEDULE, scale=1.0):
        super().__init__()
        self.distribution, self.schedule, self.scale = distribution, schedule, scale

    def forward(self, x, t):
        alpha_bar = float(self.schedule.alphas_cumprod[int(t[0])])
        truth = score.true_score(self.distribution, x, alpha_bar)
        return (-self.scale * math.sqrt(1 - alpha_bar) * truth).float()


# ------------------------------------------------------------------------------------ exact noised densities
@pytest.mark.parametrize("alpha_bar", [1.0, 0.9, 0.3, 1e-4])
def test_single_gaussian_noised_density_and_score_are_the_closed_form(alpha_bar):
    x = points()
    variance = alpha_bar * S ** 2 + 1 - alpha_bar
    centred = x - math.sqrt(alpha_bar) * MU
    exact = -centred.pow(2).sum(1) / (2 * variance) - math.log(2 * math.pi * variance)
    assert torch.allclose(score.noised_log_prob(one_gaussian(), x, alpha_bar), exact, rtol=1e-12, atol=1e-12)
    assert torch.allclose(score.true_score(one_gaussian(), x, alpha_bar), -centred / variance, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["ring8", "grid25", "moons"])
@pytest.mark.parametrize("alpha_bar", [0.995, 0.6, 0.02])
def test_mixture_score_is_the_gradient_of_the_noised_log_density(name, alpha_bar):
    distribution = make_distribution(name)
    x = points(scale=1.5)
    exact = score.true_score(distribution, x, alpha_bar)
    assert exact.dtype == torch.float64 and exact.shape == (64, 2)
    assert torch.allclose(exact, finite_difference_score(distribution, x, alpha_bar), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alpha_bar", [0.999, 0.9, 0.5, 0.05])
def test_checkerboard_noised_density_integrates_to_one_and_has_the_noised_datas_moments(alpha_bar):
    board = Checkerboard()
    ticks = torch.linspace(-6, 6, 601, dtype=torch.float64)
    grid = torch.cartesian_prod(ticks, ticks)
    mass = score.noised_log_prob(board, grid, alpha_bar).exp() * float(ticks[1] - ticks[0]) ** 2
    assert float(mass.sum()) == pytest.approx(1.0, abs=2e-3)
    # Where the mass sits: mean and second moments against x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, sampled.
    generator = make_generator(0)
    x0 = board.sample(200_000, generator=generator).double()
    x_t = math.sqrt(alpha_bar) * x0 + math.sqrt(1 - alpha_bar) * torch.randn(x0.shape, generator=generator,
                                                                              dtype=torch.float64)
    assert torch.allclose(mass @ grid, x_t.mean(0), atol=0.01)
    assert torch.allclose((mass[:, None] * grid).T @ grid, x_t.T @ x_t / len(x_t), atol=0.02)


def test_checkerboard_noised_density_reduces_to_the_toy_and_its_score_matches_finite_differences():
    board = Checkerboard()
    x = torch.cat([points(scale=1.5), torch.tensor([[-1.5, -1.5], [-1.0, 0.3], [9.0, -7.0]], dtype=torch.float64)])
    assert torch.allclose(score.noised_log_prob(board, x, 1.0), board.log_prob(x), rtol=1e-12)
    for alpha_bar in (0.999, 0.7, 0.05, 1e-6):
        exact = score.true_score(board, x, alpha_bar)
        assert torch.isfinite(exact).all()
        assert torch.allclose(exact, finite_difference_score(board, x, alpha_bar), rtol=1e-5, atol=1e-5)
    outside = score.true_score(board, x, 0.7)
    with torch.no_grad():   # the autograd path works inside the samplers' no_grad too
        assert torch.equal(score.true_score(board, x, 0.7), outside)


def test_unsupported_distributions_and_bad_levels_get_clear_errors():
    class Ring(ToyDistribution):
        pass

    for call in (score.noised_log_prob, score.true_score):
        with pytest.raises(EngineError, match="no exact noised density for Ring"):
            call(Ring(), points(), 0.5)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(EngineError, match=r"alpha_bar must be in \(0, 1\]"):
            score.noised_log_prob(one_gaussian(), points(), bad)
    x, generator, fn = torch.zeros(4, 2), make_generator(0), score.true_score_fn(one_gaussian(), SCHEDULE)
    for levels, message in [([10, 50], "strictly decreasing"), ([200], "timestep must be"), ([], "strictly"),
                            (0, "steps must be an integer")]:
        with pytest.raises(EngineError, match=message):
            score.annealed_langevin(fn, SCHEDULE, x, generator, levels=levels)
    with pytest.raises(EngineError, match="epsilon must be a positive number"):
        score.annealed_langevin(fn, SCHEDULE, x, generator, epsilon=-1.0)


# ---------------------------------------------------------------------------------------------- Tweedie
@pytest.mark.parametrize("alpha_bar", [0.99, 0.5, 0.01])
def test_tweedie_with_the_true_score_is_the_gaussian_posterior_mean(alpha_bar):
    x_t = points()
    variance = alpha_bar * S ** 2 + 1 - alpha_bar
    # x0 ~ N(mu, s^2 I), x_t | x0 ~ N(sqrt(abar) x0, (1 - abar) I): E[x0 | x_t] by Gaussian conditioning.
    posterior_mean = MU + math.sqrt(alpha_bar) * S ** 2 / variance * (x_t - math.sqrt(alpha_bar) * MU)
    x0 = score.tweedie_x0(x_t, score.true_score(one_gaussian(), x_t, alpha_bar), alpha_bar)
    assert torch.allclose(x0, posterior_mean, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("t", [0, 57, 199])
def test_tweedie_with_the_learned_score_is_the_samplers_predicted_x0(t):
    model = make_trainer("diffusion", make_distribution("ring8"), seed=1).model   # random weights suffice
    x = points().float()
    eps = model(x, torch.full((len(x),), t, dtype=torch.long)).detach()
    alpha_bar = float(model.schedule.alphas_cumprod[t])
    tweedie = score.tweedie_x0(x, score.learned_score(model, x, t), alpha_bar)
    assert torch.allclose(tweedie, model.schedule.predict_x0(x, t, eps), rtol=1e-4, atol=1e-4 / math.sqrt(alpha_bar))


# --------------------------------------------------------------------------------------- score error
def test_relative_score_error_known_answers():
    ring = make_distribution("ring8")
    perfect = score.relative_score_error(TrueEpsilon(ring), ring, 40, n=1000)
    assert perfect.relative < 1e-10 and (perfect.t, perfect.n) == (40, 1000)
    assert perfect.alpha_bar == float(SCHEDULE.alphas_cumprod[40])
    # eps = 1.1 eps*: the error is 0.1 s_true at every point, so exactly 0.01 with no spread between points.
    scaled = score.relative_score_error(TrueEpsilon(ring, scale=1.1), ring, 40, n=1000)
    assert scaled.relative == pytest.approx(0.01, rel=1e-5) and scaled.se < 1e-8
    # A model that predicts no noise has error E||s||^2 / E||s||^2 = 1 exactly; a random one has a real SE.
    zero = score.relative_score_error(TrueEpsilon(ring, scale=0.0), ring, 40, n=1000)
    assert zero.relative == pytest.approx(1.0, rel=1e-6)
    random = score.relative_score_error(make_trainer("diffusion", ring).model, ring, 40, n=1000)
    assert random.relative > 0.5 and 0 < random.se < 0.2 * random.relative
    assert score.relative_score_error(TrueEpsilon(ring, scale=0.0), ring, 40, n=1000, seed=0) == zero


def test_score_field_gives_three_visibly_different_levels_with_arrows_densities_and_errors():
    ring = make_distribution("ring8")
    levels = score.score_field(TrueEpsilon(ring), ring, grid=11, density_size=60, n=500)
    assert [level.t for level in levels] == score.timesteps_for_noise(SCHEDULE, score.DEFAULT_NOISE_LEVELS)
    assert [round(level.sigma, 2) for level in levels] == [0.2, 0.45, 0.95]
    cell = (2 * views.EXTENT / 59) ** 2
    for level in levels:
        assert level.points.shape == level.learned.shape == level.true.shape == (121, 2)
        assert level.density.shape == (60, 60) and level.density_ticks.shape == (60,)
        assert torch.allclose(level.learned, level.true, rtol=1e-4, atol=1e-4)
        assert float(level.density.sum()) * cell == pytest.approx(1.0, abs=0.02)
        assert level.error.relative < 1e-10 and level.error.t == level.t
    # The pictures differ: 8 separate blobs, 8 bumps on a ring (both with an empty centre), one blob peaked there.
    centre = [float(level.density[30, 30] / level.density.max()) for level in levels]
    assert centre[0] < 1e-6 and centre[1] < 1e-2 and centre[2] > 0.95
    angles = torch.tensor([0.0, math.pi / 8])                       # a mode's direction, and halfway to the next
    on_ring = math.sqrt(levels[1].alpha_bar) * 2 * torch.stack([angles.cos(), angles.sin()], dim=1)
    mode, between = score.noised_log_prob(ring, on_ring, levels[1].alpha_bar).exp()
    assert mode > 1.5 * between                                          # the middle ring still has its 8 bumps
    with pytest.raises(EngineError, match="timestep must be"):
        score.score_field(TrueEpsilon(ring), ring, timesteps=[250])


# ---------------------------------------------------------------------------------------------- Langevin
def test_annealed_langevin_with_the_true_score_covers_the_ring():
    ring = make_distribution("ring8")
    fn = score.true_score_fn(ring, SCHEDULE)
    start = torch.randn((1500, 2), generator=make_generator(0))
    x = score.annealed_langevin(fn, SCHEDULE, start, make_generator(1))
    coverage = mode_coverage(ring, x)
    assert coverage.covered == 8 and coverage.on_support > 0.95
    counts = torch.tensor(coverage.counts, dtype=torch.float64)
    assert (counts / counts.sum() - 1 / 8).abs().max() < 0.04          # and in the right proportions
    assert torch.equal(x, score.annealed_langevin(fn, SCHEDULE, start, make_generator(1)))
    assert not torch.equal(x, score.annealed_langevin(fn, SCHEDULE, start, make_generator(2)))
    # Without the score's pull there is no ring: the same noise with a zero score stays a blob.
    blob = score.annealed_langevin(lambda x, t: torch.zeros_like(x), SCHEDULE, start, make_generator(1))
    assert mode_coverage(ring, blob).on_support < 0.2


def test_langevin_callback_follows_the_samplers_contract():
    ring = make_distribution("ring8")
    steps, start = [], torch.randn((50, 2), generator=make_generator(0))
    x = score.annealed_langevin(score.true_score_fn(ring, SCHEDULE), SCHEDULE, start, make_generator(1),
                                levels=[199, 120, 60, 10], steps_per_level=3, callback=steps.append)
    assert [s.index for s in steps] == [0, 1, 2, 3] and [s.timestep for s in steps] == [199, 120, 60, 10]
    assert torch.equal(steps[0].x_t, start) and torch.equal(steps[-1].prev_sample, x)
    assert all(torch.equal(a.prev_sample, b.x_t) for a, b in zip(steps, steps[1:]))
    assert torch.equal(steps[-1].predicted_x0, x)                       # the final Tweedie step is the output
    assert all(s.predicted_noise.shape == (50, 2) for s in steps)


@pytest.mark.slow   # trains 1000 steps
def test_briefly_trained_diffusion_samples_the_ring_by_langevin_with_its_learned_score():
    ring = make_distribution("ring8")
    trainer = make_trainer("diffusion", ring, seed=0, lr=5e-3, batch_size=128)
    untrained = mode_coverage(ring, trainer.sample(1500, seed=0, sampler="langevin", steps=50))
    trainer.train(1000)
    langevin = mode_coverage(ring, trainer.sample(1500, seed=0, sampler="langevin", steps=50))
    ddpm = mode_coverage(ring, trainer.sample(1500, seed=0, sampler="ddpm", steps=50))
    assert untrained.covered == 0
    assert langevin.covered >= 6 and langevin.on_support > 0.8 * ddpm.on_support
    path = views.trajectories(trainer.eval_model, n=7, steps=10, sampler="langevin")
    assert path.shape == (11, 7, 2)
    assert torch.equal(path[-1], trainer.eval_model.sample(7, make_generator(0), sampler="langevin", steps=10))


def test_the_existing_samplers_are_unchanged_and_the_error_lists_langevin():
    model = make_trainer("diffusion", make_distribution("ring8"), seed=2).model
    T = model.config.num_train_timesteps
    for sampler, steps, spacing in [("ddpm", None, "trailing"), ("ddim", 10, "trailing"), ("ddpm", 7, "leading")]:
        generator = make_generator(3)
        x = torch.randn((20, 2), generator=generator)
        timesteps = make_timesteps(T, steps or T, spacing)
        expected = sample_ddim(model, model.schedule, x, timesteps, clip_sample=False) if sampler == "ddim" else \
            sample_ddpm(model, model.schedule, x, timesteps, clip_sample=False, generator=generator)
        assert torch.equal(model.sample(20, make_generator(3), sampler=sampler, steps=steps, spacing=spacing), expected)
    with pytest.raises(EngineError, match="choose one of ddpm, ddim, langevin"):
        model.sample(4, make_generator(0), sampler="euler")
    assert ToyDiffusion(ToyDiffusionConfig(num_train_timesteps=20)).sample(5, make_generator(0), "langevin").shape \
        == (5, 2)
