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
from dataclasses import dataclass

from engines import registry
from engines.family import Family
from engines.measure.uncertainty import (
    AGREES,
    DISAGREES,
    TIE_SE,
    check,
    combine,
    compare,
    pooled_rate_se,
    se_of_difference,
)

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


# ---------------------------------------------------------------- the seed's claims, as data
# The folklore's claims name the families they compare (they are the seed's table); the rows below loop over
# these tables and check each claim whose families were measured, so no row branches on a family's name.


@dataclass(frozen=True)
class Claim:
    """"a is below (expected -1) or above (+1) b" in `metric`, for each (a, b) of `pairs`; `per_net`: a
    quality metric measured in every feature net (one check across the nets)."""
    claim: str
    metric: str
    pairs: tuple[tuple[str, str], ...]
    expected: int
    label: str = ""
    digits: int = 2
    per_net: bool = True


QUALITY_CLAIMS = (
    Claim("diffusion best, then GAN, then VAE", "frechet_distance",
          (("diffusion", "gan"), ("diffusion", "vae"), ("gan", "vae")), -1, "FD", digits=1),
    Claim("VAE blurry", "sharpness", (("vae", "gan"), ("vae", "diffusion")), -1, per_net=False),
    Claim("GAN less diverse", "recall", (("gan", "diffusion"),), -1),
    Claim("GAN less diverse", "coverage", (("gan", "diffusion"),), -1),
)
# The 2-D runs across seeds: the family said to collapse and oscillate more often than the others, per rate.
STABILITY_CLAIMS = {"family": "gan", "than": ("vae", "diffusion"),
                    "rates": {"collapse_rate": "GANs collapse more often",
                              "oscillation_rate": "GANs oscillate more often"}}
LIKELIHOOD_CLAIMS = ({"claim": "diffusion the best of the three", "better": "diffusion", "than": "vae"},)
LIKELIHOOD_NOTE = "GAN none; SE of the difference from per-digit differences"
# One claim per pair: smoother than either other family is judged wherever that family was measured.
LATENT_CLAIMS = tuple(Claim("VAE smoothest", "step_cv", (("vae", other),), -1, "slerp step CV", per_net=False)
                      for other in ("gan", "diffusion"))
# Reconstruction error is reported beside the latent claims, not judged: (family, what reconstructs).
RECONSTRUCTIONS = (("vae", "VAE"), ("diffusion", "DDIM inversion"))
SPEED_CLAIM = {"claim": "diffusion orders of magnitude slower", "slow": "diffusion", "one_pass": ("vae", "gan")}
# The hybrids against their parents: (claim, how it is checked, the hybrid, the parent).
HYBRID_CLAIMS = (
    ("diffusion GAN as sharp as the GAN", "as_sharp_as", "diffusion_gan", "gan"),
    ("diffusion GAN far faster than diffusion", "faster_than", "diffusion_gan", "diffusion"),
    ("diffusion GAN as stable as diffusion", "as_stable_as", "diffusion_gan", "diffusion"),
    ("latent diffusion better than the VAE's prior", "better_than", "latent_diffusion", "vae"),
)


def title(name: str) -> str:
    """How reports call family `name` (its record's title); any other label as it is."""
    return registry.FAMILIES[name].title if name in registry.FAMILIES else name


def likelihood_text(family: Family, summary: dict) -> dict:
    """A family's likelihood cell in words, from its engine (`likelihood_text`) where it says it, else its note:
    {"cell": the comparison table's (absent: none), "card": its model card's line, "report": report.md's bullets}."""
    say = getattr(family.engine, "likelihood_text", None)
    if say is not None:
        return say(summary)
    return {"card": summary["note"], "report": [f"{family.title.capitalize()}: {summary['note']}."]}


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
    detail = f"{label} {title(name_a)} {pm(value_a, se_a, digits)} vs {title(name_b)} {pm(value_b, se_b, digits)}"
    return check(claim, compare(value_a, value_b, se), expected, detail)


def across_nets(per_net: dict[str, dict]) -> dict:
    """One check measured in several feature nets: its verdict if they agree, else DEPENDS."""
    verdicts = {c["verdict"] for c in per_net.values()}
    first = next(iter(per_net.values()))
    detail = " | ".join(f"[{net}] {c['detail']}" for net, c in per_net.items())
    return {"claim": first["claim"], "verdict": verdicts.pop() if len(verdicts) == 1 else DEPENDS,
            "detail": detail, "by_net": {net: c["verdict"] for net, c in per_net.items()}}


