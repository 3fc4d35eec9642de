"""Quality against training compute: each shipped model's own training scores (`quality_log.jsonl`) on an axis
of training FLOPs (`training_info.json`'s compute record), so that families trained with unequal budgets can be
read side by side, and at equal compute.

x: the FLOPs spent to reach each scored checkpoint: the run's own (each phase's FLOPs per step times its steps,
`engines.training.compute`), plus, for a model built on a trained parent (its record's `parent_options`: reflow
on the flow, latent diffusion on the VAE, the diffusion GAN and the conditional models on theirs), the parent's
whole training. Work outside training steps (reflow's couplings) is not counted.
y: the Frechet distance in each feature net, ± its SE where the run measured one. Older runs logged the lab
net's distance alone, from fewer samples and without an SE: they are drawn, and never read for a verdict.

The equal-compute reading takes the largest budget every family reached and each family's last checkpoint
scored with SEs in every net at or below it; where a family has none, it cannot say. A model whose parent's
training alone reaches that budget has no checkpoint there by construction: it is set aside, and said so. The
class-conditional families are read apart from the others: told which class each sample is of, they do another
task (their samples are class-balanced by construction), so a lower distance there says nothing about a family.
"""
from __future__ import annotations

import json
from itertools import groupby
from pathlib import Path

from engines.checkpoint import QUALITY_LOG_NAME, checkpoints_dir
from engines.measure.uncertainty import TIE_SE, compare, se_of_difference
from engines.registry import FAMILIES, available_engines, families

LAB_NET = "lenet"   # the net older logs scored in


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def flops_at(compute: dict, step: int) -> float:
    """Training FLOPs after `step` steps of a run whose phases start at the keys of compute["flops_by_phase"]
    (each worth its value per step)."""
    phases = sorted((int(start), per_step) for start, per_step in compute["flops_by_phase"].items())
    total = 0.0
    for (start, per_step), (end, _) in zip(phases, phases[1:] + [(step, 0.0)]):
        total += per_step * max(0, min(step, end) - start)
    return total


def total_flops(directory: Path) -> float | None:
    info = directory / "training_info.json"
    compute = json.loads(info.read_text()).get("compute") if info.is_file() else None
    return compute["flops"] if compute else None


def parent_flops(root: Path, family) -> float:
    """The training FLOPs of the parent `family`'s shipped model was built on: the parent as the run recorded it
    (`engines.training.lineage`; a parent shipped anew since has other compute), else the parent shipped now."""
    parent = next(iter(family.parent_options.values()), None)
    if parent is None:
        return 0.0
    info = root / family.name / "training_info.json"
    recorded = (json.loads(info.read_text()) if info.is_file() else {}).get("parent") or {}
    if recorded.get("flops") is not None:
        return recorded["flops"]
    return total_flops(root / parent) or 0.0


def curve(directory: Path, offset: float = 0.0) -> list[dict]:
    """[{"step", "flops", "n" (samples scored), "nets": {net: {"frechet_distance", "frechet_distance_se" (None: not
    measured)}}}] of one
    shipped checkpoint's scored log; [] where it has no compute record or no scores."""
    info = directory / "training_info.json"
    compute = json.loads(info.read_text()).get("compute") if info.is_file() else None
    if not compute:
        return []
    points = []
    for row in read_jsonl(directory / QUALITY_LOG_NAME):
        nets = row.get("frechet_by_net") or {LAB_NET: {"frechet_distance": row["frechet_distance"],
                                                       "frechet_distance_se": None}}
        points.append({"step": row["step"], "flops": offset + flops_at(compute, row["step"]), "n": row.get("n"),
                       "nets": nets})
    return points


def curves(dataset: str) -> dict[str, dict]:
    """{family: {"points": curve, "parent": its parent's name or None, "parent_flops"}} for every shipped family
    with a compute record and a scored log, in registry order."""
    root = checkpoints_dir(dataset)
    shipped = set(available_engines(root))
    out = {}
    for family in (f for f in families() if f.name in shipped):
        parent = next(iter(family.parent_options.values()), None)
        offset = parent_flops(root, family)
        points = curve(root / family.name, offset)
        if points:
            out[family.name] = {"points": points, "parent": parent, "parent_flops": offset}
    return out


def _title(name: str) -> str:
    return FAMILIES[name].title if name in FAMILIES else name


def sample_sizes(by_family: dict[str, dict], with_se: bool) -> list[int]:
    """The sample sizes of the scored checkpoints with SEs in every net (`with_se`) or without."""
    return sorted({p["n"] for c in by_family.values() for p in c["points"] if p["n"] and with_se == all(
        v["frechet_distance_se"] is not None for v in p["nets"].values())})


