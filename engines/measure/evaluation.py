"""The evaluation run behind `python -m engines.evaluate`: the seed's comparison table measured on the shipped
models (quality, likelihood, latent space, stability, speed), every compared number with its standard error.

    python -m engines.evaluate [--engines vae gan diffusion flow latent_diffusion diffusion_gan] [--n 1000]
                               [--seed 0] [--threads N]
                               [--sections quality likelihood latent stability seeds speed]
                               [--out checkpoints/mnist/report.json]      # report.md is written beside it
    python -m engines.evaluate --check checkpoints/mnist/report.json     # rerun its settings, compare
    python -m engines.evaluate --dataset fashion --engines vae gan diffusion  # -> checkpoints/fashion/report.json
    python -m engines.evaluate --summarise checkpoints/mnist/report.json  # derived parts only, measures nothing
    python -m engines.evaluate --into checkpoints/mnist/report.json --sections seeds  # re-measure one section
    python -m engines.evaluate --into checkpoints/mnist/report.json --sections quality --engines flow  # add one

--summarise recomputes what is derived from a report's measured numbers, the "summary" key (the verdicts) and
report.md beside it (with its figure), from report.json alone; no measured number changes. A non-MNIST report
sets its verdicts beside the committed MNIST report's: summarise MNIST first.

--into re-measures only --sections of a report, with the settings its recorded command gives (engines, threads,
seeds...), and merges them into it: its other sections, its command and its settings stay (so --check still
reruns the whole report), the summary and report.md are rewritten, and settings["remeasured"] says which
sections were measured again, by which command, on what hardware. With --engines, only those families are
measured and merged into the sections (the others' numbers stay): how a new family joins a report.

Sections (each measured on the dataset's fixed judging split of 1,000 test images, everything seeded; the
models, feature nets and reference are those shipped for --dataset, under checkpoints/<dataset>/):
The families (the seed's three and flow matching) and the two hybrids (latent diffusion: VAE + diffusion;
diffusion GAN: GAN + diffusion) are measured alike where a measure applies to them: every section loops over the
registry (`engines.registry`), and a family's record (`Family`) says how it samples, whether its engine measures a
likelihood or a latent space (the engine's `likelihood` and `latent_space`), and why not.

- quality: n samples per engine (diffusion: --diffusion-sampler/--diffusion-steps; latent diffusion: its
  default, DDPM over all its steps; diffusion GAN: its own few steps) against the 1,000 test
  digits, in the features of both feature nets (`FEATURE_NETS`): Frechet distance, KID, precision/recall
  (k = 3), density/coverage (k = 5), the share recognised with confidence >= 0.9, class histogram and its
  entropy; sharpness (gradient energy relative to the test digits); copying: how many samples are nearer to
  a training image than 95% of test images are to theirs (engines/measure/memorisation.py). "real (train)" scores
  n real training digits the same way: the reference row (copying aside: they are training images).
- likelihood, bits/dim, all on the same --likelihood-n test digits: VAE ELBO and IWAE (k = --iwae-k);
  diffusion variational bound (--vlb-strata stratified timesteps) and probability-flow ODE bound (RK4,
  --ode-steps, Hutchinson trace), with their cost in seconds and the ODE bound's floor; flow matching: the same
  ODE bound on its straight path (same dequantiser, decoder and floor); GAN: no likelihood.
- latent: path smoothness along slerp and lerp paths between --latent-pairs pairs of prior draws (diffusion:
  x_T decoded by DDIM, --latent-ddim-steps), VAE reconstruction and diffusion DDIM inversion (--inversion-steps)
  of --recon-n test digits.
- stability: summaries of each checkpoint's train_log.jsonl and quality_log.jsonl (one run per family).
- seeds: the 2-D playground's three families trained on the 8-Gaussian ring with --seed-runs seeds each
  (`engines.toy.seed_study`): how often each collapses or oscillates, the claim about a *family*; and, when the
  diffusion GAN is evaluated, the playground's diffusion GAN too (--seed-steps-hybrid steps: it learns four
  conditionals), for the Hybrids row's "as stable as diffusion" (latent diffusion has no 2-D version). Every
  family is measured alike: from the EMA of its sampling network, on the same samples at as many checkpoints;
  the raw weights' rates beside them (the verdicts say whether they would change any).
- straightness: Liu et al.'s straightness of the sampling ODE of each family whose sampler is one on a Gaussian
  path (diffusion's DDIM, flow matching's Euler), written on the straight path x = (1 - s) x0 + s eps
  (`engines.measure.straightness`), for --straightness-n paths of --straightness-steps steps from the same seeded
  noise, and the difference of each two families path by path.
- speed: ms per sample at batch --speed-batch and network evaluations per sample; diffusion at --speed-steps
  DDIM steps (1000-step DDPM extrapolated from the per-evaluation time); the hybrids as their quality rows
  sampled.

What each section cost on the machine that made the committed report is in its report.md (section times).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from functools import partial
from pathlib import Path

import torch

from engines.checkpoint import CHECKPOINT_ROOT, checkpoints_dir
from engines.data.datasets import LAB_DATASETS, load_lab_split
from engines.engine import check_count
from engines.errors import EngineError
from engines.family import Family
from engines.measure.conditional import conditional_accuracy
from engines.measure.latent import path_smoothness
from engines.measure.likelihood import rounded
from engines.measure.memorisation import copying_record
from engines.measure.quality import (
    CONFIDENT,
    generate,
    given_features,
    judge_predictions,
    kernel_distance,
    scores_in_features,
    sharpness_with_se,
)
from engines.measure.report_markdown import write_markdown
from engines.measure.reproduce import TOLERANCES, check
from engines.measure.stability import stability
from engines.measure.straightness import straightness, straightness_summary
from engines.measure.uncertainty import mean_and_se
from engines.measure.verdicts import likelihood_pairs, paired_key, summarise
from engines.models.classifier import classify, feature_nets, load_classifier
from engines.registry import families, load_engine
from engines.runtime import hardware
from engines.toy.seed_study import CHECK_EVERY, seed_study
from engines.toy.training import FAMILIES as PLAYGROUND_FAMILIES

SECTIONS = ("quality", "likelihood", "latent", "stability", "seeds", "straightness", "speed")
LAB_NET = "lenet"   # the classifier that also judges latent paths and reconstructions
LATENT_METHODS = ("slerp", "lerp")


def load_feature_nets(dataset: str) -> dict:
    return {name: load_classifier(directory) for name, directory in feature_nets(dataset).items()}


def score(nets: dict, reference: dict, images: torch.Tensor, seed: int) -> dict:
    """A set of images against the reference digits (`reference_set`): sharpness (pixels), then in each feature
    net's features the classifier's judgement, Frechet distance, KID, precision/recall and density/coverage, with
    SEs. Each image goes through each net once."""
    sharp, sharp_se = sharpness_with_se(images, reference["images"])
    row = {"sharpness": round(sharp, 4), "sharpness_se": round(sharp_se, 4), "nets": {}}
    for name, net in nets.items():
        classes, confidence, features = classify(net, images)
        reference_features = reference["features"][name]
        kid_mean, kid_std = kernel_distance(given_features(net.num_features), reference_features, features)
        row["nets"][name] = {**judge_predictions(classes, confidence, net.config.num_classes),
                             **scores_in_features(reference_features, features, confidence, seed),
                             "kid": round(kid_mean, 5), "kid_std": round(kid_std, 5)}
    return row


def reference_set(nets: dict, images: torch.Tensor) -> dict:
    """The reference digits and their features in each net, extracted once for every set scored against them."""
    return {"images": images, "features": {name: classify(net, images)[2] for name, net in nets.items()}}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- sections


def quality_section(names: list[str], n: int, seed: int, diffusion_options: dict, nets: dict, test,
                    dataset: str) -> dict:
    train = load_lab_split(dataset, "train").images
    real = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]]
    reference = reference_set(nets, test.images)
    rows = {"real (train)": score(nets, reference, real, seed)}
    for family in selected(names):
        options = sampling_options(family, diffusion_options)
        engine = load_engine(family.name, dataset=dataset)
        images, seconds = generate(engine, n, seed, options)
        rows[family.name] = {**score(nets, reference, images, seed), "copying": copying_record(images, dataset),
                             "sampler": options or None, "seconds_per_sample": round(seconds / n, 5)}
        asked = engine.asked_classes(n)
        if asked is not None:   # a conditional model: is each sample of the class asked (issue 29's accuracy)?
            rows[family.name]["conditional"] = conditional_accuracy(images, asked, dataset)
        log(f"quality {family.name}: {rows[family.name]}")
    return rows


def selected(names: list[str], measures: str | None = None) -> list[Family]:
    """The registered families among `names`, in registry order; `measures` ("likelihood", "latent"): only those
    whose record says the engine measures it."""
    return [f for f in families() if f.name in names and (measures is None or getattr(f, measures))]


def sampling_options(family: Family, diffusion_options: dict) -> dict:
    """How a family's quality and speed rows sample: the command line's diffusion sampler where it takes one,
    else its record's evaluation options."""
    return dict(diffusion_options) if family.takes_sampler else dict(family.evaluation_options)


