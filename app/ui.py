"""The lab's layout: tabs that arrange components and wire them to `app.handlers`."""
from __future__ import annotations

import gradio as gr

from app import handlers
from engines.latent import INTERPOLATIONS

INTRO = ("VAE, GAN and diffusion models trained by this project on the same 4,000 MNIST digits, on a CPU. "
         "The same seed always gives the same images.")


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="The generative lab") as demo:
        gr.Markdown("# The generative lab\n" + INTRO)
        with gr.Tab("Side by side"):
            with gr.Row():
                seed = gr.Number(0, label="Seed", precision=0)
                count = gr.Slider(1, handlers.MAX_GRID, 16, step=1, label="Samples per model")
                sampler = gr.Dropdown(handlers.DIFFUSION_SAMPLERS, value="ddim", label="Diffusion sampler")
                steps = gr.Slider(1, handlers.MAX_UI_STEPS, 50, step=1, label="Diffusion steps")
            with gr.Row():
                run = gr.Button("Sample all three", variant="primary")
                new_seed = gr.Button("New seed")
            with gr.Row():
                outputs = []
                for name in ("VAE", "GAN", "Diffusion"):
                    with gr.Column():
                        outputs.append(gr.Image(label=name, type="pil"))
                        outputs.append(gr.Markdown())
            run.click(handlers.side_by_side, [seed, count, sampler, steps], outputs, api_name="side_by_side")
            new_seed.click(lambda s: int(s or 0) + 1, seed, seed, api_name="new_seed").then(
                handlers.side_by_side, [seed, count, sampler, steps], outputs, api_name=False)

        with gr.Tab("VAE latent space"):
            with gr.Row():
                index_a = gr.Number(0, label="Digit A (test split index)", precision=0)
                index_b = gr.Number(1, label="Digit B (test split index)", precision=0)
                vae_steps = gr.Slider(2, 32, 10, step=1, label="Steps")
                method = gr.Radio(list(INTERPOLATIONS), value="slerp", label="Path")
            vae_run = gr.Button("Interpolate", variant="primary")
            strip = gr.Image(label="Decoded path from A to B", type="pil")
            recon = gr.Image(label="A, B (top) and their reconstructions (bottom)", type="pil")
            vae_run.click(handlers.vae_interpolate, [index_a, index_b, vae_steps, method], [strip, recon],
                          api_name="vae_interpolate")

        with gr.Tab("GAN sampling"):
            with gr.Row():
                gan_seed = gr.Number(0, label="Seed", precision=0)
                gan_count = gr.Slider(1, handlers.MAX_GRID, 36, step=1, label="Samples")
                truncation = gr.Slider(0, 3, 0, step=0.05, label="Truncation (0 = off)")
            gan_run = gr.Button("Sample", variant="primary")
            gan_grid = gr.Image(label="GAN samples", type="pil")
            gan_caption = gr.Markdown()
            gan_run.click(handlers.gan_sample, [gan_seed, gan_count, truncation], [gan_grid, gan_caption],
                          api_name="gan_sample")

        with gr.Tab("Diffusion, step by step"):
            with gr.Row():
                d_seed = gr.Number(0, label="Seed", precision=0)
                d_count = gr.Slider(1, 16, 4, step=1, label="Samples")
                d_sampler = gr.Dropdown(handlers.DIFFUSION_SAMPLERS, value="ddim", label="Sampler")
                d_steps = gr.Slider(1, handlers.MAX_UI_STEPS, 50, step=1, label="Steps")
            d_run = gr.Button("Denoise", variant="primary")
            with gr.Row():
                x_t = gr.Image(label="x_t", type="pil")
                x0 = gr.Image(label="predicted x0", type="pil")
            d_status = gr.Markdown()
            d_run.click(handlers.diffusion_steps, [d_seed, d_count, d_sampler, d_steps], [x_t, x0, d_status],
                        api_name="diffusion_steps")
    return demo
