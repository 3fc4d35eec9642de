"""The steps/quality trade-off of diffusion sampling, measured on the shipped model.

    python -m engines.sampler_benchmark [--n 1000] [--samplers ...] [--steps 10 20 50 100] [--threads N]

For each sampler and step count: network evaluations per sample (NFE), wall time for 64 samples (one batch),
and the Frechet distance of n samples to the test split in the lab classifier's feature space (with the share
the classifier recognises). Ancestral DDPM also runs at the full T = 1000 steps: the reference the fast
samplers are judged against. Rows are written to checkpoints/mnist/diffusion/sampler_benchmark.json as they
finish, tagged with the weights' hash: a rerun keeps the rows already measured on the same weights (so a long
run can be interrupted and continued) and redoes the rest. The diffusion model card shows the table.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

from engines.checkpoint import WEIGHTS_NAME
from engines.diffusers_sampling import PREFIX
from engines.engine import CHECKPOINTS, check_count, load_engine
from engines.errors import EngineError
from engines.evaluate import generate, score_samples

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
    return hashlib.sha256((directory / WEIGHTS_NAME).read_bytes()).hexdigest()[:16]


@torch.no_grad()
def measure(engine, sampler: str, steps: int, n: int, seed: int) -> dict:
    options = {"sampler": sampler, "steps": steps}
    start = time.perf_counter()
    engine.sample(TIMING_BATCH, seed=seed, **options)
    seconds_64 = time.perf_counter() - start
    images, seconds = generate(engine, n, seed, options)
    return {"sampler": sampler, "steps": steps, "nfe": engine.network_evaluations(sampler, steps),
            "seconds_for_64": round(seconds_64, 2), **score_samples(images)}


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


def table(benchmark: dict) -> str:
    lines = ["| sampler | steps | NFE | s for 64 samples | Frechet distance | recognisable |",
             "|---|---|---|---|---|---|"]
    for r in sorted(benchmark["rows"], key=lambda r: (SAMPLERS.index(r["sampler"]) if r["sampler"] in SAMPLERS
                                                      else len(SAMPLERS), r["sampler"], r["steps"])):
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['nfe']} | {r['seconds_for_64']:.1f} | "
                     f"{r['frechet_distance']:.1f} | {r['confident_share']:.1%} |")
    return "\n".join(lines)


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
        benchmark.update(verdict=verdict(benchmark["rows"]), command=command,
                         hardware=f"{platform.machine()}, {torch.get_num_threads()} torch threads, CPU")
        out.write_text(json.dumps(benchmark, indent=1) + "\n")  # after every row: interruptible
    return benchmark


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
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        check_count(args.n, 10_000, "--n")
        command = "python -m engines.sampler_benchmark " + " ".join(argv if argv is not None else sys.argv[1:])
        benchmark = run(args.samplers, args.steps, args.n, args.seed, Path(args.out), Path(args.checkpoint),
                        command.strip())
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(benchmark))
    if benchmark.get("verdict"):
        print("\n" + benchmark["verdict"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