def claim_checks(claim: Claim, measured: dict, metric) -> list[dict]:
    """The checks of `claim`, one per pair, where every family it names is in `measured` (family -> its section
    entry; else none: a ranking of three is not judged on two); metric(entry, net) -> (value, se) of the claim's
    metric, net None where the claim is not per net."""
    if any(name not in measured for pair in claim.pairs for name in pair):
        return []
    checks = []
    for a, b in claim.pairs:
        if claim.per_net:
            checks.append(across_nets({net: pair_check(claim, (a, measured[a]), (b, measured[b]), metric, net)
                                       for net in measured[a]["nets"]}))
        else:
            checks.append(pair_check(claim, (a, measured[a]), (b, measured[b]), metric, None))
    return checks


def pair_check(claim: Claim, a: tuple[str, dict], b: tuple[str, dict], metric, net: str | None) -> dict:
    """One check of `claim` on the (name, entry) pair a, b (in feature net `net`)."""
    return compared(claim.claim, claim.label or claim.metric, (a[0], *metric(a[1], net)), (b[0], *metric(b[1], net)),
                    expected=claim.expected, digits=claim.digits)


def quality_metric(key: str):
    """(value, se) of a quality row's `key`: in feature net `net`, or of the row itself (sharpness)."""
    def metric(row: dict, net: str | None) -> tuple:
        r = row if net is None else row["nets"][net]
        return r[key], r[key + "_se"]
    return metric


# ---------------------------------------------------------------- rows


def objective_row(report: dict) -> dict:
    st = report.get("stability", {})
    cells = {}
    for family in (f for f in registry.families() if f.objective):
        losses = st.get(family.name, {}).get("losses", {})
        finals = ", ".join(f"{k} {v['end']:.4g}" for k, v in losses.items() if k in ("loss", "d_loss", "g_loss"))
        cells[family.name] = f"{family.objective}; final {finals}" if finals else family.objective
    return _row("Objective", cells, [], "the objectives are definitions (what each training loop minimises, in "
                                        "units that do not compare), not a measured claim",
                verdict="not measured (a definition)")


def stability_row(report: dict) -> dict:
    st, seeds = report.get("stability", {}), report.get("seeds")
    cells = {}
    for name in (f.name for f in registry.families()):
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
        studied, n = seeds["families"], len(seeds["settings"]["seeds"])
        worse = STABILITY_CLAIMS["family"]
        for other in (k for k in STABILITY_CLAIMS["than"] if worse in studied and k in studied):
            w, o = studied[worse], studied[other]
            for rate, claim in STABILITY_CLAIMS["rates"].items():
                checks.append(compared(claim, f"2-D {rate.replace('_', ' ')}", (worse, w[rate], w[rate + "_se"]),
                                       (other, o[rate], o[rate + "_se"]), expected=+1,
                                       se_difference=pooled_rate_se(w[rate], o[rate], n, n)))
    note = ("the image checkpoints are one training run per family: they show what happened in that run, not how "
            "often it happens, so the verdict rests on the 2-D runs across seeds")
    return _row("Training stability", cells, checks, note if seeds else note.split(", so")[0])


def quality_cell(row: dict) -> str:
    net, first = next(iter(row["nets"].items()))
    return (f"[{net}] FD {pm(first['frechet_distance'], first['frechet_distance_se'], 1)}, precision "
            f"{first['precision']:.2f}, recall {first['recall']:.2f}, coverage {first['coverage']:.2f}; "
            f"sharpness {pm(row['sharpness'], row['sharpness_se'])}{made_by(row)}")


def quality_row(report: dict) -> dict:
    q = report.get("quality", {})
    cells = {k: quality_cell(v) for k, v in q.items() if k in registry.FAMILIES}
    checks = [c for claim in QUALITY_CLAIMS for c in claim_checks(claim, q, quality_metric(claim.metric))]
    if not checks:
        return _row("Sample quality", cells, [], "fewer than three families measured")
    return _row("Sample quality", cells, checks)


def likelihood_row(report: dict) -> dict:
    lk = report.get("likelihood", {})
    cells, checks = {}, []
    for family in (f for f in registry.families() if f.name in lk):
        cell = likelihood_text(family, lk[family.name]).get("cell")
        if cell:
            cells[family.name] = cell
    for claim in LIKELIHOOD_CLAIMS:
        better, than = registry.FAMILIES.get(claim["better"]), registry.FAMILIES.get(claim["than"])
        if not (better and than and better.likelihood and than.likelihood and better.name in lk and than.name in lk):
            continue
        # The better of its bounds, against the other's tightest; the SE from the per-digit differences.
        best = min(better.engine.likelihood_bounds(lk[better.name]), key=lambda r: r[1])
        other = than.engine.likelihood_bounds(lk[than.name])[0]
        paired = lk.get(paired_key(better.name, than.name)) or lk.get(paired_key(than.name, better.name)) or {}
        checks.append(compared(claim["claim"], f"bits/dim on the same {lk['n']} digits",
                               (f"{better.title} ({best[0].upper()})", *best[1:]),
                               (f"{than.title} ({other[0].upper()})", *other[1:]), expected=-1, digits=3,
                               se_difference=paired.get(best[0], {}).get("se")))
    return _row("Likelihood", cells, checks, LIKELIHOOD_NOTE)


