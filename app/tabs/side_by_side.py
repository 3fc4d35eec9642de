"""The "Side by side" tab: one seed, one grid per registered family (its title, colour and caption from its
record), each captioned with wall time and network evaluations per sample; a family with a fidelity-diversity
knob (its record's `knob`) has it as a slider under its grid; "Ask for a class" asks every conditional family
(its record's `conditional`) for one class, from the same seed."""
from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from functools import lru_cache

import gradio as gr
import torch
from matplotlib.colors import to_hex

from app import inputs, theory
from app.images import grid_image, labelled_grid, pixel_bytes
from app.inputs import DEFAULT_DATASET, MAX_GRID, checked_by, engine, report_of, ships, timed
from app.serving import SHARED_POOL, SHARED_RESULTS, SharedResults
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


def knobbed() -> list[Family]:
    """The registered families with a fidelity-diversity knob, each a slider on the page (in registry order)."""
    return [f for f in families() if f.knob is not None]


def knob_settings(positions: dict | None) -> dict[str, dict]:
    """{family name: its sampling option} from the sliders' positions ({family name: position}; a family left
    out, or the slider at its default, samples the model as trained), or `user_error`."""
    settings = {}
    for family in knobbed():
        position = (positions or {}).get(family.name)
        if position is None:
            continue
        what = f"{family.heading} {family.knob.option}"
        try:
            value = family.knob.from_slider(float(position))
        except (TypeError, ValueError) as e:
            raise inputs.user_error(f"{what}: {e}" if isinstance(position, (int, float)) else
                                    f"{what} must be a number, got {position!r}") from None
        if value != family.knob.neutral:
            settings[family.name] = {family.knob.option: value}
    return settings


def check_side_by_side(seed, count, sampler, steps, dataset=DEFAULT_DATASET, labelled=False, asked="any",
                       *positions) -> list[dict]:
    """side_by_side's validator: its input checks alone, run before the event (a refused input then shows its
    message and leaves the previous pictures in place); `positions`: the knob sliders', in `knobbed()` order."""
    names = [f.name for f in knobbed()]
    return (inputs.sampling_validations(seed, count, sampler, steps, MAX_GRID, dataset) + [gr.validate(True, "")]
            + inputs.validations(lambda: inputs.asked_class(asked),
                                 *(lambda name=name, position=position: knob_settings({name: position})
                                   for name, position in zip(names, positions))))


def family_grid(family: Family, seed: int, count: int, page: dict, dataset: str, progress,
                labelled: bool = False, knob: dict | None = None,
                asked: int | None = None) -> tuple[list, Recognition | None]:
    """One family's grid and caption, and what the lab's classifier sees in it when `labelled` (then drawn over
    the grid). A family that takes the page's sampler runs through its trace, so that the page shows its progress
    (the result is sample()'s, bit for bit); a family that does not ship for the dataset gets no grid and a caption
    that says so. `knob`: its knob's sampling option where the page turned it ({"temperature": 0.6}); `asked`: the
    class a conditional family is asked for (an unconditional one says it cannot be asked)."""
    if not ships(family.name, dataset):
        trained = [LAB_DATASET_TITLES[d].split(" (")[0] for d in LAB_DATASET_TITLES if ships(family.name, d)]
        return [None, f"{family.heading}: not trained for {LAB_DATASET_TITLES[dataset]} (it ships for "
                      f"{' and '.join(trained) or 'no dataset yet'})"], None
    options = {**family.sampling_options(page["sampler"], page["steps"]), **(knob or {}),
               **({"labels": asked} if asked is not None and family.conditional else {})}
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
               f"evaluation{'s' if nfe > 1 else ''} per sample{family.caption.format(**options)}"
               + "".join(f", {family.knob.label(value)}" for value in (knob or {}).values())
               + (("" if family.conditional else ". Unconditional: it cannot be asked for a class, these are "
                   "its samples as drawn") if asked is not None else ""))
    if not labelled:
        return [grid_image(images), caption], None
    seen = recognise(images, dataset)
    return [labelled_grid(images, [seen.label(i) for i in range(count)], seen.recognisable),
            f"{caption}. Classifier: {seen.summary()}"], seen


