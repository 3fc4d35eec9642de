"""The GAN as divergence minimisation (engines/toy/divergence.py): D*, the KDE of p_g, the JSD and KL estimates and
the game value, checked against answers known in closed form or by quadrature for Gaussians, then in the playground;
and the GAN's two generator losses (minimax, non-saturating) that descend different divergences."""
import json
import math

import pytest
import torch

from engines.toy import divergence as dv
from engines.toy import views
from engines.toy.distributions import GaussianMixture, make_distribution, ring8
from engines.toy.session import Playground

torch.set_num_threads(1)  # 2 cores, one busy: a second intra-op thread only waits (the numbers are the same)


def gaussian(mean, std: float) -> GaussianMixture:
    """N(mean, std^2 I) as a toy distribution: exact log_prob and seeded samples."""
    return GaussianMixture("gaussian", torch.tensor([mean], dtype=torch.float64), std, torch.zeros(1))


class DiagonalGaussian:
    """p_g = N(mean, diag(std^2)): a generator whose density we know, unlike a GAN's."""

    def __init__(self, mean, std):
        self.mean = torch.tensor(mean, dtype=torch.float64)
        self.std = torch.tensor(std, dtype=torch.float64)

    def log_prob(self, x):
        z = (x.to(torch.float64) - self.mean) / self.std
        return (-0.5 * z.pow(2) - self.std.log() - 0.5 * math.log(2 * math.pi)).sum(1)

    def sample(self, n, seed):
        return self.mean + self.std * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed),
                                                  dtype=torch.float64)


def quadrature_jsd(p, q, extent: float, size: int = 801) -> float:
    """JSD(p || q) in nats by the midpoint rule on a fine grid over [-extent, extent]^2 (cell 0.02 - 0.03)."""
    ticks = torch.linspace(-extent, extent, size, dtype=torch.float64)
    cell = float(ticks[1] - ticks[0]) ** 2
    x = torch.cartesian_prod(ticks, ticks)
    log_p, log_q = p.log_prob(x), q.log_prob(x)
    log_m = torch.logaddexp(log_p, log_q) - math.log(2)
    return float(0.5 * (log_p.exp() * (log_p - log_m)).sum() + 0.5 * (log_q.exp() * (log_q - log_m)).sum()) * cell


# ------------------------------------------------------------------------------------------------ D*
def test_optimal_discriminator_of_two_gaussians_is_their_closed_form_logistic():
    # Equal isotropic covariances: log p_data - log p_g = (|x - mu_g|^2 - |x - mu_d|^2) / (2 s^2) is linear in x,
    # so D* = sigmoid(w . x + b) with w = (mu_d - mu_g) / s^2 and b = (|mu_g|^2 - |mu_d|^2) / (2 s^2).
    s, mu_d, mu_g = 0.7, torch.tensor([1.0, -0.5]), torch.tensor([-0.5, 0.25])
    data, generator = gaussian(mu_d.tolist(), s), gaussian(mu_g.tolist(), s)
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    w, b = (mu_d - mu_g).double() / s ** 2, float(mu_g.pow(2).sum() - mu_d.pow(2).sum()) / (2 * s ** 2)
    d_star = dv.optimal_discriminator(data.log_prob(x), generator.log_prob(x))
    assert torch.allclose(d_star, torch.sigmoid(x @ w + b), atol=1e-12)
    # The ratio of the densities themselves agrees where they do not underflow ...
    p_d, p_g = data.log_prob(x).exp(), generator.log_prob(x).exp()
    assert torch.allclose(d_star, p_d / (p_d + p_g), atol=1e-12)
    # ... and far out, where both densities are 0 in float64 and the ratio is 0/0, D* is still the logistic.
    far = torch.tensor([[40.0, -20.0], [-40.0, 10.0]], dtype=torch.float64)
    assert (data.log_prob(far).exp() == 0).all()
    assert torch.allclose(dv.optimal_discriminator(data.log_prob(far), generator.log_prob(far)),
                          torch.sigmoid(far @ w + b), atol=1e-12)


