"""Diffusion as score matching, measured on one toy: train a small 2-D diffusion model, then compare what its
noise predictor implies (the score) with the true score of the noised toy density, and sample it with annealed
Langevin dynamics, which uses nothing but that score (the DDPM update is not involved).

Everything the Connections tab shows comes from `score_study`; the maths is in `engines.toy.score`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engines.engine import check_count, check_seed, make_generator
from engines.errors import EngineError
from engines.toy import metrics
from engines.toy.distributions import make_distribution
from engines.toy.score import (
    ScoreLevel,
    annealed_langevin,
    learned_score,
    learned_score_fn,
    score_field,
    true_score_fn,
    tweedie_x0,
)
from engines.toy.training import make_trainer

STUDY_TOYS = ("ring8", "grid25", "moons", "checkerboard")   # closed-form noised densities, distinct shapes
MAX_STUDY_STEPS = 5000      # one request's training: about 10 s on one core
SAMPLES = 1500
LANGEVIN_LEVELS = 50        # noise levels of the Langevin run (5 steps each); DDPM uses the same count of steps


@dataclass
class ScoreStudy:
    distribution: str
    steps: int
    levels: list[ScoreLevel]           # learned vs true score at three noise levels, small to large
    samples: dict[str, torch.Tensor]   # "Langevin (learned score)", "Langevin (true score)", "DDPM" -> [n, 2]
    coverage: dict[str, metrics.Coverage]
    n_modes: int
    tweedie_gap: float                 # max |Tweedie's E[x0|x_t] from s_theta - the sampler's predicted x0|


def score_study(distribution: str = "ring8", steps: int = 2000, seed: int = 0) -> ScoreStudy:
    """Train a toy diffusion model `steps` steps on `distribution` (seeded), then measure its score and sample."""
    if distribution not in STUDY_TOYS:
        raise EngineError(f"unknown toy {distribution!r} for the score view: choose one of {', '.join(STUDY_TOYS)}")
    steps = check_count(steps, cap=MAX_STUDY_STEPS, what="training steps")
    seed = check_seed(seed)
    toy = make_distribution(distribution)
    trainer = make_trainer("diffusion", toy, seed=seed)
    trainer.train(steps)
    model = trainer.eval_model
    levels = score_field(model, toy, seed=seed)
    samples = {
        "Langevin (learned score)": _langevin(learned_score_fn(model), model, seed),
        "Langevin (true score)": _langevin(true_score_fn(toy, model.schedule), model, seed),
        "DDPM": trainer.sample(SAMPLES, seed=seed, sampler="ddpm", steps=LANGEVIN_LEVELS),
    }
    coverage = {name: metrics.mode_coverage(toy, x) for name, x in samples.items()}
    return ScoreStudy(distribution, steps, levels, samples, coverage, toy.n_modes, tweedie_gap(model, levels))


@torch.no_grad()
def _langevin(score_fn, model, seed: int) -> torch.Tensor:
    generator = make_generator(seed)
    x = torch.randn((SAMPLES, 2), generator=generator)
    return annealed_langevin(score_fn, model.schedule, x, generator, levels=LANGEVIN_LEVELS).float()


@torch.no_grad()
def tweedie_gap(model, levels: list[ScoreLevel]) -> float:
    """Tweedie's formula with the learned score against the samplers' predicted x0 at the same points: the same
    quantity written two ways, so the gap is rounding error (float32)."""
    gap = 0.0
    for level in levels:
        x, t = level.points, level.t
        eps = model(x, torch.full((len(x),), t))
        predicted = model.schedule.predict_x0(x, t, eps)
        via_score = tweedie_x0(x, learned_score(model, x, t), level.alpha_bar)
        gap = max(gap, float((predicted - via_score).abs().max()))
    return gap
