"""The "Side by side" tab: one seed, one grid per registered family (its title, colour and caption from its
record), each captioned with wall time and network evaluations per sample."""
from __future__ import annotations

from functools import lru_cache

import gradio as gr
import torch
from matplotlib.colors import to_hex

from app import inputs, theory
from app.images import grid_image, labelled_grid
from app.inputs import DEFAULT_DATASET, MAX_GRID, checked_by, engine, report_of, ships, timed
from app.serving import SharedResults
from app.widgets import math_panel, picture, sampler_controls, seed_box
from engines.data.datasets import LAB_DATASET_TITLES, from_signed
from engines.family import Family
from engines.measure import guide
from engines.measure.recognition import Recognition, recognise
from engines.registry import families

FIRST_VISIT_SEED, FIRST_VISIT_COUNT = 0, 16
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def run_label() -> str:
    """The button's words: "Sample all five" for five registered families."""
    n = len(families())
    return f"Sample all {NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else n}"


def colour_css() -> str:
    """Each family's grid marked with its chart colour (a bar along its column's top)."""
    return " ".join(f"#side-by-side-{f.name} {{ border-top: 4px solid {to_hex(f.colour)}; padding-top: 4px; }}"
                    for f in families())


def check_side_by_side(seed, count, sampler, steps, dataset=DEFAULT_DATASET, labelled=False) -> list[dict]:
    """side_by_side's validator: its input checks alone, run before the event (a refused input then shows its
    message and leaves the previous pictures in place)."""
    return inputs.sampling_validations(seed, count, sampler, steps, MAX_GRID, dataset) + [gr.validate(True, "")]


def family_grid(family: Family, seed: int, count: int, page: dict, dataset: str, progress,
                labelled: bool = False) -> tuple[list, Recognition | None]:
    """One family's grid and caption, and what the lab's classifier sees in it when `labelled` (then drawn over
    the grid). A family that takes the page's sampler runs through its trace, so that the page shows its progress
    (the result is sample()'s, bit for bit); a family that does not ship for the dataset gets no grid and a caption
    that says so."""
    if not ships(family.name, dataset):
        trained = [LAB_DATASET_TITLES[d].split(" (")[0] for d in LAB_DATASET_TITLES if ships(family.name, d)]
        return [None, f"{family.heading}: not trained for {LAB_DATASET_TITLES[dataset]} (it ships for "
                      f"{' and '.join(trained) or 'no dataset yet'})"], None
    options = family.sampling_options(page["sampler"], page["steps"])
    model = engine(family.name, dataset)
    nfe = timed(model.network_evaluations, **options)[0]

    def denoise() -> torch.Tensor:
        trajectory = model.trace(count, seed=seed, **options)
        for step in progress.tqdm(trajectory, total=nfe, desc=f"{family.title}, {options['sampler']}"):
            last = step
        return from_signed(last.prev_sample)

    sample = denoise if family.takes_sampler else lambda: model.sample(count, seed=seed, **options)
    images, seconds = timed(sample)
    caption = (f"{family.heading}: {seconds * 1000:.0f} ms for {count} samples, {nfe} network "
               f"evaluation{'s' if nfe > 1 else ''} per sample{family.caption.format(**options)}")
    if not labelled:
        return [grid_image(images), caption], None
    seen = recognise(images, dataset)
    return [labelled_grid(images, [seen.label(i) for i in range(count)], seen.recognisable),
            f"{caption}. Classifier: {seen.summary()}"], seen


def side_by_side(seed, count, sampler, steps, dataset=DEFAULT_DATASET, labelled=False, progress=gr.Progress()):
    """One seed -> a grid of `dataset` per registered family, each captioned with wall time and network
    evaluations (and, `labelled`, each sample marked with what the lab's classifier sees), then what to look at
    in them."""
    seed, count, page, dataset = inputs.sampling_inputs(seed, count, sampler, steps, MAX_GRID, dataset)
    labelled = bool(labelled)
    # the same request gives the same pictures: a class asking for the same seeds shares one computation (the
    # captions keep the times measured when they were drawn); the registered families are part of the request
    request = (seed, count, page["sampler"], page["steps"], dataset, labelled, tuple(map(id, families())))
    return PAGES.get(request, lambda: _draw(seed, count, page, dataset, labelled, progress))


PAGES = SharedResults()


def _draw(seed: int, count: int, page: dict, dataset: str, labelled: bool, progress) -> tuple:
    outputs, seen = [], {}
    for family in families():
        grid_and_caption, recognition = family_grid(family, seed, count, page, dataset, progress, labelled)
        outputs += grid_and_caption
        if recognition is not None:
            seen[family.name] = recognition
    return (*outputs, guide.side_by_side(report_of(dataset), seen))


@lru_cache(maxsize=1)
def _first_visit() -> tuple:
    return side_by_side(FIRST_VISIT_SEED, FIRST_VISIT_COUNT, inputs.default_sampler()[0], inputs.DEFAULT_UI_STEPS)


def first_visit() -> tuple:
    """What the landing tab shows before any click: the defaults' samples, computed once per process (the
    same seed gives the same images, so every later visitor gets the first one's result at no cost)."""
    return _first_visit()


def next_seed(seed) -> int:
    """The seed after `seed`; after the largest, the first again (every seed is a valid one)."""
    return (inputs.seed(seed) + 1) % (inputs.MAX_SEED + 1)


def build(dataset: gr.Radio) -> tuple[list, list]:
    """The tab; returns its inputs and outputs (the page fills them on the first visit and a new dataset)."""
    math_panel(theory.SIDE_BY_SIDE)
    with gr.Row():
        seed = seed_box(value=FIRST_VISIT_SEED)
        count = gr.Slider(1, MAX_GRID, FIRST_VISIT_COUNT, step=1, label="Samples per model")
        sampler, steps = sampler_controls()
    with gr.Row():
        run = gr.Button(run_label(), variant="primary")
        new_seed = gr.Button("New seed")
        labelled = gr.Checkbox(False, label="Label each sample with what the lab's classifier sees",
                               info="class and confidence; a red frame: not recognised (confidence < 0.9)")
    with gr.Row():
        outputs = []
        for family in families():
            with gr.Column(elem_id=f"side-by-side-{family.name}"):
                outputs.append(picture(label=family.heading, type="pil", format="png"))
                outputs.append(gr.Markdown(label=f"{family.heading} caption"))
    outputs.append(gr.Markdown(label="What to look at", elem_id="side-by-side-guide"))
    fields = [seed, count, sampler, steps, dataset, labelled]
    run.click(side_by_side, fields, outputs, api_name="side_by_side", **checked_by(check_side_by_side))
    new_seed.click(next_seed, seed, seed, api_name="new_seed").then(
        side_by_side, fields, outputs, api_visibility="private")
    return fields, outputs
