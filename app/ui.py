"""The lab's layout: tabs that arrange components and wire them to `app.handlers`."""
from __future__ import annotations

import gradio as gr

from app import connections, handlers, playground, theory
from app.widgets import pick_brush
from engines.sampling.interpolation import INTERPOLATIONS

INTRO = ("VAE, GAN and diffusion models trained by this project on the same data, on a CPU: MNIST digits or, "
         "where its models ship, Fashion-MNIST's clothes (the selector below switches every tab but the 2-D "
         "playground). The same seed always gives the same images.")
# Gradio floats an image's label badge and toolbar over its top edge; give them a band of their own so that they
# never cover a picture (the browser test checks every shown image).
CSS = ".block:has(> label.float) .image-container { padding-top: 34px; }"
SAMPLER_HELP = ("ddpm / ddim are the lab's own samplers; diffusers:* are diffusers' schedulers run on the same "
                "network and noise schedule. ")


def math_panel(text: str) -> None:
    """The equations behind a view, folded away until asked for."""
    with gr.Accordion("The math behind this view", open=False):
        gr.Markdown(text, latex_delimiters=theory.LATEX)


def seed_box(label: str = "Seed", value: int = 0) -> gr.Number:
    return gr.Number(value, label=label, minimum=0, maximum=handlers.MAX_SEED, step=1)


def sampler_controls() -> tuple[gr.Dropdown, gr.Slider]:
    default, why = handlers.default_sampler()
    sampler = gr.Dropdown(handlers.DIFFUSION_SAMPLERS, value=default, label="Diffusion sampler",
                          info=SAMPLER_HELP + why)
    return sampler, gr.Slider(1, handlers.MAX_UI_STEPS, handlers.DEFAULT_UI_STEPS, step=1, label="Diffusion steps")


def side_by_side_tab(dataset: gr.Radio) -> tuple[list, list]:
    math_panel(theory.SIDE_BY_SIDE)
    with gr.Row():
        seed = seed_box(value=handlers.FIRST_VISIT_SEED)
        count = gr.Slider(1, handlers.MAX_GRID, handlers.FIRST_VISIT_COUNT, step=1, label="Samples per model")
        sampler, steps = sampler_controls()
    with gr.Row():
        run = gr.Button("Sample all five", variant="primary")
        new_seed = gr.Button("New seed")
    with gr.Row():
        outputs = []
        for name in ("VAE", "GAN", "Diffusion", "Latent diffusion", "Diffusion GAN"):
            with gr.Column():
                outputs.append(gr.Image(label=name, type="pil", format="png"))
                outputs.append(gr.Markdown(label=f"{name} caption"))
    inputs = [seed, count, sampler, steps, dataset]
    run.click(handlers.check_side_by_side, inputs, None, api_visibility="private").success(
        handlers.side_by_side, inputs, outputs, api_name="side_by_side")
    new_seed.click(handlers.next_seed, seed, seed, api_name="new_seed").then(
        handlers.side_by_side, inputs, outputs, api_visibility="private")
    return inputs, outputs


def digit_picker(label: str, index: int, digit_class: str = "any") -> tuple[gr.Number, gr.Dropdown]:
    with gr.Group():
        digit_class = gr.Dropdown(handlers.DIGIT_CLASSES, value=digit_class, label=f"{label}: class",
                                  info="'any': the index counts over all 1,000 test digits")
        index = gr.Number(index, label=f"{label}: index", minimum=0, step=1)
    return index, digit_class


