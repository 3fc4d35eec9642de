"""The "Diffusion, step by step" tab: a trajectory streamed as it denoises (x_t and the predicted x0), then
scrubbed and animated; the diffusion GAN's few steps and the flow-matching ODE shown the same way; guidance step by
step (the conditional and unconditional predictions and their guided mix); and the forward (noising) process."""
from __future__ import annotations

from functools import lru_cache

import gradio as gr
import numpy as np
import torch

from app import inputs, theory
from app.images import SERVED_MAX_AGE_S, grid_image, pinned, pixel_bytes, save_gif, side_by_side_frame
from app.inputs import (
    DEFAULT_DATASET,
    MAX_PATH_STEPS,
    MAX_TRACE_SAMPLES,
    checked_by,
    engine,
    pick_digit,
    ships,
    timed,
    user_error,
    validations,
)
from app.serving import FIRST_IN_LINE, TRAJECTORY_POOL, SharedResults
from app.widgets import digit_picker, math_panel, model_buttons, picture, sampler_controls, seed_box
from engines import registry
from engines.data.datasets import LAB_DATASET_TITLES, from_signed
from engines.errors import EngineError
from engines.measure import guide
from engines.measure.recognition import recognise

STREAMED_FRAMES = 25   # frames shown while denoising, whatever the step count
STORED_FRAMES = 100    # frames kept for the scrubber and the GIF


def timestep_text(t: float) -> str:
    """A diffusion timestep in 0..T-1: Karras-type schedulers (Euler, Heun) step on fractional ones, and one
    decimal says where, not 591.244873..."""
    return f"{t:.0f}" if t.is_integer() else f"{t:.1f}"


REFLOW = "reflow"   # the family whose few straight steps the tab shows beside the flow's
# The class-conditional family whose trajectory the page's sampler runs: its guidance is shown step by step.
GUIDED = next((f for f in registry.families("conditional") if f.takes_sampler), None)
GUIDED_FIRST_W = 3.0   # past the conditional model: the view shows the extrapolation guidance is


def flow_time_text(t: float) -> str:
    """A flow's time in [0, 1] (1: noise)."""
    return f"{t:.3f}"


def _frame(step, last: bool, total: int, t_text=timestep_text):
    shown = step.prev_sample if last else step.x_t
    label = f"step {step.index + 1}/{total}, t = {t_text(float(step.timestep))}"
    return grid_image(from_signed(shown)), grid_image(from_signed(step.predicted_x0)), label


def check_diffusion_steps(seed, count, sampler, steps, dataset=DEFAULT_DATASET) -> list[dict]:
    """diffusion_steps' validator (see side_by_side.check_side_by_side)."""
    return inputs.sampling_validations(seed, count, sampler, steps, MAX_TRACE_SAMPLES, dataset)


def diffusion_steps(seed, count, sampler, steps, dataset=DEFAULT_DATASET):
    """Stream x_t and the predicted x0 as one trajectory denoises; then keep its frames for the scrubber
    and an animated GIF of the whole trajectory."""
    seed, count, options, dataset = inputs.sampling_inputs(seed, count, sampler, steps, MAX_TRACE_SAMPLES, dataset)
    diffusion = engine("diffusion", dataset)
    total = timed(diffusion.network_evaluations, **options)[0]
    # the same inputs give the same trajectory: a class asking for the same seeds watches one drawing, replayed
    request = (dataset, seed, count, tuple(sorted(options.items())))
    yield from TRAJECTORIES.stream(request, lambda: _stream_trace(lambda: diffusion.trace(count, seed=seed, **options),
                                                                  total), pace_s=REPLAY_PACE_S, asked=FIRST_IN_LINE)


# Trajectories kept to replay; for at most half the time a served file is kept, so that the animation each names
# is still there when it is replayed (app.images sweeps older files).
TRAJECTORIES = SharedResults(size_of=pixel_bytes, max_age_s=SERVED_MAX_AGE_S / 2)
REPLAY_PACE_S = 0.04   # a replayed trajectory still plays its frames (STREAMED_FRAMES of them in about a second)


def check_diffusion_gan_steps(seed, count, dataset=DEFAULT_DATASET) -> list[dict]:
    """diffusion_gan_steps' validator: its inputs, and a diffusion GAN that ships for the dataset."""
    return validations(lambda: inputs.seed(seed), lambda: inputs.count(count, MAX_TRACE_SAMPLES),
                       lambda: engine("diffusion_gan", inputs.dataset_choice(dataset)))


