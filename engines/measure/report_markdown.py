"""report.md: the measured comparison rendered for reading, with a figure of the training logs.
(The app renders report.json itself.)"""
from __future__ import annotations

import math
from pathlib import Path

from engines import registry
from engines.checkpoint import QUALITY_LOG_NAME, checkpoints_dir, read_jsonl
from engines.data.datasets import LAB_CLASS_NAMES
from engines.measure import compute_curve, conditional
from engines.measure.convergence import convergence
from engines.measure.hierarchy import group_by_decade
from engines.measure.knobs import RULE, serves_both, serves_both_text, sweep_for, table_lines
from engines.measure.knobs import figure as knob_figure
from engines.measure.knobs import verdicts_text as knob_verdicts
from engines.measure.memorisation import copying_verdict
from engines.measure.race_targets import targets_text
from engines.measure.reproduce import TOLERANCES
from engines.measure.speed_race import race_for
from engines.measure.uncertainty import (
    ALPHA,
    POWER,
    RATE_MARGIN,
    RELATIVE_MARGIN,
    TIE_SE,
    compare,
    count_of,
    rate_text,
)
from engines.measure.verdicts import (
    in_words_of,
    likelihood_pairs,
    likelihood_text,
    made_by,
    paired_key,
    pm,
    seed_records,
    title,
)
from engines.registry import families


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in r) + " |" for r in rows], ""]


def two_significant(spread: float) -> int:
    """Decimals that show a spread to two significant digits (KID's scale differs by orders between the nets)."""
    return max(0, 1 - math.floor(math.log10(spread))) if spread > 0 else 2


def summary_lines(report: dict) -> list[str]:
    # A report without an engine list is an old one, of the seed's families only.
    engines = report.get("engines", [f.name for f in families("family")])
    names = [f.name for f in families() if f.name in engines]
    on = {"fashion": " on Fashion-MNIST"}.get(report.get("dataset", "mnist"), "")
    lines = [f"# The generative lab: the comparison table, measured{on}", "",
             f"Command: `{report.get('command', '')}` · seed {report['seed']} · {report['run_time_s']:.0f} s on "
             f"{report['hardware']}", "",
             "Section times (s): " + ", ".join(f"{k} {v}" for k, v in report.get("section_seconds", {}).items()), "",
             "## Summary", "",
             f"Each verdict combines every check of its row. A check compares two measured numbers, each given as "
             f"value ± standard error: \"agrees\" or \"disagrees\" with the folklore when their difference is "
             f"larger than {TIE_SE:g} standard errors of the difference, \"tie\" when it is not; a check made in "
             f"both feature nets that comes out differently \"depends on the feature net\". How each standard "
             f"error is estimated is said in its section below. Rates over the 2-D seeds are counts k/n with exact "
             f"95% intervals (Clopper & Pearson 1934), compared by Fisher's exact test (two-sided, alpha "
             f"{ALPHA:g}): \"cannot say at n seeds\" where it finds no difference, with the difference n seeds "
             f"detect with {POWER:.0%} power (exact enumeration of the test's outcomes). A claim of sameness agrees "
             f"only when two one-sided tests (Schuirmann 1987) put the difference within a stated margin (rates: "
             f"±{RATE_MARGIN:g}, Newcombe's interval; means: ±{RELATIVE_MARGIN:.0%} of the reference value), "
             f"disagrees when the difference is significant, else cannot say. Speed is compared at matched "
             f"quality, read from the speed race (the fewest network evaluations at which a raced solver reaches "
             f"the faster family's Frechet distance in every feature net, at the race's n and seed, timed by the "
             f"speed section below), never with the extrapolated 1000-step DDPM.", ""]
    lines += _table(["claim", "folklore", *[title(n) for n in names], "verdict"],
                    [[r["row"], r["folklore"], *[r["cells"].get(n, "-") for n in names], r["verdict"]]
                     for r in report["summary"]])
    lines += [f"- {r['line']}" for r in report["summary"]] + [""]
    return lines


def verdict_lines(report: dict) -> list[str]:
    """The verdicts alone, claim by claim (the Compare tab's first view; report.md has the cells too)."""
    return _table(["claim", "folklore", "verdict"], [[r["row"], r["folklore"], f"**{r['verdict']}**"]
                                                     for r in report["summary"]])


