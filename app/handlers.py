"""Event handlers: small adapters from UI values to engine calls. No model maths here.

Engines are loaded once per process and shared: they hold no per-request state (every call makes its own
seeded generator), so concurrent visitors get their own seed-determined results.
"""
from __future__ import annotations

import time
from functools import lru_cache

import gradio as gr
import torch

from app.images import grid_image, signed_to_unit
from engines import EngineError, load_engine
from engines.data import load_mnist5k

MAX_GRID = 64
MAX_UI_STEPS = 1000
DIFFUSION_SAMPLERS = ["ddim", "ddpm"]


@lru_cache(maxsize=None)
def engine(name: str):
    return load_engine(name)


@lru_cache(maxsize=1)
def test_digits():
    return load_mnist5k("test")


def _int(value, what: str, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{what} must be a whole number between {low} and {high}") from None
    if not number.is_integer() or not low <= number <= high:
        raise gr.Error(f"{what} must be a whole number between {low} and {high}, got {value}")
    return int(number)


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
    except EngineError as e:
        raise gr.Error(str(e)) from None
    return out, time.perf_counter() - start


def side_by_side(seed, count, sampler, steps):
    """One seed -> VAE, GAN and diffusion grids, each captioned with wall time and network evaluations."""
    seed = _int(seed, "Seed", 0, 2**31 - 1)
    count = _int(count, "Count", 1, MAX_GRID)
    steps = _int(steps, "Diffusion steps", 1, MAX_UI_STEPS)
    if sampler not in DIFFUSION_SAMPLERS:
        raise gr.Error(f"unknown sampler {sampler!r}: choose one of {', '.join(DIFFUSION_SAMPLERS)}")
    outputs = []
    for name, kwargs, nfe in (("vae", {}, 1), ("gan", {}, 1),
                              ("diffusion", {"sampler": sampler, "steps": steps}, steps)):
        images, seconds = _timed(engine(name).sample, count, seed=seed, **kwargs)
        outputs += [grid_image(images), f"{name}: {seconds * 1000:.0f} ms for {count} samples, "
                                        f"{nfe} network evaluation{'s' if nfe > 1 else ''} per sample"]
    return tuple(outputs)


def vae_interpolate(index_a, index_b, steps, method):
    digits = test_digits()
    a = _int(index_a, "Digit A", 0, len(digits) - 1)
    b = _int(index_b, "Digit B", 0, len(digits) - 1)
    steps = _int(steps, "Steps", 2, 32)
    vae = engine("vae")
    path, _ = _timed(vae.interpolate, digits.images[a], digits.images[b], steps=steps, method=method)
    pair = torch.stack([digits.images[a], digits.images[b]])
    recon, _ = _timed(vae.reconstruct, pair)
    return grid_image(path, columns=steps), grid_image(torch.cat([pair, recon]), columns=2)


def gan_sample(seed, count, truncation):
    seed = _int(seed, "Seed", 0, 2**31 - 1)
    count = _int(count, "Count", 1, MAX_GRID)
    truncation = None if truncation is None or float(truncation) <= 0 else float(truncation)
    images, seconds = _timed(engine("gan").sample, count, seed=seed, truncation=truncation)
    return grid_image(images), f"{seconds * 1000:.0f} ms for {count} samples"


def diffusion_steps(seed, count, sampler, steps):
    """Stream x_t and the predicted x0 as one trajectory denoises."""
    seed = _int(seed, "Seed", 0, 2**31 - 1)
    count = _int(count, "Count", 1, 16)
    steps = _int(steps, "Steps", 1, MAX_UI_STEPS)
    try:
        trajectory = engine("diffusion").trace(count, seed=seed, sampler=sampler, steps=steps)
        every = max(1, steps // 25)  # about 25 frames whatever the step count
        for step in trajectory:
            if step.index % every == 0 or step.index == steps - 1:
                last = step.index == steps - 1
                shown = step.prev_sample if last else step.x_t
                yield (grid_image(signed_to_unit(shown)), grid_image(signed_to_unit(step.predicted_x0)),
                       f"step {step.index + 1}/{steps}, t = {step.timestep}")
    except EngineError as e:
        raise gr.Error(str(e)) from None
