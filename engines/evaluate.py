"""Measure the shipped models: sample quality in the lab classifier's feature space, against real digits.

    python -m engines.evaluate [--engines vae gan diffusion] [--n 1000] [--seed 0]
                               [--diffusion-sampler ddim --diffusion-steps 100] [--out checkpoints/mnist/report.json]

For each engine: n samples (seeded), the share the classifier recognises with confidence >= 0.9, the class
histogram, Frechet distance and KID to the 1,000 real test digits, and seconds per sample. The reference row
"real (train)" scores 1,000 real training digits the same way: the best a model can hope for.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from engines.classifier import classify, load_classifier
from engines.data import load_mnist5k
from engines.engine import CHECKPOINTS, check_count, load_engine
from engines.errors import EngineError
from engines.metrics import CONFIDENT, classifier_features, frechet_distance, judge, kernel_distance

BATCH = 250


def generate(engine, n: int, seed: int, options: dict) -> tuple[torch.Tensor, float]:
    """n samples in batches (seed + batch index per batch), and the wall time they took."""
    start = time.perf_counter()
    chunks = [engine.sample(min(BATCH, n - i), seed=seed + i // BATCH, **options) for i in range(0, n, BATCH)]
    return torch.cat(chunks), time.perf_counter() - start


def score(classifier, features, reference: torch.Tensor, images: torch.Tensor) -> dict:
    kid_mean, kid_std = kernel_distance(features, reference, images)
    return {**judge(classifier, images),
            "frechet_distance": round(frechet_distance(features, reference, images), 3),
            "kid": round(kid_mean, 5), "kid_std": round(kid_std, 5)}


def score_samples(images: torch.Tensor) -> dict:
    """Confident share and Frechet distance of images against the test split: the checkpoint score that
    training logs (short, so it fits in a JSON line)."""
    classifier = load_classifier()
    result = judge(classifier, images)
    distance = frechet_distance(classifier_features(classifier), load_mnist5k("test").images, images)
    return {"confident_share": result["confident_share"], "frechet_distance": round(distance, 3)}


def evaluate(names: list[str], n: int, seed: int, diffusion_options: dict) -> dict:
    torch.set_grad_enabled(False)
    classifier = load_classifier()
    features = classifier_features(classifier)
    test = load_mnist5k("test")
    reference = test.images
    started = time.time()
    predicted, confidence, _ = classify(classifier, test.images)
    judge_row = {"test_accuracy": round(float((predicted == test.labels).float().mean()), 4),
                 "confident_share_on_test": round(float((confidence >= CONFIDENT).float().mean()), 4)}
    rows = {}
    train = load_mnist5k("train").images
    real = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]]
    rows["real (train)"] = score(classifier, features, reference, real)
    for name in names:
        engine = load_engine(name)
        options = diffusion_options if name == "diffusion" else {}
        images, seconds = generate(engine, n, seed, options)
        rows[name] = {**score(classifier, features, reference, images),
                      "sampler": options or None, "seconds_per_sample": round(seconds / n, 5)}
        print(f"{name}: {rows[name]}", file=sys.stderr)
    return {
        "n": n, "seed": seed, "reference": "mnist5k test split (1,000 digits)",
        "feature_net": "lab classifier (checkpoints/mnist/classifier), penultimate layer",
        "quality": rows,
        "classifier": judge_row,
        "run_time_s": round(time.time() - started, 1),
        "hardware": f"{platform.machine()}, {torch.get_num_threads()} torch threads, CPU",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", nargs="+", default=["vae", "gan", "diffusion"])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--diffusion-sampler", default="ddim")
    p.add_argument("--diffusion-steps", type=int, default=100)
    p.add_argument("--out", default=str(CHECKPOINTS / "report.json"))
    args = p.parse_args(argv)
    try:
        check_count(args.n, 10_000, "--n")
        report = evaluate(args.engines, args.n, args.seed,
                          {"sampler": args.diffusion_sampler, "steps": args.diffusion_steps})
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report["command"] = "python -m engines.evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["quality"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
