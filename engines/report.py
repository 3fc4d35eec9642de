"""The seed's comparison table, measured: verdicts per row, report.md, tolerances and the reproduction check.

`summarise(report)` turns the measured sections of report.json into the classic table's six rows (objective,
training stability, sample quality, likelihood, latent space, speed), each with one cell per family and a
one-line verdict that says whether the numbers agree with the folklore. `write_markdown` renders the whole
report (and a figure of the training logs) for reading; the app renders report.json itself.
`compare_reports` checks a rerun against a committed report within `TOLERANCES`.
"""
from __future__ import annotations

import fnmatch
import json
import math
import shlex
import sys
import tempfile
from pathlib import Path

FAMILIES = ("vae", "gan", "diffusion")
COLLAPSE_ENTROPY = 0.9  # normalised class entropy below this: samples crowd onto a few digits
NAMES = {"vae": "VAE", "gan": "GAN", "diffusion": "diffusion"}
FOLKLORE = {
    "Objective": "VAE: likelihood bound; GAN: adversarial game; diffusion: denoising (a reweighted likelihood bound)",
    "Training stability": "GANs oscillate and can collapse; VAE and diffusion train smoothly",
    "Sample quality": "diffusion best; GAN sharp but less diverse; VAE blurry",
    "Likelihood": "VAE: a bound; GAN: none; diffusion: a bound, or exact via the ODE, and the best of the three",
    "Latent space": "VAE: smooth, with an encoder; GAN: smooth-ish, no encoder; diffusion: no compact latent "
                    "(x_T is image-sized)",
    "Speed": "VAE and GAN: one pass; diffusion: tens to a thousand passes, orders of magnitude slower",
}

# Rerunning the same command with the same seed must land within these (first matching rule wins; a number
# no rule names must match exactly). Timings are measurements of the machine, not of the models: not compared.
TOLERANCES = [
    ["*seconds*", "not compared"], ["*_s", "not compared"], ["speed.*", "not compared"],
    ["hardware", "not compared"], ["command", "not compared"], ["settings.*", "not compared"],
    ["quality.*.seconds_per_sample", "not compared"],
    ["quality.*.frechet_distance", {"rel": 0.03}],
    ["quality.*.kid*", {"rel": 0.10, "abs": 200.0}],
    ["quality.*.sharpness", {"rel": 0.02}],
    ["quality.*", {"abs": 0.02}],
    ["likelihood.vae.*_bpd*", {"abs": 0.01}], ["likelihood.vae.subset.*", {"abs": 0.01}],
    ["likelihood.vae.*_nats", {"rel": 0.01}],
    ["likelihood.diffusion.*bpd*", {"abs": 0.03}],
    ["latent.*", {"rel": 0.05, "abs": 0.01}],
    ["stability.*", {"rel": 1e-6}],
    ["classifier.*", {"abs": 1e-4}],
]


# ---------------------------------------------------------------- verdicts