def side_by_side(seed, count, sampler, steps, dataset=DEFAULT_DATASET, labelled=False, knobs=None, asked="any",
                 progress=gr.Progress()):
    """One seed -> a grid of `dataset` per registered family, each captioned with wall time and network
    evaluations (and, `labelled`, each sample marked with what the lab's classifier sees), then what to look at
    in them. `knobs`: {family name: its knob slider's position}; a family left out samples as trained. `asked`: a
    class ("0".."9"; "any": none) that every conditional family is asked for."""
    seed, count, page, dataset = inputs.sampling_inputs(seed, count, sampler, steps, MAX_GRID, dataset)
    labelled, turned, ask = bool(labelled), knob_settings(knobs), inputs.asked_class(asked)
    outputs, seen = [], {}
    # the same request gives the same pictures: a class asking for the same seeds shares one computation (the
    # captions keep the times measured when they were drawn), and a knob turned redraws its family's grid only
    requests = [(family, (id(family), seed, count, dataset, labelled, ask, tuple(sorted(
        {**family.sampling_options(page["sampler"], page["steps"]), **turned.get(family.name, {})}.items()))))
        for family in families()]
    asked_at = time.monotonic()   # each grid this page draws waits for a drawing slot in the page's place in line
    for family, request in requests:
        grid_and_caption, recognition = GRIDS.get(request, lambda family=family: family_grid(
            family, seed, count, page, dataset, progress, labelled, turned.get(family.name), ask), asked=asked_at)
        outputs += grid_and_caption
        if recognition is not None:
            seen[family.name] = recognition
    return (*outputs, guide.side_by_side(report_of(dataset), seen))


GRIDS = SharedResults(maxsize=8 * SHARED_RESULTS, size_of=pixel_bytes)   # one family's grid each, not a page


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


def with_knob_sliders(names: list[str]):
    """side_by_side as the page's event: its fixed inputs and the class asked, then one slider per knob, named for
    its family (Gradio passes inputs by position, and finds the progress tracker, and names the API's
    parameters, by the function's signature: so the signature lists the sliders)."""
    def event(seed, count, sampler, steps, dataset, labelled, asked, *rest):
        *positions, progress = rest
        return side_by_side(seed, count, sampler, steps, dataset, labelled, dict(zip(names, positions)), asked,
                            progress)
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    event.__signature__ = inspect.Signature(
        [inspect.Parameter(name, positional) for name in list(inspect.signature(side_by_side).parameters)[:6]]
        + [inspect.Parameter("asked", positional, default="any")]
        + [inspect.Parameter(f"{name}_knob", positional, default=None) for name in names]
        + [inspect.Parameter("progress", positional, default=gr.Progress())])
    return event


def knob_slider(family: Family) -> gr.Slider:
    low, high, step = family.knob.slider
    return gr.Slider(low, high, family.knob.slider_default(), step=step,
                     label=f"{family.heading} {family.knob.option} {family.knob.symbol}",
                     info=family.knob.slider_info(), elem_id=f"knob-{family.name}")


def build(dataset: gr.Radio) -> tuple[list, list, Callable, gr.Dropdown]:
    """The tab; returns its inputs, its outputs and the event that fills them from those inputs (the page fills
    them on the first visit and a new dataset), and its class dropdown (renamed with the dataset)."""
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
        asked = gr.Dropdown(inputs.class_choices(DEFAULT_DATASET), value="any", label="Ask for a class",
                            info="every class-conditional model draws this class from the same seed; the others "
                                 "cannot be asked", visible=any(f.conditional for f in families()))
    with gr.Row():
        outputs, sliders = [], []
        for family in families():
            with gr.Column(elem_id=f"side-by-side-{family.name}"):
                outputs.append(picture(label=family.heading, type="pil", format="png"))
                outputs.append(gr.Markdown(label=f"{family.heading} caption"))
                if family.knob is not None:
                    sliders.append(knob_slider(family))
    outputs.append(gr.Markdown(label="What to look at", elem_id="side-by-side-guide"))
    fields = [seed, count, sampler, steps, dataset, labelled, asked, *sliders]
    event = with_knob_sliders([f.name for f in knobbed()])
    # its requests are served from the shared grids where they can be, and draw only in a drawing slot (serving)
    run.click(event, fields, outputs, api_name="side_by_side", **checked_by(check_side_by_side), **SHARED_POOL)
    new_seed.click(next_seed, seed, seed, api_name="new_seed").then(event, fields, outputs, api_visibility="private",
                                                                    **SHARED_POOL)
    for slider in sliders:   # a knob let go redraws the page at the same seed (the other grids come from GRIDS)
        slider.release(event, fields, outputs, api_visibility="private", **checked_by(check_side_by_side),
                       **SHARED_POOL)
    asked.change(event, fields, outputs, api_visibility="private", **checked_by(check_side_by_side), **SHARED_POOL)
    return fields, outputs, event, asked
