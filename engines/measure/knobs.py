"""Fidelity against diversity: each family's knob swept, every setting measured like a report row.

    python -m engines.knob_sweep [--dataset mnist] [--n 1000] [--seed 0]

Every shipped family whose record has a `Knob` (the VAE's temperature tau, the GAN's truncation psi, classifier-free
guidance's scale w) samples --n images at each of its knob's values, from the same seed (the same latents or start
noise at every value, so the knob is the only change), at its report options. Each set is scored as the report
scores a family (`evaluation.score`): in both feature nets, precision and density (fidelity: how many samples
look like real ones), recall and coverage (diversity: how much of the real data the samples reach), the
recognisable share and the Frechet distance, each with its standard error.

The folklore says each knob trades the one for the other: turned toward typical samples, precision rises and
recall falls. `verdict` checks exactly that for each knob, between its neutral value and its most typical one,
beyond 2 SE in both nets ("depends on the feature net" where they disagree, a tie where neither moves).

Rows are written to checkpoints/<dataset>/knobs.json after each value, tagged with the weights' hashes, so a rerun
keeps what was measured on the same weights (a sweep stopped part-way goes on from the value it reached);
the Compare tab draws the chart.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import textwrap
from pathlib import Path

import torch

from engines.checkpoint import checkpoints_dir
from engines.data.datasets import LAB_DATASETS, load_lab_split
from engines.errors import EngineError
from engines.family import Family
from engines.measure.conditional import asked_class_shares
from engines.measure.quality import generate
from engines.measure.sampler_benchmark import weights_hash
from engines.measure.uncertainty import AGREES, DEPENDS, DISAGREES, TIE, compare, se_of_difference
from engines.registry import available_engines, families, load_engine
from engines.registry import family as family_of
from engines.runtime import hardware

FIDELITY, DIVERSITY = "precision", "recall"


def out_path(dataset: str) -> Path:
    return checkpoints_dir(dataset) / "knobs.json"


def report_diffusion_options(dataset: str) -> dict:
    """The diffusion sampler of the dataset's report rows, for the families that take it (as `evaluate` does)."""
    path = checkpoints_dir(dataset) / "report.json"
    if not path.is_file():
        raise EngineError(f"no report for {dataset} yet: the sweep samples as its rows do (python -m engines.evaluate "
                          f"--dataset {dataset})")
    return json.loads(path.read_text())["settings"]["diffusion"]


def knobbed(dataset: str) -> list[Family]:
    """The shipped families of `dataset` with a knob, in registry order."""
    shipped = available_engines(checkpoints_dir(dataset))
    return [f for f in families() if f.knob is not None and f.name in shipped]


@torch.no_grad()
def measure_value(family: Family, engine, options: dict, value, n: int, seed: int, nets: dict, reference: dict,
                  dataset: str) -> dict:
    """The row of one knob value: the report's score of n samples drawn with it (and, for a conditional model,
    the share of them each feature net reads as the class asked)."""
    from engines.measure.evaluation import score  # (evaluation writes report.md, which reads this module)
    knob = {} if value is None else {family.knob.option: value}
    images, _ = generate(engine, n, seed, {**options, **knob})
    row = {"value": value, "label": family.knob.label(value), **score(nets, reference, images, seed)}
    asked = engine.asked_classes(n)
    if asked is not None:   # a conditional model: its fidelity is also being the class asked
        row["asked_class_share"] = asked_class_shares(images, asked, dataset)
    return row


def kept_rows(kept: dict, weights: str, values: list) -> list[dict]:
    """The rows of a previous sweep measured on the same weights, as far as its values are this knob's (a sweep
    stopped part-way keeps the values it finished)."""
    rows = []
    for row, value in zip(kept.get("rows", []) if kept.get("weights") == weights else [], values):
        if row["value"] != value:
            break
        rows.append(row)
    return rows


def sweep_family(family: Family, dataset: str, record: dict, measure: dict, save, log=print) -> None:
    """Measure each of the knob's values missing from `record["rows"]`, appending its row and saving after each
    (a long sweep stopped part-way goes on from there). `measure`: n, seed, nets, reference."""
    from engines.measure.evaluation import sampling_options
    values = list(family.knob.values)[len(record["rows"]):]
    if not values:
        return
    engine = load_engine(family.name, dataset=dataset)
    options = sampling_options(family, report_diffusion_options(dataset))
    for value in values:
        row = measure_value(family, engine, options, value, dataset=dataset, **measure)
        record["rows"].append(row)
        save()
        log(f"knob {family.name} {row['label']}: " + ", ".join(
            f"[{net}] precision {r['precision']:.3f} recall {r['recall']:.3f} FD {r['frechet_distance']:.3g}"
            for net, r in row["nets"].items()))


