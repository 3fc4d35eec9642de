"""How smooth each family's latent space is, measured in the lab classifier's feature space.

A latent path z(u), u in [0, 1] (lerp or slerp between two prior draws), is decoded to images and embedded
with the classifier's features f(u). For `steps` evenly spaced points, with d_i = |f(u_{i+1}) - f(u_i)|:

- step_cv: std(d) / mean(d) over a path: 0 when the image changes at constant speed, large when it jumps;
- max_step_share: max(d) / sum(d): 1 / (steps - 1) for an even path, 1 when one step does all the change;
- path_length_ratio: sum(d) / |f(1) - f(0)|: 1 for a straight walk in feature space, larger for detours;
- ppl: perceptual path length (Karras et al. 2019) in classifier features, E |f(u + e) - f(u)|^2 / e^2 at a
  random u per path (e = 1e-3): a local roughness.

The latents are the VAE's and the GAN's z, and diffusion's x_T decoded by deterministic DDIM (eta = 0).
Reconstruction: the VAE's encoder-decoder round trip, and DDIM inversion for diffusion (run the DDIM ODE
forwards from the image to x_T, then sample back from that x_T).
"""
from __future__ import annotations

from typing import Callable

import torch

from engines.engine import make_generator
from engines.measure.uncertainty import mean_and_se
from engines.models.classifier import classify
from engines.sampling.interpolation import interpolate_latents, latents_at
from engines.sampling.samplers import make_timesteps, sample_ddim
from engines.sampling.schedule import NoiseSchedule

Decode = Callable[[torch.Tensor], torch.Tensor]   # latents [N, ...] -> images [N, C, H, W] in [0, 1]
PPL_EPSILON = 1e-3


def path_statistics(features: torch.Tensor) -> dict:
    """features [paths, steps, F] along evenly spaced points of each path -> smoothness figures (means
    over paths, each with its standard error over the paths as `<name>_se`)."""
    d = (features[:, 1:] - features[:, :-1]).double().norm(dim=-1)
    chord = (features[:, -1] - features[:, 0]).double().norm(dim=-1).clamp_min(1e-12)
    total = d.sum(1).clamp_min(1e-12)
    per_path = {"step_cv": d.std(1) / d.mean(1).clamp_min(1e-12), "max_step_share": d.max(1).values / total,
                "path_length_ratio": total / chord, "mean_step": d.mean(1)}
    out = {}
    for name, values in per_path.items():
        out[name], out[name + "_se"] = mean_and_se(values)
    return out


@torch.no_grad()
def path_smoothness(decode: Decode, features: Callable[[torch.Tensor], torch.Tensor], a: torch.Tensor,
                    b: torch.Tensor, steps: int = 12, method: str = "slerp", seed: int = 0,
                    epsilon: float = PPL_EPSILON) -> dict:
    """Smoothness of the decoded paths between latents a[i] and b[i] (each [pairs, ...])."""
    pairs = len(a)
    paths = torch.stack([interpolate_latents(a[i], b[i], steps, method) for i in range(pairs)])  # [P, S, ...]
    f = features(decode(paths.flatten(0, 1))).reshape(pairs, steps, -1)
    result = path_statistics(f)
    # PPL: one random u per path, the images at u and u + e
    u = torch.rand(pairs, generator=torch.Generator().manual_seed(seed)) * (1 - epsilon)
    ends = torch.cat([latents_at(a[i], b[i], torch.stack([u[i], u[i] + epsilon]), method) for i in range(pairs)])
    g = features(decode(ends)).reshape(pairs, 2, -1).double()
    result["ppl"], result["ppl_se"] = mean_and_se((g[:, 1] - g[:, 0]).pow(2).sum(-1) / epsilon ** 2)
    return {**result, "pairs": pairs, "steps": steps, "method": method}


def ddim_decoder(model, schedule: NoiseSchedule, steps: int) -> Decode:
    """x_T -> images in [0, 1] by deterministic DDIM (eta = 0) with the engine's default spacing."""
    timesteps = make_timesteps(schedule.num_train_timesteps, steps)

    def decode(x_T: torch.Tensor) -> torch.Tensor:
        out = [sample_ddim(model, schedule, chunk, timesteps, eta=0.0) for chunk in x_T.split(256)]
        return ((torch.cat(out) + 1) / 2).clamp(0, 1)
    return decode


@torch.no_grad()
def ddim_invert(model, schedule: NoiseSchedule, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """Run deterministic DDIM backwards: x0 in [-1, 1] -> x_T along the same timesteps DDIM samples with
    (eps at each new timestep evaluated at the current, lower-noise x: the usual approximation)."""
    T = schedule.num_train_timesteps
    timesteps = make_timesteps(T, steps)[::-1]          # ascending
    stride = T // steps
    x = x0
    for t in timesteps:
        a_t = float(schedule.alphas_cumprod[t])
        a_prev = float(schedule.alphas_cumprod[t - stride]) if t - stride >= 0 else 1.0
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x0_hat = (x - (1 - a_prev) ** 0.5 * eps) / a_prev ** 0.5
        x = a_t ** 0.5 * x0_hat + (1 - a_t) ** 0.5 * eps
    return x


def reconstruction_scores(classifier, images: torch.Tensor, reconstructions: torch.Tensor) -> dict:
    """Pixel MSE (images in [0, 1]) and the share of reconstructions the classifier gives the same class."""
    same = classify(classifier, images)[0] == classify(classifier, reconstructions)[0]
    return {"mse": float((images - reconstructions).double().pow(2).mean()),
            "same_class": float(same.double().mean()), "n": len(images)}


@torch.no_grad()
def ddim_reconstruction(model, schedule: NoiseSchedule, images: torch.Tensor, steps: int) -> torch.Tensor:
    """Invert images [0, 1] to x_T and sample them back with the same DDIM steps (no clipping either way,
    so the two directions are the same ODE discretised alike)."""
    x_T = ddim_invert(model, schedule, images * 2 - 1, steps)
    back = sample_ddim(model, schedule, x_T, make_timesteps(schedule.num_train_timesteps, steps), eta=0.0,
                       clip_sample=False)
    return ((back + 1) / 2).clamp(0, 1)


def diffusion_latent_space(engine, pairs: int, seed: int, digits: torch.Tensor, settings: dict,
                           classifier) -> tuple:
    """A diffusion engine's latent, as the report measures it (`DiffusionEngine.latent_space`): x_T decoded by
    deterministic DDIM, `pairs` pairs of x_T draws, and DDIM inversion of `digits` and back."""
    config = engine.config
    shape = (pairs, config.image_channels, config.image_size, config.image_size)
    a = torch.randn(shape, generator=make_generator(seed + 1))
    b = torch.randn(shape, generator=make_generator(seed + 2))
    steps, inversion = settings["latent_ddim_steps"], settings["inversion_steps"]
    decode = ddim_decoder(engine.model, engine.schedule, steps)
    recon = ddim_reconstruction(engine.model, engine.schedule, digits, inversion)
    extra = {"latent": f"x_T, {a[0].numel()}-d, decoded by DDIM (eta 0, {steps} steps)",
             "reconstruction": {"method": f"DDIM inversion and back, {inversion} steps each way",
                                **reconstruction_scores(classifier, digits, recon)}}
    return decode, a, b, extra
