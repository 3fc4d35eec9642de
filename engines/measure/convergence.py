"""Converged, or stopped at budget: what a shipped model's own training scores say.

A run scored with `--eval-every` logs each checkpoint's Frechet distance ± SE in every feature net
(`quality_log.jsonl`). The model is "converged" when its last three scored checkpoints tie, each two within 2
standard errors of their difference, in every net; otherwise it "stopped at budget" (still moving, one way or the
other, when training ended). Converged is a claim its scores must show: a run whose last checkpoints were not
scored with standard errors in both nets (runs scored before the lab measured them) is read as stopped at budget,
with that reason ("shown": False), until a replay (`engines.replay`) scores them.
"""
from __future__ import annotations

from itertools import combinations

from engines.measure.uncertainty import TIE_SE, compare, se_of_difference

CONVERGED, AT_BUDGET = "converged", "stopped at budget"
LAST = 3   # scored checkpoints that must tie


def convergence(rows: list[dict]) -> dict:
    """The status of a run from its quality log rows: {"status", "steps" (the checkpoints read), "detail",
    "shown" (False where its log cannot show whether it converged)}."""
    rows = sorted(rows, key=lambda r: r["step"])
    last = rows[-LAST:]   # the run's last checkpoints: early ones scored later (engines.replay) say nothing here
    scored = [r for r in last if len(r.get("frechet_by_net", {})) >= 2]
    if len(scored) < LAST:
        return {"status": AT_BUDGET, "steps": [r["step"] for r in scored], "shown": False,
                "detail": f"not shown converged: its last {LAST} scored checkpoints were not all scored with standard "
                          f"errors in both feature nets ({len(scored)} of the last {len(last)}; "
                          f"{sum(len(r.get('frechet_by_net', {})) >= 2 for r in rows)} of {len(rows)} in all), so "
                          "nothing shows that they tie"}
    moved = {}
    for net in last[0]["frechet_by_net"]:
        for a, b in combinations(last, 2):
            x, y = a["frechet_by_net"][net], b["frechet_by_net"][net]
            if compare(y["frechet_distance"], x["frechet_distance"],
                       se_of_difference(x["frechet_distance_se"], y["frechet_distance_se"])):
                moved.setdefault(net, (a, b))
    trail = "; ".join(f"[{net}] " + ", ".join(
        f"{r['frechet_by_net'][net]['frechet_distance']:.3g} ± {r['frechet_by_net'][net]['frechet_distance_se']:.2g}"
        for r in last) for net in last[0]["frechet_by_net"])
    steps = [r["step"] for r in last]
    if not moved:
        falling = all(all(a["frechet_by_net"][net]["frechet_distance"] > b["frechet_by_net"][net]["frechet_distance"]
                          for a, b in zip(last, last[1:])) for net in last[0]["frechet_by_net"])
        return {"status": CONVERGED, "steps": steps, "shown": True, "still_falling": falling,
                "detail": f"the Frechet distances of its last {LAST} scored checkpoints (steps "
                          f"{', '.join(map(str, steps))}) tie within {TIE_SE:g} SE in every feature net: {trail}"
                          + ("; though each is below the one before in every net: a slow descent inside the noise, "
                             "which more or larger scores could tell from a plateau" if falling else "")}
    net, (a, b) = next(iter(moved.items()))
    return {"status": AT_BUDGET, "steps": steps, "shown": True,
            "detail": f"its Frechet distance still moved beyond {TIE_SE:g} SE among its last {LAST} scored "
                      f"checkpoints (in {net}, step {a['step']} to step {b['step']}): {trail}"}


def convergence_line(rows: list[dict]) -> str:
    """The card's line."""
    result = convergence(rows)
    return f"Training: {result['status']}: {result['detail']}."