def paired_key(later: str, earlier: str) -> str:
    """report.json's key of the per-digit differences `later` minus `earlier` ("diffusion_minus_vae_bpd")."""
    return f"{later}_minus_{earlier}_bpd"


def likelihood_pairs(measured) -> list[tuple[Family, Family]]:
    """(earlier, later) in registry order for each two families of `measured` (names) that measure bits/dim:
    the evaluation pairs their per-digit values, later minus earlier, under `paired_key(later, earlier)`."""
    both = [f for f in registry.families() if f.likelihood and f.name in measured]
    return [(earlier, later) for i, earlier in enumerate(both) for later in both[i + 1:]]


def latent_row(report: dict) -> dict:
    lt = report.get("latent", {})
    cells = {}
    for name, v in lt.items():
        recon = v.get("reconstruction")
        cells[name] = (f"slerp step CV {pm(v['slerp']['step_cv'], v['slerp']['step_cv_se'])}, PPL "
                       f"{v['slerp']['ppl']:.3g}; "
                       + (f"reconstruction MSE {recon['mse']:.4f}" if recon else "no encoder"))

    def slerp(entry: dict, _net) -> tuple:
        return entry["slerp"]["step_cv"], entry["slerp"]["step_cv_se"]
    checks = [c for claim in LATENT_CLAIMS for c in claim_checks(claim, lt, slerp)]
    note = ""
    if all((lt.get(name) or {}).get("reconstruction") for name, _ in RECONSTRUCTIONS):
        note = ("reconstruction MSE " + " vs ".join(f"{label} {lt[name]['reconstruction']['mse']:.4f}"
                                                    for name, label in RECONSTRUCTIONS) + " (not a folklore claim)")
    return _row("Latent space", cells, checks, note)


def speed_row(report: dict) -> dict:
    sp = report.get("speed", {})
    rows = sp.get("rows", [])
    swept = {f.name for f in registry.families() if f.takes_sampler}   # one row per sampler and step count
    cells = {r["engine"]: f"{r['ms_per_sample']:.2f} ms/sample, NFE {r['nfe']}" for r in rows
             if r["engine"] not in swept}
    for name in (n for n in registry.FAMILIES if n in swept and any(r["engine"] == n for r in rows)):
        cells[name] = ", ".join(f"{r['sampler']}-{r['steps']}: {r['ms_per_sample']:.0f} ms"
                                + (" (extrapolated)" if r.get("extrapolated") else "")
                                for r in rows if r["engine"] == name)
    slow_name = SPEED_CLAIM["slow"]
    one_pass = {r["engine"]: r for r in rows if r["engine"] in SPEED_CLAIM["one_pass"]}
    slow = [r for r in rows if r["engine"] == slow_name]
    if not one_pass or not slow:
        return _row("Speed", cells, [], f"{title(slow_name)} and a one-pass family not both measured")
    fastest = min(slow, key=lambda r: r["ms_per_sample"])
    slowest = max(one_pass.values(), key=lambda r: r["ms_per_sample"])
    ratio = fastest["ms_per_sample"] / slowest["ms_per_sample"]
    detail = (f"ms/sample at batch {sp['batch']}: {title(slow_name)} {fastest['ms_per_sample']:.0f} at "
              f"{fastest['nfe']} NFE (its fewest steps) = {ratio:.0f}x the slowest one-pass model "
              f"({title(slowest['engine'])} {slowest['ms_per_sample']:.2f}); the folklore's 'orders of magnitude' "
              f"read as >= {SPEED_FACTOR}x")
    verdict = AGREES if ratio >= SPEED_FACTOR else DISAGREES
    return _row("Speed", cells, [{"claim": SPEED_CLAIM["claim"], "verdict": verdict, "detail": detail}])


def hybrids_row(report: dict) -> dict:
    """The seed's claims about the hybrids, each against a parent, in the numbers of the rows above."""
    q = report.get("quality", {})
    cells = {k: quality_cell(v) for k, v in q.items() if k in registry.FAMILIES and registry.FAMILIES[k].is_hybrid}
    checks = [c for claim, how, hybrid, parent in HYBRID_CLAIMS
              for c in HYBRID_CHECKS[how](report, claim, hybrid, parent)]
    studied = (report.get("seeds") or {}).get("families", {})
    in_seeds = [title(hybrid) for _, how, hybrid, _ in HYBRID_CLAIMS if how == "as_stable_as" and hybrid in studied]
    note = (f"the {' and the '.join(in_seeds)}'s stability: 2-D runs across seeds (its image run is one run, in the "
            "stability row)" if in_seeds else
            "stability of the hybrids: one run each, in the stability row's cells (no verdict)")
    return _row("Hybrids", cells, checks, note)


