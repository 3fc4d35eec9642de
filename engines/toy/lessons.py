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
from engines.measure.uncertainty import rate_text
from engines.toy.distributions import make_distribution
from engines.toy.divergence import EVAL_SAMPLES, KDE_SAMPLES
from engines.toy.guidance import GUIDANCE_SCALES
from engines.toy.guidance_study import SETTINGS as GUIDANCE_SETTINGS
from engines.toy.guidance_study import read_study as read_guidance_study
from engines.toy.guidance_study import scored as guidance_scored
from engines.toy.path_study import SAMPLERS as PATH_SAMPLERS
from engines.toy.path_study import SETTINGS as PATH_SETTINGS
from engines.toy.path_study import STEPS as STUDY_STEPS
from engines.toy.path_study import read_study
from engines.toy.session import Playground, Snapshot
from engines.toy.training import ReflowTrainer


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
    # The GAN's generator loss, and more to compare: the lesson's GAN trains with the first; for each other one a
    # twin GAN (same seed, learning rate, steps) trains beside it, and both divergences are measured per checkpoint.
    generator_losses: tuple[str, ...] = ()
    # Models built from the trained ones after training (name -> their steps), by `then(playground)`, which
    # trains them into the playground and yields snapshots: the straight-paths lesson's reflow of its flow.
    derived: dict[str, int] = field(default_factory=dict)
    then: Callable[[Playground], Iterator[Snapshot]] | None = None
    # Numbers a lesson measures beyond the rows' (name -> function of the trained playground): the guidance
    # lesson's share of each class asked, its spread and its offset at each scale.
    measure_more: dict[str, Callable[[Playground], dict]] = field(default_factory=dict)
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
        *_generator_loss_claims(m),
    ]


def _falls(track: list[dict], key: str) -> tuple[str, bool]:
    """'a ± se at step s to b ± se at step t', and whether the fall exceeds twice the SE of the difference."""
    first, last = track[0], track[-1]
    text = (f"{first[key]:.2f} ± {first[key + '_se']:.2f} at step {first['step']} to {last[key]:.2f} ± "
            f"{last[key + '_se']:.2f} at step {last['step']}")
    return text, first[key] - last[key] > 2 * math.hypot(first[key + "_se"], last[key + "_se"])