def _fmt(x, digits=1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _order_line(values: dict, label: str, digits=1) -> str:
    ordered = sorted(values, key=values.get)
    return " < ".join(f"{NAMES[k]} {label}{_fmt(values[k], digits)}" for k in ordered)


def _row(name: str, cells: dict, verdict: str, line: str | None = None) -> dict:
    line = line or f"{name}: {verdict}"
    if verdict == "cannot say" and not line.endswith(verdict):
        line += " - cannot say"
    return {"row": name, "folklore": FOLKLORE[name], "cells": cells, "verdict": verdict, "line": line}


def _verdict(ok: bool | None) -> str:
    return {True: "agrees", False: "disagrees", None: "cannot say"}[ok]


def objective_row(report: dict) -> dict:
    st = report.get("stability", {})
    cells = {}
    for name, text in (("vae", "maximise the ELBO"), ("gan", "minimax game, non-saturating loss"),
                       ("diffusion", "denoising: eps-MSE (simple loss)")):
        losses = st.get(name, {}).get("losses", {})
        finals = ", ".join(f"{k} {v['end']:.4g}" for k, v in losses.items() if k in ("loss", "d_loss", "g_loss"))
        cells[name] = f"{text}; final {finals}" if finals else text
    return _row("Objective", cells, "agrees (by construction: the objectives are what the training code "
                                    "minimises; their values are in different units)")


def stability_row(report: dict) -> dict:
    st, quality = report.get("stability", {}), report.get("quality", {})
    cells, oscillation = {}, {}
    for name in FAMILIES:
        s = st.get(name)
        if not s:
            continue
        main_loss = "d_loss" if name == "gan" else "loss"
        loss = s["losses"].get(main_loss, {})
        text = f"{main_loss} CV (last quarter) {_fmt(loss.get('last_quarter_cv'), 3)}"
        q = s.get("quality")
        if q:
            oscillation[name] = q["times_worse"] / max(q["transitions"], 1)
            text += (f"; FD worse at {q['times_worse']}/{q['transitions']} checkpoints, final/best "
                     f"{q['final_over_best']:.2f}")
        else:
            text += "; checkpoint quality not logged"
        cells[name] = text
    if "gan" in oscillation and len(oscillation) > 1:
        ok = oscillation["gan"] >= max(oscillation.values())
        line = (f"FD got worse between checkpoints: " + ", ".join(f"{NAMES[k]} {v:.0%}" for k, v in
                                                                   oscillation.items()) + f" - {_verdict(ok)}")
    else:
        ok, line = None, "no quality_log.jsonl for the GAN and another family (train with --eval-every) - cannot say"
    entropies = {k: s["quality"] for k, s in st.items()
                 if s.get("quality") and s["quality"].get("min_class_entropy_second_half") is not None}
    if "gan" in entropies:
        late, q = entropies["gan"]["min_class_entropy_second_half"], entropies["gan"]
        line += (f"; lowest class entropy over the second half of the GAN's checkpoints {late:.3f}: "
                 + ("no mode collapse" if late > COLLAPSE_ENTROPY else "mode collapse seen")
                 + f" (overall lowest {q['min_class_entropy']:.3f}, at step {q['min_class_entropy_step']})")
    elif "gan" in quality:
        entropy = quality["gan"]["class_entropy"]
        line += (f"; final GAN class entropy {entropy:.3f}: "
                 + ("no mode collapse" if entropy > COLLAPSE_ENTROPY else "mode dropping"))
    return _row("Training stability", cells, _verdict(ok), f"Training stability: {line}")


def _made_by(row: dict) -> str:
    """" (ddpm, 100 steps)" for a quality row whose samples came from a chosen sampler (diffusion), else ""."""
    sampler = row.get("sampler")
    return f" ({sampler['sampler']}, {sampler['steps']} steps)" if sampler else ""


def quality_row(report: dict) -> dict:
    q = {k: v for k, v in report.get("quality", {}).items() if k in FAMILIES}
    cells = {k: f"FD {v['frechet_distance']:.1f}, precision {v['precision']:.2f}, recall {v['recall']:.2f}, "
                f"sharpness {v['sharpness']:.2f}{_made_by(v)}" for k, v in q.items() if "precision" in v}
    if len(q) < 2:
        return _row("Sample quality", cells, "cannot say", "Sample quality: fewer than two families measured")
    fd = {k: v["frechet_distance"] for k, v in q.items()}
    expected = [k for k in ("diffusion", "gan", "vae") if k in fd]
    ok = sorted(fd, key=fd.get) == expected
    line = f"Sample quality: {_order_line(fd, 'FD ')} - {_verdict(ok)}"
    if "vae" in q and "sharpness" in q["vae"]:
        sharp = {k: v["sharpness"] for k, v in q.items()}
        blurriest = min(sharp, key=sharp.get)
        line += (f"; sharpness (1 = real digits) " + ", ".join(f"{NAMES[k]} {v:.2f}" for k, v in sharp.items())
                 + f": VAE blurriest - {_verdict(blurriest == 'vae')}")
    if "gan" in q and "diffusion" in q and "recall" in q["gan"]:
        fewer = q["gan"]["recall"] < q["diffusion"]["recall"]
        line += (f"; recall GAN {q['gan']['recall']:.2f} vs diffusion {q['diffusion']['recall']:.2f}: GAN less "
                 f"diverse - {_verdict(fewer)}")
    return _row("Sample quality", cells, _verdict(ok), line)


def likelihood_row(report: dict) -> dict:
    lk = report.get("likelihood", {})
    cells = {}
    if "vae" in lk:
        v = lk["vae"]
        cells["vae"] = f"ELBO {v['elbo_bpd']:.3f}, IWAE(k={v['iwae_k']}) {v['iwae_bpd']:.3f} bpd"
    if "gan" in lk:
        cells["gan"] = "none (implicit model)"
    if "diffusion" in lk:
        d = lk["diffusion"]
        cells["diffusion"] = (f"VLB {d['vlb_bpd']['fixed_small']:.3f}, ODE {d['ode_bpd']:.3f} bpd "
                              f"({d['ode_seconds_per_image']:.2f} s/digit, {d['ode_nfe_per_image']} NFE)")
    if "vae" in lk and "diffusion" in lk:
        d, vae = lk["diffusion"], lk["vae"]["subset"]
        best_diffusion = min(d["ode_bpd"], d["vlb_bpd"]["fixed_small"])
        ok = best_diffusion < vae["iwae_bpd"]
        line = (f"Likelihood (bits/dim, same {d['n']} test digits): VAE IWAE {vae['iwae_bpd']:.3f} (ELBO "
                f"{vae['elbo_bpd']:.3f}) vs diffusion ODE {d['ode_bpd']:.3f} / VLB "
                f"{d['vlb_bpd']['fixed_small']:.3f}; GAN none - {_verdict(ok)}")
    else:
        ok, line = None, "Likelihood: VAE and diffusion not both measured"
    return _row("Likelihood", cells, _verdict(ok), line)


def latent_row(report: dict) -> dict:
    lt = report.get("latent", {})
    cells, cv = {}, {}
    for name, v in lt.items():
        cv[name] = v["slerp"]["step_cv"]
        recon = v.get("reconstruction")
        cells[name] = (f"slerp step CV {v['slerp']['step_cv']:.2f}, PPL {v['slerp']['ppl']:.3g}; "
                       + (f"reconstruction MSE {recon['mse']:.4f}" if recon else "no encoder"))
    if len(cv) < 2 or "vae" not in cv:
        return _row("Latent space", cells, "cannot say", "Latent space: the VAE and another family not measured")
    ok = min(cv, key=cv.get) == "vae"
    line = (f"Latent space: path unevenness (step CV along slerp, 0 = even) {_order_line(cv, '', 2)} - "
            f"{_verdict(ok)}")
    if "vae" in lt and "diffusion" in lt and lt["diffusion"].get("reconstruction"):
        v_mse, d_mse = lt["vae"]["reconstruction"]["mse"], lt["diffusion"]["reconstruction"]["mse"]
        line += (f"; reconstruction MSE VAE {v_mse:.4f} vs DDIM inversion {d_mse:.4f} "
                 f"({'the VAE' if v_mse < d_mse else 'diffusion'} reconstructs better)")
    return _row("Latent space", cells, _verdict(ok), line)


def speed_row(report: dict) -> dict:
    sp = report.get("speed", {})
    rows = sp.get("rows", [])
    one_pass = {r["engine"]: r for r in rows if r["engine"] != "diffusion"}
    diffusion = [r for r in rows if r["engine"] == "diffusion"]
    cells = {k: f"{r['ms_per_sample']:.2f} ms/sample, NFE 1" for k, r in one_pass.items()}
    if diffusion:
        cells["diffusion"] = ", ".join(f"{r['sampler']}-{r['steps']}: {r['ms_per_sample']:.0f} ms"
                                       + (" (extrapolated)" if r.get("extrapolated") else "") for r in diffusion)
    if not one_pass or not diffusion:
        return _row("Speed", cells, "cannot say", "Speed: diffusion and a one-pass family not both measured")
    fastest_diffusion = min(diffusion, key=lambda r: r["ms_per_sample"])
    slowest_one_pass = max(one_pass.values(), key=lambda r: r["ms_per_sample"])
    ratio = fastest_diffusion["ms_per_sample"] / slowest_one_pass["ms_per_sample"]
    ok = ratio > 10
    line = (f"Speed (ms/sample, batch {sp['batch']}): " + ", ".join(
        f"{NAMES[k]} {r['ms_per_sample']:.2f}" for k, r in one_pass.items())
        + f"; diffusion {fastest_diffusion['ms_per_sample']:.0f} at {fastest_diffusion['nfe']} NFE (its fewest "
          f"steps), {ratio:.0f}x the slowest one-pass model - {_verdict(ok)}")
    return _row("Speed", cells, _verdict(ok), line)


def summarise(report: dict) -> list[dict]:
    rows = [objective_row(report), stability_row(report), quality_row(report), likelihood_row(report),
            latent_row(report), speed_row(report)]
    return rows


# ---------------------------------------------------------------- reproduction


def flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}.{i}"))
        return out
    return {prefix: value}


