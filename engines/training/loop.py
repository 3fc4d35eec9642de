"""The training run behind `python -m engines.train`: one loop for every family.

    python -m engines.train vae|gan|diffusion|classifier --dataset mnist5k --out DIR [--steps N] [--resume]

Every step draws its batch and noise from a generator seeded by (seed, step), so a run resumed from a
checkpoint continues exactly as the uninterrupted run would. Every --checkpoint-every steps it writes the
shipped model (config.json + model.safetensors), the resumable training state, training_info.json, and
appends losses to train_log.jsonl (one JSON object per line; lines past the checkpoint are dropped on resume,
so a kill -9 loses only the work since the last checkpoint). With --eval-every N, every N steps it also scores
the checkpoint's samples with the lab classifier into quality_log.jsonl, so that oscillation or collapse
during training is visible (`engines.evaluate` plots both logs).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from engines.checkpoint import (LOG_NAME, QUALITY_LOG_NAME, STATE_NAME, TRAINING_INFO_NAME, WEIGHTS_NAME,
                                load_pretrained, load_training_state, read_jsonl, save_pretrained,
                                save_training_state)
from engines.data.datasets import DATASETS, load_dataset
from engines.errors import EngineError
from engines.measure.quality import score_samples
from engines.registry import load_engine
from engines.runtime import hardware
from engines.training.trainers import TRAINERS, Trainer, parse_overrides

# Checkpoint scoring: cheap enough to run every few hundred steps on a CPU.
EVAL_SAMPLE_OPTIONS = {"diffusion": {"sampler": "ddim", "steps": 20}}


def step_generator(seed: int, step: int) -> torch.Generator:
    # Distinct, reproducible stream per (seed, step); the multiplier keeps seeds' streams apart.
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def truncate_log(path: Path, last_step: int) -> None:
    """Keep only log lines up to the checkpoint we resume from."""
    if not path.is_file():
        return
    kept = [row for row in read_jsonl(path) if row["step"] <= last_step]
    path.write_text("".join(json.dumps(row) + "\n" for row in kept))


def score_checkpoint(family: str, out: Path, step: int, n: int) -> dict:
    """Quality of the checkpoint just saved, by the same engine code users run: the share of n samples the
    lab classifier recognises and their Frechet distance to the test split."""
    options = EVAL_SAMPLE_OPTIONS.get(family, {})
    with torch.no_grad():
        images = load_engine(family, out).sample(n, seed=0, **options)
        return {"step": step, "n": n, **options, **score_samples(images)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m engines.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("family", choices=sorted(TRAINERS))
    p.add_argument("--dataset", default="mnist5k", choices=DATASETS)
    p.add_argument("--data-dir", default=None, help="IDX files or image folder (for the non-mnist5k datasets)")
    p.add_argument("--out", required=True, help="output folder (a checkpoint folder)")
    p.add_argument("--steps", type=int, default=None, help="total optimisation steps (default per family)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=0,
                   help="score the checkpoint every N steps (a multiple of --checkpoint-every; 0 = never)")
    p.add_argument("--eval-n", type=int, default=250, help="samples per checkpoint score")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model config or hyper-parameter field, e.g. --set latent_dim=16")
    p.add_argument("--resume", action="store_true",
                   help="continue from the training state in --out; where only the shipped weights are there "
                        "(a fresh clone), warm-restart from them with a fresh optimiser")
    return p.parse_args(argv)


def restore(args: argparse.Namespace, out: Path, trainer: Trainer, command: str) -> tuple[int, float, list[str]]:
    """Where a run starts: (step, elapsed seconds, the commands of the run so far). With --resume, from the
    training state if there is one (exact), else from the shipped weights (a warm restart, marked in the
    command list), else from step 0."""
    step, elapsed, commands = 0, 0.0, [command]
    previous = out / TRAINING_INFO_NAME
    info = json.loads(previous.read_text()) if args.resume and previous.is_file() else None
    if info is not None:
        commands = info.get("commands", [info["command"]]) + commands
    if args.resume and (out / STATE_NAME).exists():
        meta = load_training_state(out, trainer.modules, trainer.optimizers)
        step, elapsed = meta["step"], meta["elapsed_s"]
        print(f"resuming {args.family} from step {step} ({elapsed / 60:.1f} min trained so far)", file=sys.stderr)
    elif info is not None and (out / WEIGHTS_NAME).is_file():
        step, elapsed = info["step"], info["wall_time_s"]
        shipped = load_pretrained(type(trainer.export()), type(trainer.config), out)
        try:
            trainer.warm_start(shipped, step)
        except RuntimeError as e:
            raise EngineError(f"the weights in {out} do not match this run's settings ({e}); repeat the "
                              f"--set options of the original command") from e
        commands[-1] += "  # warm restart from the shipped weights: optimiser state was not kept"
        print(f"warm restart of {args.family} from the shipped weights at step {step}: fresh optimiser",
              file=sys.stderr)
    elif args.resume:
        print(f"nothing to resume in {out}: starting from step 0", file=sys.stderr)
    truncate_log(out / LOG_NAME, step)
    truncate_log(out / QUALITY_LOG_NAME, step)
    return step, elapsed, commands


def write_checkpoint(args: argparse.Namespace, out: Path, trainer: Trainer, step: int, elapsed: float,
                     commands: list[str], train_images: int) -> None:
    """The shipped model, the resumable state and training_info.json, each replaced atomically."""
    save_pretrained(trainer.export(), out)
    save_training_state(out, trainer.modules, trainer.optimizers, {"step": step, "elapsed_s": elapsed})
    info = {
        "family": args.family, "dataset": args.dataset, "step": step, "total_steps": trainer.steps,
        "batch_size": trainer.batch_size, "lr": trainer.lr, "seed": args.seed,
        "wall_time_s": round(elapsed, 1), "hardware": hardware(), "torch": torch.__version__,
        "command": commands[0], "commands": commands, "train_images": train_images,
    }
    (out / TRAINING_INFO_NAME).write_text(json.dumps(info, indent=1) + "\n")


def append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def train(args: argparse.Namespace, command: str) -> Path:
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if (out / STATE_NAME).exists() and not args.resume:
        raise EngineError(f"{out} already holds a training run: pass --resume to continue it, or choose "
                          f"another --out")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)  # initial weights
    trainer = TRAINERS[args.family](parse_overrides(args.overrides), lr=args.lr, batch_size=args.batch_size,
                                    steps=args.steps)
    data = load_dataset(args.dataset, "train", args.data_dir)
    step, elapsed, commands = restore(args, out, trainer, command)

    started = time.time() - elapsed
    with tqdm(total=trainer.steps, initial=step, desc=args.family, dynamic_ncols=True) as bar:
        while step < trainer.steps:
            generator = step_generator(args.seed, step)
            idx = torch.randint(0, len(data), (trainer.batch_size,), generator=generator)
            losses = trainer.train_step(data.images[idx], data.labels[idx], generator, step)
            step += 1
            bar.update(1)
            if step % args.log_every == 0 or step == trainer.steps:
                append_jsonl(out / LOG_NAME, {"step": step, "time_s": round(time.time() - started, 2), **losses})
                bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
            if step % args.checkpoint_every == 0 or step == trainer.steps:
                write_checkpoint(args, out, trainer, step, time.time() - started, commands, len(data))
                if args.eval_every and step % args.eval_every == 0 and args.family != "classifier":
                    scoring_started = time.time()
                    row = score_checkpoint(args.family, out, step, args.eval_n)
                    append_jsonl(out / QUALITY_LOG_NAME, row)
                    bar.write(f"step {step}: {row}")
                    started += time.time() - scoring_started  # scoring is not training time
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        train(args, "python -m engines.train " + shlex.join(argv))
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
