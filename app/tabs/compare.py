"""The "Compare" tab: the measured comparison of a dataset at a glance (one chart per row, its verdict in the
title, the verdicts beside the other datasets'), then the whole report from `python -m engines.evaluate` and the
plots behind it. It renders the report; it measures nothing."""
from __future__ import annotations

import json
import re

import gradio as gr
from PIL import Image

from app import inputs, plots
from app.images import captioned_frames, png_file
from app.inputs import DEFAULT_DATASET, SHIPPED_DATASETS, dataset_choice, report_of, ships
from app.widgets import picture
from engines.checkpoint import LOG_NAME, QUALITY_LOG_NAME, checkpoints_dir, read_jsonl
from engines.data.datasets import LAB_CLASS_NAMES, LAB_DATASET_TITLES
from engines.measure import compute_curve, conditional, guide
from engines.measure.knobs import RULE, sweep_for
from engines.measure.knobs import verdicts_text as knob_verdicts
from engines.measure.model_card import quality_table
from engines.measure.plain_words import summary_in_words
from engines.measure.race_targets import targets_text
from engines.measure.report_markdown import dataset_verdicts_markdown, verdict_lines
from engines.measure.sampler_benchmark import BENCHMARK_NET, markdown_section
from engines.measure.sampler_benchmark import OUT as BENCHMARK
from engines.measure.sampler_benchmark import REFERENCE as BENCHMARK_REFERENCE
from engines.measure.sampler_benchmark import STEPS as BENCHMARK_STEPS
from engines.measure.speed_race import race_for, with_times
from engines.registry import families, family

KNOBS_TEXT = ("Each family's knob is said to trade variety for typical samples ({knobs}). `python -m "
              "engines.knob_sweep` samples the report's number of images at each setting from the same seed and "
              "scores them as the report does: precision (fidelity: how many samples fall among real images) against "
              "recall (diversity: how many real images the samples reach), in both feature nets, and for a "
              "class-conditional model the share of its samples read as the class asked. " + RULE)


def knobs_text() -> str:
    """KNOBS_TEXT with the registry's knobs named: "the VAE's temperature tau, ..."."""
    knobs = ", ".join(f"the {f.title}'s {f.knob.option} {f.knob.symbol}" for f in families() if f.knob)
    return KNOBS_TEXT.format(knobs=knobs)


def _read_json(path):
    return json.loads(path.read_text()) if path.is_file() else None


def compare(dataset=DEFAULT_DATASET):
    """The comparison of `dataset`: charts, verdicts, report text, and the plots of losses, quality during
    training, quality against steps, the bound by level and the speed race (None where not measured)."""
    dataset = dataset_choice(dataset)
    root = checkpoints_dir(dataset)
    report = report_of(dataset)
    if report is None or "summary" not in report:
        return (None, f"No report for {LAB_DATASET_TITLES[dataset]} yet: run `python -m engines.evaluate "
                      f"--dataset {dataset}`.", "", None, None, None, None, None, None, None, None,
                *time_lapse(dataset))
    report_md = root / "report.md"
    text = report_md.read_text() if report_md.is_file() else quality_table(report, list(report["quality"]))
    losses = {f.name: read_jsonl(root / f.name / LOG_NAME) for f in families("family") if ships(f.name, dataset)}
    quality = {f.name: read_jsonl(root / f.name / QUALITY_LOG_NAME) for f in families() if ships(f.name, dataset)}
    benchmark, why = {"rows": []}, (f"The sampler benchmark measured the {LAB_DATASET_TITLES[inputs.BENCHMARKED]} "
                                    "diffusion model only;\nthis dataset's samplers are in the speed race above.")
    if dataset == inputs.BENCHMARKED:
        benchmark, why = _read_json(BENCHMARK) or benchmark, ""
        text += "\n\n" + "\n".join(markdown_section(BENCHMARK))
    figures = (plots.loss_curves(losses), plots.quality_during_training(quality),
               plots.quality_against_steps(benchmark["rows"], why_empty=why))
    race, _ = race_for(report)   # None where there is none, or it was measured on other weights than ship now
    sweep = sweep_for(dataset)
    verdicts = "\n".join([guide.compare_view(report), "", "\n".join(verdict_lines(report)),
                          "### Each verdict, check by check", "",
                          summary_in_words(report), "", datasets_table(), "",
                          "### The speed race's targets", "", targets_text(race, report), "",
                          "### Fidelity against diversity: each family's knob", "", knobs_text(), "",
                          knob_verdicts(sweep), "", *equal_compute_lines(dataset)])
    race_figure = plots.png(plots.speed_race(with_times(race, report))) if race else None
    return (plots.png(plots.summary_charts(report)), verdicts, in_sections(text),
            *(plots.png(figure) if figure is not None else None for figure in figures), report_elbo_by_level(report),
            race_figure, plots.png(plots.knob_sweep(sweep)) if sweep else None, _asked_figure(report),
            _compute_figure(dataset), *time_lapse(dataset))


