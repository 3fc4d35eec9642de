"""What the live view draws, computed from a model (the app only renders these tensors).

- GAN: the discriminator's belief D(x) = sigmoid(logit) on a grid over the plane: where it thinks data is.
- VAE: the encoder's means of data points (does q(z|x) use the prior's space?) and the decoder's image of a
  regular latent grid (the mapping that smears mass between modes).
- Diffusion: trajectories of a few points from x_T ~ N(0, I) to x_0, one position per DDIM step.
"""
from __future__ import annotations

import torch

from engines.engine import make_generator

EXTENT = 3.0   # the playground's window [-3, 3]^2: every toy fits in [-2.5, 2.5]^2


def plane_grid(size: int = 100, extent: float = EXTENT) -> tuple[torch.Tensor, torch.Tensor]:
    """Ticks [size] and the points [size * size, 2] of a square grid, row-major in y then x (image order)."""
    ticks = torch.linspace(-extent, extent, size)
    y, x = torch.meshgrid(ticks, ticks, indexing="ij")
    return ticks, torch.stack([x.reshape(-1), y.reshape(-1)], dim=1)


def true_density(distribution, size: int = 100, extent: float = EXTENT) -> torch.Tensor:
    """p(x) on the grid, [size, size], row 0 at y = -extent."""
    _, points = plane_grid(size, extent)
    return distribution.log_prob(points).exp().reshape(size, size).float()


@torch.no_grad()
def discriminator_map(gan, size: int = 80, extent: float = EXTENT) -> torch.Tensor:
    _, points = plane_grid(size, extent)
    return torch.sigmoid(gan.logits(points)).reshape(size, size)


@torch.no_grad()
def latent_maps(vae, data: torch.Tensor, lines: int = 11, per_line: int = 60,
                extent: float = 2.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(encoder means of `data` [n, 2], decoded latent grid lines [2 * lines, per_line, 2]).

    The lines are z1 = const and z2 = const over [-extent, extent]: +-2.5 prior standard deviations."""
    means, _ = vae.encode(data)
    ticks = torch.linspace(-extent, extent, lines)
    along = torch.linspace(-extent, extent, per_line)
    grid = [torch.stack([torch.full_like(along, c), along], 1) for c in ticks] + \
           [torch.stack([along, torch.full_like(along, c)], 1) for c in ticks]
    return means, vae.decoder(torch.stack(grid).reshape(-1, 2)).reshape(2 * lines, per_line, 2)


@torch.no_grad()
def trajectories(diffusion, n: int = 24, seed: int = 0, steps: int = 50, sampler: str = "ddim") -> torch.Tensor:
    """[steps + 1, n, 2]: x_T, then the sample after each step (the samplers' callback, no second loop).

    DDIM by default: deterministic, so each path is the smooth map from a noise point to its sample."""
    return recorded_path(lambda record: diffusion.sample(n, make_generator(seed), sampler=sampler, steps=steps,
                                                         callback=record))


def chain_trajectories(diffusion_gan, n: int = 24, seed: int = 0) -> torch.Tensor:
    """[steps + 1, n, 2]: the diffusion GAN's few-step chain from x_T, as `trajectories` draws diffusion's."""
    return recorded_path(lambda record: diffusion_gan.sample(n, make_generator(seed), callback=record))


def recorded_path(run) -> torch.Tensor:
    """Run a sampler with a callback that records x_T and every step's output; stack them."""
    path = []

    def record(step):
        if not path:
            path.append(step.x_t)
        path.append(step.prev_sample)

    run(record)
    return torch.stack(path)
