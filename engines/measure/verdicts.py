"""The seed's comparison table, measured: one row per claim, with a verdict on the folklore.

`summarise(report)` turns the measured sections of report.json into the classic table's six rows (objective,
training stability, sample quality, likelihood, latent space, speed), each with one cell per family and a
one-line verdict that says whether the numbers agree with the folklore. `report_markdown` renders them.
"""
from __future__ import annotations

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

def fmt(x, digits=1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _order_line(values: dict, label: str, digits=1) -> str:
    ordered = sorted(values, key=values.get)
    return " < ".join(f"{NAMES[k]} {label}{fmt(values[k], digits)}" for k in ordered)


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
        text = f"{main_loss} CV (last quarter) {fmt(loss.get('last_quarter_cv'), 3)}"
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


def made_by(row: dict) -> str:
    """" (ddpm, 100 steps)" for a quality row whose samples came from a chosen sampler (diffusion), else ""."""
    sampler = row.get("sampler")
    return f" ({sampler['sampler']}, {sampler['steps']} steps)" if sampler else ""


def quality_row(report: dict) -> dict:
    q = {k: v for k, v in report.get("quality", {}).items() if k in FAMILIES}
    cells = {k: f"FD {v['frechet_distance']:.1f}, precision {v['precision']:.2f}, recall {v['recall']:.2f}, "
                f"sharpness {v['sharpness']:.2f}{made_by(v)}" for k, v in q.items() if "precision" in v}
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


