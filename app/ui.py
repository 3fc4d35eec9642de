"""The lab's page: the tabs (one module each under `app/tabs/`, and `app.playground`), assembled."""
from __future__ import annotations

from functools import partial

import gradio as gr

from app import inputs, playground, theory
from app.images import SERVED_MAX_AGE_S, SWEEP_EVERY_S
from app.serving import SHARED_CONCURRENCY, SHARED_POOL
from app.tabs import compare, connections, diffusion, gan, side_by_side, vae_latent
from app.widgets import class_dropdowns
from engines.registry import families

_TITLES = [f.title for f in families("family")]
INTRO = (f"{', '.join(_TITLES[:-1])} and {_TITLES[-1]} models, and hybrids of them, trained by this project on the "
         "same data, on a CPU: MNIST digits or, where its models ship, Fashion-MNIST's clothes (the selector below "
         "switches every tab but the 2-D playground). The same seed always gives the same images.")
# Gradio floats an image's label badge and toolbar over its top edge; give them a band of their own so that they
# never cover a picture (the browser test checks every shown image).
CSS = ".block:has(> label.float) .image-container { padding-top: 34px; } " + side_by_side.colour_css()
# The tabs that open on a computed example (each module's `first_visit`, cached per process and dataset).
FIRST_VISIT_TABS = (side_by_side, vae_latent, gan, diffusion, connections)


def build_demo() -> gr.Blocks:
    # Gradio's cache of what it served: files older than an hour deleted every ten minutes (as app.images sweeps
    # its own), so that a long-running Space keeps its disk.
    with gr.Blocks(title="The generative lab", delete_cache=(SWEEP_EVERY_S, SERVED_MAX_AGE_S)) as demo:
        gr.Markdown("# The generative lab\n" + INTRO)
        with gr.Accordion("Glossary: every term these pages use, in one line each", open=False):
            gr.Markdown(theory.glossary_markdown(), latex_delimiters=theory.LATEX)
        dataset = gr.Radio(inputs.DATASET_CHOICES, value=inputs.DEFAULT_DATASET, label="Dataset",
                           info="whose trained models every tab shows (each loads once)", elem_id="dataset")
        with gr.Tab("Side by side"):
            first_inputs, first_outputs, side_by_side_event, asked_class = side_by_side.build(dataset)
        first_visits = []   # (function of the dataset, its outputs): what each tab shows before any click
        with gr.Tab("VAE latent space"):
            classes = [asked_class, *vae_latent.build(dataset, first_visits)]
        with gr.Tab("GAN sampling"):
            gan.build(dataset, first_visits)
        with gr.Tab("Diffusion, step by step"):
            classes.extend(diffusion.build(dataset, first_visits))
        with gr.Tab("Compare") as compare_tab:
            compare_outputs = compare.build(dataset)
        with gr.Tab("Connections"):
            classes.append(connections.build(dataset, first_visits))
        with gr.Tab("2-D playground"):
            playground.build_tab()
        # Show before asking: the landing tab opens on the default seed's samples, not on empty frames, and a new
        # dataset shows its samples and its report at once. Every other tab opens on its controls' defaults too
        # (each computed once per process and dataset), loaded after the landing tab's.
        # First visits are computed once per process (app.serving.warm_up computes the default dataset's before
        # anyone comes): they have queue slots of their own, so that a page opening does not wait behind the
        # drawing others asked for.
        visits = {"concurrency_id": "first_visit", "concurrency_limit": SHARED_CONCURRENCY}
        loaded = demo.load(side_by_side.first_visit, None, first_outputs, api_name="first_visit", **visits)
        changed = dataset.change(partial(class_dropdowns, count=len(classes)), dataset, classes,
                                 api_visibility="private").then(
            side_by_side_event, first_inputs, first_outputs, api_visibility="private", **SHARED_POOL).then(
            compare.compare, dataset, compare_outputs, api_visibility="private")
        for visit, outputs in first_visits:   # one after another, after the landing tab's: it shows first
            loaded = loaded.then(visit, dataset, outputs, api_visibility="private", **visits)
            changed = changed.then(visit, dataset, outputs, api_visibility="private")
        compare_tab.select(compare.compare, dataset, compare_outputs, api_visibility="private")  # opens on its charts
    return demo