# ----------------------------------------------------------------------------------------------- KDE
def test_kde_of_20k_gaussian_samples_matches_its_log_density():
    """Scott's bandwidth (0.19 std per axis at n = 20k) smooths p into N(mu, Sigma + H): at most +-0.04 nats
    of bias inside 2 standard deviations, plus noise of a few hundredths; tolerance 0.06 on average, 0.2 at worst."""
    truth = DiagonalGaussian([0.3, -0.2], [0.5, 1.0])
    samples, x = truth.sample(20_000, seed=0), truth.sample(2000, seed=1)
    x = x[((x - truth.mean) / truth.std).norm(dim=1) < 2][:400]
    h = dv.scott_bandwidth(samples)
    assert torch.allclose(h, 20_000 ** (-1 / 6) * samples.std(0))
    error = dv.kde_log_prob(samples, x) - truth.log_prob(x)
    assert error.abs().mean() < 0.06 and error.abs().max() < 0.2
    # A wrong bandwidth is caught: ten times Scott's blurs the density by far more than the tolerance.
    assert (dv.kde_log_prob(samples, x, 10 * h) - truth.log_prob(x)).abs().mean() > 0.3


def test_fitted_kde_narrows_on_narrow_modes_integrates_to_one_and_its_grid_matches_its_points():
    samples = ring8().sample(2000, seed=0)
    kde = dv.fit_kde(samples)
    # Scott's rule gives ~0.4 on the ring; cross-validation picks a bandwidth of the modes' own scale (std 0.1).
    assert float(dv.scott_bandwidth(samples).min()) > 0.3 and float(kde.bandwidth.max()) < 0.1
    assert 1 / dv.MAX_SCALE - 1e-12 <= float(kde.scales.min()) < 1 < float(kde.scales.max()) <= dv.MAX_SCALE + 1e-9
    ticks = torch.linspace(-4, 4, 321)
    cell = float(ticks[1] - ticks[0]) ** 2
    assert float(kde.grid_log_prob(ticks).exp().sum()) * cell == pytest.approx(1.0, abs=2e-3)
    # The matrix-product shortcut on the grid equals scoring each grid point (row = y, as views.plane_grid); the
    # moons are not symmetric under swapping x and y, so a transposed grid would not pass.
    kde = dv.fit_kde(make_distribution("moons").sample(2000, seed=0))
    ticks, points = views.plane_grid(60)
    direct = kde.log_prob(points).reshape(60, 60)
    shortcut = kde.grid_log_prob(ticks)
    close = direct > -500   # where the shortcut's per-axis products underflow it says -inf: D* = 1 there
    assert close.float().mean() > 0.5 and torch.allclose(shortcut[close], direct[close], atol=1e-9)


# ----------------------------------------------------------------------------------------------- JSD
@pytest.mark.parametrize("separation", [0.0, 0.5, 1.0, 2.0, 4.0])
def test_jsd_estimate_matches_quadrature_for_two_gaussians(separation):
    """p_data = N(0, I), p_g = N((separation, 0), diag(0.8^2, 1.2^2)). The estimate is a lower bound in
    expectation (the KDE's D* is not the best discriminator), so: at most 2 SE above the quadrature, and at most
    3 SE + 0.01 nats (the KDE's smoothing) below it."""
    data, generator = gaussian([0.0, 0.0], 1.0), DiagonalGaussian([separation, 0.0], [0.8, 1.2])
    exact = quadrature_jsd(data, generator, extent=8 + separation)
    estimate = dv.jensen_shannon(data, generator.sample(dv.GENERATOR_SAMPLES, seed=10), seed=1)
    assert estimate.n == dv.EVAL_SAMPLES and 0 < estimate.se < 0.02
    assert exact - 3 * estimate.se - 0.01 <= estimate.value <= exact + 2 * estimate.se, (estimate, exact)