def run(dataset: str, n: int, seed: int, command: str, log=print) -> dict:
    """Sweep every knob value not yet measured on the same weights, saving after each."""
    path = out_path(dataset)
    previous = json.loads(path.read_text()) if path.is_file() else {}
    root = checkpoints_dir(dataset)
    same = previous.get("n") == n and previous.get("seed") == seed
    from engines.measure.evaluation import load_feature_nets, reference_set
    nets = load_feature_nets(dataset)
    measure = {"n": n, "seed": seed, "nets": nets,
               "reference": reference_set(nets, load_lab_split(dataset, "test").images)}
    out = {"dataset": dataset, "n": n, "seed": seed, "command": command, "hardware": hardware(), "families": {}}

    def save():
        path.write_text(json.dumps(out, indent=1) + "\n")
    for family in knobbed(dataset):
        kept = previous.get("families", {}).get(family.name, {}) if same else {}
        weights = weights_hash(root / family.name)
        record = {"option": family.knob.option, "symbol": family.knob.symbol, "neutral": family.knob.neutral,
                  "weights": weights, "rows": kept_rows(kept, weights, list(family.knob.values))}
        out["families"][family.name] = record
        sweep_family(family, dataset, record, measure, save, log)
        save()
    return out


CHECKED = ("precision", "recall", "density", "coverage", "frechet_distance")


def row_differences(name: str, committed: list[dict], fresh: list[dict], n: int) -> list[str]:
    """Where a re-measured row is not the committed one: each number within half its SE (another CPU rounds some
    sums differently; on the same CPU and thread count the rows are equal)."""
    problems = []
    for old, new in zip(committed, fresh):
        pairs = [("sharpness", old["sharpness"], new["sharpness"], old["sharpness_se"])]
        for net in old["nets"]:
            pairs += [(f"{key} ({net})", old["nets"][net][key], new["nets"][net][key], old["nets"][net][f"{key}_se"])
                      for key in CHECKED]
            if ASKED in old:
                pairs.append((f"class asked ({net})", *(row[ASKED][net] for row in (old, new)),
                              value_and_se(old, ASKED, net, n)[1]))
        problems += [f"{name} {old['label']}: {what} {a:.4g} committed, {b:.4g} now (tolerance {0.5 * se:.2g})"
                     for what, a, b, se in pairs if abs(a - b) > max(0.5 * se, 1e-6 * abs(a))]
    return problems


def check(dataset: str, names: list[str] | None = None, log=print) -> list[str]:
    """Re-measure the committed sweep's families (`names`, default all) with its settings, writing nothing; the
    differences from the committed rows (none: reproduced)."""
    committed = json.loads(out_path(dataset).read_text())
    from engines.measure.evaluation import load_feature_nets, reference_set
    nets = load_feature_nets(dataset)
    measure = {"n": committed["n"], "seed": committed["seed"], "nets": nets,
               "reference": reference_set(nets, load_lab_split(dataset, "test").images)}
    problems = []
    for name in names or list(committed["families"]):
        record = committed["families"].get(name)
        if record is None or record["weights"] != weights_hash(checkpoints_dir(dataset) / name):
            problems.append(f"{name}: the committed sweep has no rows measured on the weights that ship")
            continue
        fresh = {**record, "rows": []}
        sweep_family(family_of(name), dataset, fresh, measure, save=lambda: None, log=log)
        problems += row_differences(name, record["rows"], fresh["rows"], committed["n"])
    return problems


ASKED = "asked_class_share"   # a conditional model's rows: the share of its samples each net reads as the class asked
RULE = ("The folklore holds for a knob when, from the model as trained to the knob's far end, fidelity rises "
        "(precision; for a class-conditional model also the share read as the class asked: one of them up beyond "
        "2 SE, neither down) and diversity (recall) falls beyond 2 SE, in both feature nets.")


def value_and_se(row: dict, key: str, net: str, n: int) -> tuple[float, float]:
    """A row's measure in `net` with its SE: the scored ones carry theirs; the asked-class share is binomial."""
    if key == ASKED:
        share = row[ASKED][net]
        return share, math.sqrt(share * (1 - share) / n)
    return row["nets"][net][key], row["nets"][net][f"{key}_se"]


