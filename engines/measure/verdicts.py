"""The seed's comparison table, measured: one row per claim, with a verdict on the folklore.

`summarise(report)` turns the measured sections of report.json into the classic table's six rows (objective,
training stability, sample quality, likelihood, latent space, speed), each with one cell per family and a verdict,
and, where the hybrids were measured, a seventh row for the seed's claims about them.
A row's verdict combines every check of its claims (`uncertainty.combine`): each check compares two measured
numbers and says "agrees", "disagrees" or "tie" (their difference within 2 standard errors); a check made in
both feature nets that comes out differently says "depends on the feature net". `report_markdown` renders them.
"""
from __future__ import annotations

import re

from engines.measure.uncertainty import (AGREES, DISAGREES, TIE_SE, check, combine, compare, pooled_rate_se,
                                         se_of_difference)

FAMILIES = ("vae", "gan", "diffusion")
HYBRIDS = ("latent_diffusion", "diffusion_gan")   # VAE + diffusion, GAN + diffusion
NAMES = {"vae": "VAE", "gan": "GAN", "diffusion": "diffusion", "latent_diffusion": "latent diffusion",
         "diffusion_gan": "diffusion GAN"}
HYBRID_SPEED_FACTOR = 100   # the target: the few-step hybrid at >= 100x less sampling time than DDPM-1000
DEPENDS = "depends on the feature net"
SPEED_FACTOR = 10   # "orders of magnitude slower": at least this factor at diffusion's fewest measured steps
FOLKLORE = {
    "Objective": "VAE: likelihood bound; GAN: adversarial game; diffusion: denoising (a reweighted likelihood bound)",
    "Training stability": "GANs oscillate and can collapse; VAE and diffusion train smoothly",
    "Sample quality": "diffusion best; GAN sharp but less diverse; VAE blurry",
    "Likelihood": "VAE: a bound; GAN: none; diffusion: a bound, or exact via the ODE, and the best of the three",
    "Latent space": "VAE: smooth, with an encoder; GAN: smooth-ish, no encoder; diffusion: no compact latent "
                    "(x_T is image-sized)",
    "Speed": "VAE and GAN: one pass; diffusion: tens to a thousand passes, orders of magnitude slower",
    "Hybrids": "diffusion GAN: as sharp as a GAN, as stable as diffusion, far faster than diffusion; latent "
               "diffusion: a learned prior samples better digits than the VAE's N(0, I)",
}