def vae_tab(dataset: gr.Radio) -> list[gr.Dropdown]:
    math_panel(theory.VAE)
    gr.Markdown("Encode two digits, walk between their latent means, decode each point. Digit A can be a test "
                "digit, or your own: draw it or upload an image (it is converted to a 28x28 white-on-black digit, "
                "and the page says how).")
    with gr.Row():
        with gr.Column():
            index_a, class_a = digit_picker("Digit A", 0)
            with gr.Accordion("...or draw / upload digit A", open=False) as draw_a:
                sketch_a = gr.Sketchpad(label="Draw digit A", type="pil", canvas_size=(280, 280), transforms=(),
                                        layers=False, elem_id="digit-sketch")
                upload_a = gr.File(label="Upload digit A (PNG, JPEG, ...)", type="filepath")
            draw_a.expand(None, None, None, js=pick_brush("digit-sketch"))
        with gr.Column():
            index_b, class_b = digit_picker("Digit B", 0, "7")   # A is test digit #0, a zero: B another digit
        with gr.Column():
            steps = gr.Slider(2, handlers.MAX_PATH_STEPS, 10, step=1, label="Steps")
            method = gr.Radio(list(INTERPOLATIONS), value="slerp", label="Path")
    run = gr.Button("Interpolate", variant="primary")
    notes = gr.Markdown(label="Notes on the digits")
    gr.Markdown("Decoded path from A to B:")
    strip = gr.Image(label="Decoded path from A to B", type="pil", format="png", show_label=False)
    with gr.Row():
        recon = gr.Image(label="A, B (top) and their reconstructions (bottom)", type="pil", format="png", height=240)
        animation = gr.Image(label="Animation (A -> B -> A)", type="filepath", height=240)
    run.click(handlers.vae_interpolate, [index_a, index_b, steps, method, class_a, class_b, upload_a, sketch_a,
                                         dataset], [strip, recon, animation, notes], api_name="vae_interpolate")

    gr.Markdown("### The latent space in 2-D")
    with gr.Row():
        grid = gr.Slider(3, 16, 9, step=1, label="Grid size")
        map_run = gr.Button("Map the latent space")
    map_caption = gr.Markdown(label="Latent map caption")
    with gr.Row():
        lattice = gr.Image(label="Decoded lattice", type="pil", format="png", show_label=False)
        scatter = gr.Plot(label="Test digits on the same axes", show_label=False)   # the figure has its title
    map_run.click(handlers.vae_latent_map, [grid, dataset], [lattice, scatter, map_caption], api_name="vae_latent_map")
    return [class_a, class_b]


def gan_tab(dataset: gr.Radio) -> None:
    math_panel(theory.GAN)
    with gr.Row():
        seed = seed_box()
        count = gr.Slider(1, handlers.MAX_GRID, 36, step=1, label="Samples")
        truncation = gr.Slider(0, 3, 0, step=0.05, label="Truncation (0 = off)",
                               info="resample latent entries beyond this many standard deviations")
    run = gr.Button("Sample", variant="primary")
    grid = gr.Image(label="GAN samples", type="pil", format="png")
    caption = gr.Markdown(label="GAN caption")
    inputs = [seed, count, truncation, dataset]
    run.click(handlers.check_gan_sample, inputs, None, api_visibility="private").success(
        handlers.gan_sample, inputs, [grid, caption], api_name="gan_sample")

    gr.Markdown("### Walk between two seeds' latents")
    with gr.Row():
        seed_a, seed_b = seed_box("Seed A", 0), seed_box("Seed B", 1)
        steps = gr.Slider(2, handlers.MAX_PATH_STEPS, 10, step=1, label="Steps")
        method = gr.Radio(list(INTERPOLATIONS), value="slerp", label="Path")
    walk = gr.Button("Interpolate")
    gr.Markdown("Generated path from A to B, then as an animation:")
    strip = gr.Image(label="Generated path from A to B", type="pil", format="png", show_label=False)
    animation = gr.Image(label="Animation", type="filepath", show_label=False, height=240)
    walk_inputs = [seed_a, seed_b, steps, method, truncation, dataset]
    walk.click(handlers.check_gan_interpolate, walk_inputs, None, api_visibility="private").success(
        handlers.gan_interpolate, walk_inputs, [strip, animation], api_name="gan_interpolate")


