"""The "GAN sampling" tab: a seed's samples (with truncation), and the walk between two seeds' latents."""
from __future__ import annotations

from functools import lru_cache

import gradio as gr
import torch

from app import inputs, theory
from app.images import grid_image, pinned, save_gif
from app.inputs import DEFAULT_DATASET, MAX_GRID, MAX_PATH_STEPS, checked_by, engine, timed, validations
from app.tabs import nearest
from app.widgets import math_panel, picture, seed_box
from engines.measure import guide
from engines.measure.recognition import recognise
from engines.sampling.interpolation import INTERPOLATIONS

FIRST_SEED, FIRST_COUNT, FIRST_WALK_STEPS = 0, 36, 10


def truncation_value(value) -> float | None:
    return None if value is None or float(value) <= 0 else float(value)


def check_gan_sample(seed, count, truncation, dataset=DEFAULT_DATASET) -> list[dict]:
    """gan_sample's validator (see side_by_side.check_side_by_side)."""
    return validations(lambda: inputs.seed(seed), lambda: inputs.count(count, MAX_GRID),
                       lambda: truncation_value(truncation), lambda: inputs.dataset_choice(dataset))


def gan_sample(seed, count, truncation, dataset=DEFAULT_DATASET):
    """A seed's samples, and what to look at in them: the report's measurement of this GAN, or, with truncation,
    what the lab's classifier recognises with and without it (the same seed)."""
    seed, count, truncation = inputs.seed(seed), inputs.count(count, MAX_GRID), truncation_value(truncation)
    dataset = inputs.dataset_choice(dataset)
    gan = engine("gan", dataset)
    images, seconds = timed(gan.sample, count, seed=seed, truncation=truncation)
    caption = f"{seconds * 1000:.0f} ms for {count} samples."
    if truncation is not None:
        without = recognise(gan.sample(count, seed=seed), dataset)
        return grid_image(images), f"{caption}\n\n{guide.truncation(recognise(images, dataset), without, truncation)}"
    measured = guide.one_family(inputs.report_of(dataset), "gan",
                                "Broken or half-formed strokes, and blends of two classes")
    caption += f"\n\n{measured}" if measured else ""
    return grid_image(images), caption


def _walk_checks(seed_a, seed_b, steps, method, truncation) -> list:
    return [lambda: inputs.seed(seed_a, "Seed A"), lambda: inputs.seed(seed_b, "Seed B"),
            lambda: inputs.whole_number(steps, "Steps", 2, MAX_PATH_STEPS),
            lambda: inputs.choice(method, "path", INTERPOLATIONS), lambda: truncation_value(truncation)]


def check_gan_interpolate(seed_a, seed_b, steps, method, truncation, dataset=DEFAULT_DATASET) -> list[dict]:
    """gan_interpolate's validator (see side_by_side.check_side_by_side)."""
    return validations(*_walk_checks(seed_a, seed_b, steps, method, truncation),
                       lambda: inputs.dataset_choice(dataset))


def gan_interpolate(seed_a, seed_b, steps, method, truncation, dataset=DEFAULT_DATASET):
    """Walk from seed A's latent to seed B's: the strip and its animation."""
    seed_a, seed_b, steps, method, truncation = (check() for check in
                                                 _walk_checks(seed_a, seed_b, steps, method, truncation))
    gan = engine("gan", inputs.dataset_choice(dataset))
    z = torch.cat([gan.latents(1, seed=s, truncation=truncation) for s in (seed_a, seed_b)])
    path, _ = timed(gan.interpolate, z[0], z[1], steps=steps, method=method)
    frames = [grid_image(frame[None], columns=1) for frame in path]
    return grid_image(path, columns=steps), save_gif(frames + frames[-2:0:-1], duration_ms=150, final_hold_ms=150)


@lru_cache(maxsize=None)
@pinned   # kept for the process's life, and so are the files it names
def first_visit(dataset=DEFAULT_DATASET) -> tuple:
    """What the tab shows before any click (the controls' defaults), computed once per process and dataset."""
    return (*gan_sample(FIRST_SEED, FIRST_COUNT, 0, dataset),
            *gan_interpolate(FIRST_SEED, FIRST_SEED + 1, FIRST_WALK_STEPS, "slerp", 0, dataset),
            *nearest.nearest_training_images(nearest.FIRST_FAMILY, nearest.FIRST_SEED, nearest.FIRST_COUNT, dataset))


def build(dataset: gr.Radio, first_visits: list) -> None:
    """The tab; appends its first visit (function of the dataset, outputs) to `first_visits`."""
    math_panel(theory.GAN)
    with gr.Row():
        seed = seed_box(value=FIRST_SEED)
        count = gr.Slider(1, MAX_GRID, FIRST_COUNT, step=1, label="Samples")
        truncation = gr.Slider(0, 3, 0, step=0.05, label="Truncation (0 = off)",
                               info="resample latent entries beyond this many standard deviations: the samples "
                                    "come from nearer the latent's centre (the caption measures what that does)")
    run = gr.Button("Sample", variant="primary")
    grid = picture(label="GAN samples", type="pil", format="png")
    caption = gr.Markdown(label="GAN caption")
    run.click(gan_sample, [seed, count, truncation, dataset], [grid, caption], api_name="gan_sample",
              **checked_by(check_gan_sample))

    gr.Markdown("### Walk between two seeds' latents")
    with gr.Row():
        seed_a, seed_b = seed_box("Seed A", FIRST_SEED), seed_box("Seed B", FIRST_SEED + 1)
        steps = gr.Slider(2, MAX_PATH_STEPS, FIRST_WALK_STEPS, step=1, label="Steps")
        method = gr.Radio(list(INTERPOLATIONS), value="slerp", label="Path")
    walk = gr.Button("Interpolate")
    gr.Markdown("Generated path from A to B, then as an animation:")
    strip = picture(label="Generated path from A to B", type="pil", format="png", show_label=False)
    animation = picture(label="Animation", type="filepath", show_label=False, height=240)
    walk.click(gan_interpolate, [seed_a, seed_b, steps, method, truncation, dataset], [strip, animation],
               api_name="gan_interpolate", **checked_by(check_gan_interpolate))
    _, copies = nearest.build(dataset)
    first_visits.append((first_visit, [grid, caption, strip, animation, *copies]))