def fmt(x, digits=1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def pm(value: float, se: float | None, digits: int = 2) -> str:
    return fmt(value, digits) if se is None else f"{value:.{digits}f} ± {se:.{digits}f}"


def made_by(row: dict) -> str:
    """" (ddpm, 100 steps)" for a quality row whose samples came from a chosen sampler (diffusion), else ""."""
    sampler = row.get("sampler")
    return f" ({sampler['sampler']}, {sampler['steps']} steps)" if sampler else ""


def _row(name: str, cells: dict, checks: list[dict], note: str = "", verdict: str | None = None) -> dict:
    verdict = verdict or combine(checks)
    details = "; ".join(f"{c['detail']}: {c['verdict']}" for c in checks)
    line = f"{name}: " + "; ".join(part for part in (details, note) if part) + f" - {verdict}"
    return {"row": name, "folklore": FOLKLORE[name], "cells": cells, "checks": checks, "verdict": verdict,
            "line": line}


def compared(claim: str, label: str, a: tuple, b: tuple, expected: int, digits: int = 2,
             se_difference: float | None = None) -> dict:
    """A check that (name, value, se) a is below (expected -1) or above (+1) b, beyond 2 SEs of the difference."""
    (name_a, value_a, se_a), (name_b, value_b, se_b) = a, b
    se = se_difference if se_difference is not None else se_of_difference(se_a, se_b)
    detail = f"{label} {NAMES.get(name_a, name_a)} {pm(value_a, se_a, digits)} vs {NAMES.get(name_b, name_b)} " \
             f"{pm(value_b, se_b, digits)}"
    return check(claim, compare(value_a, value_b, se), expected, detail)


def across_nets(per_net: dict[str, dict]) -> dict:
    """One check measured in several feature nets: its verdict if they agree, else DEPENDS."""
    verdicts = {c["verdict"] for c in per_net.values()}
    first = next(iter(per_net.values()))
    detail = " | ".join(f"[{net}] {c['detail']}" for net, c in per_net.items())
    return {"claim": first["claim"], "verdict": verdicts.pop() if len(verdicts) == 1 else DEPENDS,
            "detail": detail, "by_net": {net: c["verdict"] for net, c in per_net.items()}}


# ---------------------------------------------------------------- rows


def objective_row(report: dict) -> dict:
    st = report.get("stability", {})
    cells = {}
    for name, text in (("vae", "maximise the ELBO"), ("gan", "minimax game, non-saturating loss"),
                       ("diffusion", "denoising: eps-MSE (simple loss)")):
        losses = st.get(name, {}).get("losses", {})
        finals = ", ".join(f"{k} {v['end']:.4g}" for k, v in losses.items() if k in ("loss", "d_loss", "g_loss"))
        cells[name] = f"{text}; final {finals}" if finals else text
    return _row("Objective", cells, [], "the objectives are definitions (what each training loop minimises, in "
                                        "units that do not compare), not a measured claim",
                verdict="not measured (a definition)")


def stability_row(report: dict) -> dict:
    st, seeds = report.get("stability", {}), report.get("seeds")
    cells = {}
    for name in FAMILIES + HYBRIDS:
        s = st.get(name)
        if s and s.get("quality"):
            q = s["quality"]
            cells[name] = (f"this run: FD worse at {q['times_worse']}/{q['transitions']} checkpoints, final/best "
                           f"{q['final_over_best']:.2f}")
        elif s:
            cells[name] = "this run: checkpoint quality not logged"
        if seeds and name in seeds.get("families", {}):
            f = seeds["families"][name]
            cells[name] = cells.get(name, "") + (
                f"; 2-D ring, {len(seeds['settings']['seeds'])} seeds: collapse "
                f"{pm(f['collapse_rate'], f['collapse_rate_se'])}, oscillation "
                f"{pm(f['oscillation_rate'], f['oscillation_rate_se'])}")
    checks = []
    if seeds:
        gan, n = seeds["families"].get("gan"), len(seeds["settings"]["seeds"])
        for other in (k for k in ("vae", "diffusion") if gan and k in seeds["families"]):
            o = seeds["families"][other]
            for rate, claim in (("collapse_rate", "GANs collapse more often"),
                                ("oscillation_rate", "GANs oscillate more often")):
                checks.append(compared(claim, f"2-D {rate.replace('_', ' ')}", ("gan", gan[rate], gan[rate + "_se"]),
                                       (other, o[rate], o[rate + "_se"]), expected=+1,
                                       se_difference=pooled_rate_se(gan[rate], o[rate], n, n)))
    note = ("the image checkpoints are one training run per family: they show what happened in that run, not how "
            "often it happens, so the verdict rests on the 2-D runs across seeds")
    return _row("Training stability", cells, checks, note if seeds else note.split(", so")[0])


def quality_cell(row: dict) -> str:
    net, first = next(iter(row["nets"].items()))
    return (f"[{net}] FD {pm(first['frechet_distance'], first['frechet_distance_se'], 1)}, precision "
            f"{first['precision']:.2f}, recall {first['recall']:.2f}, coverage {first['coverage']:.2f}; "
            f"sharpness {pm(row['sharpness'], row['sharpness_se'])}{made_by(row)}")


def quality_row(report: dict) -> dict:
    q = {k: v for k, v in report.get("quality", {}).items() if k in FAMILIES}
    nets = list(next(iter(q.values()))["nets"]) if q else []
    cells = {k: quality_cell(v) for k, v in report.get("quality", {}).items() if k in FAMILIES + HYBRIDS}
    if len(q) < 3:
        return _row("Sample quality", cells, [], "fewer than three families measured")

    def metric(family, net, key):
        r = q[family]["nets"][net]
        return family, r[key], r[key + "_se"]
    checks = []
    for a, b in (("diffusion", "gan"), ("diffusion", "vae"), ("gan", "vae")):
        checks.append(across_nets({n: compared("diffusion best, then GAN, then VAE", "FD",
                                               metric(a, n, "frechet_distance"), metric(b, n, "frechet_distance"),
                                               expected=-1, digits=1) for n in nets}))
    for other in ("gan", "diffusion"):
        checks.append(compared("VAE blurry", "sharpness", ("vae", q["vae"]["sharpness"], q["vae"]["sharpness_se"]),
                               (other, q[other]["sharpness"], q[other]["sharpness_se"]), expected=-1))
    for key in ("recall", "coverage"):
        checks.append(across_nets({n: compared("GAN less diverse", key, metric("gan", n, key),
                                               metric("diffusion", n, key), expected=-1) for n in nets}))
    return _row("Sample quality", cells, checks)


def likelihood_row(report: dict) -> dict:
    lk = report.get("likelihood", {})
    cells, checks = {}, []
    if "vae" in lk:
        v = lk["vae"]
        cells["vae"] = f"ELBO {pm(v['elbo_bpd'], v['elbo_bpd_se'], 3)}, IWAE(k={v['iwae_k']}) " \
                       f"{pm(v['iwae_bpd'], v['iwae_bpd_se'], 3)} bpd"
    if "gan" in lk:
        cells["gan"] = "none (implicit model)"
    if "diffusion" in lk:
        d = lk["diffusion"]
        cells["diffusion"] = (f"VLB {pm(d['vlb_bpd']['fixed_small'], d['vlb_bpd_se'], 3)}, ODE bound "
                              f"{pm(d['ode_bpd'], d['ode_bpd_se'], 3)} (floor {d['ode_floor_bpd']:.3f}) bpd, "
                              f"{d['ode_seconds_per_image']:.2f} s/digit")
    if "vae" in lk and "diffusion" in lk:
        d, v, paired = lk["diffusion"], lk["vae"], lk["diffusion_minus_vae_bpd"]
        # The better of diffusion's two bounds; an ODE estimate below its floor is solver error, not a bound.
        bounds = [("vlb", d["vlb_bpd"]["fixed_small"], d["vlb_bpd_se"])]
        if d["ode_bpd"] >= d["ode_floor_bpd"]:
            bounds.append(("ode", d["ode_bpd"], d["ode_bpd_se"]))
        best = min(bounds, key=lambda r: r[1])
        checks.append(compared("diffusion the best of the three", f"bits/dim on the same {lk['n']} digits",
                               (f"diffusion ({best[0].upper()})", best[1], best[2]),
                               ("VAE (IWAE)", v["iwae_bpd"], v["iwae_bpd_se"]), expected=-1, digits=3,
                               se_difference=paired[best[0]]["se"]))
    return _row("Likelihood", cells, checks, "GAN none; SE of the difference from per-digit differences")


def latent_row(report: dict) -> dict:
    lt = report.get("latent", {})
    cells = {}
    for name, v in lt.items():
        recon = v.get("reconstruction")
        cells[name] = (f"slerp step CV {pm(v['slerp']['step_cv'], v['slerp']['step_cv_se'])}, PPL "
                       f"{v['slerp']['ppl']:.3g}; "
                       + (f"reconstruction MSE {recon['mse']:.4f}" if recon else "no encoder"))
    def step_cv(family):
        return family, lt[family]["slerp"]["step_cv"], lt[family]["slerp"]["step_cv_se"]
    checks = [compared("VAE smoothest", "slerp step CV", step_cv("vae"), step_cv(other), expected=-1)
              for other in ("gan", "diffusion") if "vae" in lt and other in lt]
    note = ""
    if "vae" in lt and "diffusion" in lt and lt["diffusion"].get("reconstruction"):
        v_mse, d_mse = lt["vae"]["reconstruction"]["mse"], lt["diffusion"]["reconstruction"]["mse"]
        note = f"reconstruction MSE VAE {v_mse:.4f} vs DDIM inversion {d_mse:.4f} (not a folklore claim)"
    return _row("Latent space", cells, checks, note)


def speed_row(report: dict) -> dict:
    sp = report.get("speed", {})
    rows = sp.get("rows", [])
    one_pass = {r["engine"]: r for r in rows if r["engine"] in ("vae", "gan")}
    diffusion = [r for r in rows if r["engine"] == "diffusion"]
    cells = {r["engine"]: f"{r['ms_per_sample']:.2f} ms/sample, NFE {r['nfe']}" for r in rows
             if r["engine"] not in ("diffusion",)}
    if diffusion:
        cells["diffusion"] = ", ".join(f"{r['sampler']}-{r['steps']}: {r['ms_per_sample']:.0f} ms"
                                       + (" (extrapolated)" if r.get("extrapolated") else "") for r in diffusion)
    if not one_pass or not diffusion:
        return _row("Speed", cells, [], "diffusion and a one-pass family not both measured")
    fastest = min(diffusion, key=lambda r: r["ms_per_sample"])
    slowest = max(one_pass.values(), key=lambda r: r["ms_per_sample"])
    ratio = fastest["ms_per_sample"] / slowest["ms_per_sample"]
    detail = (f"ms/sample at batch {sp['batch']}: diffusion {fastest['ms_per_sample']:.0f} at {fastest['nfe']} NFE "
              f"(its fewest steps) = {ratio:.0f}x the slowest one-pass model ({NAMES[slowest['engine']]} "
              f"{slowest['ms_per_sample']:.2f}); the folklore's 'orders of magnitude' read as >= {SPEED_FACTOR}x")
    verdict = AGREES if ratio >= SPEED_FACTOR else DISAGREES
    return _row("Speed", cells, [{"claim": "diffusion orders of magnitude slower", "verdict": verdict,
                                  "detail": detail}])


def hybrids_row(report: dict) -> dict:
    """The seed's claims about the two hybrids, each against its parents, in the numbers of the rows above."""
    q = report.get("quality", {})
    speed = {r["engine"]: r for r in report.get("speed", {}).get("rows", []) if r["engine"] in HYBRIDS}
    cells = {k: quality_cell(v) for k, v in q.items() if k in HYBRIDS}
    checks = []
    if "diffusion_gan" in q and "gan" in q:
        a, b = q["diffusion_gan"], q["gan"]
        outcome = compare(a["sharpness"], b["sharpness"], se_of_difference(a["sharpness_se"], b["sharpness_se"]))
        # An equality claim: a tie is what agreeing with it looks like; either direction beyond 2 SEs refutes it.
        checks.append({"claim": "diffusion GAN as sharp as the GAN", "verdict": AGREES if outcome == 0 else DISAGREES,
                       "detail": f"sharpness diffusion GAN {pm(a['sharpness'], a['sharpness_se'])} vs GAN "
                                 f"{pm(b['sharpness'], b['sharpness_se'])} (the claim holds if they are equal within "
                                 f"{TIE_SE:g} SE)"})
    ddpm = [r for r in report.get("speed", {}).get("rows", []) if r["engine"] == "diffusion"
            and r.get("sampler") == "ddpm"]
    if "diffusion_gan" in speed and ddpm:
        ratio = ddpm[0]["ms_per_sample"] / speed["diffusion_gan"]["ms_per_sample"]
        checks.append({"claim": "diffusion GAN far faster than diffusion",
                       "verdict": AGREES if ratio >= HYBRID_SPEED_FACTOR else DISAGREES,
                       "detail": f"ms/sample diffusion DDPM-{ddpm[0]['steps']} {ddpm[0]['ms_per_sample']:.0f} "
                                 f"(extrapolated) = {ratio:.0f}x diffusion GAN "
                                 f"{speed['diffusion_gan']['ms_per_sample']:.1f} at "
                                 f"{speed['diffusion_gan']['nfe']} NFE; read as >= {HYBRID_SPEED_FACTOR}x"})
    checks += hybrid_stability_checks(report.get("seeds"))
    if "latent_diffusion" in q and "vae" in q:
        def metric(family, net, key):
            r = q[family]["nets"][net]
            return family, r[key], r[key + "_se"]
        nets = list(q["vae"]["nets"])
        for key, expected in (("frechet_distance", -1), ("precision", +1), ("recall", +1)):
            checks.append(across_nets({n: compared("latent diffusion better than the VAE's prior",
                                                   key.replace("frechet_distance", "FD"),
                                                   metric("latent_diffusion", n, key), metric("vae", n, key),
                                                   expected=expected, digits=1 if key == "frechet_distance" else 2)
                                       for n in nets}))
    seeds = report.get("seeds") or {}
    note = ("the diffusion GAN's stability: 2-D runs across seeds (its image run is one run, in the stability row)"
            if "diffusion_gan" in seeds.get("families", {}) else
            "stability of the hybrids: one run each, in the stability row's cells (no verdict)")
    return _row("Hybrids", cells, checks, note)


def hybrid_stability_checks(seeds: dict | None) -> list[dict]:
    """"As stable as diffusion", on the 2-D ring across seeds: the diffusion GAN's collapse and oscillation
    rates against diffusion's. An "as ... as" claim: it holds unless the hybrid's rate is higher beyond 2 SEs of
    the difference (a lower rate is no refutation); the SE pools the two rates (`pooled_rate_se`), since 0 of n
    has a binomial SE of 0."""
    families = (seeds or {}).get("families", {})
    if "diffusion_gan" not in families or "diffusion" not in families:
        return []
    a, b, n = families["diffusion_gan"], families["diffusion"], len(seeds["settings"]["seeds"])
    steps = seeds["settings"]["steps"]
    budget = (f" ({steps['diffusion_gan']} vs {steps['diffusion']} steps)" if isinstance(steps, dict)
              and steps["diffusion_gan"] != steps["diffusion"] else "")
    checks = []
    for rate in ("collapse_rate", "oscillation_rate"):
        outcome = compare(a[rate], b[rate], pooled_rate_se(a[rate], b[rate], n, n))
        checks.append({"claim": "diffusion GAN as stable as diffusion", "verdict": DISAGREES if outcome > 0 else AGREES,
                       "detail": f"2-D {rate.replace('_', ' ')} over {n} seeds{budget}: diffusion GAN "
                                 f"{pm(a[rate], a[rate + '_se'])} vs diffusion {pm(b[rate], b[rate + '_se'])} (the "
                                 f"claim holds unless the hybrid's rate is higher beyond {TIE_SE:g} SE)"})
    return checks


def summarise(report: dict) -> list[dict]:
    rows = [objective_row(report), stability_row(report), quality_row(report), likelihood_row(report),
            latent_row(report), speed_row(report)]
    if any(name in report.get("quality", {}) for name in HYBRIDS):
        rows.append(hybrids_row(report))
    return said_of(report.get("dataset", "mnist"), rows)


def said_of(dataset: str, value):
    """`value` (the rows, and every string inside them) with its text about digits said of `dataset`'s images."""
    if isinstance(value, str):
        return in_words_of(dataset, value)
    if isinstance(value, dict):
        return {k: said_of(dataset, v) for k, v in value.items()}
    if isinstance(value, list):
        return [said_of(dataset, v) for v in value]
    return value


def in_words_of(dataset: str, text: str) -> str:
    """Text written about digits, said of another dataset's images (MNIST's text is returned as it is)."""
    if dataset == "mnist":
        return text
    return re.sub(r"\bdigit(s?)\b", r"image\1", text.replace("all ten digits", "all ten classes").replace(
        "look more like digits", "look more like real ones"))

