"""What every tab's handlers share: a visitor's inputs parsed or refused (seed, count, sampler and steps, dataset,
test digit), and the shipped models and test images, loaded once per process.

A refusal is `user_error(message)`: the visitor sees the message, the server logs one line, not a traceback (bad
input is not a fault of the server). A tab's `validator=` functions check each input with these parsers before
its event runs (`validations`, `checked_by`), so that a refused input leaves the previous pictures in place; the
handlers parse again, as plain functions called without the page.

Engines are loaded once per process and shared: they hold no per-request state (every call makes its own
seeded generator, and every diffusers sampler its own scheduler), so concurrent visitors get their own
seed-determined results.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import lru_cache

import gradio as gr
import torch
from gradio.utils import get_upload_folder, is_in_or_equal

from engines import MAX_SEED, EngineError, load_engine
from engines.checkpoint import checkpoints_dir
from engines.data.datasets import LAB_CLASS_NAMES, LAB_DATASET_TITLES, LAB_DATASETS, load_lab_split
from engines.measure.sampler_benchmark import OUT as BENCHMARK
from engines.measure.sampler_benchmark import best_at
from engines.models.diffusion import SAMPLERS
from engines.registry import available_engines
from engines.sampling.diffusers_adapter import PREFIX, SCHEDULERS

MAX_GRID = 64
MAX_UI_STEPS = 1000
DEFAULT_UI_STEPS = 50
MAX_TRACE_SAMPLES = 16
MAX_PATH_STEPS = 32
DIFFUSION_SAMPLERS = list(SAMPLERS) + [PREFIX + name for name in SCHEDULERS]
DIGIT_CLASSES = ["any"] + [str(d) for d in range(10)]
# The lab datasets with shipped models, as the dataset selector offers them; every tab but the playground
# shows the chosen one's models (each loaded once per process). The hybrids ship for MNIST only.
SHIPPED_DATASETS = [name for name in LAB_DATASETS if available_engines(checkpoints_dir(name))]
DATASET_CHOICES = [(LAB_DATASET_TITLES[name], name) for name in SHIPPED_DATASETS]
DEFAULT_DATASET = "mnist"


def user_error(message: str) -> gr.Error:
    """A refusal of a visitor's input: shown to them; the server logs one line, not a traceback."""
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


def choice(value, what: str, choices) -> str:
    if value not in choices:
        raise user_error(f"unknown {what} {value!r}: choose one of {', '.join(map(str, choices))}")
    return value


def seed(value, what: str = "Seed") -> int:
    return whole_number(value, what, 0, MAX_SEED)


def count(value, cap: int) -> int:
    return whole_number(value, "Count", 1, cap)


def dataset_choice(value) -> str:
    return choice(value, "dataset", SHIPPED_DATASETS)


def checked_by(validator: Callable[..., list[dict]]) -> dict:
    """An event listener's arguments for a validator: `validator` runs first, and the event takes its inputs as
    the page sends them (preprocess=False), so that the checks here, not the components' own range checks,
    refuse a value: the visitor and an API caller read the lab's message, not a bare "400 Bad Request"."""
    return {"validator": validator, "preprocess": False}


def received_file(payload) -> str | None:
    """The server path of a file the page or an API client uploaded, as an event that skips Gradio's
    preprocessing receives it (Gradio's FileData, a dict with its "path"), or None for no file. Only a file in
    Gradio's upload folder is read: a caller cannot have the lab open another file of the server (EngineError;
    the caller words the refusal)."""
    if payload is None:
        return None
    path = payload.get("path") if isinstance(payload, dict) else payload
    if not isinstance(path, str) or not is_in_or_equal(path, get_upload_folder()):
        raise EngineError("it is not a file this server received: send it as a file upload")
    return path


def validations(*checks: Callable[[], object]) -> list[dict]:
    """A validator's answer: one `gr.validate` per input, in the event's input order, from one check per input
    (a function of no arguments that parses it, or raises `user_error`). The first refusal is the answer's only
    one: the page shows it beside its input, an API call gets it, the server logs it once, and the event does
    not run (checks after it may depend on what it refused)."""
    answers, refused = [], False
    for check in checks:
        if not refused:
            try:
                check()
            except gr.Error as e:
                answers.append(gr.validate(False, e.message))
                refused = True
                continue
        answers.append(gr.validate(True, ""))
    return answers


# --- the shipped models and test images -----------------------------------------------------------------

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


def report_of(dataset: str) -> dict | None:
    """The dataset's measured report (checkpoints/<dataset>/report.json), read as it is now; None without one."""
    path = checkpoints_dir(dataset) / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


@lru_cache(maxsize=None)
def test_digits(dataset: str = DEFAULT_DATASET):
    """The dataset's 1,000 judging test images (Fashion-MNIST's need Debian's dataset-fashion-mnist)."""
    return timed(load_lab_split, dataset, "test")[0]


