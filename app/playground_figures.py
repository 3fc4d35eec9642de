"""The playground's pictures: one strip per family, drawn from what the engines computed (app draws only).

Figures are matplotlib `Figure`s rendered off-screen to PIL images (no pyplot: its global state is not safe
with several visitors training at once).
"""
from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")  # no display on a server
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from engines.registry import STAGED, families  # noqa: E402
from engines.toy.guidance import GuidedView  # noqa: E402
from engines.toy.views import EXTENT  # noqa: E402

# The toy families share the lab families' names: each is drawn in its lab family's colour, under its title (a
# family in training for its first checkpoint too: reflow).
_RECORDS = [*families(), *STAGED.values()]
COLOURS = {family.name: family.colour for family in _RECORDS}
NAMES = {family.name: family.heading for family in _RECORDS}
BOX = [-EXTENT, EXTENT, -EXTENT, EXTENT]
MAX_CURVE_POINTS = 400


def to_image(figure: Figure) -> Image.Image:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _plane(ax, density, title: str) -> None:
    ax.imshow(density.numpy(), origin="lower", extent=BOX, cmap="Greys", interpolation="bilinear")
    ax.set_xlim(-EXTENT, EXTENT)
    ax.set_ylim(-EXTENT, EXTENT)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def _losses(ax, losses: dict[str, list[tuple[int, float]]]) -> None:
    for name, values in losses.items():
        stride = max(1, len(values) // MAX_CURVE_POINTS)
        kept = values[::stride]
        ax.plot([s for s, _ in kept], [v for _, v in kept], linewidth=0.8, label=name)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    ax.set_title("loss", fontsize=9)


def _optimal_loss(ax, history: list[tuple[int, float, float, float]]) -> None:
    """The discriminator's loss is -V(D, G), and D* would score log 4 - 2 JSD: its points per checkpoint (bars:
    +-2 SE, i.e. 4 SE of the JSD) are the JSD curve in the loss's own units, the floor that the learned D's loss
    stays above on average (one batch's loss can dip below it)."""
    if not history:
        return
    steps, jsd, se = (np.array(column) for column in list(zip(*history))[:3])
    ax.errorbar(steps, math.log(4) - 2 * jsd, yerr=4 * se, fmt="o-", color="black", markersize=3, linewidth=0.8,
                capsize=2, label="log 4 - 2 JSD (D*'s loss)")
    ax.legend(fontsize=7)


def _discriminators(ax_learned, ax_optimal, density, view, samples) -> None:
    """The learned D and D* side by side on one colour scale; D* only where m = (p_data + p_g) / 2 has mass."""
    _plane(ax_learned, density, f"learned D(x): red = 'real'\nmean |D - D*| = {view.gap:.2f}")
    ax_learned.imshow(view.discriminator.numpy(), origin="lower", extent=BOX, cmap="RdBu_r", vmin=0, vmax=1,
                      alpha=0.75)
    _plane(ax_optimal, density, f"optimal D* = p_data / (p_data + p_g)\nJSD {view.jsd:.2f} ± {view.jsd_se:.2f}, "
                                f"KL(p_g||p_data) {view.kl:.2f} nats")
    ax_optimal.imshow(np.where(view.support.numpy(), view.d_star.numpy(), np.nan), origin="lower", extent=BOX,
                      cmap="RdBu_r", vmin=0, vmax=1, alpha=0.75)   # NaN (no mass) is left blank
    for ax in (ax_learned, ax_optimal):
        ax.scatter(samples[:300, 0], samples[:300, 1], s=1, color="black")


def family_strip(family: str, density, snapshot) -> Image.Image:
    """Samples over the true density | the loss curve | the family's own view, drawn as what its snapshot holds:
    a latent map (encoder means, a decoded grid), a discriminator (the learned D beside D*) or sampling paths."""
    view = snapshot.extra.get(family)
    draw, own_panels = _own_view(view)
    panels = 2 + own_panels
    figure = Figure(figsize=(3.0 * panels, 3.0), layout="constrained")
    axes = [figure.add_subplot(1, panels, i + 1) for i in range(panels)]
    coverage = snapshot.coverage[family]
    samples = snapshot.samples[family].numpy()
    _plane(axes[0], density, f"{NAMES[family]}, step {snapshot.step[family]}\n{coverage.covered}/{coverage.n_modes} "
                             f"modes covered, {coverage.on_support:.0%} on a mode")
    axes[0].scatter(samples[:, 0], samples[:, 1], s=1.5, color=COLOURS[family], alpha=0.6)
    _losses(axes[1], snapshot.losses[family])
    if draw is not None:
        draw(axes, density, snapshot, view, COLOURS[family], samples)
    return to_image(figure)


def _own_view(view) -> tuple:
    """How to draw a family's own view, by what it is: (drawer or None, the panels it takes)."""
    if view is None:
        return None, 0
    if isinstance(view, GuidedView):
        return _guided_view, len(view.points)
    if isinstance(view, tuple):
        return _latent_view, 2
    return (_paths_view, 1) if view.dim() == 3 else (_divergence_view, 2)


def _divergence_view(axes, density, snapshot, view, colour: str, samples) -> None:
    """The GAN: D*'s loss under the loss curve, and the learned D beside D*."""
    _optimal_loss(axes[1], snapshot.extra.get("gan_divergence_history", []))
    _discriminators(axes[2], axes[3], density, snapshot.extra["gan_divergence"], samples)


def _latent_view(axes, density, snapshot, view, colour: str, samples) -> None:
    """The VAE: the data's encoder means in z space, and a latent grid mapped through the decoder."""
    means, lines = (t.numpy() for t in view)
    axes[2].scatter(means[:, 0], means[:, 1], s=2, color=colour)
    axes[2].set_xlim(-3.5, 3.5)
    axes[2].set_ylim(-3.5, 3.5)
    axes[2].set_aspect("equal")
    axes[2].set_title("encoder means of data (z space)", fontsize=9)
    axes[2].tick_params(labelsize=7)
    _plane(axes[3], density, "decoder: a latent grid, mapped")
    for line in lines:
        axes[3].plot(line[:, 0], line[:, 1], color=colour, linewidth=0.6)


def _paths_view(axes, density, snapshot, view, colour: str, samples) -> None:
    """Diffusion and the diffusion GAN: their sampling chains from x_T (DDIM or Langevin paths; the GAN's
    x0 = G(x_t, z), x_t' ~ q steps)."""
    path = view.numpy()   # [steps + 1, n, 2]
    _plane(axes[2], density, f"its sampling paths from x_T\n({len(path) - 1} steps)")
    for i in range(path.shape[1]):
        axes[2].plot(path[:, i, 0], path[:, i, 1], linewidth=0.6, color=colour, alpha=0.7)
    axes[2].scatter(path[0, :, 0], path[0, :, 1], s=4, color="grey", label="x_T")
    axes[2].scatter(path[-1, :, 0], path[-1, :, 1], s=6, color="black", label="x_0")
    axes[2].legend(fontsize=7, loc="lower right")


def _guided_view(axes, density, snapshot, view, colour: str, samples) -> None:
    """A conditional model: the same noise at each guidance scale, each point coloured by the class asked."""
    labels = view.labels.numpy()
    for ax, (w, points) in zip(axes[2:], view.points.items()):
        _plane(ax, density, f"guidance w = {w:g}" + {0.0: " (no class)", 1.0: " (the class)"}.get(w, ""))
        ax.scatter(points[:, 0].numpy(), points[:, 1].numpy(), s=2, c=labels, cmap="tab10", vmin=0, vmax=9)


def truth_image(density, points=None, title: str = "true density") -> Image.Image:
    figure = Figure(figsize=(3.0, 3.0), layout="constrained")
    ax = figure.add_subplot()
    _plane(ax, density, title)
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=1, color="tab:red", alpha=0.5)
    return to_image(figure)
