"""Toy 2-D distributions whose density is known exactly, and whose modes can be counted.

Every curve-shaped distribution (two moons, swiss roll, circles) is *defined* as an equal-weight mixture of
many small Gaussians placed along the curve: that is the usual "curve plus Gaussian noise" recipe, and it makes
log p(x) exact (a logsumexp), not a kernel estimate of it. The checkerboard is uniform on 8 unit squares
convolved with a little Gaussian noise, whose density is a product of normal-CDF differences, again exact.
User points become a Gaussian kernel mixture (a KDE), which is then the true density by definition.

"Modes" are the regions coverage counts: the components of the 8- and 25-Gaussian mixtures, arcs of the
curves, the 8 black squares, clusters of the user's points. A sample belongs to a mode when it lies within
`MODE_RADIUS` noise standard deviations of it; otherwise it is off the support (between the modes).
All arithmetic is float64: log-densities of far-away samples must not underflow to -inf.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from engines.engine import check_count, make_generator
from engines.errors import EngineError

MODE_RADIUS = 3.0          # in noise standard deviations: 99.9% of a 2-D Gaussian's mass lies within 3.7
MIN_USER_POINTS = 8
MAX_USER_POINTS = 5000
USER_EXTENT = 2.0          # user points are centred and scaled to fit the box [-2, 2]^2
USER_MAX_MODES = 8
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class ToyDistribution:
    """A 2-D density with `log_prob`, `sample` and `mode_index`; `n_modes` regions for coverage."""

    name: str = ""
    n_modes: int = 0
    noise_std: float = 0.0

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def mode_index(self, x: torch.Tensor) -> torch.Tensor:
        """Per point, the mode it lies in, or -1 off the support."""
        raise NotImplementedError

    def sample(self, n: int, seed: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        """float32 [n, 2]; the same seed gives the same points."""
        n = check_count(n, cap=1_000_000)
        return self._sample(n, generator if generator is not None else make_generator(seed)).float()

    def mode_weights(self) -> torch.Tensor:
        """The true share of mass in each mode (coverage compares samples with these)."""
        raise NotImplementedError


class GaussianMixture(ToyDistribution):
    """Isotropic Gaussians with one shared std; components are grouped into modes by `component_mode`."""

    def __init__(self, name: str, means: torch.Tensor, noise_std: float, component_mode: torch.Tensor,
                 weights: torch.Tensor | None = None):
        self.name, self.noise_std = name, float(noise_std)
        self.means = means.to(torch.float64)                        # [K, 2]
        k = len(self.means)
        self.weights = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None \
            else (weights / weights.sum()).to(torch.float64)         # [K]
        self.component_mode = component_mode.long()                  # [K]: the mode each component belongs to
        self.n_modes = int(self.component_mode.max()) + 1

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        sq = torch.cdist(x, self.means).pow(2)                       # [n, K]
        log_normal = -sq / (2 * self.noise_std ** 2) - 2 * (math.log(self.noise_std) + HALF_LOG_2PI)
        return torch.logsumexp(log_normal + self.weights.log(), dim=1)

    def _sample(self, n, generator):
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn((n, 2), generator=generator, dtype=torch.float64)
        return self.means[component] + self.noise_std * noise

    def mode_index(self, x):
        distance, nearest = torch.cdist(x.to(torch.float64), self.means).min(dim=1)
        mode = self.component_mode[nearest]
        return torch.where(distance <= MODE_RADIUS * self.noise_std, mode, torch.full_like(mode, -1))

    def mode_weights(self):
        return torch.zeros(self.n_modes, dtype=torch.float64).index_add_(0, self.component_mode, self.weights)


class Checkerboard(ToyDistribution):
    """Uniform on the 8 black squares of a 4x4 board over [-2, 2]^2, plus N(0, noise_std^2 I) noise.

    Each square contributes (1/8) * prod_d [Phi((b_d - x_d)/s) - Phi((a_d - x_d)/s)]: exact, and smooth,
    so a sample just off a square has a finite (low) log-density instead of -inf."""

    name = "checkerboard"
    n_modes = 8

    def __init__(self, noise_std: float = 0.05):
        self.noise_std = noise_std
        corners = [(i - 2.0, j - 2.0) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
        self.lower = torch.tensor(corners, dtype=torch.float64)     # [8, 2] lower-left corners

    def log_prob(self, x):
        x = x.to(torch.float64)[:, None, :]                          # [n, 1, 2]
        upper = (self.lower + 1 - x) / self.noise_std                # [n, 8, 2]
        lower = (self.lower - x) / self.noise_std
        log_box = _log_normal_cdf_difference(upper, lower).sum(dim=2)   # [n, 8]
        return torch.logsumexp(log_box, dim=1) - math.log(8)

    def _sample(self, n, generator):
        square = torch.randint(0, 8, (n,), generator=generator)
        inside = torch.rand((n, 2), generator=generator, dtype=torch.float64)
        noise = torch.randn((n, 2), generator=generator, dtype=torch.float64)
        return self.lower[square] + inside + self.noise_std * noise

    def mode_index(self, x):
        x = x.to(torch.float64)[:, None, :]
        margin = MODE_RADIUS * self.noise_std
        inside = ((x >= self.lower - margin) & (x <= self.lower + 1 + margin)).all(dim=2)   # [n, 8]
        found, square = inside.max(dim=1)
        return torch.where(found, square, torch.full_like(square, -1))

    def mode_weights(self):
        return torch.full((8,), 1 / 8, dtype=torch.float64)


def _log_normal_cdf_difference(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """log(Phi(upper) - Phi(lower)) for upper > lower, stable in both tails (by symmetry, work in the
    tail where the CDFs are small)."""
    flip = lower > 0
    hi = torch.where(flip, -lower, upper)
    lo = torch.where(flip, -upper, lower)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log1p(-torch.exp((log_lo - log_hi).clamp(max=-1e-12)))


def _along_curve(points: np.ndarray, name: str, noise_std: float, arcs: np.ndarray) -> GaussianMixture:
    return GaussianMixture(name, torch.from_numpy(points), noise_std, torch.from_numpy(arcs))


def ring8(radius: float = 2.0, noise_std: float = 0.1) -> GaussianMixture:
    """The GAN literature's test of mode collapse (Metz et al. 2017 use std 0.02; 0.05 is the narrow one)."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    name = "ring8" if noise_std == 0.1 else f"ring8 (std {noise_std})"
    return GaussianMixture(name, means, noise_std, torch.arange(8))


