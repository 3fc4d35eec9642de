"""Diffusion as score matching, on the 2-D toys, where the score of every noised density is known exactly.

The forward process x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps turns the data density p_0 into
p_t = (p_0 scaled by sqrt(abar_t)) * N(0, (1 - abar_t) I). Three facts tie the noise predictor to it:

- Denoising score matching (Vincent 2011): the eps-MSE is minimised by eps*(x, t) = E[eps | x_t = x], and
  grad_x log p_t(x) = -E[eps | x_t = x] / sqrt(1 - abar_t). So a trained eps_theta *is* a score model:
      s_theta(x, t) = -eps_theta(x, t) / sqrt(1 - abar_t)                       (Song & Ermon 2019; Ho et al. 2020)
- Tweedie's formula: E[x0 | x_t] = (x_t + (1 - abar_t) grad log p_t(x_t)) / sqrt(abar_t). With s_theta in
  place of the true score this is exactly the DDPM/DDIM samplers' "predicted x0" (`NoiseSchedule.predict_x0`).
- Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) samples with nothing but the score: for noise
  levels from large to small, K steps of  x <- x + (alpha_i / 2) s(x, level_i) + sqrt(alpha_i) z,  with
  alpha_i = epsilon * sigma_i^2 / sigma_L^2.

Because every toy's p_0 is a Gaussian mixture or a blurred checkerboard, p_t is too, in closed form:
`noised_log_prob` and `true_score` are exact, so a learned score can be compared with the truth point by point
(`relative_score_error`, `score_field`) and Langevin can be run with either (`annealed_langevin`).

Relative score error at timestep t (what `relative_score_error` estimates, over x_t ~ p_t):
    E_t = E ||s_theta(x_t, t) - grad log p_t(x_t)||^2 / E ||grad log p_t(x_t)||^2
0 for a perfect model; 1 for a model that predicts zero noise. Multiplying both norms by (1 - abar_t) turns it
into E||eps_theta - eps*||^2 / E||eps*||^2: by Vincent's identity E||eps_theta - eps||^2 = E||eps_theta - eps*||^2
+ E||eps - eps*||^2, the numerator is the training loss's excess over its unreachable minimum.

Densities and true scores are float64: far from the modes log p_t is large and negative, and its gradient is
a difference of nearly equal terms.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from engines.engine import check_count, make_generator
from engines.errors import EngineError
from engines.sampling.samplers import SamplerStep, make_timesteps
from engines.sampling.schedule import NoiseSchedule
from engines.toy.distributions import (
    HALF_LOG_2PI,
    Checkerboard,
    GaussianMixture,
    ToyDistribution,
    _log_normal_cdf_difference,
)
from engines.toy.views import EXTENT, plane_grid

# The three pictures of `score_field`, as noise stds sqrt(1 - abar_t) (timesteps 23, 57 and 158 of the
# playground's cosine T = 200): at 0.2 the modes of every preset are still apart and the arrows point at the
# nearest one; at 0.45 neighbours start to merge but each toy's shape is still there (the ring is 8 bumps on a
# ring, the checkerboard a blurred board; by 0.6 the board and the 25-grid are plain blobs); at 0.95 p_t is nearly
# N(0, I) and the field nearly -x. Lower than 0.2 and the first picture is the data itself; higher than 0.95 and
# the last is indistinguishable from pure noise. The learned score's error is largest at the first level.
DEFAULT_NOISE_LEVELS = (0.2, 0.45, 0.95)
ARROW_GRID = 21             # arrows per axis: readable at the playground's plot size
DENSITY_GRID = 120          # background pixels per axis
ERROR_SAMPLES = 2000        # x_t draws per relative error: SE a few % of the value for a trained model
CHUNK = 4096                # points per block of a mixture's [n, K] distance table (circles: K = 480)

DEFAULT_LANGEVIN_LEVELS = 10
DEFAULT_STEPS_PER_LEVEL = 5
# Song & Ermon's epsilon = 2e-5 with sigma_L = 0.01 makes each step's noise sqrt(alpha_i) = 0.45 sigma_i at every
# level, with K = 100 steps per level. That ratio, not epsilon, is what carries over to other levels, so the default
# epsilon is derived from it; with K = 5 a ratio of 1 mixes better (true score, 200 levels: ring8 98.7% of samples
# on a mode against 96.9% at 0.45; grid25 98.5% against 95.8%) and is still stable: in eps terms a step is
# x - (r^2 sigma / 2) eps + r sigma z, and its bias for a Gaussian of variance v >= sigma^2 is at most v / (1 - r^2/4).
STEP_RATIO = 1.0

ScoreFn = Callable[[torch.Tensor, int], torch.Tensor]


def _check_alpha_bar(alpha_bar) -> float:
    value = float(alpha_bar)
    if not 0.0 < value <= 1.0:
        raise EngineError(f"alpha_bar must be in (0, 1], got {value!r}")
    return value


def _check_points(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 2 or x.shape[1] != 2:
        raise EngineError(f"points must be an [n, 2] tensor, got shape {tuple(x.shape)}")
    return x


def _mixture_terms(distribution: GaussianMixture, x: torch.Tensor, alpha_bar: float):
    """Per point and component: log(w_k N(x; sqrt(abar) mu_k, v I)), the scaled means, and v."""
    variance = alpha_bar * distribution.noise_std ** 2 + 1 - alpha_bar
    means = math.sqrt(alpha_bar) * distribution.means
    log_normal = -torch.cdist(x, means).pow(2) / (2 * variance) - (math.log(variance) + 2 * HALF_LOG_2PI)
    return log_normal + distribution.weights.log(), means, variance


def _checkerboard_noised_log_prob(board: Checkerboard, x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """Each unit square, scaled by sqrt(abar), is a uniform of density 1/abar on a square of side sqrt(abar);
    convolved with N(0, v I), v = abar s^2 + 1 - abar, each axis gives (1/sqrt(abar)) [Phi(b') - Phi(a')]."""
    scale, std = math.sqrt(alpha_bar), math.sqrt(alpha_bar * board.noise_std ** 2 + 1 - alpha_bar)
    x = x[:, None, :]                                                           # [n, 1, 2]
    upper = (scale * (board.lower + 1) - x) / std                               # [n, 8, 2]
    lower = (scale * board.lower - x) / std
    log_box = _log_normal_cdf_difference(upper, lower).sum(dim=2)               # [n, 8]
    return torch.logsumexp(log_box, dim=1) - math.log(8) - math.log(alpha_bar)


def noised_log_prob(distribution: ToyDistribution, x: torch.Tensor, alpha_bar) -> torch.Tensor:
    """log p_t(x), float64 [n], the exact density of x_t = sqrt(abar) x0 + sqrt(1 - abar) eps for x0 ~ the toy.

    Gaussian mixture: the same weights, means sqrt(abar) mu_k, variance abar s^2 + 1 - abar. Checkerboard: each
    square scaled by sqrt(abar), blurred by the same variance (normal-CDF differences). alpha_bar = 1 gives
    the toy's own log_prob."""
    alpha_bar, x = _check_alpha_bar(alpha_bar), _check_points(x).to(torch.float64)
    if isinstance(distribution, GaussianMixture):
        return torch.cat([torch.logsumexp(_mixture_terms(distribution, chunk, alpha_bar)[0], dim=1)
                          for chunk in x.split(CHUNK)] or [x.new_zeros(0)])
    if isinstance(distribution, Checkerboard):
        return _checkerboard_noised_log_prob(distribution, x, alpha_bar)
    raise _unsupported(distribution)