def dataset_verdicts_markdown(reports: dict[str, dict], titles: dict[str, str]) -> str:
    """Each claim's verdict on every dataset with a report, side by side; a claim whose verdict differs between
    the datasets is marked, and one a report does not measure says so. A row that rests on a study independent
    of the dataset (the 2-D seeds) or that one dataset cannot decide is not compared (no agreement counted)."""
    if len(reports) < 2:
        return ""
    verdicts = {name: {r["row"]: r["verdict"] for r in report["summary"]} for name, report in reports.items()}
    # A row resting on a study that does not depend on the dataset (the 2-D seeds) is one experiment, not two.
    same_study = {r["row"] for report in reports.values() for r in report["summary"] if r.get("dataset_independent")}
    claims = list(dict.fromkeys(row for rows in verdicts.values() for row in rows))
    rows = []
    for claim in claims:
        cells = [verdicts[name].get(claim, "not measured") for name in reports]
        measured = [c for c in cells if c != "not measured"]
        mark = "**changes**" if len(set(measured)) > 1 else ""
        if any(c.startswith("cannot say") for c in measured):   # no finding on one side: nothing to compare
            mark = "not compared: one dataset cannot say"
        rows.append([claim, *cells, "not compared: the same 2-D study on both, not a replication"
                     if claim in same_study else mark])
    return "\n".join(["### The verdicts on each dataset", "",
                      *_table(["claim", *(titles.get(name, name) for name in reports), "between datasets"], rows)])


def feature_net_lines(report: dict) -> list[str]:
    lines = ["## Feature nets", "", "Every set-level quality number is measured in the features of two classifiers "
             "of different architectures, trained independently on the train split only:", ""]
    lines += _table(["net", "architecture", "features", "test accuracy", "real test digits recognisable",
                     "checkpoint"],
                    [[name, f["architecture"], f["features"], f"{f['test_accuracy']:.1%}",
                      f"{f['confident_share_on_test']:.1%}", f"`{f['checkpoint']}`"]
                     for name, f in report["feature_nets"].items()])
    return lines


def quality_lines(report: dict) -> list[str]:
    lines = ["## Sample quality", "", f"{report['n']} samples per row against {report['reference']}. "
             "Standard errors (±): the Frechet distance from its spread over 50 random halves of the generated "
             "samples (half-sampling; the reference fixed); precision, recall, density and coverage over 50 random "
             "halves of both the samples and the reference (their reference's own variance counted; both choices "
             "checked against the true spread in a simulation on disjoint real sets); recognisable "
             "(classifier confidence >= 0.9; an image the net's typicality gate refuses, such as a blank page or "
             "noise, gets confidence 0) and sharpness as means over the samples. Precision/recall: k-NN "
             "manifolds, k = 3 (Kynkaanniemi et al. 2019); density/coverage: k-NN balls around the real digits, "
             "k = 5 (Naeem et al. 2020). Class entropy: entropy of the predicted-class histogram of the samples the "
             "gate accepts (1 = all ten digits equally often); refused: the share the gate refuses (the real "
             "digits' row: the gate's own false alarms). KID (± its std over 50 subsets) is in raw feature units. "
             "Sharpness: mean squared pixel gradient relative to the test digits (1 = as sharp as real digits).", ""]
    for net in report["feature_nets"]:
        lines += [f"### In the features of `{net}`", ""]
        rows = []
        for k, v in report["quality"].items():
            r = v["nets"][net]
            rows.append([k + made_by(v), pm(r["frechet_distance"], r["frechet_distance_se"], 1),
                         pm(r["kid"], r["kid_std"], two_significant(r["kid_std"])),
                         pm(r["precision"], r["precision_se"]),
                         pm(r["recall"], r["recall_se"]), pm(r["density"], r["density_se"]),
                         pm(r["coverage"], r["coverage_se"]),
                         f"{r['confident_share']:.1%} ± {r['confident_share_se']:.1%}", r["class_entropy"],
                         f"{r['refused_share']:.1%}" if "refused_share" in r else "-"])
        lines += _table(["rows", "FD", "KID", "precision", "recall", "density", "coverage", "recognisable",
                         "class entropy", "refused"], rows)
    lines += _table(["rows", "sharpness", "s/sample"],
                    [[k, pm(v["sharpness"], v["sharpness_se"]), v.get("seconds_per_sample", "-")]
                     for k, v in report["quality"].items()])
    return lines + copying_lines(report)


