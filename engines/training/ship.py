"""Ship a run: copy what a shipped model folder holds from the run's folder into checkpoints/<dataset>/<family>.

    python -m engines.ship conditional_diffusion --dataset fashion            # the run the ledger records
    python -m engines.ship gan --dataset mnist --run ~/runs/mnist5k/gan      # any run folder
    python -m engines.ship ... --stopped-at-budget   # a run short of its --steps, shipped on purpose
    python -m engines.ship ... --replace             # over a shipped model (its card and report rows go stale)

What ships is the model (config.json, model.safetensors), what training recorded (training_info.json,
train_log.jsonl, quality_log.jsonl, timelapse/) and the networks a run trains beside its model (a GAN's
discriminator), so that the shipped model can be trained on. Never the training state: optimiser moments stay
out of git, and each weight file must be under 10 MB. The run is refused before anything is copied: a run short
of its --steps (without --stopped-at-budget), a shipped folder in the way (without --replace), a weight file too
large. Then it prints what to measure next; the report, the knob sweep and the cards describe the new weights only
once those commands have run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from engines.checkpoint import (
    CONFIG_NAME,
    LOG_NAME,
    QUALITY_LOG_NAME,
    SHIPPED_EXTRAS,
    TRAINING_INFO_NAME,
    WEIGHTS_NAME,
    checkpoints_dir,
)
from engines.data.datasets import LAB_DATASETS
from engines.errors import EngineError
from engines.measure import sampler_benchmark as benchmark
from engines.registry import families
from engines.registry import family as family_record
from engines.training import ledger
from engines.training.timelapse import TIMELAPSE_DIR

SHIPPED_FILES = (CONFIG_NAME, WEIGHTS_NAME, TRAINING_INFO_NAME, LOG_NAME, QUALITY_LOG_NAME)
MAX_WEIGHT_BYTES = 10 * 1024 * 1024   # a weight file in git: under 10 MB


def run_folder(lab_dataset: str, family: str, run: Path | None) -> Path:
    """--run, else the run the dataset's ledger records for the family."""
    if run is not None:
        return run
    entry = ledger.read_ledger(LAB_DATASETS[lab_dataset]).get(family)
    if entry is None:
        raise EngineError(f"{ledger.ledger_path(LAB_DATASETS[lab_dataset])} records no {family} run: name its "
                          f"folder with --run")
    return Path(entry["run"])


def check_shippable(run: Path, target: Path, stopped_at_budget: bool, replace: bool) -> dict:
    """The run's training_info, or an EngineError saying why this run does not ship (nothing copied yet)."""
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME, TRAINING_INFO_NAME) if not (run / name).is_file()]
    if missing:
        raise EngineError(f"{run} holds no finished checkpoint ({', '.join(missing)} missing): train it first, or "
                          f"name the run's folder with --run")
    info = json.loads((run / TRAINING_INFO_NAME).read_text())
    if info["step"] < info["total_steps"] and not stopped_at_budget:
        raise EngineError(f"{run} stopped at step {info['step']} of {info['total_steps']}: continue it (its "
                          f"command with --resume), or ship it as it is with --stopped-at-budget")
    large = [f"{path.name} ({path.stat().st_size / 2**20:.1f} MB)" for path in run.glob("*.safetensors")
             if path.name in (WEIGHTS_NAME, *SHIPPED_EXTRAS) and path.stat().st_size >= MAX_WEIGHT_BYTES]
    if large:
        raise EngineError(f"a shipped weight file must be under 10 MB: {', '.join(large)}")
    if (target / WEIGHTS_NAME).is_file() and not replace:
        raise EngineError(f"{target} already ships a model: --replace to put this run in its place (then measure "
                          f"it again: its report rows and card describe the old weights)")
    return info


def copy_run(run: Path, target: Path) -> list[str]:
    """Copy the shipped files (never the training state) into a clean `target`; the names copied."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    names = [name for name in (*SHIPPED_FILES, *SHIPPED_EXTRAS) if (run / name).is_file()]
    for name in names:
        shutil.copy2(run / name, target / name)
    if (run / TIMELAPSE_DIR).is_dir():
        shutil.copytree(run / TIMELAPSE_DIR, target / TIMELAPSE_DIR)
        names.append(TIMELAPSE_DIR + "/")
    return names


def next_commands(lab_dataset: str, family: str) -> list[str]:
    """What measures the shipped weights: the report's rows, the knob sweep where the family has a knob, the speed
    race, MNIST's sampler benchmark for its diffusion model, the cards, and every report's verdicts (each report's
    table between datasets quotes the others')."""
    report = f"checkpoints/{lab_dataset}/report.json"
    commands = [f"python -m engines.evaluate --into {report} --sections quality likelihood stability "
                f"--engines {family}",
                f"python -m engines.evaluate --into {report} --sections speed   # every row, in one sitting on an "
                f"idle machine: verdicts divide one row by another"]
    if family_record(family).knob is not None:
        commands.append(f"python -m engines.knob_sweep --dataset {lab_dataset}")
    commands.append(f"python -m engines.speed_race --dataset {lab_dataset}   # after the speed rows: it re-measures "
                    f"the entries whose weights changed")
    if checkpoints_dir(lab_dataset) / family == benchmark.OUT.parent:   # the model the sampler benchmark measures
        commands.append("python -m engines.sampler_benchmark --n 1000 --seed 0 --threads 1   # its rows are of "
                        "the shipped weights: DDPM-1000 on 1,000 samples takes hours on a CPU")
    others = [f"python -m engines.evaluate --summarise checkpoints/{name}/report.json   # its table between datasets "
              f"quotes this one's verdicts" for name in LAB_DATASETS
              if name != lab_dataset and (checkpoints_dir(name) / "report.json").is_file()]
    return commands + [f"python -m engines.model_card --dataset {lab_dataset}",
                       f"python -m engines.evaluate --summarise {report}", *others]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.ship", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("family", choices=[f.name for f in families()])
    p.add_argument("--dataset", default="mnist", choices=list(LAB_DATASETS))
    p.add_argument("--run", type=Path, help="the run's folder (default: the one the ledger records)")
    p.add_argument("--stopped-at-budget", action="store_true", help="ship a run short of its --steps")
    p.add_argument("--replace", action="store_true", help="replace the model shipped now")
    args = p.parse_args(argv)
    target = ledger.shipped_folder(LAB_DATASETS[args.dataset], args.family)
    try:
        run = run_folder(args.dataset, args.family, args.run)
        info = check_shippable(run, target, args.stopped_at_budget, args.replace)
    except EngineError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    names = copy_run(run, target)
    print(f"shipped {args.family} (step {info['step']} of {info['total_steps']}) from {run} into {target}: "
          f"{', '.join(names)}")
    print("Now measure it (the report, the sweep and the cards still describe what shipped before):")
    print("\n".join(f"  {command}" for command in next_commands(args.dataset, args.family)))
    return 0