def rule_for(path: str, tolerances=TOLERANCES):
    for pattern, rule in tolerances:
        if fnmatch.fnmatchcase(path, pattern):
            return rule
    return {"abs": 0.0}


def compare_reports(reference: dict, rerun: dict, tolerances=TOLERANCES) -> list[str]:
    """Every measured number of `reference` that `rerun` misses or differs from beyond its tolerance."""
    ours, theirs = flatten(reference), flatten(rerun)
    problems = []
    for path, expected in ours.items():
        if path.startswith(("summary", "tolerances")):
            continue  # derived text / the rules themselves
        rule = rule_for(path, tolerances)
        if rule == "not compared":
            continue
        if path not in theirs:
            problems.append(f"{path}: missing in the rerun")
            continue
        got = theirs[path]
        if isinstance(expected, (int, float)) and not isinstance(expected, bool) and isinstance(got, (int, float)):
            allowed = max(rule.get("abs", 0.0), rule.get("rel", 0.0) * abs(expected))
            if not (abs(got - expected) <= allowed + 1e-12 or (math.isnan(expected) and math.isnan(got))):
                problems.append(f"{path}: {got} vs {expected} (tolerance {allowed:.4g})")
        elif got != expected:
            problems.append(f"{path}: {got!r} vs {expected!r}")
    return problems


