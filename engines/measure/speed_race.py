"""The speed race: sample quality against network evaluations per sample, every few-step sampler of the lab.

    python -m engines.speed_race [--dataset mnist] [--n 500] [--nfe 1 2 4 8 10 16 32 64]

Lines: each family whose record names `race_options` (diffusion: DDIM and DPM-Solver++; flow matching: Euler and
Heun; reflow: Euler), at the largest step count whose network evaluations per sample do not pass each target in
--nfe (Heun spends 2 per step but the last, so it runs at 1, 3, 7, ... evaluations). Points: every other shipped
family at its report options (the VAE and the GAN at 1 evaluation, the diffusion GAN at its 4). Each entry scores
--n samples (seeded, the same noise for every entry of a family) by `score_samples`: the Frechet distance ± SE in both
feature nets and the share recognised. The time axis is network evaluations times the family's measured
milliseconds per evaluation from the report's speed section (its fastest row per evaluation; measured on an idle
machine, unlike a run beside training), or the row's own time for a point: one network evaluation of the same
UNet costs the same whichever solver asks for it.

The rows are written to checkpoints/<dataset>/speed_race.json as they finish, tagged with the weights' hashes, so a
rerun keeps what was measured on the same weights and measures the rest. The distances are at n samples against
the 1,000 test images: comparable along the chart, not with the report's (n = 1,000) numbers. The report's Speed
verdicts read from the race (`race_for`, `fewest_reaching`): quality is matched inside it, at its n and seed; after
measuring, the command prints the lab's speed targets (`engines.measure.race_targets`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from engines.checkpoint import checkpoints_dir
from engines.measure.quality import generate, score_samples
from engines.measure.sampler_benchmark import weights_hash
from engines.measure.uncertainty import compare, se_of_difference
from engines.registry import available_engines, families, load_engine
from engines.runtime import hardware

BEST_NET = "allconv"   # ties in the fewest evaluations are broken by this net's distance
# Powers of two for the chart, and 10: the budget the speed targets compare at.
NFE_TARGETS = (1, 2, 4, 8, 10, 16, 32, 64)


def out_path(dataset: str) -> Path:
    return checkpoints_dir(dataset) / "speed_race.json"


def steps_for(engine, options: dict, target: int) -> int | None:
    """The largest step count whose network evaluations per sample do not pass `target` (None: not even one)."""
    fitting = [s for s in range(1, target + 1) if engine.network_evaluations(**options, steps=s) <= target]
    return max(fitting) if fitting else None


def entries(dataset: str, targets) -> list[dict]:
    """What the race measures, in registry order: (family, options) for every line point and every point."""
    shipped = available_engines(checkpoints_dir(dataset))
    out = []
    # A class-conditional family is told the class: it has its own rows (Ask for a class), not a place in the race
    # of the unconditional samplers.
    for family in (f for f in families() if f.name in shipped and not f.conditional):
        if not family.race_options:
            out.append({"engine": family.name, "line": None, "options": dict(family.evaluation_options)})
            continue
        engine = load_engine(family.name, dataset=dataset)
        for options in family.race_options:
            steps = sorted({s for s in (steps_for(engine, options, t) for t in targets) if s})
            out += [{"engine": family.name, "line": options["sampler"], "options": {**options, "steps": s}}
                    for s in steps]
    return out


def _key(entry: dict) -> str:
    """What identifies an entry (a measured row carries it too): its family and sampling options."""
    return json.dumps([entry["engine"], entry["options"]], sort_keys=True)


@torch.no_grad()
def measure(entry: dict, n: int, seed: int, dataset: str) -> dict:
    engine = load_engine(entry["engine"], dataset=dataset)
    options = entry["options"]
    started = time.perf_counter()
    images, _ = generate(engine, n, seed, options)
    return {**entry, "nfe": engine.network_evaluations(**options), **score_samples(images, dataset),
            "seconds": round(time.perf_counter() - started, 1)}


def ms_per_evaluation(report: dict) -> dict[str, float]:
    """Per family, the report's fastest measured (not extrapolated) milliseconds per network evaluation."""
    out = {}
    for row in report.get("speed", {}).get("rows", []):
        if not row.get("extrapolated"):
            per = row["ms_per_sample"] / row["nfe"]
            out[row["engine"]] = min(out.get(row["engine"], per), per)
    return out


