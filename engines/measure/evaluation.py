"""The evaluation run behind `python -m engines.evaluate`: the seed's comparison table measured on the shipped
models (quality, likelihood, latent space, stability, speed), every compared number with its standard error.

    python -m engines.evaluate [--engines vae gan diffusion latent_diffusion diffusion_gan] [--n 1000]
                               [--seed 0] [--threads N]
                               [--sections quality likelihood latent stability seeds speed]
                               [--out checkpoints/mnist/report.json]      # report.md is written beside it
    python -m engines.evaluate --check checkpoints/mnist/report.json     # rerun its settings, compare
    python -m engines.evaluate --dataset fashion --engines vae gan diffusion  # -> checkpoints/fashion/report.json

Sections (each measured on the dataset's fixed judging split of 1,000 test images, everything seeded; the
models, feature nets and reference are those shipped for --dataset, under checkpoints/<dataset>/):
The three families and the two hybrids (latent diffusion: VAE + diffusion; diffusion GAN: GAN + diffusion) are
measured alike where a measure applies to them; the likelihood and latent sections concern the three families.

- quality: n samples per engine (diffusion: --diffusion-sampler/--diffusion-steps; latent diffusion: its
  default, DDPM over all its steps; diffusion GAN: its own few steps) against the 1,000 test
  digits, in the features of both feature nets (`FEATURE_NETS`): Frechet distance, KID, precision/recall
  (k = 3), density/coverage (k = 5), the share recognised with confidence >= 0.9, class histogram and its
  entropy; sharpness (gradient energy relative to the test digits). "real (train)" scores n real training
  digits the same way: the reference row.
- likelihood, bits/dim, all on the same --likelihood-n test digits: VAE ELBO and IWAE (k = --iwae-k);
  diffusion variational bound (--vlb-strata stratified timesteps) and probability-flow ODE bound (RK4,
  --ode-steps, Hutchinson trace), with their cost in seconds and the ODE bound's floor; GAN: no likelihood.
- latent: path smoothness along slerp and lerp paths between --latent-pairs pairs of prior draws (diffusion:
  x_T decoded by DDIM, --latent-ddim-steps), VAE reconstruction and diffusion DDIM inversion (--inversion-steps)
  of --recon-n test digits.
- stability: summaries of each checkpoint's train_log.jsonl and quality_log.jsonl (one run per family).
- seeds: the 2-D playground's three families trained on the 8-Gaussian ring with --seed-runs seeds each
  (`engines.toy.seed_study`): how often each collapses or oscillates, the claim about a *family*; and, when the
  diffusion GAN is evaluated, the playground's diffusion GAN too (--seed-steps-hybrid steps: it learns four
  conditionals), for the Hybrids row's "as stable as diffusion" (latent diffusion has no 2-D version).
- speed: ms per sample at batch --speed-batch and network evaluations per sample; diffusion at --speed-steps
  DDIM steps (1000-step DDPM extrapolated from the per-evaluation time); the hybrids as their quality rows
  sampled.

What each section cost on the machine that made the committed report is in its report.md (section times).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from engines.checkpoint import CHECKPOINT_ROOT, checkpoints_dir
from engines.data.datasets import LAB_DATASETS, load_lab_split, to_signed
from engines.engine import check_count, make_generator
from engines.errors import EngineError
from engines.measure.hierarchy import bound_by_level
from engines.measure.latent import ddim_decoder, ddim_reconstruction, path_smoothness, reconstruction_scores
from engines.measure.likelihood import diffusion_vlb, ode_bound, vae_bits_per_dim
from engines.measure.quality import (CONFIDENT, classifier_features, generate, judge, kernel_distance,
                                     scores_in_features, sharpness_with_se)
from engines.measure.report_markdown import write_markdown
from engines.measure.reproduce import TOLERANCES, check
from engines.measure.stability import stability
from engines.measure.uncertainty import mean_and_se
from engines.measure.verdicts import FAMILIES, HYBRIDS, summarise
from engines.models.classifier import classify, feature_nets, load_classifier
from engines.models.vae import bits_per_dim
from engines.registry import load_engine
from engines.runtime import hardware
from engines.toy.seed_study import CHECK_EVERY, seed_study

SECTIONS = ("quality", "likelihood", "latent", "stability", "seeds", "speed")
ENGINE_NAMES = FAMILIES + HYBRIDS
# How each engine's quality and speed rows sample (diffusion's is chosen on the command line).
SAMPLE_OPTIONS = {"latent_diffusion": {"sampler": "ddpm", "steps": 1000}}
HYBRID_LIKELIHOOD = {
    "latent_diffusion": "not measured: its likelihood is the VAE's ELBO with the latent diffusion model as the "
                        "prior (Vahdat et al. 2021, LSGM), E_q[log p(x|z)] + E_q[log p_prior(z)] + H[q(z|x)], "
                        "with the latent model's own variational bound for log p_prior(z); the lab has not "
                        "implemented that estimator yet",
    "diffusion_gan": "none: each step's generator is implicit (x0 is a learned function of x_t and z), so the "
                     "chain assigns no tractable probability to a test digit (Xiao et al. 2022 report none either)",
}
LAB_NET = "lenet"   # the classifier that also judges latent paths and reconstructions
LATENT_METHODS = ("slerp", "lerp")


def load_feature_nets(dataset: str) -> dict:
    return {name: load_classifier(directory) for name, directory in feature_nets(dataset).items()}


def score(nets: dict, reference: torch.Tensor, images: torch.Tensor, seed: int) -> dict:
    """A set of images against the reference digits: sharpness (pixels), then in each feature net's features
    the classifier's judgement, Frechet distance, KID, precision/recall and density/coverage, with SEs."""
    sharp, sharp_se = sharpness_with_se(images, reference)
    row = {"sharpness": round(sharp, 4), "sharpness_se": round(sharp_se, 4), "nets": {}}
    for name, net in nets.items():
        _, _, reference_features = classify(net, reference)
        _, confidence, features = classify(net, images)
        kid_mean, kid_std = kernel_distance(classifier_features(net), reference, images)
        row["nets"][name] = {**judge(net, images),
                             **scores_in_features(reference_features, features, confidence, seed),
                             "kid": round(kid_mean, 5), "kid_std": round(kid_std, 5)}
    return row


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- sections