def test_jsd_of_a_distribution_with_itself_is_zero_and_of_far_apart_ones_log_2():
    data = gaussian([0.0, 0.0], 1.0)
    same = dv.jensen_shannon(data, data.sample(dv.GENERATOR_SAMPLES, seed=7), seed=1)
    assert abs(same.value) < 0.015
    far = dv.jensen_shannon(data, gaussian([30.0, 0.0], 1.0).sample(dv.GENERATOR_SAMPLES, seed=7), seed=1)
    assert far.value == pytest.approx(math.log(2), abs=1e-6) and far.se < 1e-6
    # A distribution against itself on a toy with narrow modes: the fitted KDE keeps the estimate near 0 too.
    ring = ring8()
    assert abs(dv.jensen_shannon(ring, ring.sample(dv.GENERATOR_SAMPLES, seed=7), seed=1).value) < 0.03


class NarrowRingWithStrays:
    """p_g = 98% ring8 with std 0.03 (narrower than the data's 0.1) + 2% spread uniformly over the disk of
    radius 2.5: the shape of a GAN that sharpens the modes and leaves a few points between them."""
    ring, stray_share, radius = ring8(noise_std=0.03), 0.02, 2.5

    def log_prob(self, x):
        x = x.to(torch.float64)
        on_ring = self.ring.log_prob(x) + math.log(1 - self.stray_share)
        stray = math.log(self.stray_share / (math.pi * self.radius ** 2))
        return torch.logaddexp(on_ring, torch.where(x.norm(dim=1) <= self.radius, stray, -math.inf))

    def sample(self, n, seed):
        generator = torch.Generator().manual_seed(seed)
        points = self.ring.sample(n, seed=seed + 1).double()
        angle = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        radius = self.radius * torch.rand(n, generator=generator, dtype=torch.float64).sqrt()
        stray = torch.rand(n, generator=generator) < self.stray_share
        points[stray] = torch.stack([radius * angle.cos(), radius * angle.sin()], 1)[stray]
        return points


def test_variable_bandwidth_keeps_stray_generator_points_from_swamping_the_jsd():
    """The cross-validated bandwidth suits the narrow modes (~0.035); with it fixed, a stray point between the
    modes is far from every kernel, its p_g comes out orders of magnitude too small and its log(1 - D*) term
    tens of nats below 0. Abramson's wider kernels for sparse samples keep the estimate within 0.06 nats below
    the quadrature (a lower bound, as it must be); the fixed KDE misses by more than 0.15, with a standard error
    3 times larger."""
    data, generator = ring8(), NarrowRingWithStrays()
    exact = quadrature_jsd(data, generator, extent=3.2, size=961)   # cells of 0.007; the modes have std 0.03
    samples = generator.sample(dv.GENERATOR_SAMPLES, seed=0)
    variable = dv.jensen_shannon(data, samples, seed=1)
    fixed = dv.jensen_shannon(data, samples, seed=1, bandwidth=torch.tensor(variable.bandwidth))
    assert float(max(variable.bandwidth)) < 0.06
    assert exact - 0.06 <= variable.value <= exact + 2 * variable.se, (variable, exact)
    assert fixed.value < exact - 0.15 and fixed.se > 3 * variable.se, (fixed, exact)


def test_the_kde_is_scored_on_held_out_generator_points():
    """Why the generator side uses points the KDE was not built from. The estimate is then a lower bound in
    expectation, so for p_g = p_data (JSD 0) it is at most noise above 0. Scored on its own points, a KDE counts
    each point's own kernel, p_g looks larger there, and the same estimate comes out clearly positive."""
    data = gaussian([0.0, 0.0], 1.0)
    samples = data.sample(dv.KDE_SAMPLES, seed=7)
    narrow = 0.1   # a fixed, narrow bandwidth makes the own kernel's share large (the fitted one is ~0.25)
    own = dv.jensen_shannon(data, torch.cat([samples, samples[:dv.EVAL_SAMPLES]]), seed=1, bandwidth=narrow)
    held_out = dv.jensen_shannon(data, torch.cat([samples, data.sample(dv.EVAL_SAMPLES, seed=8)]), seed=1,
                                 bandwidth=narrow)
    assert own.value > 5 * own.se and held_out.value < 2 * held_out.se, (own, held_out)