def copying_lines(report: dict) -> list[str]:
    """Is a family copying its training images? (engines/measure/memorisation.py; the same samples as above.)"""
    rows = [[name, f"{c['possible_copies']} of {c['n']} ({c['share']:.1%}; 95% CI {c['interval'][0]:.1%}-"
             f"{c['interval'][1]:.1%})", f"{c['median_distance']:.2f}", copying_verdict(c)]
            for name, v in report["quality"].items() if (c := v.get("copying"))]
    if not rows:
        return []
    first = next(v["copying"] for v in report["quality"].values() if "copying" in v)
    return ["### Copying training images", "", f"Each sample's nearest training image, by Euclidean distance over "
            f"pixels (as Carlini et al. 2023 measure copies). A possible copy is nearer to a training image than "
            f"{1 - first['expected_share']:.0%} of held-out test images are to theirs (distance < "
            f"{first['copy_distance']:.2f}): a model that does not copy has about {first['expected_share']:.0%} "
            f"there, as the test images themselves. A near neighbour is a look-alike until the picture beside it "
            f"says it is the same image: the GAN tab shows them.", "",
            *_table(["family", "possible copies", "median distance", "reads"], rows)]


def likelihood_lines(report: dict) -> list[str]:
    lk = report["likelihood"]
    lines = ["## Likelihood", "", f"Unit: {lk['unit']}. Every number is on the same {lk['n']} test digits (a "
             "seeded random subset), ± its standard error over the digits; the differences between two families are "
             "taken digit by digit, so their standard error leaves out the spread the two models share.", ""]
    for family in (f for f in families() if f.name in lk):
        lines += [f"- {line}" for line in likelihood_text(family, lk[family.name])["report"]]
    for earlier, later in likelihood_pairs(lk):
        for bound, diff in lk.get(paired_key(later.name, earlier.name), {}).items():
            against = diff.get("against") or earlier.engine.likelihood_bounds(lk[earlier.name])[0][0]
            lines += [f"- {later.title.capitalize()} ({bound.upper()}) minus {earlier.title} ({against.upper()}), "
                      f"per digit: {pm(diff['mean'], diff['se'], 4)} bits/dim."]
    return lines + [""]


def summary_with(lk: dict, key: str):
    """`key` of the first family's likelihood summary that has it (a diffusion bound by level, a VAE's ELBO
    terms): the section is about those two kinds of bound, whichever families measure them."""
    return next((lk[f.name][key] for f in families() if key in (lk.get(f.name) or {})), None)


def hierarchy_lines(report: dict) -> list[str]:
    """The diffusion bound level by level beside the VAE's reconstruction + KL, on the same digits."""
    lk = report["likelihood"]
    level = summary_with(lk, "vlb_by_level")
    if level is None:
        return []
    decades = group_by_decade(level["bands"])
    rows = [["prior L_T: KL of q(x_T-1 given x) to N(0, I)", f"{level['prior']:.4f}"]]
    rows += [[f"KL terms, t = {r['first']} .. {r['last']}", f"{r['bpd']:.4f}"] for r in decades]
    rows += [["decoder L_0", f"{level['decoder']:.4f}"],
             ["total (the variational bound above)", f"{level['total']:.4f}"]]
    heaviest = max(decades, key=lambda r: r["bpd"])
    kl_total = sum(r["bpd"] for r in decades)
    lines = ["## Diffusion as a hierarchical VAE: the bound level by level", "",
             f"The diffusion variational bound above (fixed_small, the same {lk['n']} digits), split over its latent "
             "levels x_0 .. x_T-1: a fixed encoder q(x_t given x_t-1) and a learned decoder p(x_t-1 given x_t) per "
             f"level. The {len(level['bands']['bpd'])} strata, summed by decade of t (bits/dim):", ""]
    lines += _table(["term", "bits/dim"], rows)
    lines += [f"Where the bits go: the KL terms at t = {heaviest['first']} .. {heaviest['last']} carry "
              f"{heaviest['bpd'] / level['total']:.0%} of the bound; all KL terms together "
              f"{kl_total / level['total']:.0%}, the decoder {level['decoder'] / level['total']:.0%}."]
    vae = summary_with(lk, "elbo_terms_bpd")
    if vae:
        total = vae["reconstruction"] + vae["kl"]
        lines += [f"The VAE's bound on the same digits has one latent level: reconstruction "
                  f"{vae['reconstruction']:.4f} + KL {vae['kl']:.4f} = {total:.4f} bits/dim (its ELBO above). Its "
                  "single KL is the counterpart of the diffusion sum of KL terms: both price what the latents say "
                  "about the digit beyond the prior."]
    return lines + [""]


