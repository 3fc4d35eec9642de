"""The steps/quality trade-off of diffusion sampling, measured on the shipped model.

    python -m engines.sampler_benchmark [--n 1000] [--samplers ...] [--steps 10 20 50 100] [--threads N]
    python -m engines.sampler_benchmark --retime    # time every measured row again, in one quiet process
    python -m engines.sampler_benchmark --merge a.json b.json   # join parallel runs' rows into --out

For each sampler and step count: network evaluations per sample (NFE), wall time for 64 samples (one batch, timed
on one torch thread) and the Frechet distance of n samples to the test split in the lab classifier's feature space
(with the share the classifier recognises). Ancestral DDPM also runs at the full T = 1000 steps: the reference the
fast samplers are judged against. Rows are written to checkpoints/mnist/diffusion/sampler_benchmark.json as they
finish, tagged with the weights' hash: a rerun keeps the rows already measured on the same weights (so a long run
can be interrupted and continued) and redoes the rest. The diffusion model card shows the table.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import time
from pathlib import Path

import torch

from engines.checkpoint import CHECKPOINTS, WEIGHTS_NAME
from engines.engine import check_count
from engines.errors import EngineError
from engines.measure.quality import generate, score_samples
from engines.registry import load_engine
from engines.runtime import hardware
from engines.sampling.diffusers_adapter import PREFIX

OUT = CHECKPOINTS / "diffusion" / "sampler_benchmark.json"
SAMPLERS = ("ddpm", "ddim", PREFIX + "DPMSolverMultistepScheduler", PREFIX + "UniPCMultistepScheduler",
            PREFIX + "EulerDiscreteScheduler", PREFIX + "EulerAncestralDiscreteScheduler",
            PREFIX + "HeunDiscreteScheduler")
STEPS = (10, 20, 50, 100)
REFERENCE = ("ddpm", 1000)
TIMING_BATCH = 64
# The target: the best 20-step sampler within 10% of the reference's distance, at 50x less time.
TARGET_STEPS, TARGET_DISTANCE_RATIO, TARGET_SPEEDUP = 20, 1.10, 50


def weights_hash(directory: Path) -> str:
    """The first 16 hex digits of the SHA-256 of `directory`'s weights file: what a measurement was made on."""
    path = (directory / WEIGHTS_NAME).resolve()
    stat = path.stat()
    return _file_hash(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_hash(path: Path, size: int, mtime_ns: int) -> str:
    # Keyed by size and modification time too, so a rewritten file is hashed again: the app checks the race's
    # weights on every Compare request, and hashing 50 MB of weights each time is what this cache saves.
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@torch.no_grad()
def seconds_for_batch(engine, sampler: str, steps: int, seed: int) -> float:
    """Wall time of one batch, on one thread whatever --threads says, so rows timed in different runs compare."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        engine.sample(TIMING_BATCH, seed=seed, sampler=sampler, steps=steps)
        return round(time.perf_counter() - start, 2)
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def measure(engine, sampler: str, steps: int, n: int, seed: int) -> dict:
    seconds_64 = seconds_for_batch(engine, sampler, steps, seed)
    images, _ = generate(engine, n, seed, {"sampler": sampler, "steps": steps})
    return {"sampler": sampler, "steps": steps, "nfe": engine.network_evaluations(sampler, steps),
            "seconds_for_64": seconds_64, **score_samples(images)}


def verdict(rows: list[dict]) -> str | None:
    """One sentence on the target, or None until both the reference and a 20-step row are measured."""
    reference = next((r for r in rows if (r["sampler"], r["steps"]) == REFERENCE), None)
    fast = [r for r in rows if r["steps"] == TARGET_STEPS]
    if reference is None or not fast:
        return None
    best = min(fast, key=lambda r: r["frechet_distance"])
    ratio = best["frechet_distance"] / reference["frechet_distance"]
    speedup = reference["seconds_for_64"] / best["seconds_for_64"]
    met = ratio <= TARGET_DISTANCE_RATIO and speedup >= TARGET_SPEEDUP
    return (f"Best {TARGET_STEPS}-step sampler: {best['sampler']} at Frechet distance "
            f"{best['frechet_distance']:.1f} = {ratio:.2f}x that of {REFERENCE[1]}-step DDPM "
            f"({reference['frechet_distance']:.1f}), {speedup:.0f}x faster: the target (within "
            f"{TARGET_DISTANCE_RATIO - 1:.0%}, {TARGET_SPEEDUP}x faster) is {'met' if met else 'not met'}.")


# Samplers that draw fresh noise at every step (DDIM is run with its default eta = 0, so it is deterministic).
STOCHASTIC = ("ddpm", PREFIX + "EulerAncestralDiscreteScheduler")


def stochastic_vs_deterministic(rows: list[dict]) -> list[str]:
    """Per step count, the best sampler that adds noise at each step against the best that solves the ODE."""
    lines = []
    for steps in sorted({r["steps"] for r in rows}):
        at = [r for r in rows if r["steps"] == steps]
        noisy = [r for r in at if r["sampler"] in STOCHASTIC]
        ode = [r for r in at if r["sampler"] not in STOCHASTIC]
        if noisy and ode:
            a, b = (min(group, key=lambda r: r["frechet_distance"]) for group in (noisy, ode))
            winner = "stochastic" if a["frechet_distance"] < b["frechet_distance"] else "deterministic"
            lines.append(f"{steps} steps: best stochastic {a['sampler']} FD {a['frechet_distance']:.1f}, best "
                         f"deterministic {b['sampler']} FD {b['frechet_distance']:.1f}: {winner} wins")
    return lines


def best_at(steps: int, out: Path = OUT) -> tuple[dict, dict] | None:
    """(the benchmark's best row at `steps` by Frechet distance, the DDIM row at `steps`), measured on the
    weights beside `out`; None where the benchmark has not measured them. The app's default sampler."""
    if not out.is_file():
        return None
    benchmark = json.loads(out.read_text())
    rows = [r for r in benchmark["rows"] if r["steps"] == steps]
    if benchmark.get("weights_sha256") != weights_hash(out.parent) or not rows:
        return None
    ddim = next((r for r in rows if r["sampler"] == "ddim"), None)
    return min(rows, key=lambda r: r["frechet_distance"]), ddim


BENCHMARK_NET = "lenet"   # the feature net whose Frechet distance `score_samples` measures (the lab net)


def matched_to(report: dict, row: dict | None, out: Path = OUT) -> tuple[dict | None, str]:
    """(the benchmark, "") where its Frechet distances are measured as the report's `BENCHMARK_NET` ones, else
    (None, why not). The same measure: the benchmark's dataset (it is of the MNIST model beside `out`), weights,
    n and seed, and its row for the sampler of `row` (the report's quality row of the model it benchmarks)
    gives the report's distance within 1%."""
    if report.get("dataset", "mnist") != "mnist":
        return None, "no sampler benchmark on this dataset"
    if not out.is_file():
        return None, "no sampler benchmark"
    benchmark = json.loads(out.read_text())
    if benchmark.get("weights_sha256") != weights_hash(out.parent):
        return None, "the sampler benchmark was measured on other weights"
    if (benchmark["n"], benchmark["seed"]) != (report.get("n"), report.get("seed")):
        return None, "the sampler benchmark's n and seed differ from the report's"
    sampler = (row or {}).get("sampler") or {}
    same = next((r for r in benchmark["rows"] if (r["sampler"], r["steps"]) == (sampler.get("sampler"),
                                                                                sampler.get("steps"))), None)
    ours = (row or {}).get("nets", {}).get(BENCHMARK_NET, {}).get("frechet_distance")
    if same is None or ours is None or abs(same["frechet_distance"] - ours) > 0.01 * ours:
        return None, "the sampler benchmark's distances are not the report's measure"
    return benchmark, ""


def table(benchmark: dict) -> str:
    """The rows as markdown. A row with no `refused_share` (scored before the lab's checkpoint score recorded it)
    has its recognisable share marked: the table cannot say how many pages its feature net's gate refused, and a
    row scored before the gate existed also counted pages with no digit on them."""
    lines = ["| sampler | steps | NFE | s for 64 samples | Frechet distance | recognisable |",
             "|---|---|---|---|---|---|"]
    ungated = False
    for r in sorted(benchmark["rows"], key=lambda r: (SAMPLERS.index(r["sampler"]) if r["sampler"] in SAMPLERS
                                                      else len(SAMPLERS), r["sampler"], r["steps"])):
        mark = "" if "refused_share" in r else " *"
        ungated |= bool(mark)
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['nfe']} | {r['seconds_for_64']:.1f} | "
                     f"{r['frechet_distance']:.1f} | {r['confident_share']:.1%}{mark} |")
    if ungated:
        lines += ["", "\\* no refused share recorded with this row: the table cannot say how many pages the feature "
                  "net's typicality gate refused (a refused page never counts as recognisable; a row scored before "
                  "the gate existed also counted pages with no digit, and may read high). The report's quality table "
                  "has each family's refused share. The Frechet distances do not depend on the gate."]
    return "\n".join(lines)