# ------------------------------------------------------------------------------------------------ KL
def gaussian_kl(mean_p, std_p, mean_q, std_q) -> float:
    """KL(N(mean_p, diag std_p^2) || N(mean_q, diag std_q^2)) in closed form, nats."""
    mp, sp, mq, sq = (torch.tensor(v, dtype=torch.float64) for v in (mean_p, std_p, mean_q, std_q))
    ratio = (sp / sq).pow(2)
    return float(0.5 * (ratio - 1 - ratio.log() + ((mp - mq) / sq).pow(2)).sum())


@pytest.mark.parametrize("separation", [0.0, 1.0, 2.0, 4.0])
def test_kl_estimate_matches_the_closed_form_for_two_gaussians(separation):
    """KL(p_g || p_data) with p_g = N((separation, 0), diag(0.8^2, 1.2^2)), p_data = N(0, I): 0.08 nats at
    separation 0, 8.08 at 4. Held-out points make it a lower bound in expectation, short by KL(p_g || KDE): at
    most 2 SE above the closed form and 3 SE + 0.03 nats below it (measured: 0.01 - 0.03 below)."""
    data, generator = gaussian([0.0, 0.0], 1.0), DiagonalGaussian([separation, 0.0], [0.8, 1.2])
    exact = gaussian_kl([separation, 0.0], [0.8, 1.2], [0.0, 0.0], [1.0, 1.0])
    estimate = dv.kl_generator_data(data, generator.sample(dv.GENERATOR_SAMPLES, seed=10), seed=1)
    assert estimate.n == dv.EVAL_SAMPLES and 0 < estimate.se < 0.15
    assert exact - 3 * estimate.se - 0.03 <= estimate.value <= exact + 2 * estimate.se, (estimate, exact)


def test_kl_of_a_distribution_with_itself_is_zero_and_grows_with_the_square_of_the_shift():
    data = gaussian([0.0, 0.0], 1.0)
    same = dv.kl_generator_data(data, data.sample(dv.GENERATOR_SAMPLES, seed=7))
    assert abs(same.value) < 3 * same.se + 0.02
    for d in (1.0, 2.0, 3.0):   # closed form d^2 / 2: 0.5, 2, 4.5; the SE grows with d (the terms' std is d)
        shifted = dv.kl_generator_data(data, gaussian([d, 0.0], 1.0).sample(dv.GENERATOR_SAMPLES, seed=7))
        assert d ** 2 / 2 - 3 * shifted.se - 0.03 <= shifted.value <= d ** 2 / 2 + 2 * shifted.se, (d, shifted)


# ------------------------------------------------------------------------------- the two generator losses
def test_minimax_generator_loss_is_log_one_minus_d_and_its_gradient_differs_from_the_non_saturating_one():
    """At the same D and batch: the minimax loss is mean log(1 - D(G(z))), the non-saturating -mean log D(G(z)).
    Per logit l their gradients are -D and -(1 - D) (over the batch size): in the ratio D / (1 - D) = e^l, so
    they agree only where D = 1/2, and the minimax one vanishes where D rejects the fakes (D -> 0)."""
    from engines.toy.models import ToyGAN, ToyGANConfig
    from engines.toy.training import init_weights
    torch.manual_seed(0)
    gan = {loss: ToyGAN(ToyGANConfig(generator_loss=loss)) for loss in ("non-saturating", "minimax")}
    init_weights(gan["minimax"], torch.Generator().manual_seed(0))
    gan["non-saturating"].load_state_dict(gan["minimax"].state_dict())
    fake = {loss: model.sample(64, torch.Generator().manual_seed(1)) for loss, model in gan.items()}
    assert torch.equal(fake["minimax"], fake["non-saturating"])
    d = torch.sigmoid(gan["minimax"].logits(fake["minimax"])).detach().double()
    losses = {loss: model.generator_loss(fake[loss]) for loss, model in gan.items()}
    assert float(losses["minimax"]) == pytest.approx(float(torch.log1p(-d).mean()), rel=1e-5)
    assert float(losses["non-saturating"]) == pytest.approx(float(-d.log().mean()), rel=1e-5)
    for loss in gan:
        losses[loss].backward()
    grads = {loss: torch.cat([p.grad.flatten() for p in model.generator.parameters()]) for loss, model in gan.items()}
    assert (grads["minimax"] - grads["non-saturating"]).norm() > 1e-3 * grads["non-saturating"].norm()
    # Through the logits themselves: -D and -(1 - D) per point, over the batch size.
    logits = {loss: gan[loss].logits(fake[loss].detach()).detach().requires_grad_() for loss in gan}
    from engines.toy.models import GENERATOR_LOSSES
    for loss, fn in GENERATOR_LOSSES.items():
        fn(logits[loss]).backward()
    n = len(d)
    assert torch.allclose(logits["minimax"].grad.double(), -d / n, atol=1e-7)
    assert torch.allclose(logits["non-saturating"].grad.double(), -(1 - d) / n, atol=1e-7)