def moved(a: dict, b: dict, key: str, net: str, n: int) -> int:
    """+1 where b's `key` is above a's beyond 2 SE in `net`, -1 below, 0 a tie."""
    (x, x_se), (y, y_se) = value_and_se(a, key, net, n), value_and_se(b, key, net, n)
    return compare(y, x, se_of_difference(x_se, y_se))


def fidelity_keys(rows: list[dict]) -> tuple[str, ...]:
    return (FIDELITY, ASKED) if ASKED in rows[0] else (FIDELITY,)


def fidelity_move(a: dict, b: dict, net: str, n: int, keys: tuple[str, ...]) -> int:
    """+1 where one fidelity measure rises beyond 2 SE and none falls, -1 the reverse, else 0."""
    moves = {moved(a, b, key, net, n) for key in keys}
    return 1 if 1 in moves and -1 not in moves else -1 if -1 in moves and 1 not in moves else 0


MOVES = {1: "up", -1: "down", 0: "a tie"}


def verdict(family: Family, measured: dict, n: int) -> dict:
    """The folklore for one knob (`RULE`): from its neutral value to its most typical one (the end of its sweep),
    fidelity rises and recall falls, beyond 2 SE, in every feature net (the two sets share their latents; their
    SEs taken as independent make the test conservative)."""
    rows = {r["value"]: r for r in measured["rows"]}
    neutral, typical = rows[family.knob.neutral], measured["rows"][-1]
    nets, keys = list(neutral["nets"]), fidelity_keys(measured["rows"])
    directions = {net: (fidelity_move(neutral, typical, net, n, keys), moved(neutral, typical, DIVERSITY, net, n))
                  for net in nets}
    traded = [d == (1, -1) for d in directions.values()]
    if all(traded):
        word = AGREES
    elif any(traded):
        word = DEPENDS
    elif all(d == (0, 0) for d in directions.values()):
        word = TIE
    else:
        word = DISAGREES

    def change(key: str, net: str) -> str:
        before, after = value_and_se(neutral, key, net, n)[0], value_and_se(typical, key, net, n)[0]
        return f"{NAMES[key]} {before:.2f} -> {after:.2f}"

    detail = "; ".join(f"[{net}] " + ", ".join(
        f"{change(key, net)} ({MOVES[moved(neutral, typical, key, net, n)]})" for key in (*keys, DIVERSITY))
        for net in nets)
    detail += "; " + turns_text(family, measured["rows"], nets, n)
    first = nets[0]
    cell = (f"{family.knob.label(family.knob.neutral)} -> {typical['label']}: [{first}] "
            + ", ".join(change(key, first) for key in (*keys, DIVERSITY)))
    return {"family": family.name, "claim": family.knob.folklore, "verdict": word, "cell": cell,
            "detail": f"{family.title}, {family.knob.label(family.knob.neutral)} -> {typical['label']}: {detail}"}


NAMES = {FIDELITY: FIDELITY, DIVERSITY: DIVERSITY, ASKED: "class asked"}


def turns_text(family: Family, rows: list[dict], nets: list[str], n: int) -> str:
    """Is the sweep monotone in fidelity? Along the sweep's order (towards the knob's typical end), where a
    fidelity measure first falls beyond 2 SE from one setting to the next, per net; else that none ever does."""
    turns, keys = [], fidelity_keys(rows)
    for net in nets:
        for key in keys:
            at = next(((a, b) for a, b in zip(rows, rows[1:]) if moved(a, b, key, net, n) == -1), None)
            if at is not None:
                a, b = (value_and_se(r, key, net, n)[0] for r in at)
                turns.append(f"[{net}] {NAMES[key]} turns down at {at[1]['label']} ({a:.2f} -> {b:.2f})")
    if not turns:
        return (f"{' and '.join(NAMES[key] for key in keys)} {'fall' if len(keys) > 1 else 'falls'} at no step of "
                f"the sweep ({family.knob.symbol} in the order above) in any net")
    return "not monotone in fidelity: " + ", ".join(turns)