def markdown_section(out: Path = OUT) -> list[str]:
    """The benchmark as markdown lines (the diffusion card and the Compare tab show it), where it was run on the
    weights beside `out`."""
    if not out.is_file():
        return []
    benchmark = json.loads(out.read_text())
    if benchmark["weights_sha256"] != weights_hash(out.parent):
        return ["## Sampling: steps vs quality", "", "Not yet measured on these weights: run "
                "`python -m engines.sampler_benchmark`.", ""]
    return ["## Sampling: steps vs quality", "",
            f"Measured by `{benchmark['command']}` ({benchmark['hardware']}): network evaluations per sample, "
            f"seconds for one batch of 64 samples, and the Frechet distance of {benchmark['n']} samples (seed "
            f"{benchmark['seed']}) to the test split in the lab classifier's features. Same x_T per seed for "
            "every sampler."
            + (f" Every row's time was then taken again, one after another in one process on an idle machine, by "
               f"`{benchmark['timing_command']}`." if benchmark.get("timing_command") else ""),
            "", table(benchmark), "",
            benchmark.get("verdict") or "The 1000-step DDPM reference is not measured yet.", "",
            "Stochastic samplers (fresh noise at every step) against deterministic ones (ODE solvers) at equal "
            "steps. Fresh noise lets a sampler correct the errors of an imperfect denoiser, which an ODE solver "
            "carries to the end, but it needs enough steps to pay off; with very few steps a higher-order ODE "
            "solver tends to win (Karras et al. 2022, section 4).", "",
            *[f"- {line}" for line in stochastic_vs_deterministic(benchmark["rows"])], ""]