def time_lapse_frames(dataset=DEFAULT_DATASET, position=100) -> tuple[float | None, list[tuple[str, str]]]:
    """Each family's time-lapse frame (the same seed's samples at a scored checkpoint) at the training compute
    `position` picks: 0 the smallest budget at which any family kept a frame, 100 the largest, on a log scale;
    a family with no frame by then is left out. (that budget in FLOPs, [(frame, caption)]); (None, []) where no
    shipped model kept frames."""
    dataset = dataset_choice(dataset)
    position = inputs.whole_number(position, "Training compute", 0, 100)
    by_family = compute_curve.frames_by_compute(dataset)
    if not by_family:
        return None, []
    low = min(kept[0][0] for kept in by_family.values())
    high = max(kept[-1][0] for kept in by_family.values())
    flops = low * (high / low) ** (position / 100)
    shown = []
    for name, frame in compute_curve.frames_at(by_family, flops).items():
        if frame is not None:
            spent, step, path = frame
            shown.append((str(path), f"{family(name).heading}: step {step:,}, {spent:.2g} FLOPs"))
    return flops, shown


def time_lapse(dataset=DEFAULT_DATASET, position=100) -> tuple[str | None, str]:
    """The time-lapse at `position` as one picture, every frame whole with its family, step and FLOPs written
    under it, and the same in words; where no model kept frames, no picture and the reason."""
    flops, shown = time_lapse_frames(dataset, position)
    if not shown:
        return None, (f"No shipped model of {LAB_DATASET_TITLES[dataset_choice(dataset)]} kept time-lapse frames: "
                      "they are kept by runs trained with `--eval-every`.")
    sheet = captioned_frames([(Image.open(path), caption.split(": ", 1)) for path, caption in shown])
    return png_file(sheet), (f"At {flops:.2g} training FLOPs, each family's last kept frame: "
                             + "; ".join(caption for _, caption in shown) + ".")


def _asked_figure(report: dict) -> str | None:
    """The confusion matrices of the class-conditional families (`engines.measure.conditional.figure`), or None
    where none was measured on this dataset."""
    if not conditional.measured(report):
        return None
    return plots.png(conditional.figure(report, LAB_CLASS_NAMES[report.get("dataset", "mnist")]))


def equal_compute_lines(dataset: str) -> list[str]:
    """Which family is best at equal training compute (`compute_curve.reading_text`, as report.md says it), under
    its heading; nothing where no shipped model has a compute record."""
    by_family = compute_curve.curves(dataset)
    if not by_family:
        return []
    return ["### Quality at equal training compute", "",
            "Which family learns most per unit of compute (the chart is under \"How the models trained\"); the "
            "report's \"Converged or stopped at budget\" says which ended where they would settle.", "",
            compute_curve.reading_text(compute_curve.equal_compute(by_family))]


def _compute_figure(dataset: str) -> str | None:
    """Each shipped model's scores on an axis of training FLOPs (`engines.measure.compute_curve`), or None."""
    by_family = compute_curve.curves(dataset)
    return plots.png(compute_curve.figure(by_family)) if by_family else None


def raced_lines() -> str:
    """The race's lines in words, from the families' records: "diffusion: ddim, DPMSolverMultistep; ..."."""
    return "; ".join(f"{f.title}: " + ", ".join(o["sampler"].replace("diffusers:", "").replace("Scheduler", "")
                                                for o in f.race_options) for f in families() if f.race_options)


def in_sections(markdown: str) -> str:
    """report.md with each of its "## " sections folded (HTML details), so that the page opens on the headings
    and a reader unfolds the one they want."""
    head, *sections = re.split(r"(?m)^## ", markdown)
    folded = []
    for section in sections:
        heading, _, body = section.partition("\n")
        folded.append(f"<details><summary><b>{heading.strip()}</b></summary>\n\n{body.strip()}\n\n</details>\n")
    return head + "\n".join(folded)


def datasets_table() -> str:
    """Every row's verdict on each dataset with a report, side by side; rows whose verdict differs marked."""
    reports = {name: report_of(name) for name in SHIPPED_DATASETS}
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


