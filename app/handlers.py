"""Event handlers: small adapters from UI values to engine calls. No model maths here.

Engines are loaded once per process and shared: they hold no per-request state (every call makes its own
seeded generator, and every diffusers sampler its own scheduler), so concurrent visitors get their own
seed-determined results.
"""
from __future__ import annotations

import json
import sys
import time
from functools import lru_cache

import gradio as gr
import torch
from PIL import Image

from app import plots
from app.images import grid_image, save_gif, side_by_side_frame
from engines import MAX_SEED, EngineError, load_engine
from engines.checkpoint import LOG_NAME, QUALITY_LOG_NAME, checkpoints_dir, read_jsonl
from engines.data.datasets import LAB_CLASS_NAMES, LAB_DATASET_TITLES, LAB_DATASETS, from_signed, load_lab_split
from engines.data.user_images import is_blank, prepare_digit
from engines.measure.model_card import quality_table
from engines.measure.report_markdown import dataset_verdicts_markdown, verdict_lines
from engines.measure.verdicts import FAMILIES, HYBRIDS
from engines.measure.sampler_benchmark import OUT as BENCHMARK, best_at, markdown_section
from engines.models.diffusion import SAMPLERS
from engines.registry import available_engines
from engines.sampling.diffusers_adapter import PREFIX, SCHEDULERS
from engines.sampling.interpolation import INTERPOLATIONS

MAX_GRID = 64
MAX_UI_STEPS = 1000
DEFAULT_UI_STEPS = 50
MAX_TRACE_SAMPLES = 16
MAX_PATH_STEPS = 32
STREAMED_FRAMES = 25   # frames shown while denoising, whatever the step count
STORED_FRAMES = 100    # frames kept for the scrubber and the GIF
DIFFUSION_SAMPLERS = list(SAMPLERS) + [PREFIX + name for name in SCHEDULERS]
DIGIT_CLASSES = ["any"] + [str(d) for d in range(10)]
LATENT_PATHS, LATENT_PATH_STEPS = 12, 50   # latent diffusion's trajectories on the VAE's latent map
# The lab datasets with shipped models, as the dataset selector offers them; every tab but the playground
# shows the chosen one's models (each loaded once per process). The hybrids ship for MNIST only.
SHIPPED_DATASETS = [name for name in LAB_DATASETS if available_engines(checkpoints_dir(name))]
DATASET_CHOICES = [(LAB_DATASET_TITLES[name], name) for name in SHIPPED_DATASETS]
DEFAULT_DATASET = "mnist"


def dataset_choice(value) -> str:
    return _choice(value, "dataset", SHIPPED_DATASETS)


def ships(name: str, dataset: str) -> bool:
    return name in available_engines(checkpoints_dir(dataset))


@lru_cache(maxsize=None)
def engine(name: str, dataset: str = DEFAULT_DATASET):
    """The shipped `name` model of `dataset`, loaded once; a visitor's request for one that does not ship is
    refused with the reason."""
    if not ships(name, dataset):
        raise user_error(f"no {name.replace('_', ' ')} model ships for {LAB_DATASET_TITLES[dataset]}: the "
                         f"models that do are {', '.join(available_engines(checkpoints_dir(dataset)))}")
    return load_engine(name, dataset=dataset)


@lru_cache(maxsize=None)
def test_digits(dataset: str = DEFAULT_DATASET):
    """The dataset's 1,000 judging test images (Fashion-MNIST's need Debian's dataset-fashion-mnist)."""
    return _timed(load_lab_split, dataset, "test")[0]


def class_choices(dataset) -> list[tuple[str, str]]:
    """The class dropdown's choices for a dataset: (label, value), the values always DIGIT_CLASSES."""
    names = LAB_CLASS_NAMES[dataset_choice(dataset)]
    names = [name if name == str(d) else f"{d} {name}" for d, name in enumerate(names)]
    return [("any", "any")] + list(zip(names, DIGIT_CLASSES[1:]))


def class_dropdowns(dataset) -> tuple:
    """The four class dropdowns renamed for a dataset (their values, and so any chosen class, stay)."""
    choices = class_choices(dataset)
    return tuple(gr.Dropdown(choices=choices) for _ in range(4))


def class_name(digits, label: int) -> str:
    return digits.class_names[label] if digits.class_names else str(label)