def latent_lines(report: dict) -> list[str]:
    lines = []
    lines += ["## Latent space", "", "Paths between pairs of prior draws, decoded and embedded in the lab "
              "classifier's (`lenet`) features. Step CV: std/mean of the feature-space step lengths (0 = even); max "
              "step share: the largest step's share of the path (1/(steps-1) = even); length ratio: path "
              "length over the straight distance; PPL: perceptual path length in classifier features. Each is a "
              "mean over the paths ± its standard error over the paths.", ""]
    rows = []
    for name, v in report["latent"].items():
        for m in ("slerp", "lerp"):
            p = v[m]
            rows.append([title(name), m, v["latent"], pm(p["step_cv"], p["step_cv_se"]),
                         pm(p["max_step_share"], p["max_step_share_se"]),
                         pm(p["path_length_ratio"], p["path_length_ratio_se"]),
                         f"{p['ppl']:.4g} ± {p['ppl_se']:.2g}"])
    lines += _table(["family", "path", "latent", "step CV", "max step share", "length ratio", "PPL"], rows)
    for name, v in report["latent"].items():
        r = v.get("reconstruction")
        lines += [f"- {title(name)}: " + (f"{r['method']}: MSE {r['mse']:.4f}, same class {r['same_class']:.1%} "
                                          f"({r['n']} test digits)" if r else v.get("note", "no encoder"))]
    lines += [""]
    return lines


def stability_lines(report: dict, figure: Path | None) -> list[str]:
    lines = []
    lines += ["## Training stability", "", "From each checkpoint's train_log.jsonl (and quality_log.jsonl, "
              "written by `engines.train --eval-every`)." + (f" Figure: `{figure.name}`." if figure else ""), ""]
    rows = []
    for name, s in report["stability"].items():
        for loss, c in s["losses"].items():
            rows.append([title(name), loss, c["start"], c["end"], c["min"], c["last_quarter_mean"],
                         c["last_quarter_cv"], c["last_quarter_roughness"]])
    lines += _table(["family", "loss", "start", "end", "min", "last-quarter mean", "CV", "roughness"], rows)
    for name, s in report["stability"].items():
        q = s.get("quality")
        if q:
            fds = ", ".join(f"{c['step']}: {c['frechet_distance']:.1f}" for c in q["checkpoints"])
            lines += [f"- {title(name)} Frechet distance per checkpoint ({q['samples_per_checkpoint']} "
                      f"samples): {fds}. Best at step {q['best_step']}; final/best {q['final_over_best']}; "
                      f"worse by >10% at {q['times_worse']} of {q['transitions']} checkpoints; second-half CV "
                      f"{q['second_half_cv']}."]
        else:
            lines += [f"- {title(name)}: no quality_log.jsonl (train with --eval-every to record it)."]
    return lines + [""] + compute_lines(report["stability"])


def compute_lines(stability: dict) -> list[str]:
    """Each shipped model's training compute (training_info.json's record), against the largest: the families
    were not trained with equal compute, and a quality verdict should be read with that in mind."""
    runs = {name: s["compute"] for name, s in stability.items() if s.get("compute")}
    if not runs:
        return []
    most = max(runs.values(), key=lambda c: c["flops"])
    rows = [[title(name), f"{c['flops']:.3g}", f"{c['flops'] / most['flops']:.2f}", c["steps"],
             f"{c['images_seen']:,}", f"{c['wall_s'] / 3600:.2f} h" if c.get("wall_s") else "-", c["flops_source"]]
            for name, c in runs.items()]
    missing = [title(name) for name in stability if name not in runs]
    hybrids = [title(f.name) for f in families() if f.is_hybrid and f.name in runs]
    inherited = (f"A hybrid's row ({', '.join(hybrids)}) counts its own training only: what it reuses of its "
                 "parents (weights, networks) was paid for in their rows." if hybrids else "")
    return ["### Training compute", "", "Training FLOPs (matrix products and convolutions, forward and backward, "
            "of every network a family trains; engines/training/compute.py) of each shipped model. The families "
            "were trained with unequal compute: read the quality verdicts beside this table." +
            (f" {inherited}" if inherited else "") + (f" No record: {', '.join(missing)}." if missing else ""), "",
            *_table(["family", "training FLOPs", "of the most", "steps", "images seen", "wall time", "counted"],
                    rows)]