def run(dataset: str, n: int, seed: int, targets, command: str, log=print) -> dict:
    """Measure every entry not yet in the file on the same weights, saving after each."""
    path = out_path(dataset)
    race = json.loads(path.read_text()) if path.is_file() else {}
    root = checkpoints_dir(dataset)
    hashes = {name: weights_hash(root / name) for name in available_engines(root)}
    same = race.get("n") == n and race.get("seed") == seed
    kept = {_key(r): r for r in race.get("rows", []) if same and r.get("weights") == hashes[r["engine"]]}
    race = {"dataset": dataset, "n": n, "seed": seed, "nfe_targets": list(targets), "command": command,
            "hardware": hardware(), "rows": []}
    for entry in entries(dataset, targets):
        row = kept.get(_key(entry)) or {**measure(entry, n, seed, dataset), "weights": hashes[entry["engine"]]}
        race["rows"].append(row)
        log(f"speed race: {row['engine']} {row.get('line') or ''} {row['nfe']} NFE: "
            f"{ {k: v['frechet_distance'] for k, v in row['frechet_by_net'].items()} }")
        path.write_text(json.dumps(race, indent=1) + "\n")
    return race


def with_times(race: dict, report: dict) -> list[dict]:
    """The rows with "ms_per_sample": network evaluations times the family's report speed per evaluation."""
    per = ms_per_evaluation(report)
    return [{**r, "ms_per_sample": round(r["nfe"] * per[r["engine"]], 2) if r["engine"] in per else None}
            for r in race["rows"]]


def race_for(report: dict) -> tuple[dict | None, str]:
    """(the committed race of the report's dataset, "") where every entry was measured on the weights that ship
    now, else (None, why not): the verdicts that read from it must be of the models the report measured."""
    dataset = report.get("dataset") or "mnist"
    path = out_path(dataset)
    if not path.is_file():
        return None, f"no speed race on this dataset yet (python -m engines.speed_race --dataset {dataset})"
    race = json.loads(path.read_text())
    root = checkpoints_dir(dataset)
    hashes = {name: weights_hash(root / name) for name in available_engines(root)}
    if any(hashes.get(r["engine"]) != r.get("weights") for r in race["rows"]):
        return None, "the speed race was measured on other weights than those that ship"
    return race, ""


def reaches(row: dict, target: dict) -> bool:
    """`row`'s Frechet distance is at most `target`'s in every feature net of `target`."""
    return all(row["frechet_by_net"][net]["frechet_distance"] <= t["frechet_distance"]
               for net, t in target["frechet_by_net"].items())


def clearly_worse(row: dict, target: dict) -> bool:
    """`row`'s Frechet distance is above `target`'s beyond 2 SE of the difference in some feature net."""
    return any(compare(row["frechet_by_net"][net]["frechet_distance"], t["frechet_distance"],
                       se_of_difference(row["frechet_by_net"][net]["frechet_distance_se"], t["frechet_distance_se"]))
               > 0 for net, t in target["frechet_by_net"].items())


def fewest_reaching(race: dict, slow: str, fast: str) -> tuple[dict | None, int]:
    """(the entry of `slow`'s lines with the fewest network evaluations that reaches `fast`'s point in every net,
    or None; the most evaluations up to which every entry of `slow`'s is worse beyond 2 SE, 0 where none is). So
    with the raced solvers, matched quality costs `slow` more than the second (an entry within the noise of the
    target is not counted as failing) and at most the first's evaluations."""
    point = next((r for r in race["rows"] if r["engine"] == fast), None)
    lines = [r for r in race["rows"] if r["engine"] == slow and r.get("line")]
    if point is None or not lines:
        return None, 0
    reaching = [r for r in lines if reaches(r, point)]
    best = min(reaching, key=lambda r: (r["nfe"], r["frechet_by_net"][BEST_NET]["frechet_distance"]),
               default=None)
    first_not_worse = min((r["nfe"] for r in lines if not clearly_worse(r, point)), default=None)
    return best, max((r["nfe"] for r in lines if first_not_worse is None or r["nfe"] < first_not_worse), default=0)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from engines.data.datasets import LAB_DATASETS
    from engines.errors import EngineError
    from engines.measure.race_targets import targets_text
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="python -m engines.speed_race", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=list(LAB_DATASETS))
    p.add_argument("--n", type=int, default=500, help="samples per entry")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nfe", type=int, nargs="+", default=list(NFE_TARGETS), help="network evaluations per sample")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.n < 20 or min(args.nfe) < 1:
        print("error: --n must be at least 20 (the SE halves the samples) and every --nfe at least 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        race = run(args.dataset, args.n, args.seed, sorted(set(args.nfe)),
                   "python -m engines.speed_race " + " ".join(argv), log=lambda line: print(line, file=sys.stderr))
    except EngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(race['rows'])} entries in {out_path(args.dataset)}")
    report_path = checkpoints_dir(args.dataset) / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    print("The lab's speed targets (the race, and the report's straightness section):\n"
          + targets_text(race, report))
    return 0