def user_error(message: str) -> gr.Error:
    """A refusal of a visitor's input: shown to them as a toast; the server logs one line, not a traceback
    (bad input is not a fault of the server)."""
    print(f"refused input: {message}", file=sys.stderr, flush=True)
    return gr.Error(message, print_exception=False)


def whole_number(value, what: str, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise user_error(f"{what} must be a whole number between {low} and {high}") from None
    if not number.is_integer() or not low <= number <= high:
        raise user_error(f"{what} must be a whole number between {low} and {high}, got {value}")
    return int(number)


def _choice(value, what: str, choices) -> str:
    if value not in choices:
        raise user_error(f"unknown {what} {value!r}: choose one of {', '.join(map(str, choices))}")
    return value


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
    except EngineError as e:
        raise user_error(str(e)) from None
    return out, time.perf_counter() - start


def _diffusion_options(sampler, steps, dataset: str = DEFAULT_DATASET) -> dict:
    """The sampler and step count, refused with a reason where the chain would not start from noise."""
    sampler = _choice(sampler, "sampler", DIFFUSION_SAMPLERS)
    steps = whole_number(steps, "Diffusion steps", 1, MAX_UI_STEPS)
    diffusion = engine("diffusion", dataset)
    fewest = diffusion.fewest_steps(sampler)
    if steps < fewest:
        raise user_error(f"{sampler} needs at least {fewest} steps: with {steps} its chain starts at "
                       f"t = {diffusion.first_timestep(sampler, steps):.0f} instead of near "
                       f"t = {diffusion.num_train_timesteps - 1}, so the pure noise it starts from is never "
                       f"denoised.")
    return {"sampler": sampler, "steps": steps}


def default_sampler(steps: int = DEFAULT_UI_STEPS) -> tuple[str, str]:
    """The sampler the diffusion controls start on: the best at `steps` steps in the lab's sampler benchmark
    (ancestral DDPM where it has not been run), and a sentence saying why."""
    best = best_at(steps, BENCHMARK)
    if best is None:
        return "ddpm", f"Default: ancestral DDPM ({steps} steps)."
    row, ddim = best
    versus = f"; DDIM's {ddim['frechet_distance']:.1f}" if ddim and ddim is not row else ""
    return row["sampler"], (f"Default: {row['sampler']}, the best {steps}-step sampler in the lab's benchmark on "
                            f"MNIST (Frechet distance {row['frechet_distance']:.1f}{versus}; lower is better; the "
                            f"same default serves Fashion-MNIST, not benchmarked).")


def _sampling_inputs(seed, count, sampler, steps, cap: int, dataset) -> tuple[int, int, dict, str]:
    dataset = dataset_choice(dataset)
    return whole_number(seed, "Seed", 0, MAX_SEED), whole_number(count, "Count", 1, cap), \
        _diffusion_options(sampler, steps, dataset), dataset


def check_side_by_side(seed, count, sampler, steps, dataset=DEFAULT_DATASET) -> None:
    """side_by_side's input checks alone. The page runs them first: a refused input then shows its message and
    leaves the previous pictures in place (a failing event would mark every output of the event as failed)."""
    _sampling_inputs(seed, count, sampler, steps, MAX_GRID, dataset)


def check_diffusion_steps(seed, count, sampler, steps, dataset=DEFAULT_DATASET) -> None:
    """diffusion_steps' input checks alone (see check_side_by_side)."""
    _sampling_inputs(seed, count, sampler, steps, MAX_TRACE_SAMPLES, dataset)


# --- side by side ---------------------------------------------------------------------------------

SIDE_BY_SIDE = ("vae", "gan", "diffusion", "latent_diffusion", "diffusion_gan")


def latent_options(options: dict) -> dict:
    """Latent diffusion samples with our own samplers only: the chosen one where it is ours, else DDIM, with the
    same number of steps (its MLP makes even 1000 steps cheap)."""
    sampler = options["sampler"] if options["sampler"] in SAMPLERS else "ddim"
    return {"sampler": sampler, "steps": options["steps"]}


def network_evaluations(name: str, dataset: str, options: dict) -> int:
    """Network calls per sample of `name` as Side by side samples it."""
    if name in ("vae", "gan"):
        return 1
    if name == "diffusion_gan":
        return engine(name, dataset).network_evaluations()
    return _timed(engine(name, dataset).network_evaluations, **options)[0]


def side_by_side(seed, count, sampler, steps, dataset=DEFAULT_DATASET, progress=gr.Progress()):
    """One seed -> VAE, GAN, diffusion, latent diffusion and diffusion GAN grids of `dataset`, each captioned
    with wall time and network evaluations (a model that does not ship for the dataset: no grid, a caption
    that says so). Diffusion runs through its trace so the page shows its progress; the result is sample()'s,
    bit for bit."""
    seed, count, options, dataset = _sampling_inputs(seed, count, sampler, steps, MAX_GRID, dataset)
    latent = latent_options(options)

    def denoise() -> torch.Tensor:
        trajectory = engine("diffusion", dataset).trace(count, seed=seed, **options)
        total = network_evaluations("diffusion", dataset, options)
        for step in progress.tqdm(trajectory, total=total, desc=f"diffusion, {options['sampler']}"):
            last = step
        return from_signed(last.prev_sample)

    def run(name: str) -> torch.Tensor:
        if name == "diffusion":
            return denoise()
        return engine(name, dataset).sample(count, seed=seed, **(latent if name == "latent_diffusion" else {}))

    outputs = []
    for name in SIDE_BY_SIDE:
        if not ships(name, dataset):
            outputs += [None, f"{name}: not trained for {LAB_DATASET_TITLES[dataset]} (the hybrids ship for MNIST)"]
            continue
        images, seconds = _timed(run, name)
        nfe = network_evaluations(name, dataset, latent if name == "latent_diffusion" else options)
        how = {"latent_diffusion": f" ({latent['sampler']}, the VAE's decoder)",
               "diffusion_gan": " (its own few steps, one generator call each, whatever the sampler)"}.get(name, "")
        outputs += [grid_image(images), f"{name}: {seconds * 1000:.0f} ms for {count} samples, {nfe} network "
                                        f"evaluation{'s' if nfe > 1 else ''} per sample{how}"]
    return tuple(outputs)


FIRST_VISIT_SEED, FIRST_VISIT_COUNT = 0, 16


@lru_cache(maxsize=1)
def _first_visit() -> tuple:
    return side_by_side(FIRST_VISIT_SEED, FIRST_VISIT_COUNT, default_sampler()[0], DEFAULT_UI_STEPS)


def first_visit() -> tuple:
    """What the landing tab shows before any click: the defaults' samples, computed once per process (the
    same seed gives the same images, so every later visitor gets the first one's result at no cost)."""
    return _first_visit()


# --- VAE latent space -----------------------------------------------------------------------------

def pick_digit(index, digit_class, what: str, dataset=DEFAULT_DATASET) -> tuple[torch.Tensor, str]:
    """The index-th test image of the dataset, or the index-th test image of a class."""
    digits = test_digits(dataset_choice(dataset))
    noun = "digit" if dataset == "mnist" else "image"
    digit_class = _choice(str(digit_class), f"{what} class", DIGIT_CLASSES)
    if digit_class == "any":
        i = whole_number(index, f"{what} index", 0, len(digits) - 1)
        return digits.images[i], f"{what}: test {noun} #{i} (a {class_name(digits, int(digits.labels[i]))})"
    members = torch.nonzero(digits.labels == int(digit_class)).flatten()
    k = whole_number(index, f"{what} index within class {digit_class}", 0, len(members) - 1)
    return digits.images[members[k]], (f"{what}: test {class_name(digits, int(digit_class))} no. {k} "
                                       f"(test {noun} #{int(members[k])})")


def visitor_digit(upload, sketch) -> tuple[torch.Tensor, list[str]] | None:
    """A drawn digit (sketchpad composite) or an uploaded file, converted; None when neither is given."""
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    sources = [("drawing", composite), ("upload", upload)]
    for what, source in sources:
        if source is None or (what == "drawing" and _blank_canvas(source)):
            continue
        try:
            digit, notes = prepare_digit(source)
        except EngineError as e:
            raise user_error(f"Your {what}: {e}") from None
        return digit, [f"Digit A is your {what}: " + "; ".join(notes) + "."]
    return None


def _blank_canvas(image) -> bool:
    """An untouched sketchpad: nothing drawn is not an error, it means 'use the test digit'."""
    return isinstance(image, Image.Image) and is_blank(image)


def vae_interpolate(index_a, index_b, steps, method, class_a="any", class_b="any", upload_a=None, sketch_a=None,
                    dataset=DEFAULT_DATASET):
    """Decode the latent path from digit A to digit B: the strip, an animation, and the reconstructions."""
    steps = whole_number(steps, "Steps", 2, MAX_PATH_STEPS)
    method = _choice(method, "path", INTERPOLATIONS)
    dataset = dataset_choice(dataset)
    digit_b, about_b = pick_digit(index_b, class_b, "Digit B", dataset)
    from_visitor = visitor_digit(upload_a, sketch_a)
    if from_visitor is None:
        digit_a, about_a = pick_digit(index_a, class_a, "Digit A", dataset)
        notes = [about_a + ".", about_b + "."]
    else:
        digit_a, notes = from_visitor
        notes.append(about_b + ".")
    vae = engine("vae", dataset)
    path, _ = _timed(vae.interpolate, digit_a, digit_b, steps=steps, method=method)
    pair = torch.stack([digit_a, digit_b])
    recon, _ = _timed(vae.reconstruct, pair)
    frames = [grid_image(frame[None], columns=1) for frame in path]
    animation = save_gif(frames + frames[-2:0:-1], duration_ms=150, final_hold_ms=150)  # there and back
    return (grid_image(path, columns=steps), grid_image(torch.cat([pair, recon]), columns=2), animation,
            " ".join(notes))


def vae_latent_map(grid, dataset=DEFAULT_DATASET):
    """The latent plane of the test digits' two main directions: decoded lattice and where digits lie."""
    grid = whole_number(grid, "Grid size", 3, 16)
    dataset = dataset_choice(dataset)
    digits = test_digits(dataset)
    view, _ = _timed(engine("vae", dataset).latent_map, digits.images, grid=grid)
    with_paths = ships("latent_diffusion", dataset)
    paths = view.project(engine("latent_diffusion", dataset).latent_trajectories(
        LATENT_PATHS, seed=0, sampler="ddim", steps=LATENT_PATH_STEPS)).numpy() if with_paths else None
    figure = plots.latent_scatter(view.coordinates.numpy(), digits.labels.numpy(), view.ticks, view.explained_variance,
                                  paths, digits.class_names)
    caption = (f"Decoded lattice: {grid}x{grid} points of the plane through the mean latent along its two principal "
               f"directions, from {float(view.ticks[0]):+.1f} to {float(view.ticks[-1]):+.1f} standard deviations "
               f"(direction 1 left to right, direction 2 bottom to top). These two directions hold "
               f"{sum(view.explained_variance):.0%} of the variance of the 1,000 test images' latent means.")
    if with_paths:
        caption += (f" Black paths: {LATENT_PATHS} latent diffusion samples ({LATENT_PATH_STEPS} DDIM steps, seed 0) "
                    "moving from Gaussian noise (N(0, I) in its standardised latent units) to where its learned "
                    "prior puts them, among the encoded images (a projection of the 8-d latents onto this plane).")
    return grid_image(view.decoded, columns=grid), figure, caption


# --- GAN ------------------------------------------------------------------------------------------

def _truncation(value) -> float | None:
    return None if value is None or float(value) <= 0 else float(value)


def _gan_inputs(seed, count, truncation) -> tuple[int, int, float | None]:
    return whole_number(seed, "Seed", 0, MAX_SEED), whole_number(count, "Count", 1, MAX_GRID), \
        _truncation(truncation)


def check_gan_sample(seed, count, truncation, dataset=DEFAULT_DATASET) -> None:
    """gan_sample's input checks alone (see check_side_by_side)."""
    _gan_inputs(seed, count, truncation)
    dataset_choice(dataset)


def gan_sample(seed, count, truncation, dataset=DEFAULT_DATASET):
    seed, count, truncation = _gan_inputs(seed, count, truncation)
    gan = engine("gan", dataset_choice(dataset))
    images, seconds = _timed(gan.sample, count, seed=seed, truncation=truncation)
    return grid_image(images), f"{seconds * 1000:.0f} ms for {count} samples"


def _walk_inputs(seed_a, seed_b, steps, method, truncation) -> tuple:
    return (whole_number(seed_a, "Seed A", 0, MAX_SEED), whole_number(seed_b, "Seed B", 0, MAX_SEED),
            whole_number(steps, "Steps", 2, MAX_PATH_STEPS), _choice(method, "path", INTERPOLATIONS),
            _truncation(truncation))


def check_gan_interpolate(seed_a, seed_b, steps, method, truncation, dataset=DEFAULT_DATASET) -> None:
    """gan_interpolate's input checks alone (see check_side_by_side)."""
    _walk_inputs(seed_a, seed_b, steps, method, truncation)
    dataset_choice(dataset)


def gan_interpolate(seed_a, seed_b, steps, method, truncation, dataset=DEFAULT_DATASET):
    """Walk from seed A's latent to seed B's: the strip and its animation."""
    seed_a, seed_b, steps, method, truncation = _walk_inputs(seed_a, seed_b, steps, method, truncation)
    gan = engine("gan", dataset_choice(dataset))
    z = torch.cat([gan.latents(1, seed=s, truncation=truncation) for s in (seed_a, seed_b)])
    path, _ = _timed(gan.interpolate, z[0], z[1], steps=steps, method=method)
    frames = [grid_image(frame[None], columns=1) for frame in path]
    return grid_image(path, columns=steps), save_gif(frames + frames[-2:0:-1], duration_ms=150, final_hold_ms=150)


# --- diffusion, step by step ----------------------------------------------------------------------

def _frame(step, last: bool, total: int):
    shown = step.prev_sample if last else step.x_t
    label = f"step {step.index + 1}/{total}, t = {step.timestep}"
    return grid_image(from_signed(shown)), grid_image(from_signed(step.predicted_x0)), label


def diffusion_steps(seed, count, sampler, steps, dataset=DEFAULT_DATASET):
    """Stream x_t and the predicted x0 as one trajectory denoises; then keep its frames for the scrubber
    and an animated GIF of the whole trajectory."""
    seed, count, options, dataset = _sampling_inputs(seed, count, sampler, steps, MAX_TRACE_SAMPLES, dataset)
    diffusion = engine("diffusion", dataset)
    total = _timed(diffusion.network_evaluations, **options)[0]
    yield from _stream_trace(lambda: diffusion.trace(count, seed=seed, **options), total)


def check_diffusion_gan_steps(seed, count, dataset=DEFAULT_DATASET) -> None:
    """diffusion_gan_steps' input checks alone (see check_side_by_side)."""
    whole_number(seed, "Seed", 0, MAX_SEED)
    whole_number(count, "Count", 1, MAX_TRACE_SAMPLES)
    engine("diffusion_gan", dataset_choice(dataset))


def diffusion_gan_steps(seed, count, dataset=DEFAULT_DATASET):
    """The diffusion GAN's few steps, shown as the diffusion trajectory is: x_t and the generator's x0 per step."""
    seed, count = whole_number(seed, "Seed", 0, MAX_SEED), whole_number(count, "Count", 1, MAX_TRACE_SAMPLES)
    hybrid = engine("diffusion_gan", dataset_choice(dataset))
    yield from _stream_trace(lambda: hybrid.trace(count, seed=seed), hybrid.network_evaluations())


def _stream_trace(trace, total: int):
    """Stream a trajectory's frames (at most STREAMED_FRAMES), keep up to STORED_FRAMES of them, then give the
    scrubber and the GIF: the outputs x_t, x0, status, stored frames, scrubber, animation."""
    stream_every, store_every = max(1, total // STREAMED_FRAMES), max(1, total // STORED_FRAMES)
    stored = []
    try:
        for step in trace():
            last = step.index == total - 1
            if step.index % store_every == 0 or last:
                stored.append(_frame(step, last, total))
            if step.index % stream_every == 0 or last:
                x_t, x0, label = _frame(step, last, total)
                yield x_t, x0, label, gr.skip(), gr.skip(), gr.skip()
    except EngineError as e:
        raise user_error(str(e)) from None
    animation = save_gif([side_by_side_frame(x_t, x0) for x_t, x0, _ in stored])
    scrubber = gr.Slider(minimum=0, maximum=len(stored) - 1, value=len(stored) - 1, step=1, interactive=True,
                         label=f"Scrub the {len(stored)} stored steps")
    yield stored[-1][0], stored[-1][1], stored[-1][2], stored, scrubber, animation


def diffusion_scrub(stored, position):
    """Show one stored frame of the last trajectory (no sampling: the frames are kept from the run)."""
    if not stored:
        raise user_error("Denoise first: the scrubber moves through the steps of the last run")
    position = whole_number(position, "Position", 0, len(stored) - 1)
    return stored[position]


def _forward_inputs(index, digit_class, seed, frames, dataset) -> tuple:
    return (*pick_digit(index, digit_class, "Digit", dataset), whole_number(seed, "Seed", 0, MAX_SEED),
            whole_number(frames, "Frames", 2, MAX_PATH_STEPS))


def check_diffusion_forward(index, digit_class, seed, frames, dataset=DEFAULT_DATASET) -> None:
    """diffusion_forward's input checks alone (see check_side_by_side)."""
    _forward_inputs(index, digit_class, seed, frames, dataset)


def diffusion_forward(index, digit_class, seed, frames, dataset=DEFAULT_DATASET):
    """The forward (noising) process of one test image: x_t at evenly spaced t, with sqrt(alpha-bar_t)."""
    digit, about, seed, frames = _forward_inputs(index, digit_class, seed, frames, dataset)
    diffusion = engine("diffusion", dataset)
    T = diffusion.num_train_timesteps
    timesteps = torch.linspace(0, T - 1, frames).round().long().tolist()
    noised, _ = _timed(diffusion.forward_trace, digit[None], timesteps, seed=seed)
    signal = [diffusion.signal_level(t) for t in timesteps]
    caption = (f"{about}. x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps with one noise draw (seed {seed}); "
               "signal level sqrt(abar_t) per frame: "
               + ", ".join(f"t={t}: {s:.2f}" for t, s in zip(timesteps, signal)))
    return grid_image(from_signed(noised[:, 0]), columns=frames), caption


# --- compare --------------------------------------------------------------------------------------

def _read_json(path):
    return json.loads(path.read_text()) if path.is_file() else None


def compare(dataset=DEFAULT_DATASET):
    """The measured comparison of `dataset` at a glance (one chart per row, its verdict in the title, and the
    verdicts beside the other datasets'), then the whole report.md from engines.evaluate and the plots behind
    it."""
    dataset = dataset_choice(dataset)
    root = checkpoints_dir(dataset)
    report = _read_json(root / "report.json")
    if report is None or "summary" not in report:
        return (None, f"No report for {LAB_DATASET_TITLES[dataset]} yet: run `python -m engines.evaluate "
                      f"--dataset {dataset}`.", "", None, None, None, None)
    report_md = root / "report.md"
    text = report_md.read_text() if report_md.is_file() else quality_table(report, list(report["quality"]))
    losses = {name: read_jsonl(root / name / LOG_NAME) for name in FAMILIES if ships(name, dataset)}
    quality = {name: read_jsonl(root / name / QUALITY_LOG_NAME) for name in FAMILIES + HYBRIDS if ships(name, dataset)}
    benchmark = {"rows": []}
    if dataset == "mnist":   # the sampler benchmark was run on the MNIST diffusion model
        benchmark = _read_json(BENCHMARK) or benchmark
        text += "\n\n" + "\n".join(markdown_section(BENCHMARK))
    figures = (plots.loss_curves(losses), plots.quality_during_training(quality),
               plots.quality_against_steps(benchmark["rows"]) if benchmark["rows"] else None)
    verdicts = "\n".join(verdict_lines(report)) + "\n\n" + datasets_table()
    return (plots.png(plots.summary_charts(report)), verdicts, text,
            *(plots.png(figure) if figure is not None else None for figure in figures), report_elbo_by_level(report))


def datasets_table() -> str:
    """Every row's verdict on each dataset with a report, side by side; rows whose verdict differs marked."""
    reports = {name: _read_json(checkpoints_dir(name) / "report.json") for name in SHIPPED_DATASETS}
    reports = {name: r for name, r in reports.items() if r and "summary" in r}
    return dataset_verdicts_markdown(reports, LAB_DATASET_TITLES)


def report_elbo_by_level(report: dict) -> str | None:
    """The report's diffusion bound split by level beside the VAE's two terms (same digits), or None."""
    likelihood = report.get("likelihood", {})
    level = likelihood.get("diffusion", {}).get("vlb_by_level")
    if level is None:
        return None
    title = f"Diffusion as a hierarchical VAE: its bound by level ({likelihood['n']} test digits)"
    return plots.png(plots.elbo_by_level(level, likelihood.get("vae", {}).get("elbo_terms_bpd"), title))


def next_seed(seed) -> int:
    return whole_number(seed, "Seed", 0, MAX_SEED - 1) + 1