def _unsupported(distribution) -> EngineError:
    return EngineError(f"no exact noised density for {type(distribution).__name__}: score matching needs a "
                       "GaussianMixture (every preset but the checkerboard, and drawn points) or the Checkerboard")


def true_score(distribution: ToyDistribution, x: torch.Tensor, alpha_bar) -> torch.Tensor:
    """grad_x log p_t(x), float64 [n, 2].

    Mixtures in closed form: sum_k r_k(x) (sqrt(abar) mu_k - x) / v with r_k the posterior responsibilities
    (no autograd graph over [n, K]). Checkerboard by autograd through `noised_log_prob` (its CDF terms have no
    simpler gradient worth hand-writing)."""
    alpha_bar, x = _check_alpha_bar(alpha_bar), _check_points(x).to(torch.float64)
    if isinstance(distribution, GaussianMixture):
        out = []
        for chunk in x.split(CHUNK):
            terms, means, variance = _mixture_terms(distribution, chunk, alpha_bar)
            out.append((terms.softmax(dim=1) @ means - chunk) / variance)
        return torch.cat(out or [x.clone()])
    if isinstance(distribution, Checkerboard):
        with torch.enable_grad():   # callers (samplers) often run under no_grad
            x = x.detach().requires_grad_(True)
            return torch.autograd.grad(noised_log_prob(distribution, x, alpha_bar).sum(), x)[0]
    raise _unsupported(distribution)


def learned_score(model, x: torch.Tensor, t: int) -> torch.Tensor:
    """s_theta(x, t) = -eps_theta(x, t) / sqrt(1 - abar_t), [n, 2] in the model's dtype (float32), no graph."""
    alpha_bar = float(model.schedule.alphas_cumprod[t])
    with torch.no_grad():
        eps = model(_check_points(x).float(), torch.full((x.shape[0],), int(t), dtype=torch.long))
    return -eps / math.sqrt(1 - alpha_bar)