def diffusion_gan_steps(seed, count, dataset=DEFAULT_DATASET):
    """The diffusion GAN's few steps, shown as the diffusion trajectory is: x_t and the generator's x0 per step."""
    seed, count = inputs.seed(seed), inputs.count(count, MAX_TRACE_SAMPLES)
    hybrid = engine("diffusion_gan", inputs.dataset_choice(dataset))
    yield from _stream_trace(lambda: hybrid.trace(count, seed=seed), hybrid.network_evaluations())


def check_flow_steps(seed, count, sampler, steps, dataset=DEFAULT_DATASET) -> list[dict]:
    """flow_steps' validator: the page's inputs, and a flow-matching model that ships for the dataset."""
    return validations(*inputs.sampling_checks(seed, count, sampler, steps, MAX_TRACE_SAMPLES, dataset),
                       lambda: engine("flow", inputs.dataset_choice(dataset)))


def flow_steps(seed, count, sampler, steps, dataset=DEFAULT_DATASET):
    """The flow-matching ODE integrated step by step, shown as the diffusion trajectory is: x_t and the x0 its
    velocity points to (x_t - t v), at as many network evaluations as the page's sampler gives diffusion."""
    seed, count, page, dataset = inputs.sampling_inputs(seed, count, sampler, steps, MAX_TRACE_SAMPLES, dataset)
    options = registry.family("flow").sampling_options(page["sampler"], page["steps"])
    flow = engine("flow", dataset)
    yield from _stream_trace(lambda: flow.trace(count, seed=seed, **options), options["steps"], flow_time_text)


def check_reflow_steps(seed, count, dataset=DEFAULT_DATASET) -> list[dict]:
    """reflow_steps' validator: its inputs, and a reflow model that ships for the dataset."""
    return validations(lambda: inputs.seed(seed), lambda: inputs.count(count, MAX_TRACE_SAMPLES),
                       lambda: engine(REFLOW, inputs.dataset_choice(dataset)))


def reflow_steps(seed, count, dataset=DEFAULT_DATASET):
    """Reflow's ODE in its own few Euler steps, shown as the flow's is: after the first step the predicted x0
    (x_t - t v) is nearly the final image, since its paths are nearly straight."""
    seed, count = inputs.seed(seed), inputs.count(count, MAX_TRACE_SAMPLES)
    options = registry.family(REFLOW).evaluation_options
    reflow = engine(REFLOW, inputs.dataset_choice(dataset))
    yield from _stream_trace(lambda: reflow.trace(count, seed=seed, **options), options["steps"], flow_time_text)