def run(samplers: list[str], steps: list[int], n: int, seed: int, out: Path, directory: Path,
        command: str = "") -> dict:
    engine = load_engine("diffusion", directory)
    for sampler in samplers:
        if sampler not in engine.samplers():
            raise EngineError(f"unknown sampler {sampler!r}: choose from {', '.join(engine.samplers())}")
    tag = {"weights_sha256": weights_hash(directory), "n": n, "seed": seed}
    previous = json.loads(out.read_text()) if out.is_file() else {}
    kept = previous.get("rows", []) if all(previous.get(k) == v for k, v in tag.items()) else []
    benchmark = {**tag, "rows": kept}
    plan = [(s, k) for s in samplers for k in steps] + ([REFERENCE] if REFERENCE[0] in samplers else [])
    for sampler, k in plan:
        if any((r["sampler"], r["steps"]) == (sampler, k) for r in benchmark["rows"]):
            continue
        row = measure(engine, sampler, k, n, seed)
        print(json.dumps(row), file=sys.stderr)
        benchmark["rows"].append(row)
        save(benchmark, out, command)  # after every row: interruptible
    return benchmark


def save(benchmark: dict, out: Path, command: str) -> None:
    benchmark.update(verdict=verdict(benchmark["rows"]), command=command,
                     hardware=hardware() + "; timings on one torch thread")
    out.write_text(json.dumps(benchmark, indent=1) + "\n")