def timed(fn, *args, **kwargs):
    """fn(*args, **kwargs) and its wall time in seconds; an engine's refusal becomes the visitor's."""
    start = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
    except EngineError as e:
        raise user_error(str(e)) from None
    return out, time.perf_counter() - start


# --- diffusion sampler and steps ------------------------------------------------------------------------

def sampler_choice(value) -> str:
    return choice(value, "sampler", DIFFUSION_SAMPLERS)


def diffusion_options(sampler, steps, dataset=DEFAULT_DATASET) -> dict:
    """The sampler and step count, refused with a reason where the chain would not start from noise."""
    sampler = sampler_choice(sampler)
    steps = whole_number(steps, "Diffusion steps", 1, MAX_UI_STEPS)
    if dataset not in SHIPPED_DATASETS:   # the dataset's own check refuses it
        return {"sampler": sampler, "steps": steps}
    diffusion = engine("diffusion", dataset)
    fewest = diffusion.fewest_steps(sampler)
    if steps < fewest:
        raise user_error(f"{sampler} needs at least {fewest} steps: with {steps} its chain starts at "
                         f"t = {diffusion.first_timestep(sampler, steps):.0f} instead of near "
                         f"t = {diffusion.num_train_timesteps - 1}, so the pure noise it starts from is never "
                         f"denoised.")
    return {"sampler": sampler, "steps": steps}


def sampling_inputs(seed_value, count_value, sampler, steps, cap: int, dataset) -> tuple[int, int, dict, str]:
    """Seed, count (at most `cap`), the diffusion options and the dataset, parsed or refused."""
    dataset = dataset_choice(dataset)
    return seed(seed_value), count(count_value, cap), diffusion_options(sampler, steps, dataset), dataset


def sampling_checks(seed_value, count_value, sampler, steps, cap: int, dataset) -> list[Callable[[], object]]:
    """The checks of a sampling event's first inputs (seed, count, sampler, steps), for `validations`."""
    return [lambda: seed(seed_value), lambda: count(count_value, cap), lambda: sampler_choice(sampler),
            lambda: diffusion_options(sampler, steps, dataset)]


def sampling_validations(seed_value, count_value, sampler, steps, cap: int, dataset) -> list[dict]:
    """`validations` for the inputs (seed, count, sampler, steps, dataset) of a sampling event."""
    return validations(*sampling_checks(seed_value, count_value, sampler, steps, cap, dataset),
                       lambda: dataset_choice(dataset))


BENCHMARKED = "mnist"   # the dataset whose diffusion model the sampler benchmark measured


def benchmark_rows() -> list[dict]:
    """The sampler benchmark's rows (sampler, steps, Frechet distance, ...); none where it has not been run."""
    return json.loads(BENCHMARK.read_text())["rows"] if BENCHMARK.is_file() else []


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


# --- test digits by index or class ----------------------------------------------------------------------

def class_choices(dataset) -> list[tuple[str, str]]:
    """The class dropdown's choices for a dataset: (label, value), the values always DIGIT_CLASSES."""
    names = LAB_CLASS_NAMES[dataset_choice(dataset)]
    names = [name if name == str(d) else f"{d} {name}" for d, name in enumerate(names)]
    return [("any", "any")] + list(zip(names, DIGIT_CLASSES[1:]))


def asked_class(value) -> int | None:
    """The class a page asks a conditional model for ("0".."9"; "any": none), or `user_error`."""
    value = choice(str(value), "class", DIGIT_CLASSES)
    return None if value == "any" else int(value)


def class_name(digits, label: int) -> str:
    return digits.class_names[label] if digits.class_names else str(label)


def pick_digit(index, digit_class, what: str, dataset=DEFAULT_DATASET) -> tuple[torch.Tensor, str]:
    """The index-th test image of the dataset, or the index-th test image of a class."""
    digits = test_digits(dataset_choice(dataset))
    noun = "digit" if dataset == "mnist" else "image"
    digit_class = choice(str(digit_class), f"{what} class", DIGIT_CLASSES)
    if digit_class == "any":
        i = whole_number(index, f"{what} index", 0, len(digits) - 1)
        return digits.images[i], f"{what}: test {noun} #{i} (a {class_name(digits, int(digits.labels[i]))})"
    members = torch.nonzero(digits.labels == int(digit_class)).flatten()
    k = whole_number(index, f"{what} index within class {digit_class}", 0, len(members) - 1)
    return digits.images[members[k]], (f"{what}: test {class_name(digits, int(digit_class))} no. {k} "
                                       f"(test {noun} #{int(members[k])})")


def digit_validations(index, digit_class, what: str, dataset) -> list[Callable[[], object]]:
    """The checks of a digit picker's two inputs (index, class), for `validations`: the index is checked once
    the class and dataset are known good (their own checks refuse them)."""
    def check_index():
        if str(digit_class) in DIGIT_CLASSES and dataset in SHIPPED_DATASETS:
            pick_digit(index, digit_class, what, dataset)
    return [check_index, lambda: choice(str(digit_class), f"{what} class", DIGIT_CLASSES)]