def _stream_trace(trace, total: int, t_text=timestep_text, frame=_frame):
    """Stream a trajectory's `total` steps as frames (at most STREAMED_FRAMES), keep up to STORED_FRAMES of them,
    then give the scrubber and the GIF. `frame(step, last, total, t_text)` makes one frame: its pictures, then its
    label. The outputs: the pictures, the label, stored frames, scrubber, animation."""
    stream_every, store_every = max(1, total // STREAMED_FRAMES), max(1, total // STORED_FRAMES)
    stored = []
    try:
        for index, step in enumerate(trace()):
            last = index == total - 1
            if index % store_every == 0 or last:
                stored.append(frame(step, last, total, t_text))
            if index % stream_every == 0 or last:
                yield *frame(step, last, total, t_text), gr.skip(), gr.skip(), gr.skip()
    except EngineError as e:
        raise user_error(str(e)) from None
    animation = save_gif([side_by_side_frame(*pictures) for *pictures, _ in stored])
    scrubber = gr.Slider(minimum=0, maximum=len(stored) - 1, value=len(stored) - 1, step=1, interactive=True,
                         label=f"Scrub the {len(stored)} stored steps")
    yield *stored[-1], stored, scrubber, animation


def _guided_frame(guided, last: bool, total: int, t_text=timestep_text):
    """x_t (the sample, at the end), the unconditional, conditional and guided x0 of one GuidedStep, its label."""
    x_t, guided_x0, label = _frame(guided.step, last, total, t_text)
    return (x_t, grid_image(from_signed(guided.unconditional_x0)), grid_image(from_signed(guided.conditional_x0)),
            guided_x0, label)


def check_guided_steps(seed, count, sampler, steps, asked, guidance, dataset=DEFAULT_DATASET) -> list[dict]:
    """guided_steps' validator: the page's inputs, the class and w, and a guided model for the dataset."""
    return validations(*inputs.sampling_checks(seed, count, sampler, steps, MAX_TRACE_SAMPLES, dataset),
                       lambda: inputs.asked_class(asked), lambda: guidance_value(guidance),
                       lambda: guided_engine(inputs.dataset_choice(dataset)))


def guidance_value(value) -> float:
    """The guidance scale w from its slider's range, or `user_error`."""
    low, high, _ = GUIDED.knob.slider
    try:
        w = float(value)
    except (TypeError, ValueError):
        w = float("nan")
    if not low <= w <= high:
        raise user_error(f"Guidance w must be a number from {low:g} to {high:g}, got {value!r}")
    return w


def guided_engine(dataset: str):
    if GUIDED is None:
        raise user_error("no class-conditional diffusion model is registered")
    return engine(GUIDED.name, dataset)


def guided_steps(seed, count, sampler, steps, asked, guidance, dataset=DEFAULT_DATASET):
    """Stream one guided trajectory: x_t, and at each step the unconditional, conditional and guided x0 from the
    same x_t; then the scrubber, the GIF (x_t | unconditional | conditional | guided) and what to look at."""
    seed, count, options, dataset = inputs.sampling_inputs(seed, count, sampler, steps, MAX_TRACE_SAMPLES, dataset)
    asked, w, model = inputs.asked_class(asked), guidance_value(guidance), guided_engine(dataset)
    options = {**GUIDED.sampling_options(options["sampler"], options["steps"]), "labels": asked, "guidance": w}
    calls = timed(model.network_evaluations, **{**options, "guidance": 0.0})[0]   # one GuidedStep per call at w 0
    gaps, finished = [], []

    def trace():
        for guided in model.guided_trace(count, seed=seed, **options):
            gaps.append((f"step {len(gaps) + 1}, t = {timestep_text(float(guided.step.timestep))}",
                         float((from_signed(guided.conditional_x0) - from_signed(guided.unconditional_x0)).abs()
                               .mean())))   # as the pictures show them: in [0, 1]
            finished[:] = [guided.step.prev_sample]
            yield guided

    for shown in _stream_trace(trace, calls, frame=_guided_frame):
        yield *shown, gr.skip()
    seen = recognise(from_signed(finished[0]), dataset)
    asked_names = [seen.class_names[c] for c in model.labels_for(count, asked).tolist()]
    yield *[gr.skip()] * 8, guide.guided_denoising(asked_names, w, gaps, seen)


def diffusion_scrub(stored, position):
    """Show one stored frame of the last trajectory (no sampling: the frames are kept from the run)."""
    if not stored:
        raise user_error("Denoise first: the scrubber moves through the steps of the last run")
    position = inputs.whole_number(position, "Position", 0, len(stored) - 1)
    return stored[position]


def check_diffusion_forward(index, digit_class, seed, frames, dataset=DEFAULT_DATASET) -> list[dict]:
    """diffusion_forward's validator (see side_by_side.check_side_by_side)."""
    return validations(*inputs.digit_validations(index, digit_class, "Digit", dataset), lambda: inputs.seed(seed),
                       lambda: inputs.whole_number(frames, "Frames", 2, MAX_PATH_STEPS),
                       lambda: inputs.dataset_choice(dataset))


def diffusion_forward(index, digit_class, seed, frames, dataset=DEFAULT_DATASET):
    """The forward (noising) process of one test image: x_t at evenly spaced t, with sqrt(alpha-bar_t)."""
    digit, about = pick_digit(index, digit_class, "Digit", dataset)
    seed, frames = inputs.seed(seed), inputs.whole_number(frames, "Frames", 2, MAX_PATH_STEPS)
    diffusion = engine("diffusion", dataset)
    T = diffusion.num_train_timesteps
    timesteps = torch.linspace(0, T - 1, frames).round().long().tolist()
    noised, _ = timed(diffusion.forward_trace, digit[None], timesteps, seed=seed)
    signal = [diffusion.signal_level(t) for t in timesteps]
    caption = (f"{about}. x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps with one noise draw (seed {seed}); "
               "signal level sqrt(abar_t) per frame: "
               + ", ".join(f"t={t}: {s:.2f}" for t, s in zip(timesteps, signal)))
    return grid_image(from_signed(noised[:, 0]), columns=frames), caption


FIRST_SEED, FIRST_COUNT, FIRST_INDEX, FIRST_FRAMES = 0, 4, 0, 11


@lru_cache(maxsize=None)
@pinned   # kept for the process's life, and so are the files it names
def first_visit(dataset=DEFAULT_DATASET) -> tuple:
    """What the tab shows before any click (the controls' defaults): a finished trajectory, ready to scrub, and
    the forward process of test image #0; computed once per process and dataset."""
    *_, finished = diffusion_steps(FIRST_SEED, FIRST_COUNT, inputs.default_sampler()[0], inputs.DEFAULT_UI_STEPS,
                                   dataset)
    return (*finished, diffusion_guide(inputs.default_sampler()[0], inputs.DEFAULT_UI_STEPS, dataset),
            *diffusion_forward(FIRST_INDEX, "any", FIRST_SEED, FIRST_FRAMES, dataset))


def diffusion_guide(sampler, steps, dataset=DEFAULT_DATASET) -> str:
    """What to look at in a trajectory, with the sampler benchmark's number for this sampler and step count
    (the benchmark measured MNIST's diffusion model)."""
    rows = inputs.benchmark_rows() if dataset == inputs.BENCHMARKED else []
    try:
        steps = int(float(steps))   # the slider may send 50.0
    except (TypeError, ValueError):
        steps = -1                  # refused by the event before this runs; no benchmark row then
    return guide.denoising(rows, sampler, steps)


def denoise_section(dataset: gr.Radio) -> list:
    with gr.Row():
        seed = seed_box(value=FIRST_SEED)
        count = gr.Slider(1, MAX_TRACE_SAMPLES, FIRST_COUNT, step=1, label="Samples")
        sampler, steps = sampler_controls()
    with gr.Row():
        run = gr.Button("Denoise", variant="primary")
        hybrid_label = "Denoise with the diffusion GAN (its 4 steps)"
        hybrid = gr.Button(hybrid_label)
        model_buttons(dataset, [(hybrid, hybrid_label, "diffusion_gan")])
        # shown where a flow-matching model ships for some dataset (MNIST today); elsewhere it refuses, saying so
        flow = gr.Button("Integrate the flow-matching ODE (as many evaluations)",
                         visible=any(inputs.ships("flow", d) for d in LAB_DATASET_TITLES))
        reflow_options = registry.family(REFLOW).evaluation_options
        reflow = gr.Button(f"Integrate reflow's ODE (its {reflow_options['steps']} {reflow_options['sampler']} steps)",
                           visible=any(inputs.ships(REFLOW, d) for d in LAB_DATASET_TITLES))
    status = gr.Markdown(label="Step")
    what = gr.Markdown(label="What to look at (diffusion)")
    with gr.Row():
        x_t = picture(label="x_t", type="pil", format="png")
        x0 = picture(label="predicted x0", type="pil", format="png")
        animation = picture(label="The whole trajectory (GIF: x_t | predicted x0)", type="filepath")
    stored = gr.State([])
    scrubber = gr.Slider(0, 1, 0, step=1, label="Scrub the stored steps (after a run)", interactive=False)
    shown = [x_t, x0, status, stored, scrubber, animation]
    run.click(diffusion_steps, [seed, count, sampler, steps, dataset], shown, api_name="diffusion_steps",
              **checked_by(check_diffusion_steps), **TRAJECTORY_POOL).success(
        diffusion_guide, [sampler, steps, dataset], what, api_visibility="private")
    hybrid.click(diffusion_gan_steps, [seed, count, dataset], shown, api_name="diffusion_gan_steps",
                 **checked_by(check_diffusion_gan_steps))
    flow.click(flow_steps, [seed, count, sampler, steps, dataset], shown, api_name="flow_steps",
               **checked_by(check_flow_steps))
    reflow.click(reflow_steps, [seed, count, dataset], shown, api_name="reflow_steps",
                 **checked_by(check_reflow_steps))
    scrubber.release(diffusion_scrub, [stored, scrubber], [x_t, x0, status], api_name="diffusion_scrub")
    return [*shown, what], [seed, count, sampler, steps]


FIRST_ASKED = "7"


@lru_cache(maxsize=None)
@pinned
def guided_first_visit(dataset=DEFAULT_DATASET) -> tuple:
    """What the guidance view shows before any click: the controls' defaults run to the end where the guided model
    ships; elsewhere empty pictures and the reason."""
    if not ships(GUIDED.name, dataset):
        trained = [LAB_DATASET_TITLES[d] for d in LAB_DATASET_TITLES if ships(GUIDED.name, d)]
        return (*[None] * 5, [], gr.Slider(0, 1, 0, interactive=False), None,
                f"No {GUIDED.title} model ships for {LAB_DATASET_TITLES[dataset]} yet (it ships for "
                f"{' and '.join(trained) or 'no dataset yet'}): choose that dataset above to see guidance at work.")
    *_, finished, words = guided_steps(FIRST_SEED, FIRST_COUNT, inputs.default_sampler()[0],
                                       inputs.DEFAULT_UI_STEPS, FIRST_ASKED, GUIDED_FIRST_W, dataset)
    stored = finished[5]
    # open on the stored step where the two predictions' pictures differ most: where guidance has work to do
    apart = [np.abs(np.asarray(frame[1], dtype=float) - np.asarray(frame[2], dtype=float)).mean() for frame in stored]
    shown = int(np.argmax(apart))
    scrubber = gr.Slider(minimum=0, maximum=len(stored) - 1, value=shown, step=1, interactive=True,
                         label=f"Scrub the {len(stored)} stored steps (opened where the two predictions differ most)")
    return (*stored[shown], stored, scrubber, finished[7], words[-1])


def guidance_section(dataset: gr.Radio, controls: list, first_visits: list) -> gr.Dropdown:
    """Classifier-free guidance step by step, from the denoising controls above (seed, samples, sampler, steps)
    plus a class and w; returns its class dropdown."""
    gr.Markdown(f"### Guidance, step by step ({GUIDED.title})\n"
                "One network predicts the noise twice at each step, told the class and not told it; the sampler "
                "steps along their mix. Shown as the finished image each prediction points to. Uses the seed, "
                "samples, sampler and steps above.")
    with gr.Row():
        asked = gr.Dropdown(inputs.class_choices(DEFAULT_DATASET), value=FIRST_ASKED, label="Class asked",
                            info="'any': each sample its own class, 0, 1, 2, ... in turn")
        low, high, step = GUIDED.knob.slider
        guidance = gr.Slider(low, high, GUIDED_FIRST_W, step=step, label=f"Guidance {GUIDED.knob.symbol}",
                             info="0: unconditional, 1: conditional as trained, more: pushed further along the "
                                  "class's direction (twice the network evaluations at every w here)")
        run = gr.Button("Denoise, guided", variant="primary")
        model_buttons(dataset, [(run, "Denoise, guided", GUIDED.name)])
    with gr.Column(elem_id="guided-steps"):
        status = gr.Markdown(label="Guided step")
        with gr.Row():
            pictures = [picture(label=label, type="pil", format="png") for label in
                        ("x_t", "unconditional x0 (no class)", "conditional x0 (told the class)",
                         f"guided x0 (the sampler's, at {GUIDED.knob.symbol})")]
        stored = gr.State([])
        scrubber = gr.Slider(0, 1, 0, step=1, label="Scrub the stored steps (after a run): the two predictions "
                                                    "differ most early", interactive=False)
        what = gr.Markdown(label="What to look at (guidance)")
        animation = picture(label="The whole trajectory (GIF: x_t | unconditional | conditional | guided)",
                            type="filepath")
    shown = [*pictures, status, stored, scrubber, animation, what]
    run.click(guided_steps, [*controls, asked, guidance, dataset], shown, api_name="guided_steps",
              **checked_by(check_guided_steps))
    scrubber.release(diffusion_scrub, [stored, scrubber], [*pictures, status], api_name="guided_scrub")
    first_visits.append((guided_first_visit, shown))
    return asked


def build(dataset: gr.Radio, first_visits: list) -> list[gr.Dropdown]:
    """The tab; returns its class dropdowns (the page renames their classes when the dataset changes) and appends
    its first visits (function of the dataset, outputs) to `first_visits`."""
    math_panel(theory.DIFFUSION)
    denoised, controls = denoise_section(dataset)
    gr.Markdown("### The forward process: noising a digit")
    with gr.Row():
        index, digit_class = digit_picker("Digit", FIRST_INDEX)
        noise_seed = seed_box("Noise seed", FIRST_SEED)
        frames = gr.Slider(2, MAX_PATH_STEPS, FIRST_FRAMES, step=1, label="Frames")
    forward = gr.Button("Noise it")
    forward_strip = picture(label="x_t from t = 0 to T - 1", type="pil", format="png")
    forward_caption = gr.Markdown(label="Forward process caption")
    forward.click(diffusion_forward, [index, digit_class, noise_seed, frames, dataset],
                  [forward_strip, forward_caption], api_name="diffusion_forward",
                  **checked_by(check_diffusion_forward))
    first_visits.append((first_visit, [*denoised, forward_strip, forward_caption]))
    guided = ([guidance_section(dataset, controls, first_visits)]
              if GUIDED is not None and any(ships(GUIDED.name, d) for d in LAB_DATASET_TITLES) else [])
    return [digit_class, *guided]