def test_subset(test_images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n test digits in a seeded random order (the split itself is ordered by class)."""
    return test_images[torch.randperm(len(test_images), generator=torch.Generator().manual_seed(seed))[:n]]


def likelihood_section(names: list[str], test_images: torch.Tensor, seed: int, settings: dict,
                       dataset: str) -> dict:
    """Every family's bits/dim on the same test digits, each ± its standard error over the digits (or why it
    has none), and for each two families that measure it the later's bounds minus the earlier's per digit (paired,
    so the digits' own spread cancels): "diffusion_minus_vae_bpd"."""
    dims = test_images[0].numel()
    digits = test_subset(test_images, settings["likelihood_n"], seed)
    out = {"unit": f"bits/dim of the 8-bit test digits ({dims} dims); lower is better", "n": len(digits)}
    per_image = {}
    for family in selected(names):
        if not family.likelihood:
            out[family.name] = {"bpd": None, "note": family.no_likelihood}
            continue
        out[family.name], per_image[family.name] = load_engine(family.name, dataset=dataset).likelihood(
            digits, settings, seed)
        log(f"likelihood {family.name}: {out[family.name]}")
    for earlier, later in likelihood_pairs(names):
        differences = out[paired_key(later.name, earlier.name)] = {}
        for bound, values in per_image[later.name].items():
            # like for like where the earlier measures the same bound (flow's ODE bound against diffusion's),
            # else against the earlier's first (the VAE's IWAE)
            against = bound if bound in per_image[earlier.name] else next(iter(per_image[earlier.name]))
            mean, se = mean_and_se(values - per_image[earlier.name][against])
            differences[bound] = {"mean": round(mean, 4), "se": round(se, 4), "against": against}
    return out


def latent_section(names: list[str], test, seed: int, settings: dict, classifier, dataset: str) -> dict:
    """Path smoothness along slerp and lerp paths in each family's latent, and what its engine adds (its
    reconstruction of test digits, or why there is none)."""
    out = {}
    digits = test_subset(test.images, settings["recon_n"], seed)
    for family in selected(names, "latent"):
        started = time.perf_counter()
        engine = load_engine(family.name, dataset=dataset)
        decode, a, b, extra = engine.latent_space(settings["latent_pairs"], seed, digits, settings, classifier)
        paths = {m: rounded(path_smoothness(decode, classifier.features, a, b, settings["latent_steps"], m, seed))
                 for m in LATENT_METHODS}
        out[family.name] = {**paths, **extra, "seconds": round(time.perf_counter() - started, 1)}
        log(f"latent {family.name}: {out[family.name]}")
    return out


def straightness_section(names: list[str], seed: int, settings: dict, dataset: str) -> dict:
    """Straightness (per pixel and relative, ± SE over the paths) of each family whose record says its sampler is
    an ODE on a Gaussian path, all from the same seeded noise; and for each two, later minus earlier path by
    path ("flow_minus_diffusion"), so the SE leaves out what the noise draws share."""
    n, steps = settings["straightness_n"], settings["straightness_steps"]
    out = {"unit": "mean squared deviation of the velocity from the path's chord, per pixel, on the straight "
                   "path x = (1 - s) x0 + s eps (0: straight lines)", "n": n, "steps": steps}
    per_path = {}
    for family in selected(names, "straight_path"):
        engine = load_engine(family.name, dataset=dataset)
        times, states = engine.straight_path_trajectory(n, seed, steps)
        out[family.name] = straightness_summary(times, states, engine.straight_path_sampler)
        per_path[family.name] = straightness(times, states)["per_pixel"]
        log(f"straightness {family.name}: {out[family.name]}")
    measured = list(per_path)
    for i, earlier in enumerate(measured):
        for later in measured[i + 1:]:
            mean, se = mean_and_se(per_path[later] - per_path[earlier])
            out[f"{later}_minus_{earlier}"] = {"mean": round(mean, 5), "se": round(se, 5)}
    return out


def time_call(fn, min_seconds: float = 1.0, max_repeats: int = 20) -> float:
    """Median wall time of fn() after one warm-up call, repeated until min_seconds have passed."""
    fn()
    times = []
    while len(times) < max_repeats and (not times or sum(times) < min_seconds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def speed_section(names: list[str], seed: int, settings: dict, dataset: str) -> dict:
    """ms per sample and network evaluations per sample: each family as its quality row samples; a family that
    takes a sampler over DDIM at --speed-steps and 1000-step DDPM (extrapolated from the per-evaluation time: a
    DDPM step costs one evaluation, like a DDIM step); a family with its own solvers (`race_options`) at
    --speed-steps with its first."""
    batch = settings["speed_batch"]
    rows = []
    for family in selected(names):
        engine = load_engine(family.name, dataset=dataset)
        if family.takes_sampler or family.race_options:
            rows += sampler_speed_rows(family, engine, seed, settings)
            continue
        options = family.evaluation_options
        seconds = time_call(partial(engine.sample, batch, seed=seed, **options))
        rows.append({"engine": family.name, **options, "nfe": engine.network_evaluations(**options),
                     "ms_per_sample": round(1000 * seconds / batch, 3)})
    for row in rows:
        log(f"speed: {row}")
    return {"batch": batch, "rows": rows,
            "note": "1000-step DDPM is extrapolated: its step costs one network evaluation, like a DDIM step"}


def sampler_speed_rows(family: Family, engine, seed: int, settings: dict) -> list[dict]:
    """A family that takes the diffusion sampler: DDIM at each of --speed-steps, timed once each, and all-step
    DDPM extrapolated from the cheapest time per network evaluation (timing 1000 steps would cost minutes and say
    nothing more). A family with its own few-step solvers: its first speed-race line at each of --speed-steps and
    at its report row's steps (reflow's 2)."""
    batch, name = settings["speed_batch"], family.name
    options = {"sampler": "ddim"} if family.takes_sampler else dict(family.race_options[0])
    step_counts = settings["speed_steps"] if family.takes_sampler else sorted(
        {*settings["speed_steps"], family.evaluation_options.get("steps", settings["speed_steps"][0])})
    engine.sample(2, seed=seed, **options, steps=2)  # warm-up
    per_nfe, rows = [], []
    for steps in step_counts:
        started = time.perf_counter()
        engine.sample(batch, seed=seed, **options, steps=steps)
        seconds = time.perf_counter() - started
        nfe = engine.network_evaluations(**options, steps=steps)
        per_nfe.append(seconds / nfe)
        rows.append({"engine": name, **options, "steps": steps, "nfe": nfe,
                     "ms_per_sample": round(1000 * seconds / batch, 3)})
    if not family.takes_sampler:
        return rows
    nfe = engine.network_evaluations(sampler="ddpm", steps=engine.num_train_timesteps)
    rows.append({"engine": name, "sampler": "ddpm", "steps": engine.num_train_timesteps, "nfe": nfe,
                 "ms_per_sample": round(1000 * min(per_nfe) * nfe / batch, 3), "extrapolated": True})
    return rows


# ---------------------------------------------------------------- the report


def feature_net_summary(net, directory: Path, test) -> dict:
    """What a feature net is and how well it reads real test digits (the reference for its quality bars)."""
    predicted, confidence, _ = classify(net, test.images)
    return {"checkpoint": str(directory.relative_to(CHECKPOINT_ROOT.parent)),
            "architecture": net.config.architecture, "features": net.num_features,
            "test_accuracy": round(float((predicted == test.labels).float().mean()), 4),
            "confident_share_on_test": round(float((confidence >= CONFIDENT).float().mean()), 4)}


def seeds_section(names: list[str], settings: dict, measure: list[str] | None = None) -> dict:
    """The 2-D seed study of the families among `names` that the playground has a version of. A hybrid learns
    several conditionals where a family learns one (the diffusion GAN: four), so it trains --seed-steps-hybrid
    steps (measured at as many checkpoints as the families get) instead of --seed-steps. `measure`: train only
    those of them (the settings still describe all), for `merge_seed_families`."""
    studied = [f for f in selected(names) if f.name in PLAYGROUND_FAMILIES]
    steps = {f.name: settings["seed_steps_hybrid"] if f.is_hybrid else settings["seed_steps"] for f in studied}
    names = tuple(steps)
    if measure is not None:
        if not [name for name in names if name in measure]:
            raise EngineError(f"{', '.join(measure)}: no 2-D version in the playground, so no seed study to "
                              f"measure (it studies {', '.join(PLAYGROUND_FAMILIES)})")
        measure = [name for name in names if name in measure]
    if set(steps.values()) == {settings["seed_steps"]}:   # one budget for all: the study's plain settings
        return seed_study(families=names, seeds=settings["seed_runs"], steps=settings["seed_steps"],
                          measure=measure)
    checkpoints = settings["seed_steps"] // CHECK_EVERY
    return seed_study(families=names, seeds=settings["seed_runs"], steps=steps, measure=measure,
                      check_every={f.name: max(1, steps[f.name] // checkpoints) if f.is_hybrid else CHECK_EVERY
                                   for f in studied})


@torch.no_grad()  # (not set_grad_enabled(False): a caller's process must keep its own autograd state)
def evaluate(names: list[str], n: int, seed: int, diffusion_options: dict, sections=SECTIONS,
             settings: dict | None = None, dataset: str = "mnist") -> dict:
    settings = {**DEFAULT_SETTINGS, **(settings or {})}
    nets = load_feature_nets(dataset)
    classifier = nets[LAB_NET]
    test = load_lab_split(dataset, "test")
    started = time.time()
    report = {
        "n": n, "seed": seed, "reference": REFERENCES[dataset],
        **({"dataset": dataset} if dataset != "mnist" else {}),
        "feature_nets": {name: feature_net_summary(net, feature_nets(dataset)[name], test)
                         for name, net in nets.items()},
        "engines": names, "sections": list(sections), "settings": {**settings, "diffusion": diffusion_options},
        "section_seconds": {},
    }
    for section in sections:
        section_started = time.time()
        if section == "quality":
            report["quality"] = quality_section(names, n, seed, diffusion_options, nets, test, dataset)
        elif section == "likelihood":
            report["likelihood"] = likelihood_section(names, test.images, seed, settings, dataset)
        elif section == "latent":
            report["latent"] = latent_section(names, test, seed, settings, classifier, dataset)
        elif section == "stability":
            report["stability"] = {name: stability(checkpoints_dir(dataset) / name) for name in names}
        elif section == "seeds":
            report["seeds"] = seeds_section(names, settings)
        elif section == "straightness":
            report["straightness"] = straightness_section(names, seed, settings, dataset)
        elif section == "speed":
            report["speed"] = speed_section(names, seed, settings, dataset)
        report["section_seconds"][section] = round(time.time() - section_started, 1)
        log(f"{section}: {report['section_seconds'][section]} s")
    report["run_time_s"] = round(time.time() - started, 1)
    report["hardware"] = hardware()
    return report


REFERENCES = {"mnist": "mnist5k test split (1,000 digits)",
              "fashion": "Fashion-MNIST judging split (1,000 test images, 100 per class, drawn with seed 0 from "
                         "the official 10,000)"}
DEFAULT_SETTINGS = {
    "iwae_k": 1024, "likelihood_n": 300, "vlb_strata": 50, "ode_steps": 24,
    "latent_pairs": 16, "latent_steps": 12, "latent_ddim_steps": 20, "recon_n": 100, "inversion_steps": 50,
    "speed_batch": 64, "speed_steps": [10, 20, 50, 100], "seed_runs": 20, "seed_steps": 1500,
    "seed_steps_hybrid": 3000, "straightness_n": 200, "straightness_steps": 100,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m engines.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=list(LAB_DATASETS),
                   help="whose shipped models, feature nets and test images (checkpoints/<dataset>/)")
    engines = [f.name for f in families()]
    p.add_argument("--engines", nargs="+", default=engines, choices=engines)
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--n", type=int, default=1000, help="samples per engine for the quality section")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    # Ancestral DDPM, the DDPM paper's sampler: at 100 steps it costs what DDIM-100 costs, and on our model it
    # is far closer to the 1000-step samples (see the diffusion card's sampler benchmark).
    p.add_argument("--diffusion-sampler", default="ddpm")
    p.add_argument("--diffusion-steps", type=int, default=100)
    d = DEFAULT_SETTINGS
    p.add_argument("--iwae-k", type=int, default=d["iwae_k"], help="importance samples of the VAE's IWAE bound")
    p.add_argument("--likelihood-n", type=int, default=d["likelihood_n"],
                   help="test digits for the diffusion likelihoods (the costly part)")
    p.add_argument("--vlb-strata", type=int, default=d["vlb_strata"], help="timesteps per image for the VLB sum")
    p.add_argument("--ode-steps", type=int, default=d["ode_steps"], help="RK4 steps of the PF-ODE (4 NFE each)")
    p.add_argument("--latent-pairs", type=int, default=d["latent_pairs"])
    p.add_argument("--latent-steps", type=int, default=d["latent_steps"], help="points per interpolation path")
    p.add_argument("--latent-ddim-steps", type=int, default=d["latent_ddim_steps"])
    p.add_argument("--recon-n", type=int, default=d["recon_n"], help="test digits for reconstruction error")
    p.add_argument("--inversion-steps", type=int, default=d["inversion_steps"])
    p.add_argument("--seed-runs", type=int, default=d["seed_runs"],
                   help="seeds per family for the 2-D training-stability study (section seeds)")
    p.add_argument("--seed-steps", type=int, default=d["seed_steps"], help="training steps per 2-D seed run")
    p.add_argument("--seed-steps-hybrid", type=int, default=d["seed_steps_hybrid"],
                   help="training steps per 2-D seed run of the diffusion GAN (its four conditionals need more)")
    p.add_argument("--straightness-n", type=int, default=d["straightness_n"], help="paths per family (straightness)")
    p.add_argument("--straightness-steps", type=int, default=d["straightness_steps"],
                   help="Euler (DDIM) steps per path; 100 is within 2%% of 500 on the shipped MNIST models")
    p.add_argument("--speed-batch", type=int, default=d["speed_batch"])
    p.add_argument("--speed-steps", nargs="+", type=int, default=d["speed_steps"])
    p.add_argument("--out", default=None, help="report.json (report.md beside it; default: "
                                               "checkpoints/<dataset>/report.json)")
    p.add_argument("--check", metavar="REPORT", default=None,
                   help="rerun the command recorded in REPORT (to --out) and compare within its tolerances")
    p.add_argument("--summarise", metavar="REPORT", default=None,
                   help="rewrite REPORT's summary and the report.md beside it from its numbers (measures nothing)")
    p.add_argument("--into", metavar="REPORT", default=None,
                   help="re-measure only --sections with REPORT's recorded settings and merge them into REPORT "
                        "(no other option: the settings are the report's own)")
    return p.parse_args(argv)


def summarise_file(path: Path) -> dict:
    """The derived parts of a report, again from its report.json: the "summary" key and report.md; the rest of
    the file is written back as it was read, but for the tolerances, which are the code's."""
    report = json.loads(path.read_text())
    report["summary"] = summarise(report)
    report["tolerances"] = TOLERANCES   # how --check compares today (the code's rules, not the report's)
    path.write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, path.with_suffix(".md"), reports_beside(report.get("dataset", "mnist")))
    return report


def reports_beside(dataset: str) -> dict[str, dict]:
    """The committed MNIST report, which a report on another dataset sets its verdicts beside."""
    path = checkpoints_dir("mnist") / "report.json"
    return {"mnist": json.loads(path.read_text())} if dataset != "mnist" and path.is_file() else {}


def report_path(args: argparse.Namespace) -> Path:
    """--out, or the dataset's committed report."""
    return Path(args.out) if args.out else checkpoints_dir(args.dataset) / "report.json"


def settings_from(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in DEFAULT_SETTINGS}


def run(argv: list[str]) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    check_count(args.n, 10_000, "--n")
    for key in ("likelihood_n", "recon_n"):
        check_count(getattr(args, key), 1000, "--" + key.replace("_", "-"))
    report = evaluate(args.engines, args.n, args.seed,
                      {"sampler": args.diffusion_sampler, "steps": args.diffusion_steps},
                      args.sections, settings_from(args), args.dataset)
    report["command"] = "python -m engines.evaluate " + " ".join(argv)
    report["tolerances"] = TOLERANCES
    report["summary"] = summarise(report)
    out = report_path(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, out.with_suffix(".md"), reports_beside(args.dataset))
    return report


def remeasure_into(path: Path, sections: list[str], argv: list[str], engines: list[str] | None = None) -> dict:
    """Re-measure `sections` of the report at `path` as its recorded command measures them, and merge them in
    (`--into`): the other sections, the command and the settings stay, so `--check` still reruns the whole
    report; the section times and the run time follow the new measurement; summary and report.md are rewritten.
    With `engines` (`--into ... --engines NAME`), only those families are measured and their entries merged into
    the sections, the others' kept: how a family joins a report without measuring the rest again."""
    report = json.loads(path.read_text())
    recorded = parse_args(shlex.split(report["command"])[3:])   # after "python -m engines.evaluate"
    # a section the recorded command measures today but the report predates (one added to the lab since) joins it
    missing = [section for section in sections if section not in report["sections"] + recorded.sections]
    if missing:
        raise EngineError(f"{path} has no {', '.join(missing)} section to re-measure: its sections are "
                          f"{', '.join(report['sections'])}")
    for section in (s for s in sections if s not in report["sections"]):
        report[section] = {}
        report["sections"] = [s for s in SECTIONS if s in report["sections"] or s == section]
    if recorded.threads:
        torch.set_num_threads(recorded.threads)
    by_family = engines and "seeds" in sections   # the seed study trains only these, beside the others' runs
    fresh = evaluate(engines or recorded.engines, recorded.n, recorded.seed,
                     {"sampler": recorded.diffusion_sampler, "steps": recorded.diffusion_steps},
                     [s for s in sections if not (by_family and s == "seeds")], settings_from(recorded),
                     recorded.dataset)
    if by_family:
        started = time.time()
        studied = [f.name for f in families() if f.name in {*report["engines"], *engines}]
        fresh["seeds"] = merge_seed_families(report["seeds"], seeds_section(studied, settings_from(recorded),
                                                                            measure=engines))
        fresh["section_seconds"]["seeds"] = round(time.time() - started, 1)
    report["feature_nets"] = fresh["feature_nets"]   # measured by every run: the nets (and gates) used now
    # The settings --check reruns with (the recorded command's, defaults included), as this run measured them.
    report["settings"] = {**report["settings"], **fresh.get("settings", {}),
                          "remeasured": report["settings"].get("remeasured", {})}
    if engines:
        report["engines"] = [f.name for f in families() if f.name in {*report["engines"], *engines}]
        report["command"] = with_engines(report["command"], report["engines"])
    for section in sections:
        merged = engines and section != "seeds"   # (the seed study merged its families above)
        report[section] = merge_engines(report[section], fresh[section], engines) if merged else fresh[section]
        seconds = fresh["section_seconds"][section]
        if not engines:   # a section measured whole: its time is this run's (a merged one keeps the old time)
            report["run_time_s"] = round(report["run_time_s"] - report["section_seconds"].get(section, 0)
                                         + seconds, 1)
            report["section_seconds"][section] = seconds
        which = f"{section} ({', '.join(engines)})" if engines else section
        report["settings"].setdefault("remeasured", {})[which] = {
            "command": "python -m engines.evaluate " + " ".join(argv), "hardware": fresh["hardware"]}
    report["summary"] = summarise(report)
    report["tolerances"] = TOLERANCES
    path.write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, path.with_suffix(".md"), reports_beside(report.get("dataset", "mnist")))
    return report


def merge_seed_families(kept: dict, fresh: dict) -> dict:
    """A seed study that trained only some of its families (`seeds_section(..., measure=)`), completed with the
    other families' records from the report's study. Sound because a family's runs depend on its own settings
    only (its steps, checkpoints and rate, and the study's common settings): refused where those differ."""
    common = {k for k in fresh["settings"] if k not in ("families", "steps", "check_every", "checkpoints", "lr")}

    def own(settings: dict, family: str) -> tuple:
        return tuple(v[family] if isinstance(v, dict) else v for v in (settings[k] for k in ("steps", "check_every")))\
            + (settings["lr"][family],)
    for family in (f for f in fresh["settings"]["families"] if f not in fresh["families"]):
        if family not in kept.get("families", {}):
            raise EngineError(f"the report's seed study has no {family}: re-measure it without --engines")
        if {k: kept["settings"].get(k) for k in common} != {k: fresh["settings"][k] for k in common} \
                or own(kept["settings"], family) != own(fresh["settings"], family):
            raise EngineError(f"the report's seed study measured {family} under other settings: re-measure it "
                              f"without --engines")
    return {**fresh, "families": {f: fresh["families"].get(f) or kept["families"][f]
                                  for f in fresh["settings"]["families"]}}


def with_engines(command: str, engines: list[str]) -> str:
    """The recorded command with its --engines list made `engines` (a family that joined the report by --into),
    so that --check reruns it too; a command without --engines (every family) stays as it is."""
    argv = shlex.split(command)
    if "--engines" not in argv:
        return command
    start = argv.index("--engines") + 1
    end = next((i for i in range(start, len(argv)) if argv[i].startswith("--")), len(argv))
    return shlex.join(argv[:start] + list(engines) + argv[end:])


def merge_engines(kept: dict, fresh: dict, engines: list[str]) -> dict:
    """One section of a report with the `engines`' entries replaced by `fresh` ones: a dict section by its
    family keys and the per-digit differences that involve them (other keys, such as the unit or a difference
    between two kept families, stay), the speed
    section by its rows (each family's rows in registry order, its own in the order measured)."""
    if not kept:   # a section the report did not have: all of it is new
        return fresh
    if "rows" in kept:
        order = [f.name for f in families()]
        rows = [r for r in kept["rows"] if r["engine"] not in engines] + fresh["rows"]
        return {**kept, "rows": sorted(rows, key=lambda r: order.index(r["engine"]))}
    order, keys = [f.name for f in families()], list(kept)
    for name in (n for n in engines if n in fresh and n not in kept):   # a new family: after those it follows
        before = [k for k in keys if k in order and order.index(k) < order.index(name)]
        at = keys.index(before[-1]) + 1 if before else next((i for i, k in enumerate(keys) if k in order), len(keys))
        keys.insert(at, name)
    # the differences between two families (per digit, per path) where one of them was measured again
    names = [f.name for f in families()]
    paired = {key for a in names for b in names if a != b and engines and (a in engines or b in engines)
              for key in (paired_key(a, b), f"{a}_minus_{b}")}
    keys += [k for k in fresh if k in paired and k not in keys]
    renewed = set(engines) | paired
    return {key: fresh[key] if key in renewed and key in fresh else kept[key] for key in keys}


def into_argv_problem(argv: list[str]) -> str:
    """--into takes --sections (and --engines, to measure only those families) and nothing else: any other setting
    would measure the sections otherwise than the report's recorded command does. "" when the arguments are
    fine."""
    options = [a.split("=")[0] for a in argv if a.startswith("--")]
    others = [a for a in options if a not in ("--into", "--sections", "--engines")]
    if others:
        return (f"--into re-measures with the report's own settings: pass only --sections (and --engines), not "
                f"{' '.join(others)}")
    return "" if "--sections" in options else "--into needs --sections: the sections to re-measure"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse_args(argv)
        if args.check:   # the rerun goes to --out or a temporary folder, never over a committed report
            return check(Path(args.check), Path(args.out) if args.out else None, run)
        if args.into:
            if into_argv_problem(argv):
                raise EngineError(into_argv_problem(argv))
            engines = args.engines if "--engines" in argv else None
            report = remeasure_into(Path(args.into), args.sections, argv, engines)
        else:
            report = summarise_file(Path(args.summarise)) if args.summarise else run(argv)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(row["line"] for row in report["summary"]))
    return 0