def training_section(dataset: gr.Radio) -> tuple:
    """The folded "how the models trained" panel: losses, quality during training and against compute, and the
    time-lapse with its compute slider; returns its outputs (losses, quality, compute, time-lapse, its words)."""
    with gr.Accordion("How the models trained: losses, and quality at each scored checkpoint", open=False):
        losses = picture(label="Training losses", type="filepath")
        quality = picture(label="Quality during training", type="filepath")
        gr.Markdown("The same scores on an axis of training compute (FLOPs), every family on one chart: which "
                    "learns fastest per unit of compute, and which ends best. Dashed lines were scored without "
                    "standard errors (older runs); report.md's \"Quality against training compute\" reads the "
                    "families at equal compute.")
        compute = picture(label="Quality against training compute", type="filepath")
        gr.Markdown("**How they learned.** Each run trained with `--eval-every` keeps the same seed's samples at "
                    "every scored checkpoint (`engines/training/timelapse.py`). Slide along training compute (log "
                    "scale) to see every family at the same budget; a model trained before the lab kept frames, or "
                    "that had kept none by then, is left out.")
        budget = gr.Slider(0, 100, 100, step=1, label="Training compute (0: the first frame kept, 100: the largest "
                                                      "budget; log scale)")
        lapse = picture(label="The same seed's samples at that compute (each frame captioned with its family, "
                              "step and FLOPs)", type="filepath", elem_id="timelapse")
        lapse_words = gr.Markdown(label="The time-lapse in words")
    budget.release(time_lapse, [dataset, budget], [lapse, lapse_words], api_name="timelapse")
    return losses, quality, compute, lapse, lapse_words


def build(dataset: gr.Radio) -> list:
    """The tab; returns its outputs (the page fills them when the tab opens and when the dataset changes)."""
    gr.Markdown("The classic VAE / GAN / diffusion comparison (objective, training stability, sample quality, "
                "likelihood, latent space, speed), and the two hybrids against their parents, measured on the "
                "shipped models by `python -m engines.evaluate`: one chart per row, each bar ± its standard error "
                "and the row's verdict in its title.")
    charts = picture(label="The comparison at a glance", type="filepath", show_label=False)
    verdicts = gr.Markdown(label="Verdicts")
    gr.Markdown(f"**The speed race: speed at equal quality.** Speed is compared at matched quality, not at equal "
                "steps. Every few-step sampler of the lab is on one chart (`python -m engines.speed_race`): the "
                "Frechet distance ± SE in both feature nets against network evaluations per sample (left) and "
                f"milliseconds per sample (right), a line per sampler ({raced_lines()}), the families that "
                "sample in one fixed way as diamonds. "
                "Where a line sits lower at the same evaluations, that sampler buys more quality per network call; "
                "draw a horizontal line through a diamond, and where it meets a line is the time that sampler "
                "needs for that family's quality. The Speed row's verdicts read from it: the fewest evaluations at "
                "which a diffusion solver matches a family's distance in both nets. Each entry is 500 samples "
                "against the same 1,000 test images, so its distances compare along the chart, not with the "
                "report's 1,000-sample numbers (fewer samples raise a Frechet distance). Its targets are under the "
                "verdicts above.")
    race = picture(label="The speed race: quality against network evaluations and time", type="filepath")
    knobs = picture(label="Fidelity against diversity: each family's knob swept (verdicts above)", type="filepath")
    gr.Markdown("**Ask for a class.** Each class-conditional model asked for every class in turn (the report's "
                "samples), read by each feature net: a row per class asked, a column per class read, the share of "
                "that row's samples in each cell (darker: more); the last column counts the images a net's "
                "typicality gate refuses. A perfect model is a dark diagonal, like the real test images' matrix "
                "on top (the nets misread some real images too, so each model is judged against it: the verdict "
                "row \"Ask for a class\" above). Empty where no class-conditional model ships for this dataset.")
    asked = picture(label="Ask for a class: the confusion matrices (real test images first)", type="filepath")
    with gr.Accordion("Every sampler of the diffusion model, step by step (the sampler benchmark)", open=False):
        gr.Markdown("Ancestral and deterministic samplers, ours and diffusers', at "
                    f"{', '.join(map(str, BENCHMARK_STEPS))} steps, "
                    f"against {BENCHMARK_REFERENCE[1]}-step ancestral DDPM (`python -m engines.sampler_benchmark`; "
                    f"the {BENCHMARK_NET} net only, {LAB_DATASET_TITLES[inputs.BENCHMARKED]}). Its table is in the "
                    "report below.")
        steps = picture(label="Diffusion: quality against steps, per sampler", type="filepath")
    losses, quality, compute, lapse, lapse_words = training_section(dataset)
    with gr.Accordion("The whole report, section by section (each opens on a click)", open=False):
        report = gr.Markdown(label="Report")
        levels = picture(label="Diffusion as a hierarchical VAE: the bound by level", type="filepath")
    outputs = [charts, verdicts, report, losses, quality, steps, levels, race, knobs, asked, compute, lapse,
               lapse_words]
    refresh = gr.Button("Read the report again")
    refresh.click(compare, dataset, outputs, api_name="compare")
    return outputs
