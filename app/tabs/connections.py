"""The "Connections" tab: the seed's three connections between the families, each with numbers on screen.

- Diffusion as a hierarchical VAE: one test digit's latent levels under the fixed encoder, what the learned
  decoder makes of each, and the bound split level by level beside the VAE's reconstruction + KL.
- Diffusion as score matching: a small 2-D diffusion model's learned score against the true score of the noised
  toy density at three noise levels, and samples drawn by annealed Langevin dynamics from that score alone.
- The GAN as divergence minimisation: the 2-D playground's lesson (D* beside the learned D, the JSD per
  checkpoint); this tab links to it.
- Diffusion and flow matching, one path: the same noise taken to an image by each family whose sampler is an ODE
  on a Gaussian path (diffusion's DDIM, flow matching's Euler), both written on the straight path, with each
  path's straightness.

Layout and small adapters only: the maths lives in `engines.measure.hierarchy`, `engines.toy.score` and
`engines.measure.straightness` (with the engines' `straight_path_trajectory`).
"""
from __future__ import annotations

from functools import lru_cache

import gradio as gr
import torch

from app import inputs, plots, theory
from app.images import grid_image, pinned
from app.inputs import (
    DEFAULT_DATASET,
    DIGIT_CLASSES,
    checked_by,
    dataset_choice,
    engine,
    pick_digit,
    user_error,
    validations,
    whole_number,
)
from app.widgets import picture
from engines import MAX_SEED
from engines.data.datasets import LAB_DATASET_TITLES, from_signed
from engines.errors import EngineError
from engines.measure.hierarchy import DEFAULT_LEVELS, elbo_by_level, group_by_decade, latent_hierarchy, vae_elbo_terms
from engines.measure.straightness import straightness
from engines.registry import families
from engines.toy.distributions import PRESETS
from engines.toy.score_study import LANGEVIN_LEVELS, MAX_STUDY_STEPS, STUDY_TOYS, score_study
from engines.toy.views import EXTENT

HIERARCHY_STRATA = 50   # the report's setting: one network call per stratum, about half a second per digit
LEAST_NOISE = " - the least noise, where the true score is large and changes fast"
ROWS = ("x_t from the fixed encoder", "predicted x0", "decoder mean, one level down", "decoder draw")


def _hierarchy_inputs(index, digit_class, seed, dataset) -> tuple:
    dataset = dataset_choice(dataset)
    digit, about = pick_digit(index, digit_class, "Digit", dataset)
    return digit, about, whole_number(seed, "Seed", 0, MAX_SEED), dataset


def check_hierarchy(index, digit_class, seed, dataset=DEFAULT_DATASET) -> list[dict]:
    """The hierarchy view's validator: its input checks alone, before anything runs (a refused input keeps the
    pictures)."""
    return validations(*inputs.digit_validations(index, digit_class, "Digit", dataset),
                       lambda: whole_number(seed, "Seed", 0, MAX_SEED), lambda: dataset_choice(dataset))


def hierarchy(index, digit_class, seed, dataset=DEFAULT_DATASET, progress=gr.Progress()):
    """One digit: its levels (a grid: rows = ROWS, columns = levels), the bound by level as a plot, and a caption
    with the numbers."""
    digit, about, seed, dataset = _hierarchy_inputs(index, digit_class, seed, dataset)
    progress(0.1, desc="encoding and decoding the levels")
    try:
        levels = latent_hierarchy(engine("diffusion", dataset), digit[None], DEFAULT_LEVELS, seed=seed)
        progress(0.4, desc=f"the bound, {HIERARCHY_STRATA} levels")
        bound = elbo_by_level(engine("diffusion", dataset), digit[None], strata=HIERARCHY_STRATA, seed=seed)
        vae = vae_elbo_terms(engine("vae", dataset), digit[None], seed=seed)
    except EngineError as e:
        raise user_error(str(e)) from None
    images = torch.cat([levels.encoded, levels.predicted_x0, levels.decoded_mean, levels.decoded_draw])
    grid = grid_image(images, columns=len(levels.levels))
    figure = plots.png(plots.elbo_by_level(bound, vae, "This digit's diffusion bound, level by level"))
    return grid, figure, hierarchy_caption(about, levels.levels, bound, vae)