def as_sharp_as(report: dict, claim: str, hybrid: str, parent: str) -> list[dict]:
    """An equality claim on sharpness: a tie is what agreeing with it looks like; either direction beyond 2 SEs
    refutes it."""
    q = report.get("quality", {})
    if hybrid not in q or parent not in q:
        return []
    a, b = q[hybrid], q[parent]
    outcome = compare(a["sharpness"], b["sharpness"], se_of_difference(a["sharpness_se"], b["sharpness_se"]))
    return [{"claim": claim, "verdict": AGREES if outcome == 0 else DISAGREES,
             "detail": f"sharpness {title(hybrid)} {pm(a['sharpness'], a['sharpness_se'])} vs {title(parent)} "
                       f"{pm(b['sharpness'], b['sharpness_se'])} (the claim holds if they are equal within "
                       f"{TIE_SE:g} SE)"}]


def faster_than(report: dict, claim: str, hybrid: str, parent: str) -> list[dict]:
    """Time per sample against the parent's (extrapolated) 1000-step DDPM, read as >= HYBRID_SPEED_FACTOR."""
    rows = report.get("speed", {}).get("rows", [])
    ours = {r["engine"]: r for r in rows if r["engine"] == hybrid}.get(hybrid)
    ddpm = [r for r in rows if r["engine"] == parent and r.get("sampler") == "ddpm"]
    if not ours or not ddpm:
        return []
    ratio = ddpm[0]["ms_per_sample"] / ours["ms_per_sample"]
    return [{"claim": claim, "verdict": AGREES if ratio >= HYBRID_SPEED_FACTOR else DISAGREES,
             "detail": f"ms/sample {title(parent)} DDPM-{ddpm[0]['steps']} {ddpm[0]['ms_per_sample']:.0f} "
                       f"(extrapolated) = {ratio:.0f}x {title(hybrid)} {ours['ms_per_sample']:.1f} at "
                       f"{ours['nfe']} NFE; read as >= {HYBRID_SPEED_FACTOR}x"}]


def better_than(report: dict, claim: str, hybrid: str, parent: str) -> list[dict]:
    """Frechet distance lower, precision and recall higher than the parent's, in every feature net."""
    q = report.get("quality", {})
    if hybrid not in q or parent not in q:
        return []
    metrics = (Claim(claim, "frechet_distance", ((hybrid, parent),), -1, "FD", digits=1),
               Claim(claim, "precision", ((hybrid, parent),), +1), Claim(claim, "recall", ((hybrid, parent),), +1))
    return [c for m in metrics for c in claim_checks(m, q, quality_metric(m.metric))]


def as_stable_as(report: dict, claim: str, hybrid: str, parent: str) -> list[dict]:
    """"As stable as", on the 2-D ring across seeds: the hybrid's collapse and oscillation rates against its
    parent's. An "as ... as" claim: it holds unless the hybrid's rate is higher beyond 2 SEs of the difference (a
    lower rate is no refutation); the SE pools the two rates (`pooled_rate_se`), since 0 of n has a binomial SE
    of 0."""
    seeds = report.get("seeds") or {}
    studied = seeds.get("families", {})
    if hybrid not in studied or parent not in studied:
        return []
    a, b, n = studied[hybrid], studied[parent], len(seeds["settings"]["seeds"])
    steps = seeds["settings"]["steps"]
    budget = (f" ({steps[hybrid]} vs {steps[parent]} steps)" if isinstance(steps, dict)
              and steps[hybrid] != steps[parent] else "")
    checks = []
    for rate in ("collapse_rate", "oscillation_rate"):
        outcome = compare(a[rate], b[rate], pooled_rate_se(a[rate], b[rate], n, n))
        checks.append({"claim": claim, "verdict": DISAGREES if outcome > 0 else AGREES,
                       "detail": f"2-D {rate.replace('_', ' ')} over {n} seeds{budget}: {title(hybrid)} "
                                 f"{pm(a[rate], a[rate + '_se'])} vs {title(parent)} {pm(b[rate], b[rate + '_se'])} "
                                 f"(the claim holds unless the hybrid's rate is higher beyond {TIE_SE:g} SE)"})
    return checks


HYBRID_CHECKS = {"as_sharp_as": as_sharp_as, "faster_than": faster_than, "as_stable_as": as_stable_as,
                 "better_than": better_than}


def summarise(report: dict) -> list[dict]:
    rows = [objective_row(report), stability_row(report), quality_row(report), likelihood_row(report),
            latent_row(report), speed_row(report)]
    if any(f.name in report.get("quality", {}) for f in registry.families("hybrid")):
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