def equal_compute(by_family: dict[str, dict]) -> dict:
    """The unconditional families read at the largest budget all of them reached: {"budget", "at": {family: point
    or None}, "beyond": [families], "verdicts": {net: text}}. A model built on a parent whose training alone reaches the
    budget (reflow after the flow) cannot be read there: it is set aside in "beyond", not counted as missing. A
    family with no checkpoint scored with SEs in every net by then: None, and the reading "cannot say" for every
    net."""
    by_family = {name: c for name, c in by_family.items() if not (name in FAMILIES and FAMILIES[name].conditional)}
    if not by_family:
        return {"budget": None, "at": {}, "beyond": [], "verdicts": {}}
    budget = min(c["points"][-1]["flops"] for c in by_family.values())
    beyond = [name for name, c in by_family.items() if c.get("parent_flops", 0.0) >= budget * (1 - 1e-9)]
    at = {}
    for name, c in by_family.items():
        if name in beyond:
            continue
        scored = [p for p in c["points"] if p["flops"] <= budget * (1 + 1e-9)
                  and all(v["frechet_distance_se"] is not None for v in p["nets"].values()) and len(p["nets"]) > 1]
        at[name] = scored[-1] if scored else None
    missing = [name for name, p in at.items() if p is None]
    if missing:
        why = f"cannot say: no checkpoint scored with SEs in both nets by then for {', '.join(map(_title, missing))}"
        return {"budget": budget, "at": at, "beyond": beyond, "verdicts": {"every net": why}}
    verdicts = {}
    for net in next(iter(at.values()))["nets"]:
        best = min(at, key=lambda n: at[n]["nets"][net]["frechet_distance"])
        b = at[best]["nets"][net]
        ties = [n for n in at if n != best and not compare(
            at[n]["nets"][net]["frechet_distance"], b["frechet_distance"],
            se_of_difference(at[n]["nets"][net]["frechet_distance_se"], b["frechet_distance_se"]), TIE_SE)]
        verdicts[net] = _title(best) + (f", tied within {TIE_SE:g} SE with {', '.join(map(_title, ties))}"
                                        if ties else "")
    return {"budget": budget, "at": at, "beyond": beyond, "verdicts": verdicts}


def reading_text(reading: dict) -> str:
    """The equal-compute reading in words (report.md's and Compare's): the budget, the lowest Frechet distance per
    net, where each family is read, and what is left out."""
    verdicts = "; ".join(f"[{net}] {text}" for net, text in reading["verdicts"].items())
    read = [f"{_title(name)} step {p['step']:,} ({p['flops']:.3g})" for name, p in reading["at"].items() if p]
    read_at = (" Each family is read at its last checkpoint scored with SEs in both nets at or below that budget "
               "(its scored checkpoints fall where they fall: a family read below the budget is read with less "
               "compute than it): " + ", ".join(read) + "." if read else "")
    beyond = (f" Not read there: {', '.join(map(_title, reading['beyond']))}, each built on a parent whose "
              "training alone reaches that budget." if reading["beyond"] else "")
    return (f"At equal compute (the largest budget every family not told the class reached, "
            f"{reading['budget']:.3g} FLOPs), the lowest Frechet distance: {verdicts}.{read_at}{beyond} The "
            "class-conditional families are not read against the others: told each sample's class, they do another "
            "task.")


def figure(by_family: dict[str, dict], nets=(LAB_NET, "allconv")):
    """One panel per feature net: Frechet distance (± SE where measured) against training FLOPs, log-log, a line
    per family in its colour; a run's own training starts where its parent's ended (marked by its first point),
    and a line without error bars was scored without them (older runs, the lab net only)."""
    from matplotlib.figure import Figure

    from engines.registry import family as family_record
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, len(nets), squeeze=False)[0]
    for ax, net in zip(axes, nets):
        for name, c in by_family.items():
            points = [p for p in c["points"] if net in p["nets"]]
            if not points:
                continue
            record = family_record(name)
            label = record.heading + (f" (after its {family_record(c['parent']).title})" if c["parent"] else "")
            # Scored with an SE (solid, with its bars) or without (dashed): one run's log can hold both, where a
            # replay (engines.replay) scored its beginning again.
            for with_se, segment in groupby(points, key=lambda p: p["nets"][net]["frechet_distance_se"] is not None):
                segment = list(segment)
                values = [p["nets"][net] for p in segment]
                ax.errorbar([p["flops"] for p in segment], [v["frechet_distance"] for v in values],
                            yerr=[v["frechet_distance_se"] or 0.0 for v in values], color=record.colour, marker="o",
                            markersize=3, capsize=2, label=label, linestyle="-" if with_se else "--")
                label = None   # one legend entry a family
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training FLOPs (forward + backward, every network trained)", fontsize=8)
        ax.set_ylabel(f"Frechet distance ({net} features)", fontsize=8)
        ax.set_title(f"Quality against training compute, {net} net", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=6, loc="lower left")
    return fig


def frames_by_compute(dataset: str) -> dict[str, list[tuple[float, int, Path]]]:
    """{family: [(training FLOPs, step, frame)]}: each shipped model's time-lapse frames (`engines.training.
    timelapse`) on the same axis of training compute as its scores, for the families that kept any."""
    from engines.training.timelapse import frames
    root = checkpoints_dir(dataset)
    out = {}
    for family in (f for f in families() if f.name in set(available_engines(root))):
        info = root / family.name / "training_info.json"
        compute = json.loads(info.read_text()).get("compute") if info.is_file() else None
        kept = frames(root / family.name)
        if compute and kept:
            offset = parent_flops(root, family)
            out[family.name] = [(offset + flops_at(compute, step), step, path) for step, path in kept]
    return out


def frames_at(by_family: dict[str, list[tuple[float, int, Path]]], flops: float) -> dict[str, tuple | None]:
    """Each family's last frame at or below `flops` training FLOPs (None: it had kept none by then)."""
    return {name: next((f for f in reversed(kept) if f[0] <= flops * (1 + 1e-9)), None)
            for name, kept in by_family.items()}
