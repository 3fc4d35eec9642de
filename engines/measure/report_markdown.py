"""report.md: the measured comparison rendered for reading, with a figure of the training logs.
(The app renders report.json itself.)"""
from __future__ import annotations

from pathlib import Path

from engines.measure.reproduce import TOLERANCES
from engines.measure.verdicts import FAMILIES, NAMES, fmt, made_by

def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in r) + " |" for r in rows], ""]


def summary_lines(report: dict) -> list[str]:
    names = [n for n in FAMILIES if n in report.get("engines", FAMILIES)]
    lines = ["# The generative lab: the comparison table, measured", "",
             f"Command: `{report.get('command', '')}` · seed {report['seed']} · {report['run_time_s']:.0f} s on "
             f"{report['hardware']}", "",
             "Section times (s): " + ", ".join(f"{k} {v}" for k, v in report.get("section_seconds", {}).items()), "",
             "## Summary", ""]
    lines += _table(["", "folklore", *[NAMES[n] for n in names], "verdict"],
                    [[r["row"], r["folklore"], *[r["cells"].get(n, "-") for n in names], r["verdict"]]
                     for r in report["summary"]])
    lines += [f"- {r['line']}" for r in report["summary"]] + [""]
    return lines


def quality_lines(report: dict) -> list[str]:
    lines = []
    lines += ["## Sample quality", "", f"{report['n']} samples per row against {report['reference']}, in the "
              f"features of the {report['feature_net']}. Sharpness: mean squared pixel gradient relative to "
              "the test digits (1 = as sharp as real digits). Precision/recall: k-NN manifolds, k = 3 "
              "(Kynkaanniemi et al. 2019). KID is in the raw feature units (large numbers; the real row's "
              "estimate is ~0 within its std).", ""]
    lines += _table(["rows", "FD", "KID", "precision", "recall", "recognisable", "mean conf.", "class entropy",
                     "sharpness", "s/sample"],
                    [[k + made_by(v), fmt(v["frechet_distance"], 2), f"{v['kid']:.0f} ± {v['kid_std']:.0f}",
                      v.get("precision"), v.get("recall"), f"{v['confident_share']:.1%}", v["mean_confidence"],
                      v["class_entropy"], v.get("sharpness"), v.get("seconds_per_sample", "-")]
                     for k, v in report["quality"].items()])
    return lines


def likelihood_lines(report: dict) -> list[str]:
    lines = []
    lk = report["likelihood"]
    lines += ["## Likelihood", "", f"Unit: {lk['unit']}.", ""]
    if "vae" in lk:
        v = lk["vae"]
        lines += [f"- VAE, all {v['n']} test digits: ELBO {v['elbo_bpd']:.4f}, IWAE (k = {v['iwae_k']}) "
                  f"{v['iwae_bpd']:.4f} bits/dim ({v['seconds']:.0f} s); on the diffusion subset: ELBO "
                  f"{v['subset']['elbo_bpd']:.4f}, IWAE {v['subset']['iwae_bpd']:.4f}."]
    if "gan" in lk:
        lines += [f"- GAN: {lk['gan']['note']}."]
    if "diffusion" in lk:
        d = lk["diffusion"]
        terms = d["vlb_terms_bpd"]["fixed_small"]
        lines += [f"- Diffusion, {d['n']} test digits: variational bound {d['vlb_bpd']['fixed_small']:.4f} ± "
                  f"{d['vlb_bpd_stderr']:.4f} bits/dim with sigma_t^2 = beta-tilde_t (fixed_small), "
                  f"{d['vlb_bpd']['fixed_large']:.4f} with beta_t (fixed_large); parts (fixed_small): prior "
                  f"{terms['prior']:.4f}, KL terms {terms['diffusion']:.4f}, decoder {terms['decoder']:.4f}. "
                  f"The sum over the T-1 KL terms is estimated from {d['vlb_strata']} geometrically spaced "
                  f"strata (one random t each, unbiased); {d['vlb_seconds']:.0f} s.",
                  f"- Diffusion, probability-flow ODE: {d['ode_bpd']:.4f} ± {d['ode_bpd_stderr']:.4f} bits/dim, "
                  f"{d['ode_nfe_per_image']} network evaluations (each with a vector-Jacobian product) per digit, "
                  f"{d['ode_seconds']:.0f} s = {d['ode_seconds_per_image']:.2f} s per digit. {d['ode_method']}."]
    lines += [""]
    return lines


def latent_lines(report: dict) -> list[str]:
    lines = []
    lines += ["## Latent space", "", "Paths between pairs of prior draws, decoded and embedded in the "
              "classifier's features. Step CV: std/mean of the feature-space step lengths (0 = even); max "
              "step share: the largest step's share of the path (1/(steps-1) = even); length ratio: path "
              "length over the straight distance; PPL: perceptual path length in classifier features.", ""]
    rows = []
    for name, v in report["latent"].items():
        for m in ("slerp", "lerp"):
            p = v[m]
            rows.append([NAMES[name], m, v["latent"], p["step_cv"], p["max_step_share"],
                         p["path_length_ratio"], f"{p['ppl']:.4g}"])
    lines += _table(["family", "path", "latent", "step CV", "max step share", "length ratio", "PPL"], rows)
    for name, v in report["latent"].items():
        r = v.get("reconstruction")
        lines += [f"- {NAMES[name]}: " + (f"{r['method']}: MSE {r['mse']:.4f}, same class {r['same_class']:.1%} "
                                          f"({r['n']} test digits)" if r else v.get("note", "no encoder"))]
    lines += [""]
    return lines