def retime(out: Path, directory: Path, command: str) -> dict:
    """Time every row again, one after another in this process: rows measured in separate runs (or beside other
    work) were timed under different loads; this puts every timing under one. Run it on an idle machine."""
    benchmark = json.loads(out.read_text())
    if benchmark.get("weights_sha256") != weights_hash(directory):
        raise EngineError(f"{out} was measured on other weights: rerun the benchmark first")
    engine = load_engine("diffusion", directory)
    engine.sample(2, seed=0, sampler="ddim", steps=2)  # warm-up: the first call pays for lazy initialisation
    for row in benchmark["rows"]:
        row["seconds_for_64"] = seconds_for_batch(engine, row["sampler"], row["steps"], benchmark["seed"])
        print(f"{row['sampler']} {row['steps']}: {row['seconds_for_64']} s", file=sys.stderr)
    benchmark["timing_command"] = command
    save(benchmark, out, benchmark.get("command", command))
    return benchmark


def merge(parts: list[Path], out: Path, directory: Path) -> dict:
    """Join the rows of runs that measured disjoint rows at once (each with its own --out) into one file. Every
    part must be tagged with the current weights, n and seed; a row in several parts is kept once."""
    tag = None
    rows: list[dict] = []
    for part in parts:
        benchmark = json.loads(Path(part).read_text())
        part_tag = {k: benchmark.get(k) for k in ("weights_sha256", "n", "seed")}
        if part_tag["weights_sha256"] != weights_hash(directory) or tag not in (None, part_tag):
            raise EngineError(f"{part} was measured on other weights, n or seed than the other parts")
        tag = part_tag
        rows += [r for r in benchmark["rows"] if all((r["sampler"], r["steps"]) != (q["sampler"], q["steps"])
                                                    for q in rows)]
    # Rows are deterministic per (weights, n, seed, sampler, steps) on one thread, so this one command
    # reproduces every row whichever part measured it.
    merged = {**tag, "rows": rows, "merged_from": len(parts)}
    save(merged, out, f"python -m engines.sampler_benchmark --n {tag['n']} --seed {tag['seed']} --threads 1")
    return merged


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.sampler_benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    p.add_argument("--steps", nargs="+", type=int, default=list(STEPS))
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--checkpoint", default=str(CHECKPOINTS / "diffusion"), help="diffusion checkpoint folder")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--merge", nargs="+", metavar="PART", default=None,
                   help="join the rows of these benchmark files (parallel runs on disjoint rows) into --out")
    p.add_argument("--retime", action="store_true",
                   help="only time every row already in --out again, all in this one process (on an idle machine)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        check_count(args.n, 10_000, "--n")
        command = "python -m engines.sampler_benchmark " + " ".join(argv if argv is not None else sys.argv[1:])
        if args.merge:
            benchmark = merge([Path(part) for part in args.merge], Path(args.out), Path(args.checkpoint))
        elif args.retime:
            benchmark = retime(Path(args.out), Path(args.checkpoint), command.strip())
        else:
            benchmark = run(args.samplers, args.steps, args.n, args.seed, Path(args.out), Path(args.checkpoint),
                            command.strip())
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(benchmark))
    if benchmark.get("verdict"):
        print("\n" + benchmark["verdict"])
    return 0