def tweedie_x0(x: torch.Tensor, score: torch.Tensor, alpha_bar) -> torch.Tensor:
    """E[x0 | x_t = x] = (x + (1 - abar) score) / sqrt(abar): the posterior mean, given the score of p_t."""
    alpha_bar = _check_alpha_bar(alpha_bar)
    return (x + (1 - alpha_bar) * score) / math.sqrt(alpha_bar)


def true_score_fn(distribution: ToyDistribution, schedule: NoiseSchedule) -> ScoreFn:
    """The exact score as a `score_fn(x, t)` for `annealed_langevin` (float32 out, like the learned one)."""
    return lambda x, t: true_score(distribution, x, schedule.alphas_cumprod[t]).to(x.dtype)


def learned_score_fn(model) -> ScoreFn:
    return lambda x, t: learned_score(model, x, t)


def timesteps_for_noise(schedule: NoiseSchedule, sigmas: Sequence[float]) -> list[int]:
    """Per noise std, the timestep whose sqrt(1 - abar_t) is closest to it."""
    noise = (1 - schedule.alphas_cumprod).sqrt()
    return [int((noise - float(s)).abs().argmin()) for s in sigmas]


def _check_timestep(schedule: NoiseSchedule, t) -> int:
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not 0 <= t < schedule.num_train_timesteps:
        raise EngineError(f"timestep must be a whole number in [0, {schedule.num_train_timesteps - 1}], got {t!r}")
    return int(t)


@dataclass
class ScoreError:
    relative: float     # E||s_theta - s_true||^2 / E||s_true||^2 over x_t ~ p_t
    se: float           # its standard error (delta method for a ratio of means)
    t: int
    alpha_bar: float
    n: int


def relative_score_error(model, distribution: ToyDistribution, t: int, n: int = ERROR_SAMPLES,
                         seed: int = 0) -> ScoreError:
    """The relative score error at timestep t (defined in the module docstring), from n noised data points.

    Both scores are evaluated at the same float32 points. The SE of a ratio of means R = mean(e) / mean(d) is
    sd(e_i - R d_i) / (sqrt(n) mean(d)), the first-order (delta-method) error."""
    t, n = _check_timestep(model.schedule, t), check_count(n, cap=1_000_000)
    alpha_bar = float(model.schedule.alphas_cumprod[t])
    generator = make_generator(seed)
    x0 = distribution.sample(n, generator=generator).double()
    noise = torch.randn((n, 2), generator=generator, dtype=torch.float64)
    x_t = (math.sqrt(alpha_bar) * x0 + math.sqrt(1 - alpha_bar) * noise).float()
    truth = true_score(distribution, x_t, alpha_bar)
    error = (learned_score(model, x_t, t).double() - truth).pow(2).sum(1)
    size = truth.pow(2).sum(1)
    ratio = float(error.mean() / size.mean())
    se = float((error - ratio * size).std() / (math.sqrt(n) * size.mean())) if n > 1 else math.nan
    return ScoreError(ratio, se, t, alpha_bar, n)


@dataclass
class ScoreLevel:
    """One noise level of `score_field`: arrows on a coarse grid over a density image on a fine one."""
    t: int
    alpha_bar: float
    sigma: float                 # sqrt(1 - abar_t), the noise std of x_t
    points: torch.Tensor         # [grid^2, 2] arrow tails, row-major in y then x (views.plane_grid)
    learned: torch.Tensor        # [grid^2, 2] s_theta at the points (float32)
    true: torch.Tensor           # [grid^2, 2] grad log p_t at the points (float32)
    density_ticks: torch.Tensor  # [density_size] the fine grid's coordinates along each axis
    density: torch.Tensor        # [density_size, density_size] p_t, row 0 at y = -extent (views.true_density)
    error: ScoreError


