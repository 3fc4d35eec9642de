"""The "Connections" tab: the seed's three connections between the families, each with numbers on screen.

- Diffusion as a hierarchical VAE: one test digit's latent levels under the fixed encoder, what the learned
  decoder makes of each, and the bound split level by level beside the VAE's reconstruction + KL.
- Diffusion as score matching: a small 2-D diffusion model's learned score against the true score of the noised
  toy density at three noise levels, and samples drawn by annealed Langevin dynamics from that score alone.
- The GAN as divergence minimisation: the 2-D playground's lesson (D* beside the learned D, the JSD per
  checkpoint); this tab links to it.

Layout and small adapters only: the maths lives in `engines.measure.hierarchy` and `engines.toy.score`.
"""
from __future__ import annotations

from functools import lru_cache

import gradio as gr
import torch

from app import inputs, plots, theory
from app.images import grid_image
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
from engines.errors import EngineError
from engines.measure.hierarchy import DEFAULT_LEVELS, elbo_by_level, group_by_decade, latent_hierarchy, vae_elbo_terms
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


def build(dataset: gr.Radio, first_visits: list) -> gr.Dropdown:
    """The tab; returns its class dropdown (the page renames its classes when the dataset changes) and appends
    its first visit (the hierarchy of test image #0) to `first_visits`."""
    gr.Markdown("The seed's three connections between the families, measured on the lab's models: diffusion is a "
                "hierarchical VAE, its network learns a score, and a GAN minimises a divergence.")
    digit_class, shown = hierarchy_section(dataset)
    first_visits.append((first_visit, shown))
    score_section()
    divergence_section()
    return digit_class