def test_the_gan_trainer_takes_either_generator_loss_and_refuses_an_unknown_one():
    from engines.errors import EngineError
    from engines.toy.models import ToyGAN, ToyGANConfig
    from engines.toy.training import make_trainer
    moons = make_distribution("moons")
    default = make_trainer("gan", moons, seed=0)
    minimax = make_trainer("gan", moons, seed=0, generator_loss="minimax")
    assert default.generator_loss == "non-saturating" and minimax.generator_loss == "minimax"
    default.train(3)
    minimax.train(3)
    # Same seed, same first discriminator step: the generators part at their first step.
    assert default.losses["d_loss"][0] == minimax.losses["d_loss"][0]
    assert default.losses["g_loss"][0][1] > 0 > minimax.losses["g_loss"][0][1]   # -log D > 0 > log(1 - D)
    assert not torch.equal(default.sample(50, seed=0), minimax.sample(50, seed=0))
    message = "unknown GAN generator loss 'wasserstein': choose one of non-saturating, minimax"
    with pytest.raises(EngineError, match=message):
        make_trainer("gan", moons, seed=0, generator_loss="wasserstein")
    with pytest.raises(EngineError, match=message):
        default.set_generator_loss("wasserstein")
    with pytest.raises(EngineError, match=message):
        ToyGAN(ToyGANConfig(generator_loss="wasserstein"))
    assert default.generator_loss == "non-saturating"   # a refused change leaves the loss as it was
    with pytest.raises(EngineError, match="the diffusion GAN trains with the non-saturating generator loss only"):
        make_trainer("diffusion_gan", moons, seed=0, generator_loss="minimax")


# ---------------------------------------------------------------------------------------- V(D, G) and gap
def test_game_value_of_d_star_is_minus_log_4_plus_twice_the_jsd_and_any_other_d_scores_less():
    data, generator = gaussian([0.0, 0.0], 1.0), DiagonalGaussian([1.5, 0.0], [0.8, 1.2])
    jsd = quadrature_jsd(data, generator, extent=9.5)
    real, fake = data.sample(20_000, seed=3).double(), generator.sample(20_000, seed=4)
    logit = lambda x: data.log_prob(x) - generator.log_prob(x)   # noqa: E731 - D*'s logit, exactly
    log_d, log_not_d = torch.nn.functional.logsigmoid(logit(real)), torch.nn.functional.logsigmoid(-logit(fake))
    se = math.sqrt(float(log_d.var()) / len(real) + float(log_not_d.var()) / len(fake))
    value = dv.game_value(logit(real), logit(fake))
    assert value == pytest.approx(float(log_d.mean() + log_not_d.mean()), abs=1e-12)
    assert dv.game_optimum(jsd) == pytest.approx(-math.log(4) + 2 * jsd)
    assert abs(value - dv.game_optimum(jsd)) < 4 * se, (value, dv.game_optimum(jsd), se)
    for worse in (lambda x: 0.5 * logit(x), lambda x: logit(x) + 1.0):   # too timid; biased towards "real"
        assert dv.game_value(worse(real), worse(fake)) < dv.game_optimum(jsd) - 4 * se
    # Confident logits stay finite (log(1 - sigmoid(40)) would be log 0 in float32).
    assert math.isfinite(dv.game_value(torch.tensor([-40.0]), torch.tensor([40.0])))