def hierarchy_caption(about: str, levels: list[int], bound: dict, vae: dict) -> str:
    decades = group_by_decade(bound["bands"])
    heaviest = max(decades, key=lambda r: r["bpd"])
    kl_sum = sum(bound["bands"]["bpd"])
    return (f"{about}. Columns: t = {', '.join(map(str, levels))}; rows, top to bottom: {'; '.join(ROWS)}.\n\n"
            f"**Diffusion's bound for this digit: {bound['total']:.3f} bits/dim** = prior {bound['prior']:.2g} + "
            f"KL terms {kl_sum:.3f} + decoder {bound['decoder']:.3f}. By decade of t: "
            + ", ".join(f"t {r['first']}-{r['last']}: {r['bpd']:.3f}" for r in decades)
            + f". The most bits go to t {heaviest['first']}-{heaviest['last']}, {_where(heaviest)}. "
            f"**The VAE's bound: {vae['total']:.3f} bits/dim** = reconstruction "
            f"{vae['reconstruction']:.3f} + one KL {vae['kl']:.3f}: its single KL plays the part of diffusion's sum "
            "of KL terms (both price what the latents say beyond the prior).\n\n"
            f"**What to look at.** Down each column: the fixed encoder's noisy x_t (nothing learned), the network's "
            f"guess of the clean image from it, and its decoder one level down (mean, then a draw). Left to right "
            f"the encoder erases the image, until t = {levels[-1]} is noise; find the column where the predicted x0 "
            f"stops being this image and becomes one the network invents. That is the VAE's picture turned into "
            f"{len(levels)} of diffusion's many latent levels, each with its own small KL.")


def _where(band: dict) -> str:
    if band["last"] < 10:
        return "the levels nearest the data, where little noise is left to remove"
    if band["first"] >= 100:
        return "the noisy levels, where the digit's overall shape is decided"
    return "the middle levels"


@lru_cache(maxsize=None)
@pinned   # kept for the process's life, and so are the files it names
def first_visit(dataset=DEFAULT_DATASET) -> tuple:
    """The hierarchy of test image #0 (the controls' defaults), computed once per process and dataset."""
    return hierarchy(0, "any", 0, dataset, progress=lambda *_, **__: None)   # no progress bar to drive


def hierarchy_section(dataset: gr.Radio) -> tuple[gr.Dropdown, list]:
    gr.Markdown("### Diffusion as a hierarchical VAE")
    with gr.Accordion("The math behind this view", open=False):
        gr.Markdown(theory.HIERARCHY, latex_delimiters=theory.LATEX)
    with gr.Row():
        digit_class = gr.Dropdown(DIGIT_CLASSES, value="any", label="Digit: class")
        index = gr.Number(0, label="Digit: index", minimum=0, step=1)
        seed = gr.Number(0, label="Seed", minimum=0, maximum=MAX_SEED, step=1)
    run = gr.Button("Encode and decode, level by level", variant="primary")
    grid = picture(label="Latent levels: fixed encoder (top), learned decoder (below)", type="pil", format="png")
    plot = picture(label="The bound, level by level", type="filepath")
    caption = gr.Markdown(label="Hierarchy caption")
    run.click(hierarchy, [index, digit_class, seed, dataset], [grid, plot, caption], api_name="connections_hierarchy",
              **checked_by(check_hierarchy))
    return digit_class, [grid, plot, caption]


# --- diffusion as score matching ------------------------------------------------------------------------

def _score_checks(distribution, steps, seed) -> list:
    def toy():
        if distribution not in STUDY_TOYS:
            raise user_error(f"choose a toy among {', '.join(STUDY_TOYS)}")
        return distribution
    return [toy, lambda: whole_number(steps, "Training steps", 100, MAX_STUDY_STEPS),
            lambda: whole_number(seed, "Seed", 0, MAX_SEED)]


def check_score(distribution, steps, seed) -> list[dict]:
    """The score view's validator."""
    return validations(*_score_checks(distribution, steps, seed))


def score(distribution, steps, seed, progress=gr.Progress()):
    """Train a small 2-D diffusion model, then its score against the truth at three noise levels, and samples
    drawn with the learned score alone (annealed Langevin) beside the true score's and DDPM's."""
    distribution, steps, seed = (check() for check in _score_checks(distribution, steps, seed))
    progress(0.05, desc=f"training a 2-D diffusion model for {steps} steps, then measuring its score")
    study = score_study(distribution, steps, seed)
    arrows = plots.png(plots.score_levels(study.levels, EXTENT))
    samples = plots.png(plots.sample_panels(study.samples, study.coverage, study.n_modes, EXTENT))
    return arrows, samples, score_caption(study)


