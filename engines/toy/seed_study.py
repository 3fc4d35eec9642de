"""Seed study: is "GANs oscillate and can collapse; VAE and diffusion train smoothly" true of a family, or of a run?

The report judges that folklore from one image run per family, and one run cannot tell a family's habit from a
seed's luck. On the 2-D toys a run takes seconds, so here each family trains with seeds 0 .. n-1 on a toy
with countable modes (by default the 8-Gaussian ring), and every `check_every` steps the playground's own
measurements are taken: modes covered and the share of samples on a mode (`engines.toy.metrics.mode_coverage`).
The result is rates over seeds with their binomial standard errors, so a report can say "k of n seeds".

Everything is the playground's: the trainers and their default learning rates, the seeded generators (step k's
batch from (seed, k), weights from the seed), and `Playground.samples` for the points measured, which draws
with seed + 2 at every checkpoint, so a change between checkpoints is the model's, not fresh sampling noise;
diffusion samples with the live view's sampler (DDPM, `session.VIEW_DIFFUSION_STEPS` = 50 trailing steps).
The same arguments give the same numbers at the same torch thread count; the function sets no global state (the
caller picks the thread count; it is recorded in the settings).

Like for like: every family is measured the same way, from the same kind of weights (the EMA of its sampling
network, with the one decay `ToyTrainer.ema_decay`; a GAN's generator), on the same number of samples, at the
same number of evenly spaced checkpoints. Each checkpoint is measured from both kinds of weights: the EMA's rates
are the family's (what verdicts compare), the raw weights' are recorded beside them ("sensitivity"), and each
record says what was measured (`measured`), so that a comparison of unlike records can be refused.
"""
from __future__ import annotations

import math
import numbers
import statistics

import torch

from engines.engine import check_count
from engines.errors import EngineError
from engines.toy import metrics, session
from engines.toy.distributions import PRESETS, make_distribution
from engines.toy.session import Playground
from engines.toy.training import BATCH_SIZE, DEFAULT_LR, FAMILIES, MAX_SAMPLES, ToyTrainer, check_lr

# Defaults sized so 3 families x 20 seeds take about 5 minutes on one CPU thread of the lab's 2-core machine
# (training dominates: ~11 ms per step for the three families together. Measuring each checkpoint from both
# kinds of weights costs the GAN, VAE and diffusion GAN under 1% more; diffusion's 50-step sampler ~30% more of
# its own time, so the study ~10% more than one measurement per checkpoint). At 1500 steps
# on ring8 the GAN and diffusion have left their start-up phase (diffusion covers all 8 modes from ~750
# steps), but the VAE is still spreading onto its last modes on many seeds (their peak coverage is their
# final: too few steps, not collapse), and the VAE's and diffusion's on-mode shares are still rising.
# "Final" means final at this budget, not converged; pass more steps for that.
STEPS = 1500
CHECK_EVERY = 100          # 15 checkpoints; the second half (the last 8) holds 7 transitions
SAMPLES = 1000             # per checkpoint: a mode's fair share is 125, "covered" needs 32 of them
SEEDS = 20
DROP_THRESHOLD = 0.10      # an on-mode share falling by more than this between checkpoints is a drop
MIN_CHECKPOINTS = 4        # so that the second half has at least one transition to look at
MAX_SEEDS = 1000
TOLERANCE = 1e-9           # shares are k / samples in floating point: 0.8 - 0.7 is 0.10000000000000009
PRIMARY, SENSITIVITY = "ema", "raw"   # the weights the rates are of, and the weights measured beside them


def count_drops(modes_covered: list[int], on_mode: list[float], threshold: float = DROP_THRESHOLD) -> int:
    """Drops over the second half of one run's checkpoints: the series' last ceil(n/2) entries, and each
    transition between consecutive ones where the on-mode share falls by more than `threshold` (absolute)
    or the modes covered fall (by any amount). One transition counts once even if both fall.

    Pure, so the counting is tested on hand-made series without training anything."""
    if len(modes_covered) != len(on_mode):
        raise EngineError(f"the two series must have one value per checkpoint each, got {len(modes_covered)} "
                          f"modes-covered values and {len(on_mode)} on-mode shares")
    start = len(on_mode) // 2
    return sum(1 for i in range(start + 1, len(on_mode))
               if on_mode[i - 1] - on_mode[i] > threshold + TOLERANCE or modes_covered[i] < modes_covered[i - 1])


