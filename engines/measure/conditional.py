"""Conditional accuracy: is each sample of the class it was asked for?

Per feature net, a confusion matrix: rows the class asked, columns the class the net reads, and one more column,
"refused", for an image its typicality gate rejects (no image of the kind at all: it counts as wrong). Beside it
the same matrix of the real test images asked for their own labels: the nets misread some real images too, so a
conditional model's accuracy is read relative to the real images' (a model as recognisable as the data scores
1.0), class by class and overall.

    conditional_accuracy(images, asked, "mnist")
"""
from __future__ import annotations

import math

import torch

from engines.checkpoint import WEIGHTS_NAME
from engines.data.datasets import load_lab_split
from engines.models.classifier import classify, feature_nets, load_classifier

CLASSES = 10


def confusion(images: torch.Tensor, asked: torch.Tensor, dataset: str) -> dict[str, dict]:
    """Per shipped feature net: {"counts": [asked][read, ..., refused] (CLASSES x CLASSES + 1), "per_class":
    each asked class's share read as itself, "accuracy" and its binomial "accuracy_se", "n"}."""
    out = {}
    for name, directory in feature_nets(dataset).items():
        if not (directory / WEIGHTS_NAME).is_file():
            continue
        read, confidence, _ = classify(load_classifier(directory), images)
        read = torch.where(confidence > 0, read, torch.full_like(read, CLASSES))   # refused by the gate
        counts = torch.zeros(CLASSES, CLASSES + 1, dtype=torch.long)
        counts.index_put_((asked.long(), read), torch.ones_like(read), accumulate=True)
        right, n = int(counts.diagonal().sum()), len(asked)
        accuracy = right / n
        out[name] = {"counts": counts.tolist(), "n": n,
                     "per_class": [round(counts[k, k].item() / max(1, counts[k].sum().item()), 4)
                                   for k in range(CLASSES)],
                     "accuracy": round(accuracy, 4), "accuracy_se": round(math.sqrt(accuracy * (1 - accuracy) / n), 4)}
    return out


def conditional_accuracy(images: torch.Tensor, asked: torch.Tensor, dataset: str) -> dict:
    """`images` asked for classes `asked`, against the dataset's real test images asked for their own labels:
    {"samples": confusion, "real": confusion, "relative": {net: {"accuracy", "accuracy_se", "per_class"}}},
    relative = the samples' accuracy over the real images' (its SE by the delta method, both binomial)."""
    test = load_lab_split(dataset, "test")
    samples, real = confusion(images, asked, dataset), confusion(test.images, test.labels, dataset)
    relative = {}
    for name in samples:
        s, r = samples[name], real[name]
        ratio = s["accuracy"] / r["accuracy"]
        se = ratio * math.hypot(s["accuracy_se"] / max(s["accuracy"], 1e-9), r["accuracy_se"] / r["accuracy"])
        relative[name] = {"accuracy": round(ratio, 4), "accuracy_se": round(se, 4),
                          "per_class": [round(a / b, 4) if b else None
                                        for a, b in zip(s["per_class"], r["per_class"])]}
    return {"samples": samples, "real": real, "relative": relative}


def asked_class_shares(images: torch.Tensor, asked: torch.Tensor, dataset: str) -> dict[str, float]:
    """Per shipped feature net: the share of images it reads as the class they were asked for (what a training
    run's scores log for a conditional model)."""
    return {name: record["accuracy"] for name, record in confusion(images, asked, dataset).items()}


def weakest_class(relative: dict) -> tuple[int, float]:
    """The class a conditional family draws least recognisably, relative to the real images of that class:
    (class, its per-class ratio) from one net's `relative` record."""
    share, k = min((share, k) for k, share in enumerate(relative["per_class"]) if share is not None)
    return k, share


def measured(report: dict) -> dict[str, dict]:
    """{family name: its conditional-accuracy record} for the report's conditional families, in registry order."""
    from engines.registry import families
    quality = report.get("quality", {})
    return {f.name: quality[f.name]["conditional"] for f in families("conditional")
            if "conditional" in quality.get(f.name, {})}


def figure(report: dict, class_names: tuple[str, ...]):
    """The confusion matrices: a row of panels per conditional family, the real test images' first, a column per
    feature net; each row of a matrix is the class asked, in shares of its samples, the last column "refused"."""
    from matplotlib.figure import Figure

    from engines.registry import family as family_record
    records = measured(report)
    first = next(iter(records.values()))
    rows = [("real test images", first["real"]),
            *((family_record(name).heading, record["samples"]) for name, record in records.items())]
    nets = list(first["samples"])
    fig = Figure(figsize=(3.3 * len(nets), 3.0 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(nets), squeeze=False)
    read_as = [*class_names, "refused"]
    for (heading, by_net), row in zip(rows, axes):
        for net, ax in zip(nets, row):
            counts = torch.tensor(by_net[net]["counts"], dtype=torch.float)
            shares = counts / counts.sum(1, keepdim=True).clamp(min=1)
            ax.imshow(shares.numpy(), cmap="Blues", vmin=0, vmax=1)
            ax.set_title(f"{heading}, {net}: {by_net[net]['accuracy']:.1%} as asked", fontsize=8)
            ax.set_xticks(range(len(read_as)), read_as, fontsize=6, rotation=90)
            ax.set_yticks(range(len(class_names)), class_names, fontsize=6)
            ax.set_xlabel("read as", fontsize=7)
            ax.set_ylabel("asked for" if heading != rows[0][0] else "labelled", fontsize=7)
    return fig