def _generator_loss_claims(m: dict) -> list[Claim]:
    """The lesson's GAN (non-saturating) and its minimax twin: which divergence each descends against D*, and
    what the run shows, with the learned D as far from D* as it is."""
    ns, mm = m["divergence_by_loss"]["non-saturating"], m["divergence_by_loss"]["minimax"]
    mm_jsd, mm_jsd_falls = _falls(mm, "jsd")
    ns_objective, ns_objective_falls = _falls(ns, "kl_minus_2jsd")
    ns_kl, _ = _falls(ns, "kl")
    confidence = max(ns[-1]["d_confidence"], mm[-1]["d_confidence"])
    over = lambda track, key: ", ".join(f"{row[key]:.2f}" for row in track)   # noqa: E731
    return [
        Claim(f"minimax loss log(1 - D(G(z))): against D* its gradient is that of 2 JSD (Goodfellow et al. 2014, "
              f"Thm 1), so it descends the JSD. A twin GAN (same seed, learning rate and steps) trained with it takes "
              f"the JSD from {mm_jsd} (over training: {over(mm, 'jsd')})", mm_jsd_falls),
        Claim(f"non-saturating loss -log D(G(z)), the lesson's GAN: against D* its gradient is that of "
              f"KL(p_g || p_data) - 2 JSD (Arjovsky & Bottou 2017, Thm 2.5), not of the JSD: it pulls the reverse KL "
              f"down and pushes the JSD up. KL - 2 JSD falls from {ns_objective} (over training: "
              f"{over(ns, 'kl_minus_2jsd')}); the KL alone from {ns_kl}", ns_objective_falls),
        Claim(f"both theorems are about a generator against D*, and neither learned D is D* (mean |D - D*| at the "
              f"end: {ns[-1]['gap']:.2f} non-saturating, {mm[-1]['gap']:.2f} minimax): each stays near 1/2 (mean "
              f"|D - 1/2| = {ns[-1]['d_confidence']:.2f} and {mm[-1]['d_confidence']:.2f}), where the two losses' "
              f"gradients per logit, -D and -(1 - D), nearly agree. So this run does not tell the losses apart by "
              f"what they descend: at step "
              f"{ns[-1]['step']} JSD {ns[-1]['jsd']:.2f} (non-saturating) vs {mm[-1]['jsd']:.2f} (minimax), "
              f"KL(p_g || p_data) {ns[-1]['kl']:.2f} vs {mm[-1]['kl']:.2f}; both fall as p_g nears p_data, "
              f"where every divergence is 0", confidence < 0.1),
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


def _reflow_then(playground: Playground) -> Iterator[Snapshot]:
    """Reflow the lesson's flow (the study's couplings and steps), showing it train."""
    flow = playground.trainers["flow"]
    reflow = ReflowTrainer(flow, couplings=PATH_SETTINGS["couplings"], steps=PATH_SETTINGS["coupling_steps"])
    playground.add("reflow", reflow)
    for _ in range(PATH_SETTINGS["reflow_steps"] // 250):
        reflow.train(250)
        yield playground.snapshot()


def _pm(summary: dict, name: str, k: str, key: str = "energy") -> str:
    return f"{summary[name][k][key]:.3f} ± {summary[name][k][key + '_se']:.3f}"


def _lower(summary: dict, a: str, b: str, k: str, key: str = "energy") -> bool:
    """a's mean below b's beyond 2 SE of the difference (independent seeds' means)."""
    x, y = summary[a][k], summary[b][k]
    return y[key] - x[key] > 2 * math.hypot(x[key + "_se"], y[key + "_se"])


def _straight_paths_claims(m: dict) -> list[Claim]:
    rows = m["rows"]
    one = {name: rows[f"{name}, 1 step"] for name in ("diffusion", "flow", "reflow")}
    flow_k = next((k for k in STUDY_STEPS if rows[f"flow, {k} step{'s' * (k > 1)}"]["energy"]
                   <= one["reflow"]["energy"]), None)
    claims = [
        Claim(f"in one Euler step reflow lands {one['reflow']['modes_covered']} of 8 modes with "
              f"{one['reflow']['on_support']:.0%} of its samples on a mode (energy distance to the truth "
              f"{one['reflow']['energy']:.3f}); flow matching's one step lands {one['flow']['modes_covered']} "
              f"({one['flow']['energy']:.3f}), diffusion's one DDIM step {one['diffusion']['modes_covered']} "
              f"({one['diffusion']['energy']:.3g})",
              one["reflow"]["energy"] < min(one["flow"]["energy"], one["diffusion"]["energy"])),
        Claim("flow matching needs " + (f"{flow_k} steps" if flow_k else f"more than {STUDY_STEPS[-1]} steps")
              + " to come as close to the truth as reflow's one", flow_k is None or flow_k > 1),
    ]
    study = read_study()
    if study is None:
        return claims + [Claim("across seeds: not measured yet (python -m engines.toy.path_study)", False)]
    sm, n = study["summary"], len(study["seeds"])
    paths = {name: sm[name]["paths"] for name in ("flow", "reflow")}
    return claims + [
        Claim(f"across {n} seeds (`{study['command']}`), energy distance at 1 step: reflow {_pm(sm, 'reflow', '1')}, "
              f"flow matching {_pm(sm, 'flow', '1')}, diffusion (DDIM) {_pm(sm, 'diffusion', '1')}; at 2 steps "
              f"{_pm(sm, 'reflow', '2')}, {_pm(sm, 'flow', '2')}, {_pm(sm, 'diffusion', '2')}: reflow lower beyond "
              f"2 SE at both", all(_lower(sm, "reflow", other, k) for other in ("flow", "diffusion") for k in "12")),
        Claim(f"why: its paths are straight. Liu et al.'s straightness (0 for lines at constant speed) across the "
              f"seeds: flow matching {paths['flow']['straightness']:.3f} ± {paths['flow']['straightness_se']:.3f}, "
              f"reflow {paths['reflow']['straightness']:.4f} ± {paths['reflow']['straightness_se']:.4f}",
              paths["flow"]["straightness"] - paths["reflow"]["straightness"]
              > 2 * math.hypot(paths["flow"]["straightness_se"], paths["reflow"]["straightness_se"])),
        Claim(f"by 8 steps the curved flow has caught up: {_pm(sm, 'flow', '8')} vs reflow {_pm(sm, 'reflow', '8')}, "
              + ("a difference within 2 SE" if not _lower(sm, "reflow", "flow", "8") else
                 "though reflow is still lower beyond 2 SE"), not _lower(sm, "reflow", "flow", "8")),
        Claim(f"diffusion's DDIM is the worst at every step count (8 steps: {_pm(sm, 'diffusion', '8')}), and not only "
              f"for curvature: its network predicts the noise, and its first step turns that into x0 by dividing by "
              f"sqrt(alpha_bar) at the last timestep, near 0 on the cosine schedule, so a small noise error becomes a "
              f"large jump; a velocity stays of the data's size", all(_lower(sm, "flow", "diffusion", str(k))
                                                                      for k in STUDY_STEPS)),
    ]


def _scales(numbers: dict, key: str, scales=("1", "3", "8")) -> str:
    return ", ".join(f"{numbers[w][key]:.2f} at w = {w}" for w in scales)


def _with_se(value: float, se: float) -> str:
    """'0.89 ± 0.02', with as many decimals as the SE needs to show (never '± 0.00')."""
    if se == 0:
        return f"{value:.2f} at every seed"
    digits = max(2, min(6, 1 - math.floor(math.log10(se))))
    return f"{value:.{digits}f} ± {se:.{digits}f}"


OVERSHOT = 0.99   # a seed "overshoots" at a scale when more than 1% of its samples leave the mode they asked for


def _guidance_claims(m: dict) -> list[Claim]:
    g, rows = m["guidance"], m["rows"]
    claims = [
        Claim(f"w = 0 ignores the class: {g['0']['asked']:.0%} of the samples land in the mode asked for (1 in 8 "
              f"by chance among those on a mode); w = 1 asks the conditional model: {g['1']['asked']:.0%}",
              g["0"]["asked"] < 0.3 and g["1"]["asked"] > 0.9),
        Claim(f"above 1, guidance narrows each class about its centre: the spread of a class's samples (in the "
              f"modes' own noise standard deviations; the data's is 1) is {_scales(g, 'spread')}",
              g["8"]["spread"] < g["3"]["spread"] < g["1"]["spread"]),
        Claim(f"the unconditional half is the weak one: trained on the 1 point in 10 whose label was dropped, w = 0 "
              f"puts {g['0']['on_mode']:.0%} of its samples on a mode, against {g['1']['on_mode']:.0%} at w = 1",
              g["0"]["on_mode"] < g["1"]["on_mode"]),
        Claim(f"typical, not representative: at w = 3 and 8 the samples' true log-likelihood, "
              f"{_fmt(rows['w = 3']['sample_true_loglik'])} and {_fmt(rows['w = 8']['sample_true_loglik'])} nats, is "
              f"above the data's own {_fmt(m['data_true_loglik'])} (at w = 1: "
              f"{_fmt(rows['w = 1']['sample_true_loglik'])}): samples crowd the modes' centres, where the density is "
              f"highest, which fresh data does not", min(rows["w = 3"]["sample_true_loglik"],
                                                       rows["w = 8"]["sample_true_loglik"]) > m["data_true_loglik"]),
    ]
    study = read_guidance_study()
    if study is None:
        return claims + [Claim("across seeds: not measured yet (python -m engines.toy.guidance_study)", False)]
    return claims + _guidance_study_claims(study)


def _guidance_study_claims(study: dict) -> list[Claim]:
    sm, n = study["summary"], len(study["seeds"])
    pm = lambda w, key: _with_se(sm[w][key], sm[w][key + "_se"])   # noqa: E731
    lower = lambda a, b, key: sm[b][key] - sm[a][key] > 2 * math.hypot(sm[a][key + "_se"], sm[b][key + "_se"])  # noqa: E731
    at_8 = [run["conditional_diffusion"]["8"] for run in study["runs"].values()]
    over = [r for r in at_8 if r["asked"] < OVERSHOT]
    rest = [r["spread"] for r in at_8 if r["asked"] >= OVERSHOT]
    thrown = ", ".join(f"{1 - r['asked']:.0%}" for r in over)
    offsets = ", ".join(f"{r['outward']:.0f}" for r in over)
    return [
        Claim(f"across {n} seeds (`{study['command']}`): asked class {pm('0', 'asked')} at w = 0, "
              f"{pm('1', 'asked')} at w = 1; on a mode at all {pm('0', 'on_mode')} at w = 0",
              lower("0", "1", "asked") and lower("0", "1", "on_mode")),
        Claim(f"spread {pm('1', 'spread')} at w = 1, {pm('3', 'spread')} at w = 3: lower beyond 2 SE (the variety "
              f"guidance buys its typical samples with). They narrow more than they move: at w = 3 their mean "
              f"offset past the mode's centre is {pm('3', 'outward')} noise standard deviations",
              lower("3", "1", "spread") and abs(sm["3"]["outward"]) < 0.5),
        Claim(f"at w = 8 runs part ways: {rate_text(len(over), n)} seeds overshoot, "
              + (f"throwing {thrown} of their samples far past the mode asked for (mean offsets {offsets} noise "
                 f"standard deviations; a likely cause, not measured here: the class direction eps(y) - eps(none), "
                 f"amplified 8 times, is large where the weak unconditional half is wrong); " if over else "")
              + (f"the other {len(rest)} narrow further (spread {min(rest):.2f} to {max(rest):.2f}). " if rest else "")
              + "Whether a run overshoots is a property of the run: a spread over seeds, not one number",
              bool(over) and bool(rest)),
    ]


def _guidance_numbers(playground: Playground) -> dict:
    return guidance_scored(playground.trainers["conditional_diffusion"], playground.seed)


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
           "-log 4 + 2 JSD; the black points on the loss plot are D*'s loss, log 4 - 2 JSD, rising as the JSD "
           "falls. Which divergence a generator step against D* goes down depends on its loss: the minimax "
           "log(1 - D(G(z))) goes down the Jensen-Shannon divergence (Goodfellow et al. 2014, Thm 1); the "
           "non-saturating -log D(G(z)) the lab trains with goes down KL(p_g || p_data) - 2 JSD (Arjovsky & "
           "Bottou 2017, Thm 2.5). A minimax twin trains beside the GAN shown, and the table below gives the JSD "
           "and KL(p_g || p_data) of both at every checkpoint. The learned D's loss stays above D*'s, near log 4 "
           "(D about 1/2): trained a step at a time, it never becomes D*.",
           "moons", {"gan": 2500}, {"gan": 1e-3}, {"GAN": ("gan", {})}, _gan_divergence_claims,
           generator_losses=("non-saturating", "minimax"),
           notes=f"p_g has no formula: it is a kernel density estimate from {KDE_SAMPLES:,} generator samples, the "
                 f"JSD an average over {EVAL_SAMPLES:,} fresh points of each side, and KL(p_g || p_data) the "
                 f"average of log p_g - log p_data over the {EVAL_SAMPLES:,} fresh generator points; both are lower "
                 f"bounds in expectation, the KL short by KL(p_g || the KDE) (engines/toy/divergence.py)."),
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
    Lesson("straight_paths", "Straight paths need fewer steps: diffusion, flow matching and reflow",
           "Look at the sampling paths on the right of each strip: diffusion's DDIM and flow matching's Euler bend "
           "on the way from noise to the ring, reflow's run straight. A straight path is one an Euler step follows "
           "exactly, so reflow samples in one step what the others need several for; the table below scores each "
           "at 1, 2, 4 and 8 steps (modes covered, share on a mode, energy distance to fresh true points: 0 for "
           "the truth itself).",
           PATH_SETTINGS["distribution"], {"diffusion": PATH_SETTINGS["train_steps"],
                                           "flow": PATH_SETTINGS["train_steps"]},
           {"diffusion": PATH_SETTINGS["lr"], "flow": PATH_SETTINGS["lr"]},
           {f"{name}, {k} step{'s' * (k > 1)}": (name, {"steps": k, **PATH_SAMPLERS[name]})
            for k in STUDY_STEPS for name in ("diffusion", "flow", "reflow")},
           _straight_paths_claims, every=500, derived={"reflow": PATH_SETTINGS["reflow_steps"]}, then=_reflow_then,
           notes=f"Reflow (Liu et al. 2022): the flow's own {PATH_SETTINGS['couplings']:,} (noise, "
                 f"{PATH_SETTINGS['coupling_steps']}-step Euler sample) pairs, trained on as straight lines from the "
                 "flow's weights; the image version is the lab's `reflow` engine. The across-seed numbers come from "
                 "the committed study `python -m engines.toy.path_study` (docs/straight_paths.json), which trains "
                 "exactly as this lesson does (its seed 0 is this run)."),
    Lesson("guidance", "Ask for a class: classifier-free guidance, w = 0, 1, 3 and 8",
           "Each mode of the ring is a class. One network learned them all, and learned to do without the class "
           "(the label dropped for 1 point in 10); on the right it samples the same noise, each class in turn "
           "(the colours), at four guidance scales w. At 0 it ignores the class, at 1 it draws each class as the "
           "data has it, above 1 it mixes in more of the class's direction: each class drawn tighter about its "
           "centre, less varied.",
           "ring8", {"conditional_diffusion": GUIDANCE_SETTINGS["train_steps"]},
           {"conditional_diffusion": GUIDANCE_SETTINGS["lr"]},
           {f"w = {w:g}": ("conditional_diffusion", {"guidance": w}) for w in GUIDANCE_SCALES},
           _guidance_claims, every=500, measure_more={"guidance": _guidance_numbers},
           notes="Ho & Salimans 2022; the image version is the lab's conditional diffusion model (`labels=`, "
                 "`guidance=`), with the same guided mix (engines/sampling/guidance.py). The across-seed numbers "
                 "come from the committed study `python -m engines.toy.guidance_study` (docs/guidance.json), which "
                 "trains exactly as this lesson does (its seed 0 is this run)."),
]}


