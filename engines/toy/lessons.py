"""Preset lessons: each trains what it needs on one toy, measures, and checks the seed's claim in numbers.

A lesson fixes everything (distribution, families, steps, learning rates, seed), so the same lesson always
shows the same numbers on the same machine; each runs in well under 30 s on 2 CPU cores. `claims` turns the
measurements into sentences that hold or not; the app shows them and the tests assert them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from engines.errors import EngineError
from engines.toy.distributions import make_distribution
from engines.toy.session import Playground, Snapshot


@dataclass(frozen=True)
class Claim:
    text: str
    holds: bool


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    look_at: str                               # one sentence: what to look at
    distribution: str
    steps: dict[str, int]                      # family -> training steps
    lr: dict[str, float]
    rows: dict[str, tuple[str, dict]]          # measured rows: label -> (family, sampler options)
    claims: Callable[[dict], list[Claim]]
    seed: int = 0
    every: int = 250                           # steps between live-view updates
    notes: str = ""
    families: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "families", tuple(self.steps))


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _gan_collapse_claims(m: dict) -> list[Claim]:
    gan, diffusion = m["rows"]["GAN"], m["rows"]["diffusion"]
    history = [covered for _, covered, _ in m["coverage_history"]["gan"]]
    return [
        Claim(f"mode collapse: at the end the GAN covers {gan['modes_covered']} of {gan['n_modes']} modes",
              gan["modes_covered"] <= gan["n_modes"] - 2),
        Claim(f"it never covered all {gan['n_modes']} at any of the {len(history)} checkpoints; modes covered "
              f"over training: {', '.join(map(str, history))} (the ups and downs are the oscillation)",
              max(history) < gan["n_modes"]),
        Claim(f"diffusion, trained on the same points, covers {diffusion['modes_covered']} of "
              f"{diffusion['n_modes']} modes", diffusion["modes_covered"] == diffusion["n_modes"]),
    ]


def _vae_blur_claims(m: dict) -> list[Claim]:
    vae, truth = m["rows"]["VAE"], m["data_true_loglik"]
    return [
        Claim(f"the VAE smears mass between the modes: only {vae['on_support']:.0%} of its samples lie on a mode",
              vae["on_support"] < 0.8),
        Claim(f"its samples' true log-likelihood is {_fmt(vae['sample_true_loglik'])} nats, far below the data's "
              f"own {_fmt(truth)}", vae["sample_true_loglik"] < truth - 2),
        Claim(f"ELBO {_fmt(vae['elbo'])} <= the VAE's exact log-likelihood {_fmt(vae['model_loglik'])} <= the true "
              f"log-likelihood {_fmt(truth)} (nats per point, held-out data)",
              vae["elbo"] <= vae["model_loglik"] <= truth),
    ]


def _diffusion_steps_claims(m: dict) -> list[Claim]:
    few, many, truth = m["rows"]["diffusion, 5 steps"], m["rows"]["diffusion, 200 steps"], m["data_true_loglik"]
    return [
        Claim(f"200 steps cover {many['modes_covered']} of {many['n_modes']} modes with {many['on_support']:.0%} "
              f"of the samples on a mode", many["modes_covered"] == many["n_modes"] and many["on_support"] >= 0.8),
        Claim(f"5 steps put only {few['on_support']:.0%} on a mode: the samples' true log-likelihood falls from "
              f"{_fmt(many['sample_true_loglik'])} to {_fmt(few['sample_true_loglik'])} nats",
              few["on_support"] < many["on_support"] - 0.1
              and few["sample_true_loglik"] < many["sample_true_loglik"] - 1),
        Claim(f"the model's own (ODE) log-likelihood {_fmt(many['model_loglik'])} is below the true "
              f"{_fmt(truth)}, as any model's must be, and within 1 nat of it",
              truth - 1 < many["model_loglik"] <= truth),
    ]


LESSONS = {lesson.key: lesson for lesson in [
    Lesson("gan_collapse", "GAN mode collapse on 8 narrow Gaussians",
           "Watch the GAN's samples pile onto a few of the 8 modes, and the discriminator's map light up where "
           "the missing modes are, while diffusion spreads over all 8; the numbers below say it (modes covered).",
           "ring8_narrow", {"gan": 2000, "diffusion": 2000}, {"gan": 1e-2, "diffusion": 2e-3},
           {"GAN": ("gan", {}), "diffusion": ("diffusion", {"steps": 200})}, _gan_collapse_claims,
           notes="A learning rate of 0.01, ten times the default, provokes it; with other seeds the GAN may recover."),
    Lesson("vae_blur", "VAE blur on 8 Gaussians",
           "Look at the VAE's samples bridging the modes: its decoder maps the round Gaussian prior onto the ring "
           "in one smooth sheet, so mass lands between the modes; its ELBO still sits below its own exact "
           "log-likelihood, which sits below the truth.",
           "ring8", {"vae": 3000}, {"vae": 2e-3}, {"VAE": ("vae", {})}, _vae_blur_claims, every=500),
    Lesson("diffusion_steps", "Diffusion with 5 vs 200 steps",
           "Same trained model, two samplers: 200 DDPM steps land on the 8 modes, 5 steps leave the samples "
           "blurred between them. The likelihood belongs to the model, "
           "not the sampler: its ODE log-likelihood is one number for both.",
           "ring8", {"diffusion": 3000}, {"diffusion": 2e-3},
           {"diffusion, 5 steps": ("diffusion", {"steps": 5}), "diffusion, 200 steps": ("diffusion", {"steps": 200})},
           _diffusion_steps_claims),
]}


def get_lesson(key: str) -> Lesson:
    if key not in LESSONS:
        raise EngineError(f"unknown lesson {key!r}: choose one of {', '.join(LESSONS)}")
    return LESSONS[key]


def run_lesson(key: str) -> Iterator[Snapshot | dict]:
    """Yields a Snapshot every `every` steps, then the measurements with their claims (a dict)."""
    lesson = get_lesson(key)
    playground = Playground(make_distribution(lesson.distribution), lesson.families, lesson.seed, lesson.lr)
    yield from playground.train(lesson.steps, lesson.every)
    measured = playground.measure(lesson.rows)
    measured["claims"] = [{"text": c.text, "holds": c.holds} for c in lesson.claims(measured)]
    measured["lesson"] = lesson.key
    yield measured