def score_field(model, distribution: ToyDistribution, timesteps: Sequence[int] | None = None,
                grid: int = ARROW_GRID, density_size: int = DENSITY_GRID, extent: float = EXTENT,
                n: int = ERROR_SAMPLES, seed: int = 0) -> list[ScoreLevel]:
    """Learned vs true score at a few timesteps (default: the noise stds DEFAULT_NOISE_LEVELS, small to large).

    Arrows are raw scores: their length grows like distance / sigma^2 near the modes at small t, so a view
    should normalise them (per level) rather than draw them to scale."""
    schedule = model.schedule
    timesteps = timesteps_for_noise(schedule, DEFAULT_NOISE_LEVELS) if timesteps is None else \
        [_check_timestep(schedule, t) for t in timesteps]
    grid = check_count(grid, cap=200, what="grid")
    density_size = check_count(density_size, cap=400, what="density size")
    _, points = plane_grid(grid, extent)
    ticks, fine = plane_grid(density_size, extent)
    levels = []
    for t in timesteps:
        alpha_bar = float(schedule.alphas_cumprod[t])
        density = noised_log_prob(distribution, fine, alpha_bar).exp().reshape(density_size, density_size)
        levels.append(ScoreLevel(t, alpha_bar, math.sqrt(1 - alpha_bar), points, learned_score(model, points, t),
                                 true_score(distribution, points, alpha_bar).float(), ticks, density.float(),
                                 relative_score_error(model, distribution, t, n, seed)))
    return levels


def langevin_levels(schedule: NoiseSchedule, levels: int | Sequence[int]) -> list[int]:
    """The descending timesteps Langevin anneals through: a count (trailing spacing, so the first level is
    t = T - 1, where p_t is N(0, I)) or an explicit list."""
    if isinstance(levels, numbers.Integral) and not isinstance(levels, bool):
        return make_timesteps(schedule.num_train_timesteps, int(levels), "trailing")
    timesteps = [_check_timestep(schedule, t) for t in levels]
    if not timesteps or any(a <= b for a, b in zip(timesteps, timesteps[1:])):
        raise EngineError(f"Langevin levels must be strictly decreasing timesteps, got {timesteps}")
    return timesteps


@torch.no_grad()
def annealed_langevin(score_fn: ScoreFn, schedule: NoiseSchedule, x: torch.Tensor, generator: torch.Generator,
                      levels: int | Sequence[int] = DEFAULT_LANGEVIN_LEVELS,
                      steps_per_level: int = DEFAULT_STEPS_PER_LEVEL, epsilon: float | None = None,
                      denoise: bool = True, callback=None) -> torch.Tensor:
    """Song & Ermon's Algorithm 1 on the VP process's marginals p_t, from x (start it at N(0, I) = p_{T-1}).

    Noise levels: sigma_i^2 = 1 - abar_{t_i}, the variance of the noise in x_t. (Song & Ermon's x + sigma z is
    the variance-exploding form; x_t / sqrt(abar) = x0 + sqrt((1 - abar)/abar) eps is that form, but Langevin
    here targets p_t itself, whose noise std is sqrt(1 - abar).) Step alpha_i = epsilon sigma_i^2 / sigma_L^2,
    sigma_L the last (smallest) level; epsilon=None picks (STEP_RATIO sigma_L)^2, so each step's noise is
    STEP_RATIO sigma_i whatever the levels (the paper's own numbers give 0.45; see STEP_RATIO for why 1).

    denoise=True (default) ends with one Tweedie step x <- E[x0 | x_{t_L} = x], as Song & Ermon 2020
    ("Improved techniques") and Jolicoeur-Martineau et al. 2021 do: Langevin leaves samples of p_{t_L}, which
    carry noise of std sigma_L (and shrink by sqrt(abar)); the step removes that at the cost of one score call.

    Deterministic given the generator. `callback` gets a `SamplerStep` per level, as the DDPM/DDIM samplers give
    per step: x_t = x entering the level, prev_sample = x leaving it (denoised after the last level),
    predicted_noise = -sigma_i * (the level's last score), predicted_x0 = Tweedie at the point it was taken."""
    timesteps = langevin_levels(schedule, levels)
    steps_per_level = check_count(steps_per_level, cap=10_000, what="steps per level")
    alpha_bars = [float(schedule.alphas_cumprod[t]) for t in timesteps]
    sigmas = [math.sqrt(1 - a) for a in alpha_bars]
    epsilon = (STEP_RATIO * sigmas[-1]) ** 2 if epsilon is None else float(epsilon)
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise EngineError(f"epsilon must be a positive number, got {epsilon!r}")
    for i, (t, alpha_bar, sigma) in enumerate(zip(timesteps, alpha_bars, sigmas)):
        step, start = epsilon * sigma ** 2 / sigmas[-1] ** 2, x
        for _ in range(steps_per_level):
            at, score = x, score_fn(x, t).to(x.dtype)
            x = x + 0.5 * step * score + math.sqrt(step) * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        if denoise and i == len(timesteps) - 1:
            at, score = x, score_fn(x, t).to(x.dtype)
            x = tweedie_x0(x, score, alpha_bar)
        if callback is not None:
            callback(SamplerStep(i, t, start, -sigma * score, tweedie_x0(at, score, alpha_bar), x))
    return x