def budget(settings: dict) -> str:
    """"1500 steps, measured every 100 steps", or per family where the study gave families different budgets."""
    steps, every = settings["steps"], settings["check_every"]
    if not isinstance(steps, dict):
        return f"{steps} steps, measured every {every} steps"
    return "; ".join(f"{title(f)} {steps[f]} steps, measured every {every[f]}" for f in steps)


WEIGHTS_TITLES = {"ema": "EMA", "raw": "raw"}


def measured_text(measured: dict) -> str:
    """"EMA weights (decay 0.995), 1000 samples at 15 checkpoints (every 100 of 1500 steps)"."""
    weights = WEIGHTS_TITLES.get(measured.get("weights"), str(measured.get("weights")))
    decay = f" (decay {measured['ema_decay']:g})" if "ema_decay" in measured else ""
    every = (f" (every {measured['check_every']} of {measured['steps']} steps)"
             if "check_every" in measured and "steps" in measured else "")
    return (f"{weights} weights{decay}, {measured.get('samples')} samples at {measured.get('checkpoints')} "
            f"checkpoints{every}")


def seeds_row(name: str, record: dict, n: int) -> list:
    return [title(name), WEIGHTS_TITLES.get(record["measured"]["weights"], record["measured"]["weights"]),
            rate_text(count_of(record["collapse_rate"], n), n), rate_text(count_of(record["short_rate"], n), n),
            rate_text(count_of(record["oscillation_rate"], n), n),
            spread(record["final_modes_covered_mean"], record["final_modes_covered_std"], n, 1),
            spread(record["final_on_mode_mean"], record["final_on_mode_std"], n)]


def spread(mean: float, std: float, n: int, digits: int = 2) -> str:
    """Mean ± the spread over seeds; where every seed gave the same value, that value and "every seed" (a
    spread of 0 is not an uncertainty of 0)."""
    return f"{mean:.{digits}f} at every one of {n} seeds" if std == 0 else pm(mean, std, digits)


def seeds_lines(report: dict) -> list[str]:
    st = report["seeds"]
    settings = st["settings"]
    lines = ["## Training stability across seeds (2-D)", "",
             f"A claim about a family cannot rest on one training run, and the image models above are one run "
             f"each. The 2-D playground's versions of the families were trained on the "
             f"{settings['distribution_title']} with {len(settings['seeds'])} seeds each ({budget(settings)}; each "
             f"measurement on {settings['samples']} samples; learning rates "
             + ", ".join(f"{title(k)} {v:g}" for k, v in settings["lr"].items()) + "). "
             "Rates as counts of the seeds with their exact 95% intervals (Clopper & Pearson 1934); means ± "
             "standard deviations over the seeds. The study is of 2-D data: it does not depend on the report's "
             "dataset.", ""]
    remeasured = report.get("settings", {}).get("remeasured", {})
    for which, again in ((k, v) for k, v in remeasured.items() if k == "seeds" or k.startswith("seeds (")):
        whose = "" if which == "seeds" else f" for {which[len('seeds ('):-1]}"
        lines += [f"This section was measured again on its own{whose}, with the settings of the command above: "
                  f"`{again['command']}` ({again['hardware']}).", ""]
    n = len(settings["seeds"])
    primary, raw = seed_records(st), seed_records(st, sensitivity=True)
    rows = []
    for name, record in primary.items():
        rows.append(seeds_row(name, record, n))
        if name in raw:
            rows.append([f"{title(name)} (sensitivity)", *seeds_row(name, raw[name], n)[1:]])
    lines += _table(["family", "weights", "collapse", "fell short of all modes", "oscillation", "final modes covered",
                     "final on-mode share"], rows)
    lines += ["What each family's rates were measured from (verdicts compare only families measured alike: the "
              "same weights, samples and checkpoints):", ""]
    lines += [f"- {title(name)}: {measured_text(record['measured'])}"
              + (f"; sensitivity: {measured_text(raw[name]['measured'])}" if name in raw else "")
              for name, record in primary.items()]
    said = [f"- {r['row']}: {r['sensitivity']}" for r in report.get("summary", []) if r.get("sensitivity")]
    if said:
        lines += ["", "Does the kind of weights change a verdict?", "", *said]
    lines += [""]
    lines += [f"- {term}: {text}" for term, text in st["definitions"].items()]
    return lines + [""]


