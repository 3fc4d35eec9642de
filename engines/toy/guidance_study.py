"""What the guidance scale does, across seeds: the toy conditional diffusion model (`engines.toy.guidance`) on the
ring of 8 Gaussians, each mode a class, sampled at w = 0, 1, 3 and 8.

    python -m engines.toy.guidance_study [--seeds 0 1 2 3 4 5 6 7 8 9]      # writes docs/guidance.json

Per seed the model trains as the playground's guidance lesson trains it (`SETTINGS`; its seed 0 is the lesson's
run), then samples `SAMPLES` points, the classes in turn, from the same noise at each scale; each set is scored by
`guidance.guidance_numbers` (share in the asked mode, share on any mode, offset past the mode, spread). The
summary gives each number's mean and standard error over the seeds (`path_study.summary`); the lesson reads it.
"""
from __future__ import annotations

import time
from pathlib import Path

from engines.engine import class_labels, make_generator
from engines.runtime import hardware
from engines.toy import study_command
from engines.toy.distributions import make_distribution
from engines.toy.guidance import GUIDANCE_SCALES, LABEL_DROPOUT, SAMPLING_STEPS, guidance_numbers
from engines.toy.path_study import summary
from engines.toy.training import make_trainer

OUT = Path(__file__).resolve().parents[2] / "docs" / "guidance.json"
SAMPLES = 2000
SETTINGS = {"distribution": "ring8", "train_steps": 3000, "lr": 2e-3, "weights": "ema",
            "label_dropout": LABEL_DROPOUT, "sampler": f"ddpm, {SAMPLING_STEPS} trailing steps"}
FAMILY = "conditional_diffusion"


def scale_key(w: float) -> str:
    return f"{w:g}"


def scored(trainer, seed: int, n: int = SAMPLES) -> dict[str, dict]:
    """{w: guidance_numbers} of a trained toy conditional model's EMA weights, the same noise at every w."""
    model = trainer.sampling_model(SETTINGS["weights"])
    labels = class_labels(n, None, model.classes)
    out = {}
    for w in GUIDANCE_SCALES:
        x = model.sample(n, make_generator(seed + 2), guidance=w, labels=labels)
        out[scale_key(w)] = {k: round(v, 5) for k, v in guidance_numbers(x, labels, trainer.distribution).items()}
    return out


def one_seed(seed: int, settings: dict = SETTINGS) -> dict:
    trainer = make_trainer(FAMILY, make_distribution(settings["distribution"]), seed, settings["lr"])
    trainer.train(settings["train_steps"])
    return {FAMILY: scored(trainer, seed)}


def study(seeds, settings: dict = SETTINGS, log=print) -> dict:
    began = time.time()
    runs = {}
    for seed in seeds:
        runs[str(seed)] = one_seed(seed, settings)
        log(f"guidance study: seed {seed} done ({time.time() - began:.0f} s)")
    return {"settings": settings, "scales": list(GUIDANCE_SCALES), "samples": SAMPLES, "seeds": list(seeds),
            "runs": runs, "summary": summary(runs)[FAMILY], "seconds": round(time.time() - began, 1),
            "hardware": hardware(), "command": "python -m engines.toy.guidance_study --seeds "
                                               + " ".join(map(str, seeds))}


def read_study(path: Path = OUT) -> dict | None:
    return study_command.read_json(path)


def main(argv: list[str] | None = None) -> int:
    return study_command.main("python -m engines.toy.guidance_study", __doc__, study, OUT, list(range(10)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