def stability_lines(report: dict, figure: Path | None) -> list[str]:
    lines = []
    lines += ["## Training stability", "", "From each checkpoint's train_log.jsonl (and quality_log.jsonl, "
              "written by `engines.train --eval-every`)." + (f" Figure: `{figure.name}`." if figure else ""), ""]
    rows = []
    for name, s in report["stability"].items():
        for loss, c in s["losses"].items():
            rows.append([NAMES[name], loss, c["start"], c["end"], c["min"], c["last_quarter_mean"],
                         c["last_quarter_cv"], c["last_quarter_roughness"]])
    lines += _table(["family", "loss", "start", "end", "min", "last-quarter mean", "CV", "roughness"], rows)
    for name, s in report["stability"].items():
        q = s.get("quality")
        if q:
            fds = ", ".join(f"{c['step']}: {c['frechet_distance']:.1f}" for c in q["checkpoints"])
            lines += [f"- {NAMES[name]} Frechet distance per checkpoint ({q['samples_per_checkpoint']} "
                      f"samples): {fds}. Best at step {q['best_step']}; final/best {q['final_over_best']}; "
                      f"worse by >10% at {q['times_worse']} of {q['transitions']} checkpoints; second-half CV "
                      f"{q['second_half_cv']}."]
        else:
            lines += [f"- {NAMES[name]}: no quality_log.jsonl (train with --eval-every to record it)."]
    lines += [""]
    return lines


def speed_lines(report: dict) -> list[str]:
    lines = []
    sp = report["speed"]
    lines += ["## Speed", "", f"Batch of {sp['batch']}, median wall time. {sp['note']}.", ""]
    lines += _table(["family", "sampler", "steps", "NFE/sample", "ms/sample"],
                    [[NAMES[r["engine"]], r.get("sampler", "-"), r.get("steps", "-"), r["nfe"],
                      f"{r['ms_per_sample']:.2f}" + (" (extrapolated)" if r.get("extrapolated") else "")]
                     for r in sp["rows"]])
    lines += ["Steps against quality for every sampler (ours and the diffusers schedulers): the diffusion "
              "model card (`checkpoints/mnist/diffusion/README.md`), measured by "
              "`python -m engines.sampler_benchmark`.", ""]
    return lines


def reproducing_lines(report: dict) -> list[str]:
    lines = []
    lines += ["## Reproducing", "", "`python -m engines.evaluate --check checkpoints/mnist/report.json` reruns the "
              "command above and compares every number within these tolerances (timings are not compared; a number "
              "no rule names must match exactly):", ""]
    lines += [f"- `{pattern}`: {rule if isinstance(rule, str) else ', '.join(f'{k} {v}' for k, v in rule.items())}"
              for pattern, rule in report.get("tolerances", TOLERANCES)]
    return lines


SECTION_LINES = {"quality": quality_lines, "likelihood": likelihood_lines, "latent": latent_lines}


def write_markdown(report: dict, path: Path) -> None:
    path = Path(path)
    figure = write_figure(report, path.with_name(path.stem + "_training.png"))
    lines = summary_lines(report)
    for section in ("quality", "likelihood", "latent"):
        if section in report:
            lines += SECTION_LINES[section](report)
    if "stability" in report:
        lines += stability_lines(report, figure)
    if "speed" in report:
        lines += speed_lines(report)
    lines += reproducing_lines(report)
    path.write_text("\n".join(lines) + "\n")


def write_figure(report: dict, path: Path) -> Path | None:
    """Loss curves and checkpoint Frechet distances, one column per family (None without matplotlib)."""
    stability = report.get("stability")
    if not stability:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [n for n in FAMILIES if n in stability]
    fig, axes = plt.subplots(2, len(names), figsize=(4 * len(names), 6), squeeze=False)
    for col, name in enumerate(names):
        s = stability[name]
        for loss, c in s["losses"].items():
            if loss in ("loss", "d_loss", "g_loss", "reconstruction", "kl"):
                axes[0, col].plot(c["curve"]["step"], c["curve"]["value"], label=loss)
        axes[0, col].set_title(f"{NAMES[name]}: training losses")
        axes[0, col].legend(fontsize=7)
        if name == "vae":
            axes[0, col].set_yscale("log")
        q = s.get("quality")
        if q:
            axes[1, col].plot([c["step"] for c in q["checkpoints"]],
                              [c["frechet_distance"] for c in q["checkpoints"]], marker="o")
        else:
            axes[1, col].text(0.5, 0.5, "no quality_log.jsonl", ha="center", va="center")
        axes[1, col].set_title(f"{NAMES[name]}: FD per checkpoint")
        axes[1, col].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
