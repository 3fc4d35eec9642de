"""Paths through a Gaussian latent space, shared by the VAE and the GAN (and diffusion's x_T)."""
from __future__ import annotations

import torch

from engines.engine import check_count
from engines.errors import EngineError

INTERPOLATIONS = ("slerp", "lerp")
MAX_INTERPOLATION_STEPS = 256


def interpolate_latents(a: torch.Tensor, b: torch.Tensor, steps: int, method: str = "slerp") -> torch.Tensor:
    """`steps` points from a to b inclusive, shape [steps, *a.shape].

    slerp follows the great circle (White 2016): under a high-dimensional N(0, I) prior almost all mass lies
    near a sphere, and a straight line (lerp) cuts through its low-probability interior, where decoders were
    rarely trained; slerp keeps the norm typical.
    """
    steps = check_count(steps, MAX_INTERPOLATION_STEPS, "steps")
    if steps < 2:
        raise EngineError("steps must be at least 2 (the two end points)")
    if a.shape != b.shape:
        raise EngineError(f"end points have different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if method not in INTERPOLATIONS:
        raise EngineError(f"unknown interpolation {method!r}: choose one of {', '.join(INTERPOLATIONS)}")
    return latents_at(a, b, torch.linspace(0, 1, steps, dtype=a.dtype), method)


def latents_at(a: torch.Tensor, b: torch.Tensor, u: torch.Tensor, method: str = "slerp") -> torch.Tensor:
    """The points at positions u [K] (0 = a, 1 = b) of the lerp or slerp path: [K, *a.shape]."""
    u = u.to(a.dtype).reshape(-1, *([1] * a.dim()))
    if method == "lerp":
        return (1 - u) * a + u * b
    a_flat, b_flat = a.flatten(), b.flatten()
    cos = torch.dot(a_flat, b_flat) / (a_flat.norm() * b_flat.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-4:  # (nearly) parallel: slerp tends to lerp
        return (1 - u) * a + u * b
    return (torch.sin((1 - u) * omega) * a + torch.sin(u * omega) * b) / torch.sin(omega)
