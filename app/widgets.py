"""Components and small pieces of browser behaviour shared by the tabs."""
from __future__ import annotations

import gradio as gr
from PIL import Image

from app import inputs, theory
from app.images import png_file
from engines.data.datasets import LAB_DATASET_TITLES

SAMPLER_HELP = ("ddpm / ddim are the lab's own samplers; diffusers:* are diffusers' schedulers run on the same "
                "network and noise schedule. ")


def picture(*args, **kwargs) -> gr.Image:
    """A gr.Image output whose PIL pictures are served from files written atomically (app.images.png_file), for
    wherever the same picture can go to several visitors at once. (An instance's postprocess, not a subclass:
    Gradio writes a .pyi stub beside every module that subclasses a component.)"""
    image = gr.Image(*args, **kwargs)
    served = image.postprocess
    image.postprocess = lambda value: served(png_file(value) if isinstance(value, Image.Image) else value)
    return image


def math_panel(text: str) -> None:
    """The equations behind a view, folded away until asked for."""
    with gr.Accordion("The math behind this view", open=False):
        gr.Markdown(text, latex_delimiters=theory.LATEX)


def seed_box(label: str = "Seed", value: int = 0) -> gr.Number:
    return gr.Number(value, label=label, minimum=0, maximum=inputs.MAX_SEED, step=1)


def sampler_controls() -> tuple[gr.Dropdown, gr.Slider]:
    default, why = inputs.default_sampler()
    sampler = gr.Dropdown(inputs.DIFFUSION_SAMPLERS, value=default, label="Diffusion sampler",
                          info=SAMPLER_HELP + why)
    return sampler, gr.Slider(1, inputs.MAX_UI_STEPS, inputs.DEFAULT_UI_STEPS, step=1, label="Diffusion steps")


def digit_picker(label: str, index: int, digit_class: str = "any") -> tuple[gr.Number, gr.Dropdown]:
    with gr.Group():
        digit_class = gr.Dropdown(inputs.DIGIT_CLASSES, value=digit_class, label=f"{label}: class",
                                  info="'any': the index counts over all 1,000 test digits")
        # No `minimum`: the events' validators refuse a bad index with the lab's message (the VAE's event keeps
        # Gradio's preprocessing for its upload, where a Number's own minimum would answer a bare 400 first).
        index = gr.Number(index, label=f"{label}: index", step=1)
    return index, digit_class


def class_dropdowns(dataset, count: int = 4) -> tuple:
    """The page's `count` class dropdowns renamed for a dataset (their values, and so any chosen class, stay)."""
    choices = inputs.class_choices(dataset)
    return tuple(gr.Dropdown(choices=choices) for _ in range(count))


def pick_brush(elem_id: str) -> str:
    """Browser code that selects a sketchpad's brush once it is on the page, so that the first stroke draws
    (Gradio's editor opens with no tool selected and ignores strokes until one is picked). Run when the folded
    panel holding the sketchpad opens; it retries for a few seconds while the panel renders."""
    return ("() => { let tries = 0; const pick = () => { "
            f"const brush = document.querySelector('#{elem_id} button[aria-label=\"Brush\"]'); "
            "if (brush && brush.offsetParent !== null) { if (!brush.classList.contains('highlight')) brush.click(); }"
            " else if (tries++ < 30) setTimeout(pick, 100); }; setTimeout(pick, 100); }")


def button_states(buttons: list[tuple[object, str, str]], chosen: str) -> list[gr.Button]:
    """Each model button's state on dataset `chosen`: enabled with its label where the family ships, disabled
    with "<label>: not trained for <dataset>" where it does not."""
    title = LAB_DATASET_TITLES.get(chosen, str(chosen)).split(" (")[0]
    return [gr.Button(value=label if inputs.ships(name, chosen) else f"{label}: not trained for {title}",
                      interactive=inputs.ships(name, chosen)) for _, label, name in buttons]


def model_buttons(dataset: gr.Radio, buttons: list[tuple[gr.Button, str, str]]) -> None:
    """Buttons that run one family's model (button, its label, the family's name): on a dataset where that model
    does not ship, each is disabled and its label says so; enabled again where it does."""
    def states(chosen):
        updates = button_states(buttons, chosen)
        return updates[0] if len(updates) == 1 else updates   # one output takes the value itself, not a list
    dataset.change(states, dataset, [button for button, _, _ in buttons], api_visibility="private")
