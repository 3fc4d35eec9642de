"""Scores for a shipped run's early checkpoints, by replaying the run: its own command again.

Runs trained before `--eval-every N --eval-n 500` scored their checkpoints in the lab net alone, from 250 samples
and without a standard error, and their weights along the way are gone; so the equal-compute reading
(`compute_curve.equal_compute`) cannot read them. A CPU run with the same command and seed is deterministic up to
rounding: on the same machine and thread count bit for bit, on another CPU the same run with some sums rounded
differently (`DRIFT`). This reruns the command that trained the run's beginning to --until with scoring on, checks
that every loss it logs is the shipped log's within DRIFT (else it refuses: the replay would be another run, and its
scores not the shipped model's history), then writes the scores into the shipped quality_log.jsonl (replacing rows
at the same steps; each marked "replayed" with the command and the largest loss difference) and the time-lapse
frames into its timelapse/.

    python -m engines.replay --dataset fashion --family diffusion --until 1500 --every 250 [--n 500]

The replay trains in $LAB_RUNS/<dataset>/<family>-replay (outside the work tree) and may be stopped and run again:
it continues there (--resume), as any run does.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
from pathlib import Path

from engines.checkpoint import LOG_NAME, QUALITY_LOG_NAME, TRAINING_INFO_NAME, checkpoints_dir, read_jsonl
from engines.data.datasets import LAB_DATASETS
from engines.errors import EngineError
from engines.training.ledger import runs_root
from engines.training.timelapse import frame_path, frames

# The options of the shipped command the replay sets itself (its folder, scoring, stopping); each takes a value
# except the flags.
REPLACED = {"--out": 1, "--eval-every": 1, "--eval-n": 1, "--max-minutes": 1, "--stop-at": 1, "--push-to-hub": 1,
            "--ledger": 0, "--resume": 0}
TRAIN_COMMAND = ["python", "-m", "engines.train"]
# The largest relative difference of a logged loss from the shipped log's that still reads as the same run. The
# same command on another CPU rounds some sums differently (1 ulp of float32 at step 100 of the Fashion-MNIST
# diffusion run, about 1e-6 by step 250): such a replay is the shipped run up to rounding, its weights nearer the
# shipped ones than any score can tell; a chaotic run (a GAN) that wanders further is refused. A batch's loss varies
# by ~10% from step to step, so 1e-3 at every logged step leaves no room for another run to pass.
DRIFT = 1e-3


def command_words(command: str) -> list[str]:
    """engines.train's arguments in a recorded command, its remarks ("  # warm restart ...") dropped."""
    words = shlex.split(command.split("  #")[0])
    if words[:3] != TRAIN_COMMAND:
        raise EngineError(f"the shipped command is not python -m engines.train: {command}")
    return words[3:]


def shipped_command(info: dict) -> list[str]:
    """The arguments that trained the run's beginning: its first command (its settings and thread count: a later
    command that resumed it may have run on more threads), with --steps as its last command set it (the schedule
    the run ended with), without the options the replay sets. A run warm-restarted from shipped weights (a fresh
    optimiser, a new schedule) is replayed up to that restart: its commands before it (a --until past the restart
    fails the loss check like any other replay that is not the shipped run)."""
    commands = info["commands"] if "commands" in info else [info["command"]]
    commands = commands[:next((i for i, c in enumerate(commands) if "warm restart" in c), len(commands))]
    if not commands:
        raise EngineError("this run began with a warm restart from shipped weights: a replay cannot reproduce it")
    kept, skip = [], 0
    for word in command_words(commands[0]):
        if skip:
            skip -= 1
        elif word in REPLACED:
            skip = REPLACED[word]
        else:
            kept.append(word)
    last = command_words(commands[-1])
    if "--steps" in last:
        steps = last[last.index("--steps") + 1]
        if "--steps" in kept:
            kept[kept.index("--steps") + 1] = steps
        else:
            kept += ["--steps", steps]
    threads = re.search(r"(\d+) torch threads", info.get("hardware", ""))
    if "--threads" not in kept and threads:   # run at torch's default: the count it had then (recorded)
        kept += ["--threads", threads.group(1)]
    return kept