def serves_both(report: dict, sweep: dict | None) -> list[dict]:
    """One network for both (Ho & Salimans 2022): each conditional family whose knob has an unconditional setting,
    its Frechet distance there against the unconditional parent it started from, in the report's quality row
    (the same n, seed, sampler and score), per net: [{family, parent, net, ours, ours_se, parent_fd, parent_se,
    verdict}], the verdict "no worse" unless ours is higher beyond 2 SE of the difference."""
    out = []
    for name, measured in (sweep or {}).get("families", {}).items():
        family = family_of(name)
        parent = next(iter(family.parent_options.values()), None)
        value = family.knob.unconditional if family.knob else None
        theirs = report.get("quality", {}).get(parent, {}).get("nets") if parent else None
        row = next((r for r in measured["rows"] if value is not None and r["value"] == value), None)
        if row is None or not theirs or report.get("n") != sweep["n"]:
            continue
        for net, ours in row["nets"].items():
            if net not in theirs:
                continue
            fd, se = ours["frechet_distance"], ours["frechet_distance_se"]
            parent_fd, parent_se = theirs[net]["frechet_distance"], theirs[net]["frechet_distance_se"]
            worse = compare(fd, parent_fd, se_of_difference(se, parent_se)) > 0
            out.append({"family": name, "parent": parent, "net": net, "label": row["label"], "ours": fd,
                        "ours_se": se, "parent_fd": parent_fd, "parent_se": parent_se,
                        "verdict": "worse" if worse else "no worse"})
    return out


def serves_both_text(report: dict, sweep: dict | None) -> str:
    """serves_both in words, one sentence per family (empty where none was measured)."""
    by_family = {}
    for c in serves_both(report, sweep):
        by_family.setdefault(c["family"], []).append(c)
    sentences = []
    for name, checks in by_family.items():
        parent = family_of(checks[0]["parent"])
        said = "; ".join(f"[{c['net']}] {c['ours']:.3g} ± {c['ours_se']:.2g} against {c['parent_fd']:.3g} ± "
                         f"{c['parent_se']:.2g}" for c in checks)
        whole = ("no worse in every net beyond 2 SE: one network serves both" if all(
            c["verdict"] == "no worse" for c in checks) else "worse beyond 2 SE in " + ", ".join(
            c["net"] for c in checks if c["verdict"] == "worse") + ": the class-conditional training cost the "
            "unconditional model quality")
        sentences.append(f"Told no class ({checks[0]['label']}), the {family_of(name).title}'s Frechet distance "
                         f"against the {parent.title} model it started from (the same number of samples, seed, "
                         f"sampler and score): {said}: {whole} (the SEs are taken as independent, though both "
                         "start from the same noise, which makes a tie easier to reach).")
    return " ".join(sentences)


def sweep_for(dataset: str) -> dict | None:
    """The committed sweep of `dataset`, keeping the families whose shipped weights it measured (None: none)."""
    path = out_path(dataset)
    if not path.is_file():
        return None
    sweep = json.loads(path.read_text())
    root = checkpoints_dir(dataset)
    shipped = available_engines(root)
    sweep["families"] = {name: record for name, record in sweep["families"].items()
                         if name in shipped and record["weights"] == weights_hash(root / name)
                         and len(record["rows"]) == len(family_of(name).knob.values)}   # not one stopped part-way
    return sweep if sweep["families"] else None


def verdicts_text(sweep: dict | None) -> str:
    """The knobs' verdicts as markdown lines (Compare and report.md)."""
    if sweep is None:
        return "Not measured on these weights yet: `python -m engines.knob_sweep`."
    return "\n".join(f"- **{v['claim']}: {v['verdict']}.** {v['detail']}" for v in verdicts(sweep))


def share_text(share: float, n: int) -> str:
    """A share of n with its binomial SE; at 0 or 1 the SE is no measure of doubt: the count instead."""
    se = math.sqrt(share * (1 - share) / n)
    return f"{share:.1%} ± {se:.1%}" if round(se, 3) > 0 else f"{share:.0%} ({round(share * n)} of {n})"


