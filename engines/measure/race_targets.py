"""The lab's speed targets, read from the speed race and the report's straightness section, and printed by
`python -m engines.speed_race` (targets of a benchmark, not timed tests).

1. Flow matching at 10 evaluations (its Euler-10 or Heun-9, the better per feature net) is no worse than the best
   10-evaluation diffusion solver: its Frechet distance at most 2 SE of the difference above, in every net.
2. Reflow at 2 evaluations beats DDIM at 10: lower beyond 2 SE in every net.
3. Straightness orders diffusion's probability-flow ODE > flow > reflow, each difference beyond 2 SE (path by
   path where the report paired them).
4. The diffusion GAN sits on the speed-quality frontier: at its network evaluations its Frechet distance is below
   every diffusion sampler's that is as fast or faster (as few evaluations), beyond 2 SE in every net.

Each says "met", "not met" or "not measured" (a family that does not ship, or an entry the race lacks), with the
numbers. The families are named here as data, as the seed's claims are in `verdicts`.
"""
from __future__ import annotations

from engines.measure.uncertainty import TIE_SE, se_of_difference

MET, NOT_MET, NOT_MEASURED = "met", "not met", "not measured"
BUDGET = 10   # network evaluations of target 1 (and of DDIM in target 2)
NO_WORSE = {"target": f"flow matching at {BUDGET} evaluations no worse than the best {BUDGET}-evaluation "
                      "diffusion solver", "a": "flow", "b": "diffusion", "nfe": BUDGET}
BEATS = {"target": f"reflow at 2 evaluations beats DDIM at {BUDGET}", "a": ("reflow", 2),
         "b": ("diffusion", "ddim", BUDGET)}
FRONTIER = {"target": "the diffusion GAN on the speed-quality frontier: below every diffusion sampler as fast or "
                      "faster", "a": "diffusion_gan", "a_title": "diffusion GAN", "b": "diffusion"}
STRAIGHTER = {"target": "straightness: diffusion's PF-ODE > flow matching > reflow",
              "order": ("diffusion", "flow", "reflow")}


def best_within(race: dict, engine: str, nfe: int, net: str, line: str | None = None) -> dict | None:
    """`engine`'s raced entry at the most evaluations not over `nfe` (per line), the lowest distance in `net`."""
    rows = [r for r in race["rows"] if r["engine"] == engine and r.get("line") and (line is None or r["line"] == line)
            and r["nfe"] <= nfe]
    top = {r["line"]: max(o["nfe"] for o in rows if o["line"] == r["line"]) for r in rows}
    rows = [r for r in rows if r["nfe"] == top[r["line"]]]
    return min(rows, key=lambda r: r["frechet_by_net"][net]["frechet_distance"], default=None)


def fd(row: dict, net: str) -> tuple[float, float]:
    v = row["frechet_by_net"][net]
    return v["frechet_distance"], v["frechet_distance_se"]


def described(row: dict, net: str) -> str:
    value, se = fd(row, net)
    return f"{row['line']}-{row['options']['steps']} ({row['nfe']} NFE) {value:.2f} ± {se:.2f}"


def no_worse(race: dict | None) -> dict:
    t = NO_WORSE
    nets = list(race["rows"][0]["frechet_by_net"]) if race and race["rows"] else []
    pairs = {net: (best_within(race, t["a"], t["nfe"], net), best_within(race, t["b"], t["nfe"], net)) for net in nets}
    if not pairs or any(a is None or b is None for a, b in pairs.values()):
        return {**_head(t), "verdict": NOT_MEASURED, "detail": f"the race has no {t['a']} or {t['b']} entries at "
                                                               f"{t['nfe']} evaluations or fewer"}
    parts, met = [], True
    for net, (a, b) in pairs.items():
        (fa, sa), (fb, sb) = fd(a, net), fd(b, net)
        margin = TIE_SE * se_of_difference(sa, sb)
        met &= fa - fb <= margin
        parts.append(f"[{net}] flow {described(a, net)} vs diffusion {described(b, net)}: difference {fa - fb:+.2f}, "
                     f"2 SE {margin:.2f}")
    return {**_head(t), "verdict": MET if met else NOT_MET, "detail": "; ".join(parts)}


