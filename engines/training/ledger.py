"""Runs that outlive the work tree: where a run's folder lives, and the ledger that remembers it.

A run without --out trains into $LAB_RUNS/<dataset>/<family> (default ~/.cache/generative-lab/runs), outside the
work tree, so that a long run's training state (git-ignored, tens of MB) survives a clean checkout. A run
with --ledger also records itself, at every checkpoint, in checkpoints/<lab dataset>/runs.json (committed):

    {"diffusion": {"run": "/home/.../runs/mnist5k/diffusion", "command": "python -m engines.train ...",
                   "continue": "python -m engines.train ... --resume", "step": 12000, "total_steps": 16000,
                   "last_score": {...} | null, "updated": "2026-12-03T06:40:00Z"}}

One entry per family: the run behind the model that ships. A run restarted after its state was lost keeps the lost
run's entry (where it ended, how it scored) under "lost". Writing it is explicit (--ledger), not automatic:
tests and experiments train the same families with default settings every day, and none of them should
rewrite a committed file. `--resume --ledger` without --out continues the recorded run; where its folder is
gone (another machine, a cleaned cache) it says so, and how the run restarts: from the shipped weights where
the family can (a warm restart), else from scratch.
"""
from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

from engines.checkpoint import CHECKPOINT_ROOT, QUALITY_LOG_NAME, STATE_NAME, WEIGHTS_NAME, read_jsonl
from engines.data.datasets import lab_dataset_of
from engines.errors import EngineError

DEFAULT_RUNS = "~/.cache/generative-lab/runs"
LEDGER_NAME = "runs.json"
ROOT = CHECKPOINT_ROOT   # where the ledgers and the shipped models live (tests point it elsewhere)


def runs_root() -> Path:
    return Path(os.environ.get("LAB_RUNS") or DEFAULT_RUNS).expanduser()


def default_run(dataset: str, family: str) -> Path:
    """The run folder of a command without --out."""
    return runs_root() / dataset / family


def ledger_path(dataset: str) -> Path:
    lab = lab_dataset_of(dataset)
    if lab is None:
        raise EngineError(f"--ledger records the runs behind shipped models, which are trained on mnist5k or "
                          f"fashion; there are none for --dataset {dataset}: leave --ledger out")
    return ROOT / lab / LEDGER_NAME


def read_ledger(dataset: str) -> dict:
    path = ledger_path(dataset)
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as e:
        raise EngineError(f"{path} is not valid JSON ({e}): repair it or restore it from git") from e


def shipped_folder(dataset: str, family: str) -> Path:
    return ledger_path(dataset).parent / family


def resume_folder(dataset: str, family: str) -> Path:
    """Where `--resume --ledger` without --out continues: the recorded run, else the default folder."""
    entry = read_ledger(dataset).get(family)
    return Path(entry["run"]) if entry else default_run(dataset, family)


def check_run_present(dataset: str, family: str, out: Path, warm_start_refusal: str | None, command: str) -> None:
    """Raise, saying how the run restarts, where the ledger's run folder has nothing to resume from: no
    training state, and no shipped weights copied there (which `--resume` would warm-restart from).
    `warm_start_refusal` is why the family cannot continue from shipped weights alone (None: it can)."""
    entry = read_ledger(dataset).get(family)
    if not entry or Path(entry["run"]) != out or (out / STATE_NAME).exists() or (out / WEIGHTS_NAME).is_file():
        return
    shipped = shipped_folder(dataset, family)
    gone = (f"the {family} run recorded in {ledger_path(dataset)} (step {entry['step']} of "
            f"{entry['total_steps']}, updated {entry['updated']}) is gone: {out} holds no training state "
            f"(runs live outside the work tree and do not move with a checkout). ")
    if warm_start_refusal is None and (shipped / WEIGHTS_NAME).is_file():
        raise EngineError(gone + f"It restarts from the shipped weights (a warm restart with a fresh optimiser): "
                                 f"mkdir -p {shlex.quote(str(out))} && cp {shlex.quote(str(shipped))}/* "
                                 f"{shlex.quote(str(out))}/ and repeat: {command}")
    reason = warm_start_refusal or f"no shipped weights in {shipped}"
    raise EngineError(gone + f"It restarts from scratch ({reason}): repeat the command without --resume.")


def last_score(out: Path) -> dict | None:
    rows = read_jsonl(out / QUALITY_LOG_NAME)
    return rows[-1] if rows else None


def superseded(previous: dict | None, step: int) -> list[dict]:
    """The entry's record of lost runs, with `previous` added where the new run has not reached it (a run restarted
    after its state was lost): where a lost run ended and how it scored stays on record, to check the new one by."""
    if not previous:
        return []
    lost = previous.get("lost", [])
    if previous["step"] <= step:
        return lost
    return lost + [{key: value for key, value in previous.items() if key not in ("lost", "continue")}]


def record_run(dataset: str, family: str, out: Path, command: str, continue_with: str, step: int,
               total_steps: int) -> None:
    """Update the family's entry, replacing the ledger atomically (another family's run may write it too)."""
    path = ledger_path(dataset)
    ledger = read_ledger(dataset)
    lost = superseded(ledger.get(family), step)
    ledger[family] = {"run": str(out), "command": command, "continue": continue_with, "step": step,
                      "total_steps": total_steps, "last_score": last_score(out),
                      "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if lost:
        ledger[family]["lost"] = lost
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(ledger, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