def get_lesson(key: str) -> Lesson:
    if key not in LESSONS:
        raise EngineError(f"unknown lesson {key!r}: choose one of {', '.join(LESSONS)}")
    return LESSONS[key]


def _divergence_row(playground: Playground) -> dict:
    """One checkpoint of a GAN's divergences (its `divergence_view`, computed once per step by the playground)."""
    view = playground.gan_divergence().numbers()
    return {"step": playground.trainers["gan"].step,
            **{k: view[k] for k in ("jsd", "jsd_se", "kl", "kl_se", "kl_minus_2jsd", "kl_minus_2jsd_se", "gap",
                                    "d_confidence")}}


def _twins(lesson: Lesson, playground: Playground) -> dict[str, Playground]:
    """The lesson's playground under its first generator loss, and a GAN-only twin under each other one."""
    if not lesson.generator_losses:
        return {}
    distribution, (first, *others) = playground.distribution, lesson.generator_losses
    playground.trainers["gan"].set_generator_loss(first)
    runs = {first: playground}
    for loss in others:
        runs[loss] = Playground(distribution, ("gan",), lesson.seed, lesson.lr)
        runs[loss].trainers["gan"].set_generator_loss(loss)
    return runs


def run_lesson(key: str) -> Iterator[Snapshot | dict]:
    """Yields a Snapshot every `every` steps, then the measurements with their claims (a dict)."""
    lesson = get_lesson(key)
    playground = Playground(make_distribution(lesson.distribution), lesson.families, lesson.seed, lesson.lr)
    runs = _twins(lesson, playground)
    tracks: dict[str, list[dict]] = {loss: [] for loss in runs}
    twins = [run.train({"gan": lesson.steps["gan"]}, lesson.every) for run in list(runs.values())[1:]]
    for snapshot, *_ in zip(playground.train(lesson.steps, lesson.every), *twins):
        for loss, run in runs.items():
            tracks[loss].append(_divergence_row(run))
        yield snapshot
    if lesson.then is not None:
        yield from lesson.then(playground)
    measured = playground.measure(lesson.rows)
    measured.update({name: measure(playground) for name, measure in lesson.measure_more.items()})
    if tracks:
        measured["divergence_by_loss"] = tracks
    measured["claims"] = [{"text": c.text, "holds": c.holds} for c in lesson.claims(measured)]
    measured["lesson"] = lesson.key
    yield measured