def speed_lines(report: dict) -> list[str]:
    lines = []
    sp = report["speed"]
    lines += ["## Speed", "", f"Batch of {sp['batch']}, median wall time. {sp['note']}.", ""]
    lines += _table(["family", "sampler", "steps", "NFE/sample", "ms/sample"],
                    [[title(r["engine"]), r.get("sampler", "-"), r.get("steps", "-"), r["nfe"],
                      f"{r['ms_per_sample']:.2f}" + (" (extrapolated; informational, in no verdict)"
                                                     if r.get("extrapolated") else "")]
                     for r in sp["rows"]])
    race, why = race_for(report)
    lines += ["The speed race (`python -m engines.speed_race`, its chart in the app's Compare tab) puts every "
              "few-step sampler on one chart of quality against network evaluations; the Speed verdicts read from "
              "it" + (f", n = {race['n']} samples per entry, seed {race['seed']}" if race else f" ({why})")
              + ". Its targets:", "", targets_text(race, report), ""]
    if report.get("dataset", "mnist") == "mnist":
        lines += ["Steps against quality for every sampler (ours and the diffusers schedulers): the diffusion "
                  "model card (`checkpoints/mnist/diffusion/README.md`), measured by "
                  "`python -m engines.sampler_benchmark`.", ""]
    return lines


def convergence_lines(report: dict) -> list[str]:
    """Each measured family: converged or stopped at budget, from its shipped checkpoint's scored log."""
    root = checkpoints_dir(report.get("dataset", "mnist"))
    measured = [f for f in families() if f.name in report.get("quality", {})]
    status = {f.name: convergence(read_jsonl(root / f.name / QUALITY_LOG_NAME)) for f in measured}
    rows = [[title(name), c["status"], c["detail"]] for name, c in status.items()]
    return ["## Converged or stopped at budget", "",
            "From each shipped model's own training scores (`quality_log.jsonl`, written by `--eval-every`): "
            "converged when the Frechet distances of its last three scored checkpoints tie within 2 SE in both "
            "feature nets, otherwise stopped at budget (a log scored without standard errors in both nets shows no "
            "convergence: stopped at budget, not shown converged).", "",
            *_table(["family", "status", "what its log says"], rows)]


def compute_curve_lines(report: dict, figure_path: Path) -> list[str]:
    """Quality against training compute (`engines.measure.compute_curve`): the chart beside report.md, each
    family's budget and last score, and the equal-compute reading."""
    by_family = compute_curve.curves(report.get("dataset", "mnist"))
    if not by_family:
        return []
    compute_curve.figure(by_family).savefig(figure_path, dpi=80)
    reading = compute_curve.equal_compute(by_family)
    rows = []
    for name, c in by_family.items():
        last = c["points"][-1]
        scores = "; ".join(f"[{net}] {v['frechet_distance']:.3g}" + (f" ± {v['frechet_distance_se']:.2g}"
                                                                      if v["frechet_distance_se"] else " (no SE)")
                           for net, v in last["nets"].items())
        rows.append([title(name), f"{last['flops']:.3g}", title(c["parent"]) if c["parent"] else "-",
                     f"{len(c['points'])}", scores])
    sizes = lambda with_se: "/".join(map(str, compute_curve.sample_sizes(by_family, with_se)))   # noqa: E731
    return ["## Quality against training compute", "",
            f"![quality against compute]({figure_path.name})", "",
            "Each shipped model's scored checkpoints (`quality_log.jsonl`) on an axis of training FLOPs (its "
            "compute record; a model built on a trained parent starts at the parent's whole training). Solid lines "
            f"were scored with standard errors in both feature nets ({sizes(True) or '-'} samples); dashed ones by "
            f"older runs, in the lab net alone, from {sizes(False) or '-'} samples and without an SE (a Frechet "
            "distance from fewer samples is biased upward), and are never read for a verdict.", "",
            *_table(["family", "training FLOPs at its last score", "built on", "scored checkpoints",
                     "last score (Frechet distance)"], rows), "",
            compute_curve.reading_text(reading), ""]


