"""The GAN tab's "Is it copying its training images?" section (for any family): a seed's samples above their
nearest training images (pixel distance), each distance read against held-out test
images' own (engines/measure/memorisation.py)."""
from __future__ import annotations

import gradio as gr
import torch

from app import inputs
from app.images import labelled_grid
from app.inputs import DEFAULT_DATASET, checked_by, engine, ships, validations
from app.widgets import picture, seed_box
from engines import registry
from engines.data.datasets import LAB_DATASET_TITLES
from engines.measure.memorisation import COPY_PERCENTILE, copying_verdict, nearest_training

MAX_NEAREST = 12
FIRST_FAMILY, FIRST_SEED, FIRST_COUNT = "gan", 0, 8


def family_choices() -> list[tuple[str, str]]:
    return [(family.title, family.name) for family in registry.families()]


def _family(name, dataset) -> str:
    name = inputs.choice(name, "family", [f.name for f in registry.families()])
    if not ships(name, dataset):
        raise inputs.user_error(f"{registry.family(name).title} is not trained for {LAB_DATASET_TITLES[dataset]}: "
                                "choose another family")
    return name


def check_nearest(family, seed, count, dataset=DEFAULT_DATASET) -> list[dict]:
    """nearest_training_images's validator."""
    return validations(lambda: _family(family, inputs.dataset_choice(dataset)), lambda: inputs.seed(seed),
                       lambda: inputs.count(count, MAX_NEAREST), lambda: inputs.dataset_choice(dataset))


def nearest_training_images(family, seed, count, dataset=DEFAULT_DATASET):
    """A seed's samples of `family` (top row) above their nearest training images (bottom row), and the caption
    that reads each distance against the test images'."""
    dataset = inputs.dataset_choice(dataset)
    name, seed, count = _family(family, dataset), inputs.seed(seed), inputs.count(count, MAX_NEAREST)
    record = registry.family(name)
    default = inputs.default_sampler()[0]
    samples = engine(name, dataset).sample(count, seed=seed, **record.sampling_options(default,
                                                                                       inputs.DEFAULT_UI_STEPS))
    neighbours, training = nearest_training(samples, dataset)
    near = [d < neighbours.copy_distance for d in neighbours.distances]
    labels = [f"{p:.0f}%" for p in neighbours.percentiles] + [f"#{i}" for i in neighbours.indices]
    pairs = labelled_grid(torch.cat([samples, training]), labels, [not n for n in near] * 2, columns=count)
    caption = (f"**What to look at.** Top: {record.title}'s samples; below each, the training image nearest to it "
               f"in pixel distance (its index in the training set). The top label is the share of held-out "
               f"test images that are nearer to a training image than this sample is: a low share means the sample "
               f"sits unusually close to one training image; red marks the lowest {COPY_PERCENTILE}% (a possible "
               f"copy, worth a look: is the pair the same image, or only alike?). Here {neighbours.summary()}."
               + report_line(name, dataset))
    return pairs, caption


def report_line(name: str, dataset: str) -> str:
    """What the report measured for the family over its quality samples, where it did."""
    copying = ((inputs.report_of(dataset) or {}).get("quality", {}).get(name) or {}).get("copying")
    if copying is None:
        return ""
    low, high = copying["interval"]
    return (f" Over the report's {copying['n']:,} samples: {copying['possible_copies']} possible copies "
            f"({copying['share']:.1%}, 95% CI {low:.1%}-{high:.1%}), {copying_verdict(copying)}.")


def build(dataset: gr.Radio) -> tuple[list, list]:
    """The section; returns its inputs and outputs (the tab's first visit fills them)."""
    gr.Markdown("### Is it copying its training images?")
    with gr.Row():
        family = gr.Dropdown(family_choices(), value=FIRST_FAMILY, label="Family")
        seed = seed_box(value=FIRST_SEED)
        count = gr.Slider(1, MAX_NEAREST, FIRST_COUNT, step=1, label="Samples")
    run = gr.Button("Find the nearest training images")
    pairs = picture(label="Samples (top) and their nearest training images (bottom)", type="pil", format="png")
    caption = gr.Markdown(label="Nearest training images caption")
    run.click(nearest_training_images, [family, seed, count, dataset], [pairs, caption],
              api_name="nearest_training_images", **checked_by(check_nearest))
    return [family, seed, count], [pairs, caption]