def grid25(spacing: float = 0.9, noise_std: float = 0.07) -> GaussianMixture:
    ticks = (torch.arange(5, dtype=torch.float64) - 2) * spacing
    means = torch.cartesian_prod(ticks, ticks)
    return GaussianMixture("grid25", means, noise_std, torch.arange(25))


def two_moons(per_moon: int = 200, noise_std: float = 0.08) -> GaussianMixture:
    """sklearn's make_moons curve, centred and scaled by 1.5; each moon split into two arcs (4 modes)."""
    t = np.linspace(0, np.pi, per_moon)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    points = 1.5 * (np.concatenate([upper, lower]) - [0.5, 0.25])
    half = (t > np.pi / 2).astype(np.int64)
    return _along_curve(points, "moons", noise_std, np.concatenate([half, 2 + half]))


def swiss_roll(components: int = 400, noise_std: float = 0.08, arcs: int = 6) -> GaussianMixture:
    """The spiral r = theta / (3 pi) * 1.4, theta in [1.5 pi, 4.5 pi], cut into `arcs` modes."""
    theta = np.linspace(1.5 * np.pi, 4.5 * np.pi, components)
    r = theta / (4.5 * np.pi) * 2.0
    points = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
    return _along_curve(points, "swissroll", noise_std, np.arange(components) * arcs // components)


def circles(per_circle: int = 240, radii=(1.0, 2.0), noise_std: float = 0.08) -> GaussianMixture:
    """Two concentric circles of equal mass; each cut into four quarter arcs (8 modes)."""
    t = np.linspace(0, 2 * np.pi, per_circle, endpoint=False)
    points = np.concatenate([np.stack([r * np.cos(t), r * np.sin(t)], 1) for r in radii])
    quarter = (t // (np.pi / 2)).astype(np.int64)
    return _along_curve(points, "circles", noise_std, np.concatenate([4 * i + quarter for i in range(len(radii))]))


def from_points(points, bandwidth: float = 0.1, seed: int = 0) -> GaussianMixture:
    """A user's points (sketched or uploaded) -> centred, scaled into [-2, 2]^2, one Gaussian kernel each.

    Modes: up to 8 clusters of the points (k-means, seeded), so coverage means the same as for the presets."""
    points = torch.as_tensor(np.asarray(points, dtype=np.float64))
    if points.ndim != 2 or points.shape[1] != 2:
        raise EngineError(f"points must be an [n, 2] array of x, y pairs, got shape {tuple(points.shape)}")
    if not torch.isfinite(points).all():
        raise EngineError("points must be finite numbers (no NaN or infinity)")
    if not MIN_USER_POINTS <= len(points) <= MAX_USER_POINTS:
        raise EngineError(f"give between {MIN_USER_POINTS} and {MAX_USER_POINTS} points, got {len(points)}")
    centre = (points.max(0).values + points.min(0).values) / 2
    half_extent = (points.max(0).values - points.min(0).values).max() / 2
    if half_extent <= 0:
        raise EngineError("the points are all the same point: draw or upload a shape")
    scaled = (points - centre) / half_extent * USER_EXTENT
    clusters = kmeans_labels(scaled, min(USER_MAX_MODES, len(scaled)), seed)
    return GaussianMixture("points", scaled, bandwidth, clusters)


def kmeans_labels(points: torch.Tensor, k: int, seed: int = 0, iterations: int = 50) -> torch.Tensor:
    """Lloyd's k-means from a seeded choice of k distinct points; labels renumbered 0 .. (non-empty) - 1."""
    generator = make_generator(seed)
    centres = points[torch.randperm(len(points), generator=generator)[:k]]
    for _ in range(iterations):
        labels = torch.cdist(points, centres).argmin(dim=1)
        centres = torch.stack([points[labels == j].mean(0) if (labels == j).any() else centres[j]
                               for j in range(k)])
    return torch.unique(labels, return_inverse=True)[1]


PRESETS = {
    "ring8": ("Ring of 8 Gaussians", ring8),
    "ring8_narrow": ("Ring of 8 narrow Gaussians", lambda: ring8(noise_std=0.05)),
    "grid25": ("25-Gaussian grid", grid25),
    "moons": ("Two moons", two_moons),
    "swissroll": ("Swiss roll", swiss_roll),
    "checkerboard": ("Checkerboard", Checkerboard),
    "circles": ("Concentric circles", circles),
}


def make_distribution(name: str) -> ToyDistribution:
    if name not in PRESETS:
        raise EngineError(f"unknown distribution {name!r}: choose one of {', '.join(PRESETS)} (or give points)")
    return PRESETS[name][1]()