def asked_lines(report: dict, figure_path: Path) -> list[str]:
    """Ask for a class (`engines.measure.conditional`): each conditional family's conditional accuracy in every
    net, relative to the real test images', its weakest class, and the confusion matrices beside report.md."""
    records = conditional.measured(report)
    if not records:
        return []
    dataset = report.get("dataset", "mnist")
    conditional.figure(report, LAB_CLASS_NAMES[dataset]).savefig(figure_path, dpi=80)
    rows = []
    for name, record in records.items():
        for net, relative in record["relative"].items():
            k, weakest = conditional.weakest_class(relative)
            rows.append([title(name), net, f"{record['samples'][net]['accuracy']:.1%} ± "
                         f"{record['samples'][net]['accuracy_se']:.1%}", f"{record['real'][net]['accuracy']:.1%}",
                         pm(relative["accuracy"], relative["accuracy_se"]),
                         f"{LAB_CLASS_NAMES[dataset][k]}: {weakest:.2f}", f"{registry.family(name).quality_bar:.2f}"])
    return ["## Ask for a class", "", f"![confusion matrices]({figure_path.name})", "",
            f"The quality rows' samples of each class-conditional family ({report['n']}, each class asked in turn), "
            "read by each feature net: the share read as the class asked (binomial SE), beside the real test "
            "images asked for their own labels (the nets misread some of those too), and the ratio of the two "
            "(1 = as recognisable as the data; SE by the delta method). An image the net's typicality gate refuses "
            "counts as wrong. The matrices: rows the class asked, columns the class read. Each family samples as "
            "trained, its knob at its neutral setting (" + ", ".join(
                f"{registry.family(name).title}: {registry.family(name).knob.label(registry.family(name).knob.neutral)}"
                for name in records if registry.family(name).knob) + ").", "",
            *_table(["family", "net", "read as asked", "real images", "relative to real", "weakest class (relative)",
                     "bar"], rows), ""]


def knob_lines(report: dict, figure_path: Path) -> list[str]:
    """Fidelity against diversity: each family's knob swept (`python -m engines.knob_sweep`), where measured on
    the weights that ship, and its chart beside report.md."""
    sweep = sweep_for(report.get("dataset", "mnist"))
    if sweep is None:
        return []
    knob_figure(sweep).savefig(figure_path, dpi=80)
    return ["## Fidelity against diversity", "", f"![fidelity against diversity]({figure_path.name})", "",
            f"Each family's knob swept by `{sweep['command']}`: {sweep['n']} samples per setting from seed "
            f"{sweep['seed']} (the same latents or noise at every setting), scored as the rows above. {RULE}", "",
            knob_verdicts(sweep), "",
            *table_lines(sweep), *([serves_both_text(report, sweep), ""] if serves_both(report, sweep) else [])]


def straightness_lines(report: dict) -> list[str]:
    """Each measured family's straightness, and each two's difference path by path with its reading."""
    st = report["straightness"]
    measured = [f for f in families() if f.name in st]
    lines = ["## Straightness of the sampling paths", "",
             f"Liu et al. 2022's straightness: the {st['unit']}. Every family that samples by an ODE on a Gaussian "
             f"path is written on that one straight path (diffusion: x / (sqrt(abar) + sqrt(1 - abar)) at s = "
             f"sqrt(1 - abar) / (sqrt(abar) + sqrt(1 - abar)), where deterministic DDIM is Euler's method), and its "
             f"{st['n']} paths of {st['steps']} steps start from the same seeded noise. Relative: over the chord's "
             f"own squared speed. ± standard errors over the paths.", ""]
    lines += _table(["family", "sampler", "span of s", "per pixel", "relative"],
                    [[title(f.name), st[f.name]["sampler"], " to ".join(f"{v:g}" for v in st[f.name]["span"]),
                      pm(st[f.name]["per_pixel"], st[f.name]["per_pixel_se"], 4),
                      pm(st[f.name]["relative"], st[f.name]["relative_se"], 4)] for f in measured])
    for i, earlier in enumerate(measured):
        for later in measured[i + 1:]:
            diff = st.get(f"{later.name}_minus_{earlier.name}")
            if diff:
                outcome = compare(diff["mean"], 0.0, diff["se"])
                reading = {-1: "straighter", 1: "less straight", 0: f"a tie (within {TIE_SE:g} SE)"}[outcome]
                lines += [f"- {later.heading} minus {earlier.title}, path by path (the same noise): "
                          f"{pm(diff['mean'], diff['se'], 4)} per pixel: {reading}."]
    return lines + [""]


