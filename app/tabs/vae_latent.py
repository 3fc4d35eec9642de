"""The "VAE latent space" tab: walk between two digits' latent means (test digits, or the visitor's own drawing
or upload), the latent plane of the test digits' two main directions, with latent diffusion's paths on it, and
the conditional VAE's analogies (a digit's style decoded under every class)."""
from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

import gradio as gr
import torch
from PIL import Image

from app import inputs, plots, theory
from app.images import grid_image, pinned, save_gif
from app.inputs import (
    DEFAULT_DATASET,
    MAX_PATH_STEPS,
    checked_by,
    engine,
    pick_digit,
    ships,
    test_digits,
    timed,
    user_error,
    validations,
)
from app.widgets import digit_picker, math_panel, pick_brush, picture
from engines.data.datasets import LAB_CLASS_NAMES, LAB_DATASET_TITLES
from engines.data.user_images import is_blank, prepare_digit
from engines.errors import EngineError
from engines.measure import guide
from engines.measure.conditional import asked_class_shares
from engines.registry import families
from engines.sampling.interpolation import INTERPOLATIONS

LATENT_PATHS, LATENT_PATH_STEPS = 12, 50   # latent diffusion's trajectories on the VAE's latent map


def visitor_digit(upload, sketch) -> tuple[torch.Tensor, list[str]] | None:
    """A drawn digit (the sketchpad's composite) or an uploaded file, converted; None when neither is given. Both
    arrive as the page sends them (the event skips Gradio's preprocessing: `checked_by`): files the server
    received, read only from its upload folder (`inputs.received_file`)."""
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    sources = [("drawing", composite), ("upload", upload)]
    for what, source in sources:
        if source is None:
            continue
        try:
            image = source if isinstance(source, Image.Image) else inputs.received_file(source)
            if what == "drawing" and _blank_canvas(image):
                continue
            digit, notes = prepare_digit(image)
        except EngineError as e:
            raise user_error(f"Your {what}: {e}") from None
        return digit, [f"Digit A is your {what}: " + "; ".join(notes) + "."]
    return None


def _blank_canvas(image) -> bool:
    """An untouched sketchpad: nothing drawn is not an error, it means 'use the test digit'."""
    try:
        with Image.open(image) if isinstance(image, str) else nullcontext(image) as opened:
            return is_blank(opened)
    except OSError:
        return False   # not an image: prepare_digit says so


def check_vae_latent_map(grid, dataset=DEFAULT_DATASET) -> list[dict]:
    """vae_latent_map's validator."""
    return validations(lambda: inputs.whole_number(grid, "Grid size", 3, 16), lambda: inputs.dataset_choice(dataset))


def check_vae_interpolate(index_a, index_b, steps, method, class_a="any", class_b="any", upload_a=None,
                          sketch_a=None, dataset=DEFAULT_DATASET) -> list[dict]:
    """vae_interpolate's validator: a refusal, the visitor's own digit's included, leaves the previous pictures
    in place."""
    index_a_check, class_a_check = inputs.digit_validations(index_a, class_a, "Digit A", dataset)
    index_b_check, class_b_check = inputs.digit_validations(index_b, class_b, "Digit B", dataset)
    return validations(index_a_check, index_b_check, lambda: inputs.whole_number(steps, "Steps", 2, MAX_PATH_STEPS),
                       lambda: inputs.choice(method, "path", INTERPOLATIONS), class_a_check, class_b_check,
                       lambda: visitor_digit(upload_a, None), lambda: visitor_digit(None, sketch_a),
                       lambda: inputs.dataset_choice(dataset))


def vae_interpolate(index_a, index_b, steps, method, class_a="any", class_b="any", upload_a=None, sketch_a=None,
                    dataset=DEFAULT_DATASET):
    """Decode the latent path from digit A to digit B: the strip, an animation, and the reconstructions."""
    steps = inputs.whole_number(steps, "Steps", 2, MAX_PATH_STEPS)
    method = inputs.choice(method, "path", INTERPOLATIONS)
    dataset = inputs.dataset_choice(dataset)
    digit_b, about_b = pick_digit(index_b, class_b, "Digit B", dataset)
    from_visitor = visitor_digit(upload_a, sketch_a)
    if from_visitor is None:
        digit_a, about_a = pick_digit(index_a, class_a, "Digit A", dataset)
        notes = [about_a + ".", about_b + "."]
    else:
        digit_a, notes = from_visitor
        notes.append(about_b + ".")
    vae = engine("vae", dataset)
    path, _ = timed(vae.interpolate, digit_a, digit_b, steps=steps, method=method)
    pair = torch.stack([digit_a, digit_b])
    recon, _ = timed(vae.reconstruct, pair)
    frames = [grid_image(frame[None], columns=1) for frame in path]
    animation = save_gif(frames + frames[-2:0:-1], duration_ms=150, final_hold_ms=150)  # there and back
    return (grid_image(path, columns=steps), grid_image(torch.cat([pair, recon]), columns=2), animation,
            " ".join(notes))