def diffusion_tab(dataset: gr.Radio) -> gr.Dropdown:
    math_panel(theory.DIFFUSION)
    with gr.Row():
        seed = seed_box()
        count = gr.Slider(1, handlers.MAX_TRACE_SAMPLES, 4, step=1, label="Samples")
        sampler, steps = sampler_controls()
    with gr.Row():
        run = gr.Button("Denoise", variant="primary")
        hybrid = gr.Button("Denoise with the diffusion GAN (its 4 steps)")
    status = gr.Markdown(label="Step")
    with gr.Row():
        x_t = gr.Image(label="x_t", type="pil", format="png")
        x0 = gr.Image(label="predicted x0", type="pil", format="png")
        animation = gr.Image(label="The whole trajectory (GIF: x_t | predicted x0)", type="filepath")
    stored = gr.State([])
    scrubber = gr.Slider(0, 1, 0, step=1, label="Scrub the stored steps (after a run)", interactive=False)
    inputs, shown = [seed, count, sampler, steps, dataset], [x_t, x0, status, stored, scrubber, animation]
    run.click(handlers.check_diffusion_steps, inputs, None, api_visibility="private").success(
        handlers.diffusion_steps, inputs, shown, api_name="diffusion_steps")
    hybrid.click(handlers.check_diffusion_gan_steps, [seed, count, dataset], None, api_visibility="private").success(
        handlers.diffusion_gan_steps, [seed, count, dataset], shown, api_name="diffusion_gan_steps")
    scrubber.release(handlers.diffusion_scrub, [stored, scrubber], [x_t, x0, status], api_name="diffusion_scrub")

    gr.Markdown("### The forward process: noising a digit")
    with gr.Row():
        index, digit_class = digit_picker("Digit", 0)
        noise_seed = seed_box("Noise seed")
        frames = gr.Slider(2, handlers.MAX_PATH_STEPS, 11, step=1, label="Frames")
    forward = gr.Button("Noise it")
    forward_strip = gr.Image(label="x_t from t = 0 to T - 1", type="pil", format="png")
    forward_caption = gr.Markdown(label="Forward process caption")
    forward_inputs = [index, digit_class, noise_seed, frames, dataset]
    forward.click(handlers.check_diffusion_forward, forward_inputs, None, api_visibility="private").success(
        handlers.diffusion_forward, forward_inputs, [forward_strip, forward_caption], api_name="diffusion_forward")
    return digit_class


def compare_tab(dataset: gr.Radio) -> list:
    gr.Markdown("The classic VAE / GAN / diffusion comparison (objective, training stability, sample quality, "
                "likelihood, latent space, speed), and the two hybrids against their parents, measured on the "
                "shipped models by `python -m engines.evaluate`: one chart per row, each bar ± its standard error "
                "and the row's verdict in its title.")
    charts = gr.Image(label="The comparison at a glance", type="filepath", show_label=False)
    verdicts = gr.Markdown(label="Verdicts")
    with gr.Accordion("The whole report: every table, method and tolerance, and the plots behind it", open=False):
        report = gr.Markdown(label="Report")
        losses = gr.Image(label="Training losses", type="filepath")
        quality = gr.Image(label="Quality during training", type="filepath")
        steps = gr.Image(label="Diffusion: quality against steps", type="filepath")
        levels = gr.Image(label="Diffusion as a hierarchical VAE: the bound by level", type="filepath")
    outputs = [charts, verdicts, report, losses, quality, steps, levels]
    refresh = gr.Button("Read the report again")
    refresh.click(handlers.compare, dataset, outputs, api_name="compare")
    return outputs


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="The generative lab") as demo:
        gr.Markdown("# The generative lab\n" + INTRO)
        dataset = gr.Radio(handlers.DATASET_CHOICES, value=handlers.DEFAULT_DATASET, label="Dataset",
                           info="whose trained models every tab shows (each loads once)", elem_id="dataset")
        with gr.Tab("Side by side"):
            first_inputs, first_outputs = side_by_side_tab(dataset)
        with gr.Tab("VAE latent space"):
            classes = vae_tab(dataset)
        with gr.Tab("GAN sampling"):
            gan_tab(dataset)
        with gr.Tab("Diffusion, step by step"):
            classes.append(diffusion_tab(dataset))
        with gr.Tab("Compare") as compare:
            compare_outputs = compare_tab(dataset)
        with gr.Tab("Connections"):
            classes.append(connections.build_tab(dataset))
        with gr.Tab("2-D playground"):
            playground.build_tab()
        # Show before asking: the landing tab opens on the default seed's samples, not on empty frames, and a new
        # dataset shows its samples and its report at once.
        demo.load(handlers.first_visit, None, first_outputs, api_name="first_visit")
        compare.select(handlers.compare, dataset, compare_outputs, api_visibility="private")   # opens on its charts
        dataset.change(handlers.class_dropdowns, dataset, classes, api_visibility="private").then(
            handlers.side_by_side, first_inputs, first_outputs, api_visibility="private").then(
            handlers.compare, dataset, compare_outputs, api_visibility="private")
    return demo
