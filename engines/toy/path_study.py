"""Straight paths need fewer steps: diffusion's DDIM, flow matching and its reflow at 1, 2, 4 and 8 solver steps
on the 2-D ring of 8 Gaussians, across seeds.

    python -m engines.toy.path_study [--seeds 0 1 2 3 4]      # writes docs/straight_paths.json

Per seed the three models train as the playground's lesson trains them (`SETTINGS`): diffusion and flow matching
on the same points and steps, then reflow from the flow's EMA weights on its own (noise, 50-step Euler image)
couplings (Liu et al. 2022). Each model samples `SAMPLES` points at each step count from the same noise; each
sample set is scored by modes covered, the share on a mode, and its energy distance to fresh true points. The
flow's and reflow's paths are also scored by Liu et al.'s straightness (`engines.measure.straightness`, 100 Euler
steps). The summary gives each number's mean and standard error over the seeds; the lesson reads it.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from engines.measure.straightness import straightness
from engines.runtime import hardware
from engines.sampling.flow import make_flow_times
from engines.toy import metrics, study_command, views
from engines.toy.distributions import make_distribution
from engines.toy.training import ReflowTrainer, make_trainer

OUT = Path(__file__).resolve().parents[2] / "docs" / "straight_paths.json"
STEPS = (1, 2, 4, 8)
SAMPLES = 1500
SETTINGS = {"distribution": "ring8", "train_steps": 2000, "lr": 2e-3, "reflow_steps": 1000, "couplings": 10_000,
            "coupling_steps": 50, "straightness_steps": 100}
# Each model's sampler at a step count: diffusion's deterministic DDIM (its probability-flow ODE), the flows' Euler.
SAMPLERS = {"diffusion": {"sampler": "ddim"}, "flow": {"sampler": "euler"}, "reflow": {"sampler": "euler"}}
LABELS = {"diffusion": "diffusion (DDIM)", "flow": "flow matching (Euler)", "reflow": "reflow (Euler)"}


def train_reflow(flow, settings: dict = SETTINGS) -> ReflowTrainer:
    """Reflow of the trained toy `flow` trainer, with the study's couplings and steps."""
    reflow = ReflowTrainer(flow, couplings=settings["couplings"], steps=settings["coupling_steps"])
    reflow.train(settings["reflow_steps"])
    return reflow


def path_straightness(trainer, seed: int, steps: int) -> dict:
    """Liu et al.'s straightness of `steps`-step Euler paths of a toy flow from 24 noise points (mean ± SE)."""
    path = views.trajectories(trainer.eval_model, n=200, seed=seed, steps=steps, sampler="euler")
    per_path = straightness(make_flow_times(steps, spacing="uniform"), path)["per_pixel"]
    return {"straightness": float(per_path.mean()), "straightness_se": float(per_path.std() / len(per_path) ** 0.5)}


def score(trainers: dict, distribution, seed: int, steps=STEPS) -> dict:
    """{model: {k: {"modes_covered", "on_support", "energy"}}} for each model at each step count."""
    truth = distribution.sample(SAMPLES, seed=seed + 4)
    out = {}
    for name, trainer in trainers.items():
        out[name] = {}
        for k in steps:
            x = trainer.sample(SAMPLES, seed=seed + 2, steps=k, **SAMPLERS[name])
            coverage = metrics.mode_coverage(distribution, x)
            out[name][str(k)] = {"modes_covered": coverage.covered, "on_support": round(coverage.on_support, 4),
                                 "energy": round(metrics.energy_distance(x, truth), 5)}
    return out


def one_seed(seed: int, settings: dict = SETTINGS) -> dict:
    distribution = make_distribution(settings["distribution"])
    trainers = {}
    for name in ("diffusion", "flow"):
        trainers[name] = make_trainer(name, distribution, seed, settings["lr"])
        trainers[name].train(settings["train_steps"])
    trainers["reflow"] = train_reflow(trainers["flow"], settings)
    scored = score(trainers, distribution, seed)
    for name in ("flow", "reflow"):
        scored[name]["paths"] = path_straightness(trainers[name], seed + 3, settings["straightness_steps"])
    return scored


def summary(runs: dict) -> dict:
    """Mean and SE over seeds of every number, per model and step count (and of the flows' straightness)."""
    first = next(iter(runs.values()))
    out = {}
    for name, by_steps in first.items():
        out[name] = {}
        for k, numbers in by_steps.items():
            out[name][k] = {}
            for key in (key for key in numbers if not key.endswith("_se")):
                values = [run[name][k][key] for run in runs.values()]
                se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
                out[name][k][key] = round(statistics.mean(values), 5)
                out[name][k][key + "_se"] = round(se, 5)
    return out


def study(seeds, settings: dict = SETTINGS, log=print) -> dict:
    began = time.time()
    runs = {}
    for seed in seeds:
        runs[str(seed)] = one_seed(seed, settings)
        log(f"path study: seed {seed} done ({time.time() - began:.0f} s)")
    return {"settings": settings, "steps": list(STEPS), "samples": SAMPLES, "seeds": list(seeds),
            "labels": LABELS, "runs": runs, "summary": summary(runs), "seconds": round(time.time() - began, 1),
            "hardware": hardware(), "command": "python -m engines.toy.path_study --seeds "
                                               + " ".join(map(str, seeds))}


def read_study(path: Path = OUT) -> dict | None:
    return study_command.read_json(path)


def main(argv: list[str] | None = None) -> int:
    return study_command.main("python -m engines.toy.path_study", __doc__, study, OUT, [0, 1, 2, 3, 4], argv)


if __name__ == "__main__":
    raise SystemExit(main())
