"""Throughput on this machine: images/s of each family's training step on 1 and 2 CPU processes, and of sampling.

    .venv/bin/python scripts/train_throughput.py [--families vae gan diffusion] [--processes 1 2] [--steps 12]
        [--warmup 2] [--batch-size N] [--sample-n 64] [--out docs/throughput.json]

Training runs the real command on the families' default (shipped) model settings: `python -m engines.train` for
one process, `torchrun --nproc_per_node P -m engines.train` for P, every process on one thread (--threads 1),
so P processes use P cores. Its rate is the global batch x the steps after --warmup, over the time between
those steps in train_log.jsonl: start-up, data loading and checkpoint writing are not counted. Sampling loads
the shipped checkpoints (checkpoints/mnist/) on one thread and times sample(n) (diffusion: DDIM, 20 steps, as
checkpoint scoring does). Prints a table and writes the figures, the hardware and the load average at the start
(other work on the machine slows every figure) to --out as JSON, for the README to show.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from engines.checkpoint import LOG_NAME, read_jsonl  # noqa: E402
from engines.runtime import hardware  # noqa: E402
from engines.training import TRAINERS  # noqa: E402
from engines.training.loop import scoring_options  # noqa: E402


def train_command(family: str, processes: int, out: Path, steps: int, batch_size: int) -> list[str]:
    launcher = ([sys.executable, "-m", "engines.train"] if processes == 1 else
                [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                 "-m", "engines.train"])
    return launcher + [family, "--out", str(out), "--steps", str(steps), "--batch-size", str(batch_size),
                       "--threads", "1", "--log-every", "1", "--checkpoint-every", str(10 * steps)]


def training_rate(family: str, processes: int, steps: int, warmup: int, batch_size: int) -> dict:
    """Images/s of `family`'s training step on `processes` CPU processes, from the run's own log."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = train_command(family, processes, Path(tmp) / "run", steps, batch_size)
        env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
        result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1"})
        if result.returncode != 0:
            raise SystemExit(f"{shlex.join(cmd)} failed:\n{result.stderr[-3000:]}")
        times = {row["step"]: row["time_s"] for row in read_jsonl(Path(tmp) / "run" / LOG_NAME)}
    seconds = times[steps] - times[warmup]
    images = batch_size * (steps - warmup)
    return {"family": family, "processes": processes, "batch_size": batch_size, "timed_steps": steps - warmup,
            "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 1)}


def sampling_rate(family: str, n: int) -> dict:
    """Images/s of sample(n) from the shipped checkpoint on one thread (after a small warm-up call)."""
    from engines import load_engine

    engine = load_engine(family)
    options = scoring_options(family)
    engine.sample(2, seed=1, **options)
    started = time.perf_counter()
    engine.sample(n, seed=0, **options)
    seconds = time.perf_counter() - started
    return {"family": family, "n": n, **options, "seconds": round(seconds, 3), "images_per_s": round(n / seconds, 1)}


def table(training: list[dict], sampling: list[dict], processes: list[int]) -> str:
    head = ["family", *[f"train, {p} process{'es' if p > 1 else ''}" for p in processes], "sampling"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in sampling:
        rates = [next(r["images_per_s"] for r in training if r["family"] == s["family"] and r["processes"] == p)
                 for p in processes]
        how = f" ({s['sampler']}, {s['steps']} steps)" if "sampler" in s else ""
        lines.append(f"| {s['family']} | " + " | ".join(f"{r:.0f} img/s" for r in rates) +
                     f" | {s['images_per_s']:.0f} img/s{how} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=["vae", "gan", "diffusion"], choices=["vae", "gan", "diffusion"])
    p.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    p.add_argument("--steps", type=int, default=12, help="training steps per run (the first --warmup untimed)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None, help="global batch (default: each family's own)")
    p.add_argument("--sample-n", type=int, default=64)
    p.add_argument("--out", default=str(REPO / "docs" / "throughput.json"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 0 < args.warmup < args.steps:
        raise SystemExit("--warmup must be at least 1 and below --steps")
    load = os.getloadavg()[0]
    training = [training_rate(f, p, args.steps, args.warmup, args.batch_size or TRAINERS[f].hparams_cls().batch_size)
                for f in args.families for p in args.processes]
    torch.set_num_threads(1)
    sampling = [sampling_rate(f, args.sample_n) for f in args.families]
    result = {"command": "python scripts/train_throughput.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "hardware": hardware(), "cpu_cores": os.cpu_count(), "load_average_at_start": round(load, 2),
              "threads_per_process": 1, "training": training, "sampling": sampling}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(table(training, sampling, args.processes))
    print(f"\n{result['hardware']}; load average {load:.2f} at the start; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