def check(reference_path: Path, out: Path, run) -> int:
    """Rerun the command recorded in a report (writing to `out`, or a temporary folder when `out` is the
    report itself) and compare. Returns 0 when everything is within tolerance."""
    reference = json.loads(Path(reference_path).read_text())
    argv = shlex.split(reference["command"])[3:]  # after "python -m engines.evaluate"
    if "--out" in argv:
        i = argv.index("--out")
        del argv[i:i + 2]
    if Path(out).resolve() == Path(reference_path).resolve():
        out = Path(tempfile.mkdtemp(prefix="evaluate-check-")) / "report.json"
    rerun = run(argv + ["--out", str(out)])
    problems = compare_reports(reference, rerun)
    for p in problems:
        print(f"outside tolerance: {p}", file=sys.stderr)
    print(f"{'reproduced' if not problems else 'NOT reproduced'}: {reference_path} vs {out} "
          f"({len(problems)} numbers outside tolerance)")
    return 0 if not problems else 1


# ---------------------------------------------------------------- report.md


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(str(c) for c in r) + " |" for r in rows], ""]


def write_markdown(report: dict, path: Path) -> None:
    path = Path(path)
    figure = write_figure(report, path.with_name(path.stem + "_training.png"))
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
    if "quality" in report:
        lines += ["## Sample quality", "", f"{report['n']} samples per row against {report['reference']}, in the "
                  f"features of the {report['feature_net']}. Sharpness: mean squared pixel gradient relative to "
                  "the test digits (1 = as sharp as real digits). Precision/recall: k-NN manifolds, k = 3 "
                  "(Kynkaanniemi et al. 2019). KID is in the raw feature units (large numbers; the real row's "
                  "estimate is ~0 within its std).", ""]
        lines += _table(["rows", "FD", "KID", "precision", "recall", "recognisable", "mean conf.", "class entropy",
                         "sharpness", "s/sample"],
                        [[k + _made_by(v), _fmt(v["frechet_distance"], 2), f"{v['kid']:.0f} ± {v['kid_std']:.0f}",
                          v.get("precision"), v.get("recall"), f"{v['confident_share']:.1%}", v["mean_confidence"],
                          v["class_entropy"], v.get("sharpness"), v.get("seconds_per_sample", "-")]
                         for k, v in report["quality"].items()])
    if "likelihood" in report:
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
    if "latent" in report:
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
    if "stability" in report:
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
    if "speed" in report:
        sp = report["speed"]
        lines += ["## Speed", "", f"Batch of {sp['batch']}, median wall time. {sp['note']}.", ""]
        lines += _table(["family", "sampler", "steps", "NFE/sample", "ms/sample"],
                        [[NAMES[r["engine"]], r.get("sampler", "-"), r.get("steps", "-"), r["nfe"],
                          f"{r['ms_per_sample']:.2f}" + (" (extrapolated)" if r.get("extrapolated") else "")]
                         for r in sp["rows"]])
        lines += ["Steps against quality for every sampler (ours and the diffusers schedulers): the diffusion "
                  "model card (`checkpoints/mnist/diffusion/README.md`), measured by "
                  "`python -m engines.sampler_benchmark`.", ""]
    lines += ["## Reproducing", "", "`python -m engines.evaluate --check checkpoints/mnist/report.json` reruns the "
              "command above and compares every number within these tolerances (timings are not compared; a number "
              "no rule names must match exactly):", ""]
    lines += [f"- `{pattern}`: {rule if isinstance(rule, str) else ', '.join(f'{k} {v}' for k, v in rule.items())}"
              for pattern, rule in report.get("tolerances", TOLERANCES)]
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