def table_lines(sweep: dict) -> list[str]:
    """Each family's sweep as a markdown table: per value, precision, recall, coverage and Frechet distance
    (± SE) in each feature net."""
    lines = []
    for name, record in sweep["families"].items():
        nets = list(record["rows"][0]["nets"])
        asked = "asked_class_share" in record["rows"][0]   # a conditional model: also the class asked
        keys = ("precision", "recall", "coverage", "FD") + (("class asked",) if asked else ())
        lines += [f"{family_of(name).heading} ({record['option']}):", "",
                  "| " + " | ".join(["setting"] + [f"{key} ({net})" for net in nets for key in keys]) + " |",
                  "|" + "---|" * (1 + len(keys) * len(nets))]
        for row in record["rows"]:
            cells = [row["label"] + (" (as trained)" if row["value"] == record["neutral"] else "")]
            for net in nets:
                c = row["nets"][net]
                cells += [f"{c[k]:.2f} ± {c[k + '_se']:.2f}" for k in ("precision", "recall", "coverage")]
                cells += [f"{c['frechet_distance']:.3g} ± {c['frechet_distance_se']:.2g}"]
                if asked:
                    cells.append(share_text(row["asked_class_share"][net], sweep["n"]))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def verdicts(sweep: dict) -> list[dict]:
    return [verdict(f, sweep["families"][f.name], sweep["n"]) for f in families()
            if f.name in sweep.get("families", {})]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m engines.knob_sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist", choices=list(LAB_DATASETS))
    p.add_argument("--n", type=int, default=1000, help="samples per knob value (the report's n)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--check", nargs="*", metavar="FAMILY", default=None,
                   help="re-measure the committed sweep (these families; none named: all) with its settings and "
                        "compare, writing nothing; exit 1 where a number moved beyond half its SE")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.check is not None:
        return report_check(args.dataset, args.check)
    try:
        sweep = run(args.dataset, args.n, args.seed, shlex.join(["python", "-m", "engines.knob_sweep", *argv]))
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for v in verdicts(sweep):
        print(f"- {v['claim']}: {v['verdict']}. {v['detail']}")
    return 0


def report_check(dataset: str, names: list[str]) -> int:
    try:
        problems = check(dataset, names, log=lambda line: print(line, file=sys.stderr))
    except (EngineError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(problems) or f"reproduced: every re-measured row of {out_path(dataset)} within half its SE")
    return 1 if problems else 0


def figure(sweep: dict):
    """Fidelity against diversity, one panel per feature net: precision (± SE) against recall (± SE), a line per
    family through its knob's values, each point labelled, the neutral value (the model as trained) ringed; where
    a class-conditional family was swept, a second row: the share read as the class asked (± binomial SE) against
    recall. Up and to the left is the folklore's trade. `sweep`: `engines.measure.knobs.run`'s record."""
    from matplotlib.figure import Figure
    measured = sweep["families"]
    nets = list(next(iter(measured.values()))["rows"][0]["nets"])
    asked = {name: record for name, record in measured.items() if ASKED in record["rows"][0]}
    figure = Figure(figsize=(10, 4.2 * (1 + bool(asked))), layout="constrained")
    grid = figure.subplots(1 + bool(asked), len(nets), squeeze=False)
    for key, panels, records in (("precision", grid[0], measured), (ASKED, grid[-1], asked)):
        for name, record in records.items():
            for ax, net in zip(panels, nets):
                knob_line(ax, family_of(name), record, net,
                          lambda row, net, key=key: value_and_se(row, key, net, sweep["n"]))
    for row, ylabel in zip(grid, ("precision (fidelity)", "read as the class asked (fidelity)")):
        for ax, net in zip(row, nets):
            ax.set_xlabel("recall (diversity: share of real images the samples reach)", fontsize=8)
            title_axes(ax, f"Fidelity against diversity in the {net} net" if ylabel.startswith("precision") else
                       f"Class-conditional models: the class asked against diversity in the {net} net", ylabel)
        row[0].legend(fontsize=7, loc="lower left")
    return figure


def knob_line(ax, family, record: dict, net: str, fidelity) -> None:
    """One family's sweep in one net: `fidelity(row, net)` -> (value, SE) against recall, values labelled."""
    points = [(r["nets"][net]["recall"], r["nets"][net]["recall_se"], *fidelity(r, net)) for r in record["rows"]]
    ax.errorbar([p[0] for p in points], [p[2] for p in points], xerr=[p[1] for p in points],
                yerr=[p[3] for p in points], color=family.colour, marker="o", markersize=4, capsize=2,
                label=f"{family.heading}: {record['symbol']}")
    for row, (x, _, y, _) in zip(record["rows"], points):
        ax.annotate(row["label"].split(" = ")[1], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points",
                    color=family.colour)
        if row["value"] == record["neutral"]:
            ax.scatter([x], [y], s=120, facecolors="none", edgecolors=family.colour)


def title_axes(ax, title: str, ylabel: str) -> None:
    ax.set_title("\n".join(textwrap.wrap(title, 52)), fontsize=11)
    ax.set_ylabel(ylabel, fontsize=9)