def score_caption(study) -> str:
    errors = "; ".join(f"t = {lv.t} (noise std {lv.sigma:.2f}): {lv.error.relative:.3f} ± {lv.error.se:.3f}"
                       for lv in study.levels)
    learned, true = study.coverage["Langevin (learned score)"], study.coverage["Langevin (true score)"]
    worst = max(study.levels, key=lambda lv: lv.error.relative)
    return (f"{PRESETS[study.distribution][0]}, a diffusion MLP trained {study.steps} steps. **Relative score error** "
            f"E‖s_θ - ∇log p_t‖² / E‖∇log p_t‖² (± SE, {study.levels[0].error.n} points x_t ~ p_t): {errors}. "
            f"The error is largest at t = {worst.t}{LEAST_NOISE if worst is study.levels[0] else ''}.\n\n"
            f"**Sampling with the score alone**: annealed Langevin over {LANGEVIN_LEVELS} noise levels (5 steps "
            f"each) with the learned score covers {learned.covered} of {study.n_modes} modes with "
            f"{learned.on_support:.0%} of its samples on a mode; with the true score {true.covered} and "
            f"{true.on_support:.0%}. **Tweedie's formula** with the learned score gives the sampler's predicted x0 "
            f"to within {study.tweedie_gap:.1e} (float rounding): they are one quantity written two ways.")


def score_section() -> None:
    gr.Markdown("### Diffusion as score matching")
    with gr.Accordion("The math behind this view", open=False):
        gr.Markdown(theory.SCORE, latex_delimiters=theory.LATEX)
    with gr.Row():
        toy = gr.Dropdown([(PRESETS[k][0], k) for k in STUDY_TOYS], value="ring8", label="Toy distribution")
        steps = gr.Number(2000, label=f"Training steps (100 .. {MAX_STUDY_STEPS})", minimum=100,
                          maximum=MAX_STUDY_STEPS, step=100)
        seed = gr.Number(0, label="Seed", minimum=0, maximum=MAX_SEED, step=1)
    run = gr.Button("Train, then compare the scores", variant="primary")
    arrows = picture(label="Learned score (orange) over the true score (black) and the noised density",
                      type="filepath")
    samples = picture(label="Samples: Langevin with the learned score, with the true score, and DDPM",
                       type="filepath")
    caption = gr.Markdown(label="Score caption")
    run.click(score, [toy, steps, seed], [arrows, samples, caption], api_name="connections_score", concurrency_limit=1,
              concurrency_id="connections_score", **checked_by(check_score))


def divergence_section() -> None:
    gr.Markdown("### The GAN as divergence minimisation")
    gr.Markdown(theory.DIVERGENCE, latex_delimiters=theory.LATEX)
    gr.Markdown("See it trained: open the **2-D playground** tab and run the lesson *The GAN as divergence "
                "minimisation*: the optimal discriminator D* (from the exact data density and a kernel estimate of "
                "the generator's) beside the learned D, and the Jensen-Shannon divergence at every checkpoint, with "
                "the game's value against its optimum -log 4 + 2 JSD.")


# --- diffusion and flow matching, one path --------------------------------------------------------------------

PATH_FRAMES = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)   # the times s at which each path's state is shown
PATH_PIXELS = 6
MAX_PATH_STEPS = 200


def _path_checks(seed, steps, dataset) -> list:
    def models():
        dataset_ = dataset_choice(dataset)
        every = [f for f in families() if f.straight_path]
        ode = [f for f in every if inputs.ships(f.name, dataset_)]
        if len(ode) < 2:   # one path alone compares nothing
            where = [d for d in LAB_DATASET_TITLES if sum(inputs.ships(f.name, d) for f in every) >= 2]
            shipped = " and ".join(f.title for f in ode) or "none"
            raise user_error(f"this view compares two or more of {', '.join(f.title for f in every)}; for "
                             f"{LAB_DATASET_TITLES[dataset_]} only {shipped} ships (choose "
                             f"{' or '.join(LAB_DATASET_TITLES[d] for d in where) or 'another dataset'})")
        return ode, dataset_
    return [lambda: whole_number(seed, "Seed", 0, MAX_SEED),
            lambda: whole_number(steps, "Steps", 2, MAX_PATH_STEPS), models]


def check_paths(seed, steps, dataset=DEFAULT_DATASET) -> list[dict]:
    """The one-path view's validator."""
    return validations(*_path_checks(seed, steps, dataset))