def vae_latent_map(grid, dataset=DEFAULT_DATASET):
    """The latent plane of the test digits' two main directions: decoded lattice and where digits lie."""
    grid = inputs.whole_number(grid, "Grid size", 3, 16)
    dataset = inputs.dataset_choice(dataset)
    digits = test_digits(dataset)
    view, _ = timed(engine("vae", dataset).latent_map, digits.images, grid=grid)
    with_paths = ships("latent_diffusion", dataset)
    paths = view.project(engine("latent_diffusion", dataset).latent_trajectories(
        LATENT_PATHS, seed=0, sampler="ddim", steps=LATENT_PATH_STEPS)).numpy() if with_paths else None
    figure = plots.latent_scatter(view.coordinates.numpy(), digits.labels.numpy(), view.ticks, view.explained_variance,
                                  paths, digits.class_names)
    caption = (f"Decoded lattice: {grid}x{grid} points of the plane through the mean latent along its two principal "
               f"directions, from {float(view.ticks[0]):+.1f} to {float(view.ticks[-1]):+.1f} standard deviations "
               f"(direction 1 left to right, direction 2 bottom to top). These two directions hold "
               f"{sum(view.explained_variance):.0%} of the variance of the 1,000 test images' latent means.")
    if with_paths:
        caption += (f" Black paths: {LATENT_PATHS} latent diffusion samples ({LATENT_PATH_STEPS} DDIM steps, seed 0) "
                    "moving from Gaussian noise (N(0, I) in its standardised latent units) to where its learned "
                    "prior puts them, among the encoded images (a projection of the 8-d latents onto this plane).")
    return grid_image(view.decoded, columns=grid), figure, caption


MAX_ANALOGY_ROWS = 8


def analogy_family(dataset: str):
    """The shipped family of `dataset` whose engine encodes a digit's style apart from its class (its engine has
    `analogies`: the conditional VAE), or None."""
    return next((f for f in families() if hasattr(f.engine, "analogies") and ships(f.name, dataset)), None)


def check_vae_analogies(seed, rows, dataset=DEFAULT_DATASET) -> list[dict]:
    """vae_analogies's validator."""
    return validations(lambda: inputs.seed(seed), lambda: inputs.whole_number(rows, "Digits", 1, MAX_ANALOGY_ROWS),
                       lambda: inputs.dataset_choice(dataset))


def vae_analogies(seed, rows, dataset=DEFAULT_DATASET):
    """The analogy grid (Sohn et al. 2015's figure): `rows` test digits drawn with `seed`, each encoded with its
    own label and decoded under every label; and what to look at, with the share each feature net reads as the
    label decoded under."""
    seed, rows = inputs.seed(seed), inputs.whole_number(rows, "Digits", 1, MAX_ANALOGY_ROWS)
    dataset = inputs.dataset_choice(dataset)
    record = analogy_family(dataset)
    if record is None:
        return None, (f"No class-conditional VAE ships for {LAB_DATASET_TITLES[dataset]} yet, so there is no style "
                      "to carry across classes here; the MNIST one is on the MNIST page.")
    digits = test_digits(dataset)
    picked = torch.randperm(len(digits.images), generator=torch.Generator().manual_seed(seed))[:rows]
    cvae = engine(record.name, dataset)
    decoded, seconds = timed(cvae.analogies, digits.images[picked], digits.labels[picked])
    classes = cvae.num_classes
    shares = asked_class_shares(decoded, torch.arange(classes).repeat(rows), dataset)
    grid = torch.cat([digits.images[picked][:, None], decoded.reshape(rows, classes, *decoded.shape[1:])], 1)
    names = ", ".join(digits.class_names or LAB_CLASS_NAMES[dataset])
    read = "; ".join(f"`{net}` reads {share:.0%} of them as the class they were decoded under"
                     for net, share in shares.items())
    noun, style = (("digit", "slant, stroke width, size") if dataset == "mnist" else
                   ("image", "brightness, width, texture"))
    return grid_image(grid.flatten(0, 1), columns=classes + 1), (
        f"**What to look at.** Each row: a test {noun} (left, test {noun}s no. "
        f"{', '.join(map(str, picked.tolist()))}, drawn with seed {seed}), then the {record.title}'s encoding of it, "
        f"z from q(z | x, y) with its own label, decoded under each of the {classes} labels in turn ({names}). The "
        f"label carries the class; z carries what the label does not say ({style}), so each row keeps its "
        f"{noun}'s style across the classes. {read}. {seconds * 1000:.0f} ms.")


