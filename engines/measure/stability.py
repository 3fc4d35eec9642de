"""Training stability, read from what training recorded: train_log.jsonl (losses every --log-every steps) and
quality_log.jsonl (the classifier's score of each checkpoint's samples, written by `--eval-every`).

Loss curves are summarised per loss (start, end, minimum, and over the last quarter of training the mean, the
coefficient of variation std/|mean| and the roughness mean|step-to-step change|/|mean|), and thinned to at most
`CURVE_POINTS` points for plotting. Losses of different families are different objectives, so the comparable
figure across families is the checkpoint quality: its Frechet distance per checkpoint, how often it got worse
by more than `WORSE` from one checkpoint to the next (oscillation), its coefficient of variation over the
second half of training, and how far the final checkpoint is from the best one; the lowest class entropy of
any checkpoint's samples shows a collapse onto few digits.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from engines.checkpoint import LOG_NAME, QUALITY_LOG_NAME, TRAINING_INFO_NAME, read_jsonl

CURVE_POINTS = 60
WORSE = 0.10
NOT_LOSSES = {"step", "time_s", "n", "sampler", "steps"}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _cv(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = _mean(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
    return sd / abs(m) if m else math.inf


def thin(steps: list[int], values: list[float], points: int = CURVE_POINTS) -> dict:
    """Every k-th point (and the last) so that a curve has at most `points` points."""
    stride = max(1, math.ceil(len(steps) / points))
    idx = list(range(0, len(steps), stride))
    if idx[-1] != len(steps) - 1:
        idx.append(len(steps) - 1)
    return {"step": [steps[i] for i in idx], "value": [round(values[i], 5) for i in idx]}


def curve_summary(steps: list[int], values: list[float]) -> dict:
    tail = values[-max(2, len(values) // 4):]
    changes = [abs(b - a) for a, b in zip(tail[:-1], tail[1:])]
    tail_mean = _mean(tail)
    return {
        "start": round(values[0], 5), "end": round(values[-1], 5), "min": round(min(values), 5),
        "last_quarter_mean": round(tail_mean, 5), "last_quarter_cv": round(_cv(tail), 4),
        "last_quarter_roughness": round(_mean(changes) / abs(tail_mean), 4) if changes and tail_mean else 0.0,
        "curve": thin(steps, values),
    }


def loss_summaries(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k not in NOT_LOSSES and isinstance(rows[0][k], (int, float))]
    steps = [r["step"] for r in rows]
    return {k: curve_summary(steps, [float(r[k]) for r in rows]) for k in keys}


def quality_summary(rows: list[dict], metric: str = "frechet_distance") -> dict:
    steps = [r["step"] for r in rows]
    values = [float(r[metric]) for r in rows]
    best = min(range(len(values)), key=values.__getitem__)
    worse = sum(1 for a, b in zip(values[:-1], values[1:]) if b > (1 + WORSE) * a)
    second_half = values[len(values) // 2:]
    entropies = [(r["step"], r["class_entropy"]) for r in rows if "class_entropy" in r]
    return {
        "checkpoints": [{k: r.get(k) for k in ("step", "frechet_distance", "confident_share", "class_entropy")}
                        for r in rows],
        "best_step": steps[best], "best": round(values[best], 3), "final": round(values[-1], 3),
        "final_over_best": round(values[-1] / values[best], 3) if values[best] else None,
        "times_worse": worse, "transitions": len(values) - 1,
        "second_half_cv": round(_cv(second_half), 4),
        "min_class_entropy": min((e for _, e in entropies), default=None),
        "min_class_entropy_step": min(entropies, key=lambda se: se[1])[0] if entropies else None,
        # Collapse after the model has learnt, not the one-class blur of the first checkpoints:
        "min_class_entropy_second_half": min((e for _, e in entropies[len(entropies) // 2:]), default=None),
        "samples_per_checkpoint": rows[-1].get("n"),
        "sampler": {k: rows[-1][k] for k in ("sampler", "steps") if k in rows[-1]} or None,
    }


def stability(directory: Path) -> dict:
    """Loss and checkpoint-quality summaries of one checkpoint folder's logs, and the compute its training
    recorded (engines/training/compute.py; None where it has no record)."""
    losses = read_jsonl(Path(directory) / LOG_NAME)
    quality = read_jsonl(Path(directory) / QUALITY_LOG_NAME)
    return {
        "log_points": len(losses),
        "steps": losses[-1]["step"] if losses else None,
        "losses": loss_summaries(losses) if losses else {},
        "quality": quality_summary(quality) if quality else None,
        "compute": training_compute(Path(directory)),
    }


def training_compute(directory: Path) -> dict | None:
    """What the report says of a run's compute: FLOPs (and how counted), images seen, wall and CPU seconds."""
    path = directory / TRAINING_INFO_NAME
    record = json.loads(path.read_text()).get("compute") if path.is_file() else None
    if not record or record.get("flops") is None:
        return None
    return {key: record.get(key) for key in ("flops", "flops_source", "steps", "images_seen", "wall_s", "cpu_s")}