def test_discriminator_gap_is_mean_absolute_difference_over_the_mixture():
    d_star_real, d_star_fake = torch.tensor([0.9, 0.7]), torch.tensor([0.2, 0.4])
    assert dv.discriminator_gap(d_star_real, d_star_fake, d_star_real, d_star_fake) == 0
    half = torch.full((2,), 0.5)
    assert dv.discriminator_gap(half, half, d_star_real, d_star_fake) == pytest.approx(0.5 * (0.3 + 0.2))
    assert dv.discriminator_gap(torch.ones(3), torch.zeros(5), torch.zeros(3), torch.ones(5)) == 1


# ------------------------------------------------------------------------------------ view and playground
def test_divergence_view_draws_d_star_beside_d_and_is_seeded():
    from engines.toy.training import make_trainer
    moons = make_distribution("moons")
    trainer = make_trainer("gan", moons, seed=0)   # untrained: its points are a small blob off the moons
    view = dv.divergence_view(moons, trainer.eval_model, seed=3)
    assert view.d_star.shape == view.discriminator.shape == view.support.shape == (80, 80)
    assert view.support.dtype == torch.bool and 0 < view.support.float().mean() < 1
    assert 0 <= float(view.d_star.min()) and float(view.d_star.max()) <= 1
    assert torch.equal(view.discriminator, views.discriminator_map(trainer.eval_model, 80))
    # Hardly any overlap: JSD near log 2, D* ~1 on the data and ~0 on the blob, 1/2 away from an untrained D ~ 1/2.
    assert view.jsd > 0.65 and view.gap > 0.45
    assert view.game_optimum == pytest.approx(-math.log(4) + 2 * view.jsd)
    assert view.game_value <= view.game_optimum + 2 * view.game_optimum_se
    numbers = json.loads(json.dumps(view.numbers()))
    assert set(numbers) == {"jsd", "jsd_se", "bandwidth", "gap", "d_confidence", "game_value", "game_optimum",
                            "game_optimum_se", "n", "kl", "kl_se", "kl_minus_2jsd", "kl_minus_2jsd_se"}
    # The blob sits off the moons: KL(p_g || p_data) is large, and KL - 2 JSD is the two numbers combined.
    assert view.kl > 5 and view.kl_minus_2jsd == pytest.approx(view.kl - 2 * view.jsd, abs=1e-9)
    assert view.d_confidence < 0.1   # an untrained D says about 1/2 everywhere
    assert dv.divergence_view(moons, trainer.eval_model, seed=3).numbers() == view.numbers()
    assert dv.divergence_view(moons, trainer.eval_model, seed=4).jsd != view.jsd


def test_playground_records_the_gans_divergence_per_checkpoint():
    playground = Playground(make_distribution("moons"), ("gan", "vae"), seed=0)
    snapshots = list(playground.train(200, every=100))
    assert [step for step, *_ in playground.divergence_history] == [100, 200]
    latest = snapshots[-1].extra["gan_divergence"]
    assert playground.divergence_history[-1] == (200, latest.jsd, latest.jsd_se, latest.gap)
    assert torch.equal(snapshots[-1].extra["gan"], latest.discriminator)
    measured = playground.measure()
    assert measured["gan_divergence"] == latest.numbers() and len(measured["divergence_history"]) == 2
    assert len(playground.divergence_history) == 2   # measuring at the same step does not add a checkpoint
    assert "gan_divergence" not in Playground(ring8(), ("vae",)).measure()
