"""The seed's comparison table, measured: one row per claim, with a verdict on the folklore.

`summarise(report)` turns the measured sections of report.json into the classic table's six rows (objective,
training stability, sample quality, likelihood, latent space, speed), each with one cell per family and a verdict,
and, where the hybrids were measured, a seventh row for the seed's claims about them.
A row's verdict combines every check of its claims (`uncertainty.combine`): each check compares two measured
numbers and says "agrees", "disagrees" or "tie" (their difference within 2 standard errors); a check made in
both feature nets that comes out differently says "depends on the feature net". Rates of the 2-D seed study are
counts: exact intervals and Fisher's exact test, "cannot say at n seeds" where the test finds nothing, with the
difference n seeds can detect, compared only between families measured alike (`seed_check`: the same weights,
samples and checkpoints; the EMA's rates, with the raw weights' verdicts beside them); claims of sameness need
an equivalence test (TOST) with a stated margin; speed claims compare at matched quality, read from the speed
race (`speed_at_quality`), never with an extrapolated sampler. `report_markdown` renders them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from engines import registry
from engines.family import Family
from engines.measure.uncertainty import (
    AGREES,
    ALPHA,
    CANNOT_SAY,
    DEPENDS,
    DISAGREES,
    RATE_MARGIN,
    RELATIVE_MARGIN,
    check,
    combine,
    compare,
    count_of,
    detectable_text,
    equivalent,
    fisher_p,
    mean_difference_interval,
    normal_p,
    p_text,
    rate_comparison,
    rate_difference_interval,
    rate_text,
    sameness,
    se_of_difference,
)

HYBRID_SPEED_FACTOR = 100   # the card's old target against DDPM-1000 (extrapolated): informational, not a verdict
SPEED_FACTOR = 10   # "orders of magnitude slower" / "far faster": at least this factor, at matched quality
FOLKLORE = {
    "Objective": "VAE: likelihood bound; GAN: adversarial game; diffusion: denoising (a reweighted likelihood bound)",
    "Training stability": "GANs oscillate and can collapse; VAE and diffusion train smoothly",
    "Sample quality": "diffusion best; GAN sharp but less diverse; VAE blurry",
    "Likelihood": "VAE: a bound; GAN: none; diffusion: a bound, or exact via the ODE, and the best of the three",
    "Latent space": "VAE: smooth, with an encoder; GAN: smooth-ish, no encoder; diffusion: no compact latent "
                    "(x_T is image-sized)",
    "Speed": "VAE and GAN: one pass; diffusion: tens to a thousand passes, orders of magnitude slower",
    "Fidelity against diversity": "each family's knob trades diversity for fidelity: the VAE's temperature, the "
                                  "GAN's truncation, diffusion's guidance scale",
    "Ask for a class": "a class-conditional model draws the class it is asked for: its samples read as that class "
                       "about as often as real images of it are (the targets: its family's bar, a share of the "
                       "real test images' own accuracy)",
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
LIKELIHOOD_NOTE = ("GAN none; SE of the difference from per-digit differences. Every number is an upper bound on "
                   "-log2 P(x) of the 8-bit digits: the probability-flow ODE gives an exact density of continuous "
                   "points, not a probability of discrete data, so the lab dequantises with the first diffusion "
                   "step and decodes with the VLB's fixed-variance decoder, which costs even a perfect model the "
                   "floor shown: the decoder's looseness, not the model's limit")
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
    stale = family.likelihood and "note" in summary   # measured before its engine had a likelihood: the note
    if say is not None and not stale:
        return say(summary)
    return {"card": summary["note"], "report": [f"{family.heading}: {summary['note']}."]}


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
    st, measured = report.get("stability", {}), report.get("engines", ())
    cells = {}
    for family in (f for f in registry.families() if f.objective and f.name in measured):
        losses = st.get(family.name, {}).get("losses", {})
        finals = ", ".join(f"{k} {v['end']:.4g}" for k, v in losses.items() if k in ("loss", "d_loss", "g_loss"))
        cells[family.name] = f"{family.objective}; final {finals}" if finals else family.objective
    return _row("Objective", cells, [], "the objectives are definitions (what each training loop minimises, in "
                                        "units that do not compare), not a measured claim",
                verdict="not measured (a definition)")


# ---------------------------------------------------------------- the 2-D seed study, like for like
# A family's record in the study says what it was measured from (`engines.toy.seed_study.measured`); two are
# compared only when these are the same. The steps may differ (a hybrid trains longer, at as many checkpoints).
ALIKE = ("weights", "samples", "checkpoints")
NOT_COMPARED = "not compared: measured unlike"


def measured_of(seeds: dict, name: str, record: dict) -> dict:
    """What family `name`'s `record` in the study `seeds` was measured from: the record's own "measured"; for a
    study made before records said so, what its code did: each family sampled the weights of the playground's
    views (`view_weights`: an EMA for diffusion, the raw weights for the others), on the settings' samples and
    checkpoints."""
    from engines.toy.training import TRAINERS
    if "measured" in record:
        return record["measured"]
    settings = seeds.get("settings", {})
    steps, every = settings.get("steps"), settings.get("check_every")
    if isinstance(steps, dict):
        steps, every = steps.get(name), every.get(name)
    return {"weights": TRAINERS[name].view_weights, "samples": settings.get("samples"),
            "checkpoints": steps // every if steps and every else None}


def seed_records(seeds: dict, sensitivity: bool = False) -> dict[str, dict]:
    """family -> its record with "measured" filled in: the primary records (what verdicts use), or, with
    `sensitivity`, those measured beside them (the raw weights), for the families that have them."""
    if sensitivity:
        return {name: r["sensitivity"] for name, r in seeds.get("families", {}).items() if "sensitivity" in r}
    return {name: {**r, "measured": measured_of(seeds, name, r)} for name, r in seeds.get("families", {}).items()}


def unlike(a: dict, b: dict) -> list[str]:
    """How two "measured" records differ in what a comparison needs alike ([] when they are alike)."""
    return [f"{key} {a.get(key)} vs {b.get(key)}" for key in ALIKE if a.get(key) != b.get(key)]


def seed_check(seeds: dict, claim: str, rate: str, a: str, b: str, judge) -> dict:
    """One comparison of families a and b's `rate` in the 2-D study, `judge(claim, rate, (a, record),
    (b, record), n) -> check`: made on the primary (EMA) records, refused (NOT_COMPARED) when they were measured
    unlike; and made again on the raw-weight records beside them, whose verdict the check keeps under
    "sensitivity" (it never enters the row's verdict: `sensitivity_text` says whether it would change it)."""
    n = len(seeds["settings"]["seeds"])

    def judged(records: dict) -> dict:
        differences = unlike(records[a]["measured"], records[b]["measured"])
        if differences:
            return {"claim": claim, "verdict": NOT_COMPARED,
                    "detail": f"2-D {rate.replace('_', ' ')} {title(a)} vs {title(b)} ({'; '.join(differences)})"}
        return judge(claim, rate, (a, records[a]), (b, records[b]), n)

    out = {**judged(seed_records(seeds)), "compares": [a, b, rate]}
    raw = seed_records(seeds, sensitivity=True)
    if a in raw and b in raw:
        check_raw = judged(raw)
        out["sensitivity"] = {"weights": raw[a]["measured"]["weights"], "verdict": check_raw["verdict"],
                              "detail": check_raw["detail"]}
    return out


def sensitivity_text(checks: list[dict]) -> str:
    """Whether measuring the 2-D study from the raw weights instead changes any of these checks' verdicts
    (said either way, so that no verdict changes silently); "" when no check is of the study."""
    studied = [c for c in checks if "compares" in c]
    if not studied:
        return ""
    both = [c for c in studied if "sensitivity" in c]
    if not both:
        return ("no raw-weight sensitivity in this study (made before every family was measured from the same "
                "kind of weights)")
    changed = [c for c in both if c["sensitivity"]["verdict"] != c["verdict"]]
    head = f"from the {both[0]['sensitivity']['weights']} weights instead of the EMA (sensitivity)"
    if not changed:
        return f"{head}: no verdict changes ({len(both)} checks)"
    return (f"{head}: {len(changed)} of {len(both)} verdicts change: "
            + "; ".join(f"{c['claim']} ({title(c['compares'][0])} vs {title(c['compares'][1])}, "
                        f"{c['compares'][2].replace('_', ' ')}): {c['verdict']} -> {c['sensitivity']['verdict']}"
                        for c in changed))


def seeds_cell(seeds: dict, name: str) -> str:
    """A family's rates in the 2-D seed study: counts with their exact intervals."""
    f, n = seeds["families"][name], len(seeds["settings"]["seeds"])
    return (f"2-D ring, {n} seeds: collapse {rate_text(count_of(f['collapse_rate'], n), n)}, oscillation "
            f"{rate_text(count_of(f['oscillation_rate'], n), n)}")


def rate_check(claim: str, rate: str, a: tuple[str, dict], b: tuple[str, dict], n: int, expected: int) -> dict:
    """"a's `rate` is higher (+1) / lower (-1) than b's" over n seeds each: Fisher's exact test (two-sided,
    alpha 0.05), "cannot say at n seeds" where it finds no difference, and what n seeds can detect (against b's
    observed rate, by exact enumeration of Fisher's test's power)."""
    k_a, k_b = count_of(a[1][rate], n), count_of(b[1][rate], n)
    verdict, p = rate_comparison(k_a, k_b, n, expected)
    detail = (f"2-D {rate.replace('_', ' ')} {title(a[0])} {rate_text(k_a, n)} vs {title(b[0])} "
              f"{rate_text(k_b, n)}, Fisher's exact p = {p:.2f} ({detectable_text(k_b / n, n)})")
    return {"claim": claim, "verdict": verdict, "detail": detail}


NOT_A_REPLICATION = ("the 2-D study does not depend on the dataset: it is the same experiment, with the same "
                     "numbers, as the MNIST report's, not a replication on these images")


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
            cells[name] = cells.get(name, "") + "; " + seeds_cell(seeds, name)
    checks = []
    if seeds:
        studied = seeds["families"]
        worse = STABILITY_CLAIMS["family"]
        for other in (k for k in STABILITY_CLAIMS["than"] if worse in studied and k in studied):
            for rate, claim in STABILITY_CLAIMS["rates"].items():
                checks.append(seed_check(seeds, claim, rate, worse, other, partial(rate_check, expected=+1)))
    note = ("the image checkpoints are one training run per family: they show what happened in that run, not how "
            "often it happens, so the verdict rests on the 2-D runs across seeds")
    if not seeds:
        return _row("Training stability", cells, checks, note.split(", so")[0])
    sensitivity = sensitivity_text(checks)
    note += f"; {sensitivity}" if sensitivity else ""
    if report.get("dataset", "mnist") != "mnist":
        note += "; " + NOT_A_REPLICATION
    return {**_row("Training stability", cells, checks, note), "dataset_independent": True,
            **({"sensitivity": sensitivity} if sensitivity else {})}


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
        checks.append(likelihood_check(claim["claim"], lk, better, than))
    return _row("Likelihood", cells, checks, LIKELIHOOD_NOTE)


def likelihood_check(claim: str, lk: dict, better: Family, than: Family) -> dict:
    """`better`'s tightest bound against `than`'s tightest (the SE from the per-digit differences), naming the
    bound the verdict rests on and what `better`'s other bounds say against the same number."""
    bounds = better.engine.likelihood_bounds(lk[better.name])
    best = min(bounds, key=lambda r: r[1])
    other = than.engine.likelihood_bounds(lk[than.name])[0]
    paired = lk.get(paired_key(better.name, than.name)) or lk.get(paired_key(than.name, better.name)) or {}
    label = f"bits/dim on the same {lk['n']} digits"
    checks = [compared(claim, label, (f"{better.title} ({bound.upper()})", value, se),
                       (f"{than.title} ({other[0].upper()})", *other[1:]), expected=-1, digits=3,
                       se_difference=paired.get(bound, {}).get("se")) for bound, value, se in bounds]
    main = checks[bounds.index(best)]
    rest = [f"{bound.upper()}: {c['verdict']}" for (bound, _, _), c in zip(bounds, checks) if c is not main]
    main["detail"] += (f"; the verdict rests on {title(better.name)}'s {best[0].upper()} bound, its tightest"
                       + (f" (its {', '.join(rest)}, against the same {than.title} bound)" if rest else ""))
    return main


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


def speed_cells(rows: list[dict]) -> dict:
    swept = {f.name for f in registry.families() if f.takes_sampler or f.race_options}   # a row per step count
    cells = {r["engine"]: f"{r['ms_per_sample']:.2f} ms/sample, NFE {r['nfe']}" for r in rows
             if r["engine"] not in swept}
    for name in (n for n in registry.FAMILIES if n in swept and any(r["engine"] == n for r in rows)):
        cells[name] = ", ".join(f"{r['sampler']}-{r['steps']}: {r['ms_per_sample']:.0f} ms"
                                + (" (extrapolated, informational)" if r.get("extrapolated") else "")
                                for r in rows if r["engine"] == name)
    return cells


def speed_row(report: dict, race: tuple) -> dict:
    rows = report.get("speed", {}).get("rows", [])
    cells = speed_cells(rows)
    slow = SPEED_CLAIM["slow"]
    checks = [c for fast in SPEED_CLAIM["one_pass"]
              if (c := speed_at_quality(report, SPEED_CLAIM["claim"], slow, fast, race)) is not None]
    if not checks:
        return _row("Speed", cells, [], f"{title(slow)} and a one-pass family not both measured")
    return _row("Speed", cells, checks, "the extrapolated 1000-step DDPM of the speed table is informational: no "
                                        "verdict uses it")


def knobs_row(report: dict) -> dict:
    """Each family's fidelity-diversity knob, from the sweep of the shipped weights (`engines.measure.knobs`)."""
    from engines.measure.knobs import sweep_for, verdicts
    sweep = sweep_for(report.get("dataset", "mnist"))
    if sweep is None:
        return _row("Fidelity against diversity", {}, [], "not measured on these weights (python -m "
                    "engines.knob_sweep)", verdict="not measured")
    checks = verdicts(sweep)
    cells = {c["family"]: c["cell"] for c in checks}
    return _row("Fidelity against diversity", cells, checks,
                f"each from the model as trained to the knob's far end, {sweep['n']} samples a setting")


def asked_cell(record: dict) -> str:
    """A conditional family's accuracy in each net: the share read as the class asked, relative to the real
    test images' own."""
    return "; ".join(f"[{net}] {record['samples'][net]['accuracy']:.1%} read as asked, "
                     f"{pm(r['accuracy'], r['accuracy_se'])} of the real images' "
                     f"{record['real'][net]['accuracy']:.1%}" for net, r in record["relative"].items())


def asked_row(report: dict) -> dict:
    """Each conditional family's samples read as the class asked, relative to the real test images' own accuracy
    (`engines.measure.conditional`), against its bar (`Family.quality_bar`) in every feature net: "agrees" above
    it beyond 2 SE, "disagrees" below it beyond 2 SE, "tie" within the noise of the bar."""
    from engines.measure.conditional import measured
    bars = {name: registry.family(name).quality_bar for name in measured(report)}
    records = {name: record for name, record in measured(report).items() if bars[name] is not None}
    cells = {name: asked_cell(record) for name, record in records.items()}
    checks = [across_nets({net: compared(f"{title(name)} draws the class asked", "class asked, relative to real",
                                         (name, r["accuracy"], r["accuracy_se"]), ("its bar", bars[name], None), +1,
                                         se_difference=r["accuracy_se"])   # the bar is exact
                           for net, r in record["relative"].items()})
              for name, record in records.items()]
    return _row("Ask for a class", cells, checks, f"{report['n']} samples per family, each class asked in turn")


def speed_at_quality(report: dict, claim: str, slow: str, fast: str, race: tuple) -> dict | None:
    """`slow` at least SPEED_FACTOR times slower than `fast` at matched quality, read from the speed race (`race`:
    (it, "") or (None, why there is none)): the fewest network evaluations (NFE) at which one of `slow`'s raced
    solvers reaches `fast`'s Frechet distance in every feature net (same n, seed and reference), against the most
    at which none did (`speed_race.fewest_reaching`); each timed as NFE x `slow`'s cost of one evaluation in the
    report's speed section, against `fast`'s time there. The verdict reads the two bounds; the floor of one
    evaluation (a solver the race does not run) is said beside them."""
    from engines.measure.speed_race import fewest_reaching, ms_per_evaluation
    per_evaluation = ms_per_evaluation(report).get(slow)
    ours = next((r for r in report.get("speed", {}).get("rows", []) if r["engine"] == fast), None)
    if per_evaluation is None or ours is None:
        return None
    said = f"to reach the {title(fast)}'s Frechet distance in every feature net"
    if not race[0]:
        return {"claim": claim, "verdict": f"{CANNOT_SAY}: no quality-matched measurement",
                "detail": f"{said}: {race[1]}"}
    best, none_below = fewest_reaching(race[0], slow, fast)
    ms = ours["ms_per_sample"]
    if best is None:
        return never_reached(claim, said, slow, fast, race[0], none_below, per_evaluation, ms)
    upper, lower, floor = (best["nfe"] * per_evaluation / ms, (none_below + 1) * per_evaluation / ms,
                           per_evaluation / ms)
    verdict = AGREES if lower >= SPEED_FACTOR else DISAGREES if upper < SPEED_FACTOR else CANNOT_SAY
    nets = ", ".join(f"{net} {v['frechet_distance']:.1f} vs {race_point(race[0], fast)[net]:.1f}"
                     for net, v in best["frechet_by_net"].items())
    detail = (f"{said} (the speed race, n = {race[0]['n']} each) the {title(slow)} model needs {best['nfe']} NFE "
              f"({best['line']}-{best['options']['steps']}: FD {nets})"
              + (f", and at {none_below} NFE or fewer each of its raced solvers is worse beyond 2 SE"
                 if none_below else "")
              + f": {best['nfe'] * per_evaluation:.1f} ms/sample vs the {title(fast)}'s {ms:.2f} ms, between "
              f"{lower:.1f}x and {upper:.1f}x ({per_evaluation:.2f} ms per evaluation, the report's speed section, "
              f"batch {report['speed']['batch']}, one run); read as >= {SPEED_FACTOR}x. A solver the race does not "
              f"run might need fewer evaluations: at one, {floor:.1f}x")
    return {"claim": claim, "verdict": verdict, "detail": detail}


def never_reached(claim: str, said: str, slow: str, fast: str, race: dict, none_below: int,
                  per_evaluation: float, ms: float) -> dict:
    """No raced solver of `slow` reaches `fast`'s point: a lower bound only, from the most evaluations at which
    every one was worse beyond 2 SE. Matched quality, if `slow` reaches it at all, costs more than those: agrees
    when even they take SPEED_FACTOR times `fast`'s time (within it, `slow` is worse beyond the noise)."""
    most = max(race["nfe_targets"])
    if not none_below:
        return {"claim": claim, "verdict": f"{CANNOT_SAY}: no quality-matched measurement",
                "detail": f"{said}: no raced solver of the {title(slow)} model reaches it (up to {most} "
                          f"evaluations), or the race has no {title(fast)} point"}
    lower = (none_below + 1) * per_evaluation / ms
    return {"claim": claim, "verdict": AGREES if lower >= SPEED_FACTOR else CANNOT_SAY,
            "detail": f"{said} (the speed race, n = {race['n']} each): no raced solver of the {title(slow)} model "
                      f"reaches it (up to {most} evaluations), and at {none_below} NFE or fewer each is worse beyond "
                      f"2 SE: matched quality, if it is reached at all, costs at least {none_below + 1} evaluations, "
                      f"{(none_below + 1) * per_evaluation:.1f} ms/sample vs the {title(fast)}'s {ms:.2f} ms: at "
                      f"least {lower:.1f}x ({per_evaluation:.2f} ms per evaluation, the report's speed section); "
                      f"read as >= {SPEED_FACTOR}x (a lower bound only)"}


def race_point(race: dict, name: str) -> dict[str, float]:
    """The Frechet distance per feature net of `name`'s entry in the race (its point)."""
    row = next(r for r in race["rows"] if r["engine"] == name)
    return {net: v["frechet_distance"] for net, v in row["frechet_by_net"].items()}


def hybrids_row(report: dict, race: tuple) -> dict:
    """The seed's claims about the hybrids, each against a parent, in the numbers of the rows above."""
    q = report.get("quality", {})
    cells = {k: quality_cell(v) for k, v in q.items() if k in registry.FAMILIES and registry.FAMILIES[k].is_hybrid}
    checks = [c for claim, how, hybrid, parent in HYBRID_CLAIMS
              for c in HYBRID_CHECKS[how](report, claim, hybrid, parent, race)]
    studied = (report.get("seeds") or {}).get("families", {})
    in_seeds = [title(hybrid) for _, how, hybrid, _ in HYBRID_CLAIMS if how == "as_stable_as" and hybrid in studied]
    note = (f"the {' and the '.join(in_seeds)}'s stability: 2-D runs across seeds (its image run is one run, in the "
            "stability row)" if in_seeds else
            "stability of the hybrids: one run each, in the stability row's cells (no verdict)")
    sensitivity = sensitivity_text(checks)
    note += f"; {sensitivity}" if sensitivity else ""
    return {**_row("Hybrids", cells, checks, note), **({"sensitivity": sensitivity} if sensitivity else {})}


def as_sharp_as(report: dict, claim: str, hybrid: str, parent: str, race: tuple = (None, "")) -> list[dict]:
    """An equality claim on sharpness: agrees only when two one-sided tests (Schuirmann 1987; normal SEs, the 90%
    interval of the difference) put the difference within RELATIVE_MARGIN of the parent's value; disagrees
    when the difference is significant (two-sided, alpha 0.05); else cannot say."""
    q = report.get("quality", {})
    if hybrid not in q or parent not in q:
        return []
    a, b = q[hybrid], q[parent]
    se = se_of_difference(a["sharpness_se"], b["sharpness_se"])
    margin = RELATIVE_MARGIN * abs(b["sharpness"])
    low, high = mean_difference_interval(a["sharpness"], b["sharpness"], se)
    p = normal_p(a["sharpness"], b["sharpness"], se)
    return [{"claim": claim, "verdict": sameness(equivalent((low, high), margin), p),
             "detail": f"sharpness {title(hybrid)} {pm(a['sharpness'], a['sharpness_se'])} vs {title(parent)} "
                       f"{pm(b['sharpness'], b['sharpness_se'])}: difference 90% CI {low:+.3f} to {high:+.3f}, "
                       f"equivalence margin ±{margin:.3f} ({RELATIVE_MARGIN:.0%} of the {title(parent)}'s; TOST, "
                       f"alpha {ALPHA:g}); two-sided {p_text(p)}"}]


def faster_than(report: dict, claim: str, hybrid: str, parent: str, race: tuple = (None, "")) -> list[dict]:
    """Far faster than the parent at matched quality (`speed_at_quality`), never against an extrapolated
    sampler."""
    check_ = speed_at_quality(report, claim, parent, hybrid, race)
    return [check_] if check_ is not None else []


def better_than(report: dict, claim: str, hybrid: str, parent: str,
                race: tuple = (None, "")) -> list[dict]:
    """Frechet distance lower, precision and recall higher than the parent's, in every feature net."""
    q = report.get("quality", {})
    if hybrid not in q or parent not in q:
        return []
    metrics = (Claim(claim, "frechet_distance", ((hybrid, parent),), -1, "FD", digits=1),
               Claim(claim, "precision", ((hybrid, parent),), +1), Claim(claim, "recall", ((hybrid, parent),), +1))
    return [c for m in metrics for c in claim_checks(m, q, quality_metric(m.metric))]


def as_stable_as(report: dict, claim: str, hybrid: str, parent: str,
                 race: tuple = (None, "")) -> list[dict]:
    """"As stable as", on the 2-D ring across seeds: the hybrid's collapse and oscillation rates against its
    parent's. Agrees when two one-sided tests (Schuirmann 1987) put the difference within RATE_MARGIN (the 90%
    Newcombe interval of the difference inside ±margin), or when the hybrid's rate is significantly lower (a
    more stable hybrid is as stable); disagrees when it is significantly higher (Fisher's exact test); else
    "cannot say at n seeds". Like every comparison in the study (`seed_check`): on the EMA records, refused when
    the two were measured unlike, and again on the raw weights beside them."""
    seeds = report.get("seeds") or {}
    studied = seeds.get("families", {})
    if hybrid not in studied or parent not in studied:
        return []
    steps = seeds["settings"]["steps"]
    budget = (f" ({steps[hybrid]} vs {steps[parent]} steps)" if isinstance(steps, dict)
              and steps[hybrid] != steps[parent] else "")
    return [seed_check(seeds, claim, rate, hybrid, parent, partial(stable_check, budget=budget))
            for rate in ("collapse_rate", "oscillation_rate")]


def stable_check(claim: str, rate: str, a: tuple[str, dict], b: tuple[str, dict], n: int, budget: str = "") -> dict:
    """"a's `rate` is as low as b's" over n seeds each (`as_stable_as`)."""
    (hybrid, record_a), (parent, record_b) = a, b
    k_a, k_b = count_of(record_a[rate], n), count_of(record_b[rate], n)
    low, high = rate_difference_interval(k_a, n, k_b, n)
    p = fisher_p(k_a, n, k_b, n)
    verdict = AGREES if k_a < k_b and p <= ALPHA else sameness(equivalent((low, high), RATE_MARGIN), p,
                                                               f"{CANNOT_SAY} at {n} seeds")
    return {"claim": claim, "verdict": verdict,
            "detail": f"2-D {rate.replace('_', ' ')} over {n} seeds{budget}: {title(hybrid)} "
                      f"{rate_text(k_a, n)} vs {title(parent)} {rate_text(k_b, n)}: difference 90% CI "
                      f"{low:+.2f} to {high:+.2f} (Newcombe), equivalence margin ±{RATE_MARGIN:.2f} "
                      f"(TOST, alpha {ALPHA:g}); Fisher's exact p = {p:.2f} "
                      f"({detectable_text(k_b / n, n)})"}


HYBRID_CHECKS = {"as_sharp_as": as_sharp_as, "faster_than": faster_than, "as_stable_as": as_stable_as,
                 "better_than": better_than}


def summarise(report: dict, race: tuple | None = None) -> list[dict]:
    """The rows of the comparison table. `race`: (the speed race the speed claims read from, "") or (None, why
    there is none); by default the committed one of the report's dataset, where it is of the shipped weights."""
    if race is None:
        from engines.measure.speed_race import race_for
        race = race_for(report)
    rows = [objective_row(report), stability_row(report), quality_row(report), likelihood_row(report),
            latent_row(report), speed_row(report, race), knobs_row(report)]
    if any(f.name in report.get("quality", {}) for f in registry.families("hybrid")):
        rows.append(hybrids_row(report, race))
    if any("conditional" in row for row in report.get("quality", {}).values()):
        rows.append(asked_row(report))
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