def one_path(seed, steps, dataset=DEFAULT_DATASET):
    """The seed's noise taken to an image by each ODE family, on the straight path: its states at PATH_FRAMES (a
    row per family), a few pixels' values along the paths, and a caption with each path's straightness."""
    seed, steps, (ode, dataset) = (check() for check in _path_checks(seed, steps, dataset))
    paths = [(f, *engine(f.name, dataset).straight_path_trajectory(1, seed, steps)) for f in ode]
    # the pixels that travel furthest: ink that starts as dark noise, and background that starts bright
    start, end = paths[0][2][0, 0].flatten(), paths[0][2][-1, 0].flatten()
    travel = (end - start) * torch.where(end > 0, 1.0, -1.0)
    ink, background = torch.where(end > 0, travel, -1e9), torch.where(end > 0, -1e9, travel)
    pixels = torch.cat([ink.topk(PATH_PIXELS // 2).indices, background.topk(PATH_PIXELS - PATH_PIXELS // 2).indices])
    rows, curves = [], []
    for family, times, states in paths:
        rows += [states[min(range(len(times)), key=lambda k: abs(times[k] - s)), 0] for s in PATH_FRAMES]
        curves.append((family.heading, family.colour, times, states[:, 0].flatten(1)[:, pixels]))
    grid = grid_image(from_signed(torch.stack(rows)), columns=len(PATH_FRAMES))
    return grid, plots.png(plots.pixel_paths(curves)), path_caption(paths, seed, steps, dataset)


def path_caption(paths: list[tuple], seed: int, steps: int, dataset: str) -> str:
    """Which paths were drawn, each one's straightness, and the report's over many paths where it has them."""
    measured = (inputs.report_of(dataset) or {}).get("straightness", {})
    report = "; ".join(f"{f.title} {measured[f.name]['per_pixel']:.4f} ± {measured[f.name]['per_pixel_se']:.4f}"
                       for f, _, _ in paths if f.name in measured)
    samplers = "; ".join(f"{f.title}: {engine(f.name, dataset).straight_path_sampler}" for f, _, _ in paths)
    ends_apart = float((paths[0][2][-1] - paths[-1][2][-1]).abs().mean())
    values = ", ".join(f"{f.title} {float(straightness(times, states)['per_pixel']):.4f}"
                       for f, times, states in paths)
    return (f"Seed {seed}'s noise, {steps} steps of each model's ODE ({samplers}). Rows top to bottom: "
            f"{', '.join(f.title for f, _, _ in paths)}; columns at s = {', '.join(f'{s:g}' for s in PATH_FRAMES)}. "
            f"**Straightness of these paths** (per pixel; 0 is a straight line at constant speed): {values}"
            + (f". Over {measured['n']} paths in the report (± SE): {report}" if report else "")
            + f". The same seed draws the same noise for each model; their images differ by {ends_apart:.3f} "
              f"per pixel (mean absolute difference, pixel values in [-1, 1]).")


def path_section(dataset: gr.Radio) -> None:
    gr.Markdown("### Diffusion and flow matching: one path, two parameterisations")
    with gr.Accordion("The math behind this view", open=False):
        gr.Markdown(theory.ONE_PATH, latex_delimiters=theory.LATEX)
    with gr.Row():
        seed = gr.Number(0, label="Seed", minimum=0, maximum=MAX_SEED, step=1)
        steps = gr.Number(50, label=f"Steps (2 .. {MAX_PATH_STEPS})", minimum=2, maximum=MAX_PATH_STEPS, step=1)
    run = gr.Button("Take the same noise to an image with both", variant="primary")
    grid = picture(label="Each model's path at s = 1 (noise) .. 0 (image)", type="pil", format="png")
    plot = picture(label="Pixel values along the paths", type="filepath")
    caption = gr.Markdown(label="One-path caption")
    run.click(one_path, [seed, steps, dataset], [grid, plot, caption], api_name="connections_one_path",
              **checked_by(check_paths))


def build(dataset: gr.Radio, first_visits: list) -> gr.Dropdown:
    """The tab; returns its class dropdown (the page renames its classes when the dataset changes) and appends
    its first visit (the hierarchy of test image #0) to `first_visits`."""
    gr.Markdown("The seed's three connections between the families, measured on the lab's models: diffusion is a "
                "hierarchical VAE, its network learns a score, and a GAN minimises a divergence; and a fourth: "
                "diffusion and flow matching follow one kind of path.")
    digit_class, shown = hierarchy_section(dataset)
    first_visits.append((first_visit, shown))
    score_section()
    divergence_section()
    path_section(dataset)
    return digit_class
