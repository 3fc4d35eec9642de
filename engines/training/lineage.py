"""The parent a model was built on, as it was when the model was trained.

A hybrid or conditional model starts from a shipped parent (its record's `parent_options`: the conditional GAN
from the GAN, reflow from the flow, ...), and its training compute counts the parent's. When the parent is later
trained on and shipped anew, the folder it names holds other weights: the child's compute, and what its card says
it was built on, must still be the parent it had. So a run records the parent when it starts (`training_info.json`'s
"parent": folder, step, training FLOPs, the weights' SHA-256), keeps that record when it resumes, and readers
compare it with the parent shipped now (`parent_now`).

Records written after the fact (`backfill`, for runs trained before this record existed) are marked so: they
name the parent shipped when they were written, which is the one the run was built on only as far as nobody
replaced it in between.
"""
from __future__ import annotations

import json
from pathlib import Path

from engines.checkpoint import CHECKPOINTS, REPO_ROOT, TRAINING_INFO_NAME, WEIGHTS_NAME, file_sha256

FROM_SCRATCH = "none"   # the parent option's value that trains without a parent


def parent_directory(hparams, parent_options: dict) -> tuple[str, Path] | None:
    """(parent family, its folder) from a trainer's hyper-parameters: "" = MNIST's shipped parent, "none" = none."""
    for key, parent in parent_options.items():
        value = getattr(hparams, key, "")
        if value == FROM_SCRATCH:
            return None
        return parent, Path(value) if value else CHECKPOINTS / parent
    return None


def shown_path(directory: Path) -> str:
    """The folder as a reader finds it: relative to the repository where it lies inside it."""
    directory = Path(directory).resolve()
    return str(directory.relative_to(REPO_ROOT)) if directory.is_relative_to(REPO_ROOT) else str(directory)


def parent_record(parent: str, directory: Path) -> dict:
    """What the parent in `directory` is now: its family, folder, step, training FLOPs and weights' hash."""
    info_path = Path(directory) / TRAINING_INFO_NAME
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    weights = Path(directory) / WEIGHTS_NAME
    return {"family": parent, "directory": shown_path(directory), "step": info.get("step"),
            "flops": (info.get("compute") or {}).get("flops"),
            "weights_sha256": file_sha256(weights) if weights.is_file() else None}


def parent_now(record: dict) -> str:
    """"same" where the folder the record names holds the weights the child was built on, "replaced" where it
    holds others, "gone" where it holds none."""
    directory = Path(record["directory"])
    weights = (directory if directory.is_absolute() else REPO_ROOT / directory) / WEIGHTS_NAME
    if not weights.is_file():
        return "gone"
    return "same" if file_sha256(weights) == record.get("weights_sha256") else "replaced"


def backfill(child: Path, parent: str, directory: Path) -> dict:
    """Write a parent record into a shipped child's training_info.json that has none, marked as written after its
    training; returns the record."""
    path = Path(child) / TRAINING_INFO_NAME
    info = json.loads(path.read_text())
    if "parent" in info:
        return info["parent"]
    info["parent"] = {**parent_record(parent, directory), "recorded_after_training": True}
    path.write_text(json.dumps(info, indent=1) + "\n")
    return info["parent"]