def quality_section(names: list[str], n: int, seed: int, diffusion_options: dict, nets: dict, test,
                    dataset: str) -> dict:
    train = load_lab_split(dataset, "train").images
    real = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]]
    rows = {"real (train)": score(nets, test.images, real, seed)}
    for name in names:
        options = diffusion_options if name == "diffusion" else SAMPLE_OPTIONS.get(name, {})
        images, seconds = generate(load_engine(name, dataset=dataset), n, seed, options)
        rows[name] = {**score(nets, test.images, images, seed),
                      "sampler": options or None, "seconds_per_sample": round(seconds / n, 5)}
        log(f"quality {name}: {rows[name]}")
    return rows


def test_subset(test_images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n test digits in a seeded random order (the split itself is ordered by class)."""
    return test_images[torch.randperm(len(test_images), generator=torch.Generator().manual_seed(seed))[:n]]


def likelihood_section(names: list[str], test_images: torch.Tensor, seed: int, settings: dict,
                       dataset: str) -> dict:
    """Every family's bits/dim on the same test digits, each ± its standard error over the digits, and the
    diffusion-minus-VAE differences per digit (paired, so the digits' own spread cancels)."""
    dims = test_images[0].numel()
    digits = test_subset(test_images, settings["likelihood_n"], seed)
    out = {"unit": f"bits/dim of the 8-bit test digits ({dims} dims); lower is better", "n": len(digits)}
    per_image = {}
    if "vae" in names:
        result = vae_bits_per_dim(load_engine("vae", dataset=dataset), digits, k=settings["iwae_k"], seed=seed)
        per_image["vae"] = result.pop("per_image_bpd")["iwae"]
        out["vae"] = _rounded(result)
        log(f"likelihood vae: {out['vae']}")
    if "gan" in names:
        out["gan"] = {"bpd": None, "note": "no explicit likelihood: the generator is an implicit model (a "
                                           "deterministic map of z, its images lie on a 64-d surface in 784-d "
                                           "pixel space), so it assigns no probability to a test digit"}
    if "diffusion" in names:
        out["diffusion"], per_image["diffusion"] = diffusion_likelihood(digits, seed, settings, dataset)
        log(f"likelihood diffusion: {out['diffusion']}")
    for name in (n for n in HYBRIDS if n in names):
        out[name] = {"bpd": None, "note": HYBRID_LIKELIHOOD[name]}
    if "vae" in per_image and "diffusion" in per_image:
        out["diffusion_minus_vae_bpd"] = {}
        for bound, values in per_image["diffusion"].items():
            mean, se = mean_and_se(values - per_image["vae"])
            out["diffusion_minus_vae_bpd"][bound] = {"mean": round(mean, 4), "se": round(se, 4)}
    return out


def diffusion_likelihood(digits: torch.Tensor, seed: int, settings: dict, dataset: str) -> tuple[dict, dict]:
    """The variational bound and the probability-flow ODE bound of the shipped diffusion model on `digits`
    (8-bit, in [0, 1]), in bits/dim, with their costs; and each digit's bits/dim per bound."""
    engine = load_engine("diffusion", dataset=dataset)
    x0 = to_signed(digits)
    dims = x0[0].numel()

    def bpd(nats):
        return bits_per_dim(-nats, dims)
    started = time.perf_counter()
    vlb = diffusion_vlb(engine.model, engine.schedule, x0, strata=settings["vlb_strata"], seed=seed)
    vlb_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ode = ode_bound(engine.model, engine.schedule, x0, steps=settings["ode_steps"], seed=seed)
    ode_seconds = time.perf_counter() - started
    vlb_bpd, ode_bpd = bpd(vlb["nll_nats"]["fixed_small"]), bpd(ode["nll_nats"])
    summary = {
        "n": len(digits),
        "vlb_bpd": {v: round(float(bpd(t).mean()), 4) for v, t in vlb["nll_nats"].items()},
        "vlb_bpd_se": round(mean_and_se(vlb_bpd)[1], 4),
        "vlb_terms_bpd": {v: {k: round(float(bpd(t).mean()), 4) for k, t in parts.items()}
                          for v, parts in vlb["terms_nats"].items()},
        "vlb_strata": vlb["strata"], "vlb_nfe_per_image": vlb["strata"] + 1, "vlb_seconds": round(vlb_seconds, 1),
        "vlb_by_level": _rounded(bound_by_level(vlb, dims)),
        "ode_bpd": round(float(ode_bpd.mean()), 4), "ode_bpd_se": round(mean_and_se(ode_bpd)[1], 4),
        "ode_floor_bpd": round(float(bpd(ode["floor_nats"]).mean()), 4),
        "ode_terms_bpd": {k: round(float(bpd(t).mean()), 4) for k, t in ode["terms_nats"].items()},
        "ode_steps": settings["ode_steps"], "ode_nfe_per_image": ode["nfe"],
        "ode_seconds": round(ode_seconds, 1), "ode_seconds_per_image": round(ode_seconds / len(digits), 3),
        "ode_method": "variational bound on the 8-bit likelihood with the first diffusion step as the dequantiser "
                      "(z ~ q(x at t = 0 | x), the VLB's discretised-Gaussian decoder p(x | z)); the flow's "
                      "log-density by RK4 on even integer timesteps (the network only sees timesteps it was "
                      "trained at), roughly uniform in log noise-to-signal, with a Hutchinson trace (one "
                      "Rademacher probe per image; a forward and a vector-Jacobian product per evaluation)",
    }
    return summary, {"vlb": vlb_bpd, "ode": ode_bpd}


def _rounded(result):
    """Floats rounded to 4 places, in nested dicts and lists too."""
    if isinstance(result, dict):
        return {k: _rounded(v) for k, v in result.items()}
    if isinstance(result, list):
        return [_rounded(v) for v in result]
    return round(result, 4) if isinstance(result, float) else result


def latent_section(names: list[str], test, seed: int, settings: dict, classifier, dataset: str) -> dict:
    pairs, steps = settings["latent_pairs"], settings["latent_steps"]
    out = {}
    digits = test_subset(test.images, settings["recon_n"], seed)
    for name in names:
        started = time.perf_counter()
        engine = load_engine(name, dataset=dataset)
        if name == "vae":
            decode, a, b = engine.decode, engine.latents(pairs, seed + 1), engine.latents(pairs, seed + 2)
            extra = {"latent": f"z, {engine.latent_dim}-d", "reconstruction": {
                "method": "decoder location at the posterior mean",
                **reconstruction_scores(classifier, digits, engine.reconstruct(digits))}}
        elif name == "gan":
            decode, a, b = engine.generate, engine.latents(pairs, seed + 1), engine.latents(pairs, seed + 2)
            extra = {"latent": f"z, {engine.latent_dim}-d", "reconstruction": None,
                     "note": "no encoder: a digit can only be found by optimising z (not measured)"}
        else:
            shape = (pairs, engine.config.image_channels, engine.config.image_size, engine.config.image_size)
            a = torch.randn(shape, generator=make_generator(seed + 1))
            b = torch.randn(shape, generator=make_generator(seed + 2))
            decode = ddim_decoder(engine.model, engine.schedule, settings["latent_ddim_steps"])
            recon = ddim_reconstruction(engine.model, engine.schedule, digits, settings["inversion_steps"])
            extra = {"latent": f"x_T, {a[0].numel()}-d, decoded by DDIM (eta 0, {settings['latent_ddim_steps']} "
                               "steps)",
                     "reconstruction": {"method": f"DDIM inversion and back, {settings['inversion_steps']} steps "
                                                  "each way", **reconstruction_scores(classifier, digits, recon)}}
        paths = {m: _rounded(path_smoothness(decode, classifier.features, a, b, steps, m, seed))
                 for m in LATENT_METHODS}
        out[name] = {**paths, **extra, "seconds": round(time.perf_counter() - started, 1)}
        log(f"latent {name}: {out[name]}")
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
    batch = settings["speed_batch"]
    rows = []
    for name in names:
        engine = load_engine(name, dataset=dataset)
        if name in HYBRIDS:   # as their quality rows sample
            options = SAMPLE_OPTIONS.get(name, {})
            seconds = time_call(lambda: engine.sample(batch, seed=seed, **options))
            nfe = engine.network_evaluations(**options)
            rows.append({"engine": name, **options, "nfe": nfe, "ms_per_sample": round(1000 * seconds / batch, 3)})
            continue
        if name != "diffusion":
            seconds = time_call(lambda: engine.sample(batch, seed=seed))
            rows.append({"engine": name, "nfe": 1, "ms_per_sample": round(1000 * seconds / batch, 3)})
            continue
        engine.sample(2, seed=seed, sampler="ddim", steps=2)  # warm-up
        per_nfe = []
        for steps in settings["speed_steps"]:
            started = time.perf_counter()
            engine.sample(batch, seed=seed, sampler="ddim", steps=steps)
            seconds = time.perf_counter() - started
            nfe = engine.network_evaluations("ddim", steps)
            per_nfe.append(seconds / nfe)
            rows.append({"engine": name, "sampler": "ddim", "steps": steps, "nfe": nfe,
                         "ms_per_sample": round(1000 * seconds / batch, 3)})
        nfe = engine.network_evaluations("ddpm", engine.num_train_timesteps)
        rows.append({"engine": name, "sampler": "ddpm", "steps": engine.num_train_timesteps, "nfe": nfe,
                     "ms_per_sample": round(1000 * min(per_nfe) * nfe / batch, 3), "extrapolated": True})
    for row in rows:
        log(f"speed: {row}")
    return {"batch": batch, "rows": rows,
            "note": "1000-step DDPM is extrapolated: its step costs one network evaluation, like a DDIM step"}


# ---------------------------------------------------------------- the report


def feature_net_summary(net, directory: Path, test) -> dict:
    """What a feature net is and how well it reads real test digits (the reference for its quality bars)."""
    predicted, confidence, _ = classify(net, test.images)
    return {"checkpoint": str(directory.relative_to(CHECKPOINT_ROOT.parent)),
            "architecture": net.config.architecture, "features": net.num_features,
            "test_accuracy": round(float((predicted == test.labels).float().mean()), 4),
            "confident_share_on_test": round(float((confidence >= CONFIDENT).float().mean()), 4)}


def seeds_section(names: list[str], settings: dict) -> dict:
    """The 2-D seed study of the families among `names`, and of the diffusion GAN when it is among them: it
    learns four conditionals where the GAN learns one, so it trains --seed-steps-hybrid steps (measured at
    as many checkpoints as the families get) instead of --seed-steps."""
    families = tuple(n for n in names if n in FAMILIES) + (("diffusion_gan",) if "diffusion_gan" in names else ())
    steps = {f: settings["seed_steps_hybrid"] if f in HYBRIDS else settings["seed_steps"] for f in families}
    if set(steps.values()) == {settings["seed_steps"]}:   # one budget for all: the study's plain settings
        return seed_study(families=families, seeds=settings["seed_runs"], steps=settings["seed_steps"])
    checkpoints = settings["seed_steps"] // CHECK_EVERY
    return seed_study(families=families, seeds=settings["seed_runs"], steps=steps,
                      check_every={f: CHECK_EVERY if f in FAMILIES else max(1, n // checkpoints)
                                   for f, n in steps.items()})


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
            report["latent"] = latent_section([n for n in names if n in FAMILIES], test, seed, settings, classifier,
                                              dataset)
        elif section == "stability":
            report["stability"] = {name: stability(checkpoints_dir(dataset) / name) for name in names}
        elif section == "seeds":
            report["seeds"] = seeds_section(names, settings)
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
    "iwae_k": 64, "likelihood_n": 300, "vlb_strata": 50, "ode_steps": 24,
    "latent_pairs": 16, "latent_steps": 12, "latent_ddim_steps": 20, "recon_n": 100, "inversion_steps": 50,
    "speed_batch": 64, "speed_steps": [10, 20, 50, 100], "seed_runs": 20, "seed_steps": 1500,
    "seed_steps_hybrid": 3000,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m engines.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=list(LAB_DATASETS),
                   help="whose shipped models, feature nets and test images (checkpoints/<dataset>/)")
    p.add_argument("--engines", nargs="+", default=list(ENGINE_NAMES), choices=ENGINE_NAMES)
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
    p.add_argument("--speed-batch", type=int, default=d["speed_batch"])
    p.add_argument("--speed-steps", nargs="+", type=int, default=d["speed_steps"])
    p.add_argument("--out", default=None, help="report.json (report.md beside it; default: "
                                               "checkpoints/<dataset>/report.json)")
    p.add_argument("--check", metavar="REPORT", default=None,
                   help="rerun the command recorded in REPORT (to --out) and compare within its tolerances")
    return p.parse_args(argv)


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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse_args(argv)
        if args.check:   # the rerun goes to --out or a temporary folder, never over a committed report
            return check(Path(args.check), Path(args.out) if args.out else None, run)
        report = run(argv)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(row["line"] for row in report["summary"]))
    return 0