def rate(flags: list[bool]) -> tuple[float, float]:
    """The share of seeds where something happened, and its binomial standard error sqrt(p(1-p)/n).

    The error is 0 when p is 0 or 1: with n seeds that says "not seen in n", not "impossible"."""
    p = sum(flags) / len(flags)
    return p, math.sqrt(p * (1 - p) / len(flags))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 denominator) over seeds."""
    return float(statistics.fmean(values)), float(statistics.stdev(values))


def summarise_seeds(runs: list[dict], n_modes: int, threshold: float = DROP_THRESHOLD) -> dict:
    """One family's numbers from its seeds' series: each run is {"modes_covered": [...], "on_mode": [...]}
    per checkpoint (and anything else, e.g. "seed", passed through). Pure: no training, so it is tested on
    hand-made series. A seed has collapsed when its final checkpoint covers fewer modes than it once did (it
    lost modes it had found); it fell short when it never covered all `n_modes` (too few steps or a model that
    cannot reach them: not a collapse); it has oscillated when `count_drops` finds a drop in the second half."""
    if len(runs) < 2:
        raise EngineError(f"summarise at least 2 seeds (a spread needs two), got {len(runs)}")
    per_seed = []
    for run in runs:
        modes, on = list(run["modes_covered"]), [float(v) for v in run["on_mode"]]
        drops = count_drops(modes, on, threshold)
        per_seed.append({**run, "modes_covered": modes, "on_mode": on, "final_modes_covered": modes[-1],
                         "final_on_mode": on[-1], "peak_modes_covered": max(modes), "drops": drops,
                         "collapsed": modes[-1] < max(modes), "fell_short": max(modes) < n_modes,
                         "oscillated": drops > 0})
    out = {"per_seed": per_seed}
    for name, key in (("collapse_rate", "collapsed"), ("short_rate", "fell_short"),
                      ("oscillation_rate", "oscillated")):
        out[name], out[f"{name}_se"] = rate([run[key] for run in per_seed])
    for key in ("drops", "final_modes_covered", "final_on_mode"):
        out[f"{key}_mean"], out[f"{key}_std"] = mean_std([run[key] for run in per_seed])
    return out


def train_and_measure(distribution, family: str, seed: int, lr: float, steps: int, check_every: int,
                      samples: int) -> dict[str, dict]:
    """One seed of one family: train in chunks of `check_every` steps, measuring coverage after each from both
    kinds of weights (the same samples' seed for both). Returns {weights: {"seed", "modes_covered", "on_mode"}}.

    The chunks are the playground's own trainer steps, so the weights at step k are those of one run of k
    steps (`ToyTrainer.train` is resumable bit for bit; the EMA only reads the weights, so measuring it changes
    no training). `Playground.train` is not used because each of its snapshots also draws the live view's
    pictures, which the study does not need."""
    playground = Playground(distribution, (family,), seed, lr)
    trainer = playground.trainers[family]
    series = {weights: {"seed": seed, "modes_covered": [], "on_mode": []} for weights in (PRIMARY, SENSITIVITY)}
    for _ in range(steps // check_every):
        trainer.train(check_every)
        for weights, run in series.items():
            coverage = metrics.mode_coverage(distribution, playground.samples(family, samples, weights=weights))
            run["modes_covered"].append(coverage.covered)
            run["on_mode"].append(coverage.on_support)
    return series


def measured(weights: str, samples: int, steps: int, check_every: int) -> dict:
    """What one family's record was measured from: the comparison's terms. Two records compare only when their
    weights, samples and checkpoints are the same (`engines.measure.verdicts.unlike`); the steps may differ
    (a hybrid learns several conditionals and trains longer: its checkpoints are as many, as evenly spaced)."""
    return {"weights": weights, **({"ema_decay": ToyTrainer.ema_decay} if weights == "ema" else {}),
            "samples": samples, "checkpoints": steps // check_every, "check_every": check_every, "steps": steps}


def check_arguments(distribution, families, seeds, steps, check_every, samples, lr, drop_threshold) -> dict:
    """Refuses bad settings before any training, with messages that say what to pass; returns the
    learning rate, steps and check_every per family (the playground's default rate where none is given)."""
    if not isinstance(distribution, str) or distribution not in PRESETS:
        raise EngineError(f"unknown distribution {distribution!r}: choose one of {', '.join(PRESETS)}")
    if isinstance(families, str) or not families or len(set(families)) != len(families) \
            or not all(f in FAMILIES for f in families):
        raise EngineError(f"families must be a non-empty list of distinct names from {', '.join(FAMILIES)}, "
                          f"got {families!r}")
    if check_count(seeds, cap=MAX_SEEDS, what="seeds") < 2:
        raise EngineError("seeds must be at least 2: a rate over seeds needs more than one run")
    steps, check_every = per_family(steps, families, "steps"), per_family(check_every, families, "check_every")
    for f in families:
        check_count(steps[f], cap=session.MAX_STEPS, what="steps")
        check_count(check_every[f], cap=session.MAX_STEPS, what="check_every")
        if steps[f] % check_every[f] or steps[f] // check_every[f] < MIN_CHECKPOINTS:
            raise EngineError(f"steps must be a multiple of check_every giving at least {MIN_CHECKPOINTS} "
                              f"checkpoints, got steps={steps[f]}, check_every={check_every[f]} for {f}")
    check_count(samples, cap=MAX_SAMPLES, what="samples")
    if isinstance(drop_threshold, bool) or not isinstance(drop_threshold, numbers.Real) \
            or not 0 < drop_threshold < 1:
        raise EngineError(f"drop_threshold must be a number in (0, 1), got {drop_threshold!r}")
    if isinstance(lr, dict):
        if set(lr) - set(families):
            raise EngineError(f"learning rates given for families not studied: {sorted(set(lr) - set(families))}")
        lrs = {f: check_lr(lr[f]) if f in lr else DEFAULT_LR[f] for f in families}
    else:
        lrs = {f: DEFAULT_LR[f] if lr is None else check_lr(lr) for f in families}
    return {"lr": lrs, "steps": steps, "check_every": check_every}


def per_family(value, families, what: str) -> dict:
    """One number for every family, or a dict with one for each (a family that learns more conditionals, like
    the diffusion GAN's four, needs more steps to reach the same point of its training)."""
    if not isinstance(value, dict):
        return {f: value for f in families}
    if set(value) != set(families):
        raise EngineError(f"{what} given per family must name exactly the families studied {list(families)}, "
                          f"got {sorted(value)}")
    return dict(value)


def definitions(n_modes: int, samples: int, drop_threshold: float) -> dict[str, str]:
    """The study's terms in words, for a report to print next to the numbers."""
    return {
        "modes_covered": f"modes (of {n_modes}) that receive at least {metrics.COVERED_SHARE:.0%} of the samples "
                         f"they would get from the true distribution, out of {samples} samples "
                         f"(engines.toy.metrics.mode_coverage)",
        "on_mode": "share of the samples within 3 noise standard deviations of some mode's centre (the rest "
                   "fell between the modes); metrics.Coverage.on_support",
        "checkpoint": "after every check_every training steps, the same measurement on freshly drawn samples "
                      "from the same sampling seed (training seed + 2), so changes are the model's",
        "collapse": "a seed collapses when its final checkpoint covers fewer modes than its best checkpoint did "
                    "(it lost modes it had found)",
        "short": f"a seed falls short when no checkpoint covered all {n_modes} modes (too few steps, or modes the "
                 f"model cannot reach): reported apart from collapse",
        "drop": f"over the second half of the checkpoints (the last ceil(n/2)), a transition between "
                f"consecutive checkpoints where the on-mode share falls by more than {drop_threshold:g} "
                f"(absolute) or the modes covered fall by any amount",
        "oscillation": "a seed oscillates when it has at least one drop",
        "peak_modes_covered": "the most modes a seed covered at any checkpoint",
        "rate_se": "binomial standard error sqrt(p(1-p)/n) over n seeds; 0 at p = 0 or 1 means 'not seen in "
                   "n seeds', not impossible",
        "std": "sample standard deviation over seeds (n - 1 denominator)",
        "diffusion_sampler": f"DDPM with {session.VIEW_DIFFUSION_STEPS} trailing steps, the playground's "
                             f"live-view setting (Playground.samples)",
        "weights": f"every family is measured from the exponential moving average (decay "
                   f"{ToyTrainer.ema_decay:g}) of its sampling network (a GAN's and the diffusion GAN's generator): "
                   f"the rates and verdicts are the EMA's; the same checkpoints measured from the raw weights are "
                   f"recorded beside them (\"sensitivity\") to show whether the kind of weights changes a verdict. "
                   f"The EMA averages over ~{1 / (1 - ToyTrainer.ema_decay):.0f} steps: it smooths out changes "
                   f"faster than that, which the raw weights show",
        "measured": "per family, what its numbers were measured from (weights, samples, checkpoints, steps); "
                    "families are compared only when their weights, samples and checkpoints are the same",
    }


def seed_study(distribution: str = "ring8", families=("gan", "vae", "diffusion"), seeds: int = SEEDS,
               steps: int | dict[str, int] = STEPS, check_every: int | dict[str, int] = CHECK_EVERY,
               samples: int = SAMPLES, lr: float | dict[str, float] | None = None,
               drop_threshold: float = DROP_THRESHOLD, measure=None) -> dict:
    """Trains each family with seeds 0 .. seeds-1 and returns, as plain JSON numbers:
    {"settings": {...}, "definitions": {...}, "families": {family: record}}, where a family's record is
    `summarise_seeds` of its EMA measurements with "measured" (`measured`) and "sensitivity", the same for its
    raw weights.

    `lr`: None for the playground's default per family (training.DEFAULT_LR), one number for all, or a
    dict per family; `steps` and `check_every`: one number for all or a dict naming every family (the
    settings then hold them per family). `measure`: the families among them to
    train (default all); the settings and definitions still describe every family, so that a family's record
    can join a study measured before (each family's runs depend on its own settings only). Writes nothing;
    raises EngineError on bad arguments before training."""
    per = check_arguments(distribution, families, seeds, steps, check_every, samples, lr, drop_threshold)
    if measure is not None and (isinstance(measure, str) or not set(measure) <= set(families)):
        raise EngineError(f"measure must name families among those studied {list(families)}, got {measure!r}")
    dist = make_distribution(distribution)
    results = {}
    with torch.enable_grad():   # training, whatever the caller's autograd mode (the evaluation runs in no_grad)
        for family in (f for f in families if measure is None or f in measure):
            steps_f, every = per["steps"][family], per["check_every"][family]
            runs = [train_and_measure(dist, family, seed, per["lr"][family], steps_f, every, samples)
                    for seed in range(seeds)]
            record = {weights: {"measured": measured(weights, samples, steps_f, every),
                                **summarise_seeds([run[weights] for run in runs], dist.n_modes, drop_threshold)}
                      for weights in (PRIMARY, SENSITIVITY)}
            results[family] = {**record[PRIMARY], "sensitivity": record[SENSITIVITY]}
    uniform = not isinstance(steps, dict) and not isinstance(check_every, dict)
    settings = {"distribution": distribution, "distribution_title": PRESETS[distribution][0],
                "n_modes": dist.n_modes, "families": list(families), "seeds": list(range(seeds)),
                **({"steps": steps, "check_every": check_every,
                    "checkpoints": list(range(check_every, steps + 1, check_every))} if uniform else
                   {"steps": per["steps"], "check_every": per["check_every"]}),
                "samples": samples, "weights": PRIMARY, "sensitivity_weights": SENSITIVITY,
                "ema_decay": ToyTrainer.ema_decay,
                "lr": per["lr"], "batch_size": BATCH_SIZE, "drop_threshold": float(drop_threshold),
                "diffusion_sampler_steps": session.VIEW_DIFFUSION_STEPS, "torch_threads": torch.get_num_threads()}
    return {"settings": settings, "definitions": definitions(dist.n_modes, samples, drop_threshold),
            "families": results}