FIRST_A, FIRST_B, FIRST_B_CLASS, FIRST_STEPS, FIRST_GRID = 0, 0, "7", 10, 9   # A: test digit #0 (a zero), B: a 7
FIRST_ANALOGY_SEED, FIRST_ANALOGY_ROWS = 0, 4


@lru_cache(maxsize=None)
@pinned   # kept for the process's life, and so are the files it names
def first_visit(dataset=DEFAULT_DATASET) -> tuple:
    """What the tab shows before any click (the controls' defaults), computed once per process and dataset."""
    return (guide.latent_walk(inputs.report_of(dataset)),
            *vae_interpolate(FIRST_A, FIRST_B, FIRST_STEPS, "slerp", "any", FIRST_B_CLASS, dataset=dataset),
            *vae_latent_map(FIRST_GRID, dataset), *vae_analogies(FIRST_ANALOGY_SEED, FIRST_ANALOGY_ROWS, dataset))


def interpolation_section(dataset: gr.Radio) -> tuple[list[gr.Dropdown], list]:
    gr.Markdown("Encode two digits, walk between their latent means, decode each point. Digit A can be a test "
                "digit, or your own: draw it or upload an image (it is converted to a 28x28 white-on-black digit, "
                "and the page says how).")
    with gr.Row():
        with gr.Column():
            index_a, class_a = digit_picker("Digit A", FIRST_A)
            with gr.Accordion("...or draw / upload digit A", open=False) as draw_a:
                sketch_a = gr.Sketchpad(label="Draw digit A", type="pil", canvas_size=(280, 280), transforms=(),
                                        layers=False, elem_id="digit-sketch")
                upload_a = gr.File(label="Upload digit A (PNG, JPEG, ...)", type="filepath")
            draw_a.expand(None, None, None, js=pick_brush("digit-sketch"))
        with gr.Column():
            index_b, class_b = digit_picker("Digit B", FIRST_B, FIRST_B_CLASS)
        with gr.Column():
            steps = gr.Slider(2, MAX_PATH_STEPS, FIRST_STEPS, step=1, label="Steps")
            method = gr.Radio(list(INTERPOLATIONS), value="slerp", label="Path")
    run = gr.Button("Interpolate", variant="primary")
    what = gr.Markdown(label="What to look at (latent walk)")
    notes = gr.Markdown(label="Notes on the digits")
    gr.Markdown("Decoded path from A to B:")
    strip = picture(label="Decoded path from A to B", type="pil", format="png", show_label=False)
    with gr.Row():
        recon = picture(label="A, B (top) and their reconstructions (bottom)", type="pil", format="png", height=240)
        animation = picture(label="Animation (A -> B -> A)", type="filepath", height=240)
    run.click(vae_interpolate, [index_a, index_b, steps, method, class_a, class_b, upload_a, sketch_a, dataset],
              [strip, recon, animation, notes], api_name="vae_interpolate", **checked_by(check_vae_interpolate))
    return [class_a, class_b], [what, strip, recon, animation, notes]


def analogy_section(dataset: gr.Radio) -> list:
    gr.Markdown("### One digit's style under every class (the conditional VAE)")
    with gr.Row():
        seed = gr.Number(FIRST_ANALOGY_SEED, precision=0, label="Seed (which test digits)")
        rows = gr.Slider(1, MAX_ANALOGY_ROWS, FIRST_ANALOGY_ROWS, step=1, label="Digits")
        run = gr.Button("Decode under every class")
    caption = gr.Markdown(label="What to look at (analogies)")
    grid = picture(label="Each test digit, then its style decoded under every class", type="pil", format="png")
    run.click(vae_analogies, [seed, rows, dataset], [grid, caption], api_name="vae_analogies",
              **checked_by(check_vae_analogies))
    return [grid, caption]


def build(dataset: gr.Radio, first_visits: list) -> list[gr.Dropdown]:
    """The tab; returns its class dropdowns (the page renames their classes when the dataset changes) and appends
    its first visit (function of the dataset, outputs) to `first_visits`."""
    math_panel(theory.VAE)
    classes, interpolated = interpolation_section(dataset)
    gr.Markdown("### The latent space in 2-D")
    with gr.Row():
        grid = gr.Slider(3, 16, FIRST_GRID, step=1, label="Grid size")
        map_run = gr.Button("Map the latent space")
    map_caption = gr.Markdown(label="Latent map caption")
    with gr.Row():
        lattice = picture(label="Decoded lattice", type="pil", format="png", show_label=False)
        scatter = gr.Plot(label="Test digits on the same axes", show_label=False)   # the figure has its title
    map_run.click(vae_latent_map, [grid, dataset], [lattice, scatter, map_caption], api_name="vae_latent_map",
                  **checked_by(check_vae_latent_map))
    analogies = analogy_section(dataset)
    first_visits.append((first_visit, [*interpolated, lattice, scatter, map_caption, *analogies]))
    return classes
