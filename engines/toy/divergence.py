"""The GAN as divergence minimisation, measured on the 2-D toys (Goodfellow et al. 2014, "Generative Adversarial
Nets", Proposition 1 and Theorem 1).

For a fixed generator with density p_g, the discriminator that maximises the game value

    V(D, G) = E_{x ~ p_data} log D(x) + E_{x ~ p_g} log(1 - D(x))

is, point by point (a log y + b log(1 - y) is largest at y = a / (a + b)),

    D*(x) = p_data(x) / (p_data(x) + p_g(x)) = sigmoid(log p_data(x) - log p_g(x)),

and its value is the Jensen-Shannon divergence, shifted and scaled:

    V(D*, G) = -log 4 + 2 JSD(p_data || p_g),   JSD = 0.5 KL(p_data || m) + 0.5 KL(p_g || m),   m = (p_data + p_g) / 2,

with 0 <= JSD <= log 2 nats, and the game's equilibrium is p_g = p_data (JSD = 0, D* = 1/2). Which divergence a
generator step against D* goes down depends on the generator's loss (`engines.toy.models.GENERATOR_LOSSES`):

- minimax, E_z log(1 - D*(G(z))): this is V(D*, G) less its real-data term, so its gradient is that of
  2 JSD(p_data || p_g) (Goodfellow et al. 2014, Theorem 1): the steps go down the JSD;
- non-saturating, E_z -log D*(G(z)) (what the lab trains with by default, because the minimax loss's gradient
  vanishes when D rejects the fakes confidently): its gradient is that of KL(p_g || p_data) - 2 JSD(p_data || p_g)
  (Arjovsky & Bottou 2017, Theorem 2.5). The reverse KL punishes generated points where the data has none and
  hardly punishes missing modes; the -2 JSD term pushes the JSD *up*.

So the lesson measures both the JSD and KL(p_g || p_data) = E_{x ~ p_g} [log p_g(x) - log p_data(x)] along training.

On a toy, log p_data is exact (`ToyDistribution.log_prob`); the generator has no density we can evaluate, so p_g
is a Gaussian kernel density estimate (KDE) from KDE_SAMPLES of its points. The JSD is then a Monte-Carlo average
over EVAL_SAMPLES fresh points of each side,

    JSD ~ 0.5 mean_{x ~ p_data} [log 2 + log D*(x)] + 0.5 mean_{x ~ p_g} [log 2 + log(1 - D*(x))],

where the generator's points are ones the KDE was *not* built from: at its own points a KDE counts each point's
own kernel, which inflates p_g there. Written like this the estimate is log 2 + V(D*_KDE, G) / 2, the game value
of one particular discriminator (the KDE's plug-in D*) on true points of both sides; since the real D* is the
best discriminator there is, the estimate is in expectation a lower bound on the true JSD whatever the bandwidth.
The tests measure how close it gets on Gaussians whose JSD is known by quadrature.

The KL is the same plug-in: the average of log p_g^KDE(x) - log p_data(x) over the held-out generated points. For a
KDE p^ built from other points its expectation is KL(p_g || p_data) - KL(p_g || p^): a lower bound again, short by
how far the KDE is from p_g (the tests measure it on Gaussians whose KL has a closed form).

Bandwidth: Scott's rule, h_j = n^(-1/(d+4)) * std_j per dimension with d = 2, is right for one Gaussian but blurs
a ring of narrow modes into a doughnut (on ring8 it is 0.4 for modes of std 0.1). So `fit_kde` scales it by the
one of BANDWIDTH_FACTORS under which the generator's own points are most likely, each scored under the KDE of the
others (leave-one-out likelihood cross-validation: p_g's points only, never p_data's, so the choice cannot favour
the truth). A fixed narrow kernel then has tails that fall off faster than the generator's: a generated point in a
sparse stretch between modes gets a p_g far below the truth, and its log(1 - D*) term is -100 nats instead of -2,
which swamps the average. So the kernels widen where the generator's points are sparse and narrow where they are
dense, by Abramson's square-root law (Abramson 1982; Silverman 1986, 5.3): kernel i has bandwidth lambda_i * h with
lambda_i = sqrt(g / pilot(s_i)), the pilot being the fixed KDE and g its geometric mean over the samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache

import torch
import torch.nn.functional as F

from engines.engine import make_generator
from engines.toy import views
from engines.toy.distributions import ToyDistribution

KDE_SAMPLES = 2000          # generator points the KDE of p_g is built from
EVAL_SAMPLES = 1000         # fresh points of each side (p_data, p_g) the JSD is averaged over
GENERATOR_SAMPLES = KDE_SAMPLES + EVAL_SAMPLES   # what `divergence_view` draws from the generator
CV_POINTS = 250             # samples scored leave-one-out for the bandwidth, and the pilot's kernels (cost CV x KDE)
BANDWIDTH_FACTORS = tuple(2 ** (-k / 2) for k in range(9))   # 1 down to 1/16 of Scott's bandwidth
MAX_SCALE = 10.0            # Abramson factors are kept in [1/10, 10]: a lone far sample's pilot density can be 0
MIN_BANDWIDTH = 1e-3        # a generator collapsed onto one point has std 0: keep the kernel a density
SUPPORT_FLOOR = 1e-3        # the maps show D* only where m(x) >= this share of its peak: elsewhere it is 0/0
CHUNK = 1024                # query points per kernel block: bounds memory at CHUNK x samples float64
SMALLEST_TERM = -100.0      # kernel terms below e^-100 of a sum's largest are clamped there (see `_log_sum_exp`)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


# ------------------------------------------------------------------------------------------ the KDE of p_g
def scott_bandwidth(samples: torch.Tensor) -> torch.Tensor:
    """Scott's rule per dimension: h_j = n^(-1/(d+4)) * std_j (d = 2 here), float64 [d]."""
    n, d = samples.shape
    return (n ** (-1 / (d + 4)) * samples.to(torch.float64).std(dim=0)).clamp_min(MIN_BANDWIDTH)