def reproducing_lines(report: dict) -> list[str]:
    lines = []
    where = f"checkpoints/{report.get('dataset', 'mnist')}/report.json"
    lines += ["## Reproducing", "", f"`python -m engines.evaluate --check {where}` reruns the "
              "command above and compares every number within these tolerances (timings are not compared; a number "
              "no rule names must match exactly):", ""]
    lines += [f"- `{pattern}`: {rule if isinstance(rule, str) else ', '.join(f'{k} {v}' for k, v in rule.items())}"
              for pattern, rule in report.get("tolerances", TOLERANCES)]
    return lines


SECTION_LINES = {"quality": quality_lines, "likelihood": likelihood_lines, "latent": latent_lines}


def other_dataset_lines(report: dict, others: dict[str, dict]) -> list[str]:
    """For a report on another dataset than MNIST: its verdicts beside MNIST's, the changed ones marked."""
    dataset = report.get("dataset", "mnist")
    if dataset == "mnist" or not others:
        return []
    from engines.data.datasets import LAB_DATASET_TITLES
    table = dataset_verdicts_markdown({**others, dataset: report}, LAB_DATASET_TITLES)
    return ["## Against MNIST", "", "The same measures on the MNIST models (`checkpoints/mnist/report.md`): "
            "a claim whose verdict differs between the datasets is marked \"changes\".", "",
            *table.splitlines()[2:], ""]


def write_markdown(report: dict, path: Path, others: dict[str, dict] | None = None) -> None:
    """report.md beside report.json; `others` (dataset -> report) are the reports it is set beside (a
    non-MNIST report's verdicts beside MNIST's: `engines.evaluate` passes the committed MNIST report)."""
    path = Path(path)
    figure = write_figure(report, path.with_name(path.stem + "_training.png"))
    dataset = report.get("dataset", "mnist")
    against = other_dataset_lines(report, others or {})   # names the datasets as they are titled: kept as it is
    lines = summary_lines(report) + feature_net_lines(report)
    for section in ("quality", "likelihood", "latent"):
        if section in report:
            lines += SECTION_LINES[section](report)
        if section == "likelihood" and section in report:
            lines += hierarchy_lines(report)
    if "quality" in report:
        lines += asked_lines(report, path.with_name(path.stem + "_conditional.png"))
    lines += knob_lines(report, path.with_name(path.stem + "_knobs.png"))
    if "stability" in report:
        lines += stability_lines(report, figure)
    if "quality" in report:
        lines += convergence_lines(report)
        lines += compute_curve_lines(report, path.with_name(path.stem + "_compute.png"))
    if "seeds" in report:
        lines += seeds_lines(report)
    if report.get("straightness"):
        lines += straightness_lines(report)
    if "speed" in report:
        lines += speed_lines(report)
    lines += reproducing_lines(report)
    summary = len(summary_lines(report))
    path.write_text("\n".join([in_words_of(dataset, "\n".join(lines[:summary])), *against,
                               in_words_of(dataset, "\n".join(lines[summary:]))]) + "\n")


def write_figure(report: dict, path: Path) -> Path | None:
    """Loss curves and checkpoint Frechet distances, one column per family (None without matplotlib)."""
    stability = report.get("stability")
    if not stability:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    # The seed's families, one column each (the hybrids' runs are in the stability table).
    shown = [f for f in families("family") if f.name in stability]
    fig, axes = plt.subplots(2, len(shown), figsize=(4 * len(shown), 6), squeeze=False)
    for col, family in enumerate(shown):
        s = stability[family.name]
        for loss, c in s["losses"].items():
            if loss in ("loss", "d_loss", "g_loss", "reconstruction", "kl"):
                axes[0, col].plot(c["curve"]["step"], c["curve"]["value"], label=loss)
        axes[0, col].set_title(f"{family.title}: training losses")
        axes[0, col].legend(fontsize=7)
        axes[0, col].set_yscale(family.loss_scale)
        q = s.get("quality")
        if q:
            axes[1, col].plot([c["step"] for c in q["checkpoints"]],
                              [c["frechet_distance"] for c in q["checkpoints"]], marker="o")
        else:
            axes[1, col].text(0.5, 0.5, "no quality_log.jsonl", ha="center", va="center")
        axes[1, col].set_title(f"{family.title}: FD per checkpoint")
        axes[1, col].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
