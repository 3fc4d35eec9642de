"""Preset lessons: each trains what it needs on one toy, measures, and checks the seed's claim in numbers.

A lesson fixes everything (distribution, families, steps, learning rates, seed), so the same lesson always
shows the same numbers on the same machine; each takes under a minute on 2 CPU cores (`scripts/lesson_times.py`
measures it). `claims` turns the measurements into sentences that hold or not; the app shows them and the tests
assert them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

from engines.errors import EngineError
from engines.toy.distributions import make_distribution
from engines.toy.divergence import EVAL_SAMPLES, KDE_SAMPLES
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


def _gan_divergence_claims(m: dict) -> list[Claim]:
    history, end = m["divergence_history"], m["gan_divergence"]
    (first_step, first, first_se, first_gap), (last_step, last, last_se, last_gap) = history[0], history[-1]
    return [
        Claim(f"the JSD between data and generator falls from {first:.2f} ± {first_se:.2f} nats at step {first_step} "
              f"to {last:.2f} ± {last_se:.2f} at step {last_step} (log 2 = 0.69 would be no overlap at all); over "
              f"training: {', '.join(f'{jsd:.2f}' for _, jsd, _, _ in history)}",
              first - last > 2 * math.hypot(first_se, last_se)),
        Claim(f"the learned D and the optimal D* = p_data / (p_data + p_g) draw closer: their mean gap |D - D*| over "
              f"real and generated points falls from {first_gap:.2f} to {last_gap:.2f}. Mostly D* moves, flattening "
              f"towards 1/2 as p_g nears p_data: the learned D stays close to 1/2 (mean |D - 1/2| = "
              f"{end['d_confidence']:.2f} at the end)", last_gap < first_gap),
        Claim(f"the learned D's game value V(D, G) = {end['game_value']:.3f} is at most D*'s, -log 4 + 2 JSD = "
              f"{end['game_optimum']:.3f} ± {end['game_optimum_se']:.3f} nats, as it must be: D* maximises V",
              end["game_value"] <= end["game_optimum"] + 2 * end["game_optimum_se"]),
    ]


def _diffusion_gan_claims(m: dict) -> list[Claim]:
    hybrid, gan = m["rows"]["diffusion GAN"], m["rows"]["GAN"]
    early = {f: m["coverage_history"][f][0] for f in ("gan", "diffusion_gan")}
    return [
        Claim(f"the diffusion GAN ends covering {hybrid['modes_covered']} of {hybrid['n_modes']} modes with "
              f"{hybrid['on_support']:.0%} of its samples on a mode (the GAN: {gan['modes_covered']} of "
              f"{gan['n_modes']}, {gan['on_support']:.0%})",
              hybrid["modes_covered"] == hybrid["n_modes"] and hybrid["on_support"] >= 0.8),
        Claim(f"it starts slower: at step {early['diffusion_gan'][0]} it covers {early['diffusion_gan'][1]} modes "
              f"({early['diffusion_gan'][2]:.0%} on a mode) against the GAN's {early['gan'][1]} "
              f"({early['gan'][2]:.0%}): each of its four steps is an easier problem than the GAN's one, but it "
              f"has four to learn, one at a time", early["diffusion_gan"][2] < early["gan"][2]),
        Claim(f"by the end it has caught up on coverage: both cover all {gan['n_modes']} modes. At equal steps on "
              f"this toy one run does not show the hybrid doing better than the GAN (samples' true log-likelihood "
              f"{_fmt(hybrid['sample_true_loglik'])} vs {_fmt(gan['sample_true_loglik'])} nats; the data's own "
              f"{_fmt(m['data_true_loglik'])}): what the seed claims for it, diffusion's stability, is a question "
              f"across seeds", hybrid["modes_covered"] == gan["modes_covered"] == gan["n_modes"]),
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
    Lesson("gan_divergence", "The GAN as divergence minimisation",
           "Compare the two maps on the right: the discriminator the GAN learned, and the optimal one for the "
           "current generator, D* = p_data / (p_data + p_g): red where the data outweighs the generator, blue where "
           "the generator puts mass the data lacks, blank where neither has any. Against D* the game's value is "
           "-log 4 + 2 JSD, so a generator step against a good D is a step down the Jensen-Shannon divergence; the "
           "black points on the loss plot are D*'s loss, log 4 - 2 JSD, rising as the JSD falls. The learned D's "
           "loss stays above them, near log 4 (D about 1/2): trained a step at a time, it never becomes D*.",
           "moons", {"gan": 2500}, {"gan": 1e-3}, {"GAN": ("gan", {})}, _gan_divergence_claims,
           notes=f"p_g has no formula: it is a kernel density estimate from {KDE_SAMPLES:,} generator samples, and "
                 f"the JSD an average over {EVAL_SAMPLES:,} fresh points of each side (engines/toy/divergence.py)."),
    Lesson("diffusion_gan", "A GAN in four denoising steps: the diffusion GAN against the GAN",
           "The hybrid's generator does not draw a point from noise in one go: at each of four noise levels it "
           "guesses the clean point from the noisy one, and the forward process's posterior adds back the right "
           "noise for the next level; its discriminator judges (less noisy, noisier) pairs. Watch its chain on the "
           "right, and how its samples settle on the modes after the GAN's.",
           "ring8", {"gan": 2500, "diffusion_gan": 2500}, {"gan": 1e-3, "diffusion_gan": 1e-3},
           {"GAN": ("gan", {}), "diffusion GAN": ("diffusion_gan", {})}, _diffusion_gan_claims, every=500,
           notes="Xiao et al. 2022; the image version is the lab's `diffusion_gan` engine. Its generator's output "
                 "is preconditioned (EDM's c_skip, c_out) so that its last, least noisy step starts near the "
                 "identity."),
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