def beats(race: dict | None) -> dict:
    t = BEATS
    (a_name, a_nfe), (b_name, b_line, b_nfe) = t["a"], t["b"]
    rows = race["rows"] if race else []
    a = next((r for r in rows if r["engine"] == a_name and r["nfe"] == a_nfe), None)
    b = next((r for r in rows if r["engine"] == b_name and r.get("line") == b_line and r["nfe"] == b_nfe), None)
    if a is None or b is None:
        missing = a_name if a is None else f"{b_name} {b_line}"
        return {**_head(t), "verdict": NOT_MEASURED, "detail": f"the race has no {missing} entry at "
                                                               f"{a_nfe if a is None else b_nfe} evaluations"}
    parts, met = [], True
    for net in a["frechet_by_net"]:
        (fa, sa), (fb, sb) = fd(a, net), fd(b, net)
        margin = TIE_SE * se_of_difference(sa, sb)
        met &= fb - fa > margin
        reading = "lower" if fb - fa > margin else "higher" if fa - fb > margin else "a tie"
        parts.append(f"[{net}] {a_name} {described(a, net)} vs {b_name} {described(b, net)}: "
                     f"difference {fa - fb:+.2f}, 2 SE {margin:.2f} ({reading})")
    return {**_head(t), "verdict": MET if met else NOT_MET, "detail": "; ".join(parts)}


def frontier(race: dict | None) -> dict:
    """Target 4: the entry of `a` against each of `b`'s entries at as many evaluations or fewer, in every net;
    where it is not met, the entries it does not beat, with the differences (by how much it misses)."""
    t = FRONTIER
    rows = race["rows"] if race else []
    a = next((r for r in rows if r["engine"] == t["a"]), None)
    rivals = [r for r in rows if a is not None and r["engine"] == t["b"] and r.get("line") and r["nfe"] <= a["nfe"]]
    if a is None or not rivals:
        return {**_head(t), "verdict": NOT_MEASURED, "detail": f"the race has no {t['a_title']} entry, or no "
                                                               f"{t['b']} entry as fast"}
    parts, met = [], True
    for net in a["frechet_by_net"]:
        fa, sa = fd(a, net)
        unbeaten = [(r, fa - fd(r, net)[0], TIE_SE * se_of_difference(sa, fd(r, net)[1])) for r in rivals]
        unbeaten = [(r, difference, margin) for r, difference, margin in unbeaten if -difference <= margin]
        met &= not unbeaten
        head = f"[{net}] {t['a_title']} ({a['nfe']} NFE) {fa:.2f} ± {sa:.2f}"
        if unbeaten:
            parts.append(head + " does not beat " + ", ".join(
                f"{t['b']} {described(r, net)} (difference {difference:+.2f}, 2 SE {margin:.2f}: "
                f"{'a tie' if difference <= margin else 'higher'})" for r, difference, margin in unbeaten))
        else:
            best = min(rivals, key=lambda r: fd(r, net)[0])
            parts.append(head + f" is below all {len(rivals)} {t['b']} entries as fast, the best of them "
                                f"{described(best, net)}")
    return {**_head(t), "verdict": MET if met else NOT_MET, "detail": "; ".join(parts)}


def straighter(report: dict) -> dict:
    t = STRAIGHTER
    section = report.get("straightness") or {}
    shown = [name for name in t["order"] if name in section]
    parts, met = [], True
    for more, less in zip(t["order"], t["order"][1:]):
        if more not in section or less not in section:
            continue
        paired = section.get(f"{less}_minus_{more}")
        if paired:
            difference, se, how = paired["mean"], paired["se"], "path by path"
        else:
            a, b = section[less], section[more]
            difference, se, how = (a["per_pixel"] - b["per_pixel"],
                                   se_of_difference(a["per_pixel_se"], b["per_pixel_se"]), "independent")
        met &= difference < -TIE_SE * se
        parts.append(f"{less} minus {more} {difference:+.4f} ± {se:.4f} ({how})")
    values = [f"{name} {section[name]['per_pixel']:.4f} ± {section[name]['per_pixel_se']:.4f}" for name in shown]
    missing = [name for name in t["order"] if name not in section]
    verdict = NOT_MEASURED if missing else MET if met else NOT_MET
    return {**_head(t), "verdict": verdict,
            "detail": "; ".join(([", ".join(values)] if values else []) + parts
                                + ([f"not in the report: {', '.join(missing)}"] if missing else []))}


def _head(target: dict) -> dict:
    return {"target": target["target"]}


def targets(race: dict | None, report: dict) -> list[dict]:
    """The four targets, each {"target", "verdict", "detail"}."""
    return [no_worse(race), beats(race), straighter(report), frontier(race)]


def targets_text(race: dict | None, report: dict) -> str:
    """The targets as Markdown lines (the command prints them; Compare shows them under the race)."""
    return "\n".join(f"- **{t['target']}: {t['verdict']}.** {t['detail']}" for t in targets(race, report))