def replay_arguments(info: dict, out: Path, until: int, every: int, n: int) -> list[str]:
    """engines.train's arguments for the replay: the shipped command, into `out`, stopping after step `until`,
    scoring every `every` steps on n samples, continuing what is there."""
    if until > info["step"]:
        raise EngineError(f"--until {until} is past the shipped run's last step, {info['step']}")
    command = shipped_command(info)
    checkpoint_every = int(command[command.index("--checkpoint-every") + 1]) if "--checkpoint-every" in command \
        else 500   # engines.train's default
    if until % every or every % checkpoint_every:
        raise EngineError(f"--until {until} must be a multiple of --every {every}, and --every a multiple of the "
                          f"run's checkpoint interval, {checkpoint_every} (scores are taken at checkpoints)")
    return command + ["--out", str(out), "--stop-at", str(until), "--eval-every", str(every),
                                    "--eval-n", str(n), "--resume"]


def loss_drift(shipped: list[dict], replayed: list[dict]) -> float:
    """The largest relative difference between the two logs' losses at the steps both logged; an EngineError
    where one exceeds DRIFT (the replay is another run) or where they share no step."""
    by_step = {row["step"]: row for row in shipped}
    drift, shared = 0.0, 0
    for row in replayed:
        original = by_step.get(row["step"])
        if original is None:
            continue
        shared += 1
        for key, value in row.items():
            if key in ("step", "time_s"):
                continue
            difference = abs(value - original[key]) / max(abs(original[key]), 1e-12)
            if difference > DRIFT:
                raise EngineError(f"the replay's {key} at step {row['step']} is {value:.6g} against the shipped run's "
                                  f"{original[key]:.6g} (relative difference {difference:.1e}, beyond {DRIFT:g}): "
                                  "the replay is another run, and its scores are not written")
            drift = max(drift, difference)
    if not shared:
        raise EngineError("the replay and the shipped log share no logged step: nothing shows they are the same run")
    return drift


def merged_scores(shipped: list[dict], replayed: list[dict], command: str, drift: float) -> list[dict]:
    """The shipped quality log with the replay's scores in it, by step (a replayed score replaces the shipped
    one at its step), each marked with the replay's command and its loss drift."""
    rows = {row["step"]: row for row in shipped}
    rows.update({row["step"]: {**row, "replayed": command, "replay_loss_drift": drift} for row in replayed})
    return [rows[step] for step in sorted(rows)]


def write_into(shipped_dir: Path, run: Path, command: str, drift: float) -> int:
    """The replay's scores and frames into the shipped folder; returns how many scores."""
    replayed = read_jsonl(run / QUALITY_LOG_NAME)
    rows = merged_scores(read_jsonl(shipped_dir / QUALITY_LOG_NAME), replayed, command, drift)
    (shipped_dir / QUALITY_LOG_NAME).write_text("".join(json.dumps(row) + "\n" for row in rows))
    for step, frame in frames(run):
        target = frame_path(shipped_dir, step)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(frame, target)
    return len(replayed)


def replay(dataset: str, family: str, until: int, every: int, n: int, log=print) -> int:
    """Replay `family`'s shipped run on `dataset` to step `until`, check it, write its scores; returns how many."""
    from engines.training.loop import main as train
    shipped_dir = checkpoints_dir(dataset) / family
    info_path = shipped_dir / TRAINING_INFO_NAME
    if not info_path.is_file():
        raise EngineError(f"no shipped {family} for {dataset} ({info_path} is missing)")
    info = json.loads(info_path.read_text())
    run = runs_root() / dataset / f"{family}-replay"
    arguments = replay_arguments(info, run, until, every, n)
    command = shlex.join(TRAIN_COMMAND + arguments)
    log(f"replaying: {command}")
    if train(arguments) != 0:
        raise EngineError(f"the replay's training failed; its folder is {run}")
    drift = loss_drift(read_jsonl(shipped_dir / LOG_NAME), read_jsonl(run / LOG_NAME))
    written = write_into(shipped_dir, run, command, drift)
    log(f"the replay's losses are the shipped run's to a relative {drift:.1e} at every step both logged: "
        f"{written} score(s) written into {shipped_dir / QUALITY_LOG_NAME}")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist", choices=list(LAB_DATASETS))
    p.add_argument("--family", required=True)
    p.add_argument("--until", type=int, required=True, help="the last step to replay and score")
    p.add_argument("--every", type=int, default=250, help="score every this many steps (a checkpoint step)")
    p.add_argument("--n", type=int, default=500, help="samples per score (as --eval-n)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        replay(args.dataset, args.family, args.until, args.every, args.n)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