def _square_distances(x: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """|x - s|^2 for every row pair, [len(x), len(samples)]: one matrix product (cdist's sqrt then squaring
    costs twice as much); in float64 the cancellation error is ~1e-12, far below what a kernel can see."""
    sq = torch.addmm(samples.pow(2).sum(1)[None], x, samples.T, alpha=-2)
    return sq.add_(x.pow(2).sum(1)[:, None]).clamp_min_(0)


def _log_sum_exp(a: torch.Tensor) -> torch.Tensor:
    """log sum_j exp(a_ij) per row, overwriting `a`. Terms more than 100 nats below their row's largest add under
    n e^-100 to it, so they are raised to that floor: exp of an argument below about -708 takes a slow underflow
    path (ten times slower), and far kernels are most of the terms."""
    top = a.max(dim=1, keepdim=True).values
    return a.sub_(top).clamp_min_(SMALLEST_TERM).exp_().sum(dim=1).log_().add_(top[:, 0])


def kde_log_prob(samples: torch.Tensor, x: torch.Tensor, bandwidth=None, scales=None) -> torch.Tensor:
    """log of the Gaussian KDE (1/n) sum_i N(x; s_i, diag((scale_i * h)^2)) at each row of x, float64 [len(x)].

    `bandwidth` h: a number or one per dimension, Scott's rule when None; `scales`: one factor per sample (a
    variable-bandwidth KDE), 1 when None. logsumexp, so a point far from every sample gets a very negative but
    finite log-density instead of log 0."""
    samples = samples.to(torch.float64)
    n, d = samples.shape
    h = scott_bandwidth(samples) if bandwidth is None else torch.as_tensor(bandwidth, dtype=torch.float64).expand(d)
    scales = torch.ones(n, dtype=torch.float64) if scales is None else scales.to(torch.float64)
    log_norm = -d * scales.log() - h.log().sum() - d * HALF_LOG_2PI - math.log(n)     # [n], per kernel
    weight = -0.5 / scales.pow(2)
    scaled = samples / h
    return torch.cat([_log_sum_exp(_square_distances(chunk / h, scaled).mul_(weight).add_(log_norm))
                      for chunk in x.to(torch.float64).split(CHUNK)])


@dataclass(frozen=True)
class KDE:
    """A Gaussian KDE with a global bandwidth and one scale factor per kernel (see `kde_log_prob`)."""
    samples: torch.Tensor      # [n, d] float64
    bandwidth: torch.Tensor    # [d]
    scales: torch.Tensor       # [n]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return kde_log_prob(self.samples, x, self.bandwidth, self.scales)

    def grid_log_prob(self, ticks: torch.Tensor) -> torch.Tensor:
        """log p on the square grid of `ticks` x `ticks`, [len(ticks), len(ticks)] in `views.plane_grid` order
        (row = y). A diagonal Gaussian kernel is a product of 1-D kernels, so the grid sum is one matrix product
        of per-axis kernel tables: ~100 times cheaper than scoring every grid point against every sample. Each
        table is shifted by its per-tick maximum so that the products stay representable; where even they
        underflow (far from every sample in both axes at once) the result is log 0 = -inf, i.e. D* = 1."""
        t = ticks.to(torch.float64)
        widths = self.scales[:, None] * self.bandwidth[None]                        # [n, d] per-kernel bandwidths
        tables, shifts = [], []
        for j in range(2):
            log_k = -0.5 * ((t[None] - self.samples[:, j:j + 1]) / widths[:, j:j + 1]).pow(2) \
                - widths[:, j:j + 1].log() - HALF_LOG_2PI                             # [n, len(ticks)]
            shifts.append(log_k.max(dim=0).values)
            tables.append((log_k - shifts[-1]).exp())
        total = tables[1].T @ tables[0]                                               # [y, x]
        return total.log() + shifts[1][:, None] + shifts[0][None] - math.log(len(self.samples))


def fit_kde(samples: torch.Tensor, factors=BANDWIDTH_FACTORS, held: int = CV_POINTS) -> KDE:
    """The KDE of p_g the JSD uses: Scott's bandwidth times the factor that maximises the leave-one-out
    log-likelihood of the first `held` samples, then Abramson's per-kernel factors with that fixed KDE (of the
    same `held` points, whose distances are already computed) as the pilot."""
    samples = samples.to(torch.float64)
    n, d = samples.shape
    scott = scott_bandwidth(samples)
    held = min(held, n)
    sq = _square_distances(samples[:held] / scott, samples / scott)             # [held, n] in Scott units
    sq[torch.arange(held), torch.arange(held)] = math.inf                       # leave each point's own kernel out
    scores = [float(_log_sum_exp(sq * (-0.5 / c ** 2)).mean()) - d * math.log(c) for c in factors]
    factor = factors[max(range(len(factors)), key=scores.__getitem__)]
    log_pilot = _log_sum_exp(sq.T * (-0.5 / factor ** 2))                     # [n], up to a constant
    log_scales = (-0.5 * (log_pilot - log_pilot.mean())).clamp(-math.log(MAX_SCALE), math.log(MAX_SCALE))
    return KDE(samples, (scott * factor).clamp_min(MIN_BANDWIDTH), log_scales.exp())


# --------------------------------------------------------------------------------------- D*, V and the JSD
def optimal_discriminator(log_p_data: torch.Tensor, log_p_g: torch.Tensor) -> torch.Tensor:
    """D*(x) = p_data / (p_data + p_g) = sigmoid(log p_data - log p_g): never divides two underflowed densities."""
    return torch.sigmoid(log_p_data - log_p_g)


def game_value(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> float:
    """V(D, G) = mean log D(real) + mean log(1 - D(fake)) in nats, with D = sigmoid(logit).

    log sigmoid(l) and log(1 - sigmoid(l)) = log sigmoid(-l) stay finite for a confident D, where
    log(1 - D) of a rounded D would be log 0."""
    return float(F.logsigmoid(logits_real.double()).mean() + F.logsigmoid(-logits_fake.double()).mean())


def game_optimum(jsd: float) -> float:
    """max_D V(D, G) = V(D*, G) = -log 4 + 2 JSD(p_data || p_g)."""
    return -math.log(4) + 2 * jsd


@dataclass(frozen=True)
class JSD:
    value: float                     # nats, in [0, log 2] up to Monte-Carlo error (a lower bound in expectation)
    se: float                        # standard error of the average over the evaluation points
    bandwidth: tuple[float, float]   # the KDE's global per-dimension bandwidth
    n: int                           # evaluation points per side


@dataclass(frozen=True)
class _Points:
    """Fresh points of both sides with both log-densities at each: what the JSD, V and the gap average over."""
    real: torch.Tensor
    fake: torch.Tensor
    log_pd_real: torch.Tensor
    log_pg_real: torch.Tensor
    log_pd_fake: torch.Tensor
    log_pg_fake: torch.Tensor
    kde: KDE


@lru_cache(maxsize=16)
def _data_side(distribution: ToyDistribution, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n points of the data and their exact log p_data. They do not change while the generator trains, so each
    checkpoint reuses them (the cache holds a few distributions; a visitor's points are their own object)."""
    real = distribution.sample(n, seed=seed).to(torch.float64)
    return real, distribution.log_prob(real)


@lru_cache(maxsize=16)
def _data_grid(distribution: ToyDistribution, size: int) -> torch.Tensor:
    """log p_data on `views.plane_grid(size)`, [size, size]: fixed for a distribution, so computed once."""
    return distribution.log_prob(views.plane_grid(size)[1]).reshape(size, size)


def _evaluate(distribution: ToyDistribution, generator_samples: torch.Tensor, estimate_samples: int, seed: int,
              bandwidth) -> _Points:
    samples = generator_samples.to(torch.float64)
    kde_points, fake = samples[:estimate_samples], samples[estimate_samples:]
    if len(fake) < 2:
        raise ValueError(f"need held-out generator points beyond the {estimate_samples} the KDE is built from")
    if bandwidth is None:
        kde = fit_kde(kde_points)
    else:   # a fixed-bandwidth KDE, as asked
        kde = KDE(kde_points, torch.as_tensor(bandwidth, dtype=torch.float64).expand(kde_points.shape[1]),
                  torch.ones(len(kde_points), dtype=torch.float64))
    real, log_pd_real = _data_side(distribution, len(fake), seed)
    return _Points(real, fake, log_pd_real, kde.log_prob(real), distribution.log_prob(fake), kde.log_prob(fake), kde)


def _jsd_terms(points: _Points) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-point terms log 2 + log D*(real) and log 2 + log(1 - D*(fake)) (each <= log 2)."""
    return (math.log(2) + F.logsigmoid(points.log_pd_real - points.log_pg_real),
            math.log(2) + F.logsigmoid(points.log_pg_fake - points.log_pd_fake))


def _jsd(points: _Points) -> JSD:
    """The JSD's terms, averaged: half the real side's mean plus half the generated side's."""
    real_terms, fake_terms = _jsd_terms(points)
    value = 0.5 * float(real_terms.mean()) + 0.5 * float(fake_terms.mean())
    se = 0.5 * math.sqrt(float(real_terms.var()) / len(real_terms) + float(fake_terms.var()) / len(fake_terms))
    return JSD(value, se, tuple(points.kde.bandwidth.tolist()), len(real_terms))


@dataclass(frozen=True)
class Estimate:
    value: float   # nats
    se: float      # standard error of the average over the evaluation points
    n: int         # evaluation points per side


def _kl_terms(points: _Points) -> torch.Tensor:
    """log p_g(x) - log p_data(x) at the held-out generated points: KL(p_g || p_data)'s terms."""
    return points.log_pg_fake - points.log_pd_fake


def _kl(points: _Points) -> Estimate:
    terms = _kl_terms(points)
    return Estimate(float(terms.mean()), math.sqrt(float(terms.var()) / len(terms)), len(terms))


def _kl_minus_2jsd(points: _Points) -> Estimate:
    """KL(p_g || p_data) - 2 JSD, the quantity whose gradient the non-saturating generator loss follows against
    D*: mean(kl - fake) - mean(real) over the JSD's and the KL's terms, the generated side's paired per point."""
    (real_terms, fake_terms), kl_terms = _jsd_terms(points), _kl_terms(points)
    paired = kl_terms - fake_terms
    se = math.sqrt(float(paired.var()) / len(paired) + float(real_terms.var()) / len(real_terms))
    return Estimate(float(paired.mean() - real_terms.mean()), se, len(paired))


def jensen_shannon(distribution: ToyDistribution, generator_samples: torch.Tensor,
                   estimate_samples: int = KDE_SAMPLES, seed: int = 0, bandwidth=None) -> JSD:
    """Monte-Carlo JSD(p_data || p_g) in nats with its standard error.

    The first `estimate_samples` rows of `generator_samples` build the KDE of p_g; the rest are the held-out
    generator side of the average, and as many points of `distribution` (drawn with `seed`) the data side.
    `bandwidth`: None for `fit_kde`'s (cross-validated, variable), or a fixed one (a number or one per axis)."""
    return _jsd(_evaluate(distribution, generator_samples, estimate_samples, seed, bandwidth))


def kl_generator_data(distribution: ToyDistribution, generator_samples: torch.Tensor,
                      estimate_samples: int = KDE_SAMPLES, seed: int = 0, bandwidth=None) -> Estimate:
    """Monte-Carlo KL(p_g || p_data) = E_{x ~ p_g} [log p_g(x) - log p_data(x)] in nats with its standard error:
    log p_data exact, log p_g the KDE of the first `estimate_samples` rows (`fit_kde`, or a fixed `bandwidth`),
    averaged over the other rows, which the KDE was not built from. For a KDE p^ independent of those points the
    average's expectation is KL(p_g || p_data) - KL(p_g || p^): a lower bound, short by how far the KDE is from
    p_g (its smoothing of narrow modes; its kernels' tails). `seed` is unused here (no data points are needed),
    kept so that the call reads as `jensen_shannon`'s."""
    return _kl(_evaluate(distribution, generator_samples, estimate_samples, seed, bandwidth))


def discriminator_gap(d_real: torch.Tensor, d_fake: torch.Tensor, d_star_real: torch.Tensor,
                      d_star_fake: torch.Tensor) -> float:
    """How far a learned D is from D*: the mean of |D(x) - D*(x)| over x from the mixture m = (p_data + p_g) / 2,
    i.e. over equally many real and generated points. 0 when D = D*, at most 1; a D stuck at 1/2 against a
    generator far from the data scores nearly 1/2."""
    return 0.5 * float((d_real.double() - d_star_real).abs().mean() + (d_fake.double() - d_star_fake).abs().mean())


# ------------------------------------------------------------------------------------------ for the app
@dataclass(frozen=True)
class DivergenceView:
    """What the GAN panel draws beside its learned D, and the numbers under it."""
    d_star: torch.Tensor           # [size, size] D*(x) on `views.plane_grid`, row 0 at y = -extent
    discriminator: torch.Tensor    # [size, size] the learned D(x) on the same grid (`views.discriminator_map`)
    support: torch.Tensor          # [size, size] bool: m(x) >= SUPPORT_FLOOR * its peak, where D* means something
    jsd: float
    jsd_se: float
    bandwidth: tuple[float, float]
    gap: float                     # `discriminator_gap`, on the JSD's evaluation points
    d_confidence: float            # mean |D(x) - 1/2| on the same points: 0 for a D that says 1/2 everywhere
    game_value: float              # V(D, G) of the learned D on the same points
    game_optimum: float            # -log 4 + 2 JSD: what D* would score
    game_optimum_se: float         # 2 * jsd_se
    n: int
    kl: float           # KL(p_g || p_data) on the same points (`kl_generator_data`)
    kl_se: float
    kl_minus_2jsd: float      # KL(p_g || p_data) - 2 JSD: what the non-saturating loss descends
    kl_minus_2jsd_se: float

    def numbers(self) -> dict:
        """The scalars only (JSON-friendly): for measurements and the lesson's claims."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: value for name, value in values.items() if not isinstance(value, torch.Tensor)}


@torch.no_grad()
def divergence_view(distribution: ToyDistribution, gan, seed: int = 0, size: int = 80) -> DivergenceView:
    """D* and the learned D on the plane, their gap, the JSD and KL(p_g || p_data) (+- SE), V(D, G) and its
    optimum, for one GAN.

    The generator's points and the data's come from seeds fixed by `seed`, so successive checkpoints are measured
    on the same latents and the same data points: their differences are the model's, not the dice's."""
    generator_samples = gan.sample(GENERATOR_SAMPLES, make_generator(seed))
    points = _evaluate(distribution, generator_samples, KDE_SAMPLES, seed + 1, None)
    jsd, kl, objective = _jsd(points), _kl(points), _kl_minus_2jsd(points)
    logits_real, logits_fake = gan.logits(points.real.float()), gan.logits(points.fake.float())
    d_star_real = optimal_discriminator(points.log_pd_real, points.log_pg_real)
    d_star_fake = optimal_discriminator(points.log_pd_fake, points.log_pg_fake)
    d_real, d_fake = torch.sigmoid(logits_real), torch.sigmoid(logits_fake)
    gap = discriminator_gap(d_real, d_fake, d_star_real, d_star_fake)
    half = torch.full_like(d_star_real, 0.5)
    # The gap can shrink because D* flattens towards 1/2 (p_g nears p_data) while D itself learns nothing: this
    # says which (it is the gap between D and the constant 1/2).
    d_confidence = discriminator_gap(d_real, d_fake, half, half)

    log_pd, log_pg = _data_grid(distribution, size), points.kde.grid_log_prob(views.plane_grid(size)[0])
    log_m = torch.logaddexp(log_pd, log_pg) - math.log(2)
    return DivergenceView(
        d_star=optimal_discriminator(log_pd, log_pg).float(), discriminator=views.discriminator_map(gan, size),
        support=log_m >= log_m.max() + math.log(SUPPORT_FLOOR),
        jsd=jsd.value, jsd_se=jsd.se, bandwidth=jsd.bandwidth, gap=gap, d_confidence=d_confidence,
        game_value=game_value(logits_real, logits_fake), game_optimum=game_optimum(jsd.value),
        game_optimum_se=2 * jsd.se, n=jsd.n, kl=kl.value, kl_se=kl.se, kl_minus_2jsd=objective.value,
        kl_minus_2jsd_se=objective.se)
