"""Matplotlib figures for the page: training curves, quality during training, quality against sampling steps,
and the VAE's latent map. They draw what the engines measured; they compute nothing themselves."""
from __future__ import annotations

import math
import textwrap

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display on a server
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from engines.measure import knobs  # noqa: E402
from engines.measure.knobs import sweep_for  # noqa: E402
from engines.measure.sampler_benchmark import BENCHMARK_NET  # noqa: E402  (the net the benchmark's FDs are in)
from engines.measure.uncertainty import count_of, exact_interval  # noqa: E402
from engines.registry import families as _families  # noqa: E402
from engines.registry import family as _family  # noqa: E402

# Each family's colour in every chart, from its record; anything else (the feature nets' classifier) in grey.
FAMILY_COLOURS = {family.name: family.colour for family in _families()}


def png(figure: Figure, dpi: int = 100) -> str:
    """A figure as a PNG file (what the API returns for a plot: an image file, not serialised matplotlib)."""
    import tempfile
    handle = tempfile.NamedTemporaryFile(prefix="lab-plot-", suffix=".png", delete=False)
    figure.savefig(handle.name, dpi=dpi)
    return handle.name


def _figure(width: float = 6.4, height: float = 3.6) -> tuple[Figure, plt.Axes]:
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.add_subplot()


def loss_curves(logs: dict[str, list[dict]]) -> Figure:
    """One panel per family: every loss it logs against the training step."""
    figure = Figure(figsize=(10, 3.2), layout="constrained")
    names = [f.name for f in _families() if logs.get(f.name)]
    for i, name in enumerate(names):
        ax = figure.add_subplot(1, len(names), i + 1)
        rows = [r for r in logs[name] if "step" in r]
        keys = [k for k in rows[0] if k not in ("step", "time_s")]
        for key in keys:
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=key, linewidth=1)
        ax.set_title(f"{name}: training losses")
        ax.set_xlabel("step")
        if _wide_range([r[key] for r in rows for key in keys]):
            ax.set_yscale("symlog")   # a loss that falls by orders of magnitude (the VAE's) stays readable
        ax.legend(fontsize=7)
    return figure


def _wide_range(values: list[float]) -> bool:
    """Values spread over more than two orders of magnitude."""
    size = [abs(v) for v in values if isinstance(v, (int, float)) and v]
    return bool(size) and max(size) > 100 * min(size)


def quality_during_training(logs: dict[str, list[dict]]) -> Figure:
    """Share of samples the classifier recognises and Frechet distance at each scored checkpoint."""
    figure = Figure(figsize=(10, 3.2), layout="constrained")
    share, distance = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for name, rows in logs.items():
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        share.plot(steps, [r["confident_share"] for r in rows], "o-", label=name, color=FAMILY_COLOURS.get(name))
        distance.plot(steps, [r["frechet_distance"] for r in rows], "o-", label=name, color=FAMILY_COLOURS.get(name))
    share.set(title="recognisable samples (conf >= 0.9) per checkpoint", xlabel="step", ylim=(0, 1))
    distance.set(title="Frechet distance per checkpoint (lower is better)", xlabel="step")
    for ax in (share, distance):
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no scored checkpoints yet\n(train with --eval-every)", ha="center",
                    va="center", transform=ax.transAxes)
    return figure


def quality_against_steps(rows: list[dict], net: str = BENCHMARK_NET, why_empty: str = "") -> Figure:
    """The sampler benchmark: the diffusion model's Frechet distance (`net`) against network evaluations, one line
    per sampler (log x), stochastic and deterministic alike. Speed at equal quality, in both nets and for every
    family, is the speed race's chart; this one compares the diffusion model's samplers with each other. With no
    rows, the figure says why (`why_empty`)."""
    figure = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = figure.subplots()
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    palette = plt.get_cmap("Dark2")   # apart from the families' colours
    for i, sampler in enumerate(samplers):
        mine = sorted((r for r in rows if r["sampler"] == sampler), key=lambda r: r["nfe"])
        ax.plot([r["nfe"] for r in mine], [r["frechet_distance"] for r in mine], "o-", color=palette(i % palette.N),
                label=sampler.replace("diffusers:", "").replace("Scheduler", ""))
    ax.set(xscale="log", xlabel="network evaluations per sample", ylabel=f"Frechet distance ({net})",
           title="diffusion: quality against sampling steps, per sampler")
    if rows:
        ax.legend(fontsize=6)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, why_empty or "not measured yet:\npython -m engines.sampler_benchmark", ha="center",
                va="center", transform=ax.transAxes, fontsize=9)
    return figure


def latent_scatter(coordinates, labels, ticks, explained: list[float], paths=None, class_names=None) -> Figure:
    """Test images' posterior means on the latent map's two axes, coloured by class (named by `class_names` where
    given, else digits); with `paths` [steps + 1, n, 2], latent diffusion's trajectories from noise (open
    circle) to sample (black dot) on the same axes."""
    figure, ax = _figure(5.2, 4.6)
    points = ax.scatter(coordinates[:, 0], coordinates[:, 1], c=labels, cmap="tab10", s=8, vmin=-0.5, vmax=9.5)
    if paths is not None:
        for i in range(paths.shape[1]):
            ax.plot(paths[:, i, 0], paths[:, i, 1], color="black", linewidth=0.8, alpha=0.7)
        ax.scatter(paths[0, :, 0], paths[0, :, 1], facecolors="none", edgecolors="black", s=18, label="start noise")
        ax.scatter(paths[-1, :, 0], paths[-1, :, 1], color="black", s=14, label="latent diffusion sample")
        ax.legend(fontsize=6, loc="lower right")
    bar = figure.colorbar(points, ax=ax, ticks=range(10), label="class" if class_names else "digit")
    if class_names:
        bar.ax.set_yticklabels(class_names, fontsize=6)
    low, high = float(ticks[0]), float(ticks[-1])
    ax.add_patch(matplotlib.patches.Rectangle((low, low), high - low, high - low, fill=False, linestyle="--"))
    ax.set(xlabel=f"direction 1 ({explained[0]:.0%} of variance), std", aspect="equal",
           ylabel=f"direction 2 ({explained[1]:.0%}), std",
           title=f"test {'images' if class_names else 'digits'} in the latent plane")
    return figure


def _bars(ax, labels: list[str], values: list[float], errors: list[float], title: str, ylabel: str,
          log: bool = False, families: list[str] | None = None) -> None:
    """Bars coloured by family: `families` names each bar's, else a label's first word does."""
    families = families or [label.split()[0].lower() for label in labels]
    colours = [FAMILY_COLOURS.get(family, "tab:gray") for family in families]
    ax.bar(range(len(values)), values, yerr=errors, capsize=4, color=colours)
    ax.set_xticks(range(len(values)), labels, fontsize=9)
    _title(ax, title, ylabel)
    if log:
        ax.set_yscale("log")


def _title(ax, title: str, ylabel: str) -> None:
    ax.set_title("\n".join(textwrap.wrap(title, 52)), fontsize=11)
    ax.set_ylabel(ylabel, fontsize=9)


def _not_measured(ax, title: str, command: str) -> None:
    ax.set_title(title, fontsize=8)
    ax.text(0.5, 0.5, f"not measured:\n{command}", ha="center", va="center", fontsize=7, transform=ax.transAxes)
    ax.set_xticks([]), ax.set_yticks([])


def _quality_panel(ax, report: dict, families: list[str], verdict: str) -> None:
    net = next(iter(report["feature_nets"]))
    quality = [report["quality"][f]["nets"][net] for f in families]
    _bars(ax, families, [q["frechet_distance"] for q in quality], [q["frechet_distance_se"] for q in quality],
          f"Sample quality: {verdict}", f"Frechet distance ({net}); lower is better", log=True)


def _likelihood_panel(ax, report: dict, families: list[str], verdict: str) -> None:
    """Every bound each family's engine counts (`likelihood_bounds`), in registry order; the families of the
    panel without one named in its title."""
    lk = report["likelihood"]
    measured = [f for f in _families()
                if f.name in families and f.likelihood and f.name in lk and "note" not in lk[f.name]]
    bounds = [(f.name, f"{f.name}\n{bound.upper()}", value, se)
              for f in measured for bound, value, se in f.engine.likelihood_bounds(lk[f.name])]
    none = [_family(name).title for name in families if name not in {f.name for f in measured}]
    owners, labels, values, errors = map(list, zip(*bounds))
    _bars(ax, labels, values, errors, f"Likelihood ({', '.join(none) or 'every family'}: none): {verdict}",
          "bits/dim; lower is better", families=owners)


def _latent_panel(ax, report: dict, families: list[str], verdict: str) -> None:
    families = [f for f in families if f in report["latent"]]   # those with a latent space to walk
    latent = [report["latent"][f]["slerp"] for f in families]
    _bars(ax, families, [p["step_cv"] for p in latent], [p["step_cv_se"] for p in latent],
          f"Latent space: {verdict}", "slerp step CV; lower is smoother")


def _seeds_panel(ax, report: dict, families: list[str], verdict: str) -> None:
    seeds, n = report["seeds"]["families"], len(report["seeds"]["settings"]["seeds"])
    # the seed's families, and the hybrids where the study trained them
    families = [f.name for f in _families() if f.name in seeds and (f.name in families or f.is_hybrid)]
    for offset, (key, hatch) in zip((-0.2, 0.2), (("collapse_rate", ""), ("oscillation_rate", "//"))):
        rates = [seeds[f][key] for f in families]
        # Counts of n seeds: exact (Clopper-Pearson) 95% intervals, not a binomial SE (which is 0 at 0 of n).
        intervals = [exact_interval(count_of(rate, n), n) for rate in rates]
        errors = [[rate - low for rate, (low, _) in zip(rates, intervals)],
                  [high - rate for rate, (_, high) in zip(rates, intervals)]]
        ax.bar([i + offset for i in range(len(families))], rates, width=0.4, yerr=errors, capsize=3, hatch=hatch,
               color=[FAMILY_COLOURS[f] for f in families], label=key.split("_")[0])
    ax.set_xticks(range(len(families)), [f.replace("_", "\n") for f in families], fontsize=9)
    ax.legend(fontsize=8)
    _title(ax, f"Training stability: {verdict}", f"share of {n} 2-D seeds (95% exact CI)")


def _speed_panel(ax, report: dict, families: list[str], verdict: str) -> None:
    measured = [r for r in report["speed"]["rows"] if not r.get("extrapolated")]
    fastest = {}   # each engine's fastest measured setting (diffusion: the few-step sampler), in registry order
    for row in measured:
        if row["engine"] not in fastest or row["ms_per_sample"] < fastest[row["engine"]]["ms_per_sample"]:
            fastest[row["engine"]] = row
    rows = [fastest[f.name] for f in _families() if f.name in fastest]
    # One word a line ("latent\ndiffusion"), so that five labels fit under the panel.
    _bars(ax, [r["engine"].replace("_", "\n") + f"\n{r['nfe']} NFE" for r in rows], [r["ms_per_sample"] for r in rows],
          [0.0] * len(rows), f"Speed: {verdict}", "ms per sample (log)", log=True, families=[r["engine"] for r in rows])
    ax.tick_params(axis="x", labelsize=8 if len(rows) <= 7 else 6)


def _hybrids_panel(ax, report: dict, families: list[str], verdict: str) -> None:
    """Each hybrid beside its parents on the first feature net's Frechet distance."""
    net = next(iter(report["feature_nets"]))
    names = [f for f in _beside_parents() if f in report["quality"]]
    quality = [report["quality"][f]["nets"][net] for f in names]
    _bars(ax, [f.replace("_", "\n") for f in names], [q["frechet_distance"] for q in quality],
          [q["frechet_distance_se"] for q in quality], f"Hybrids: {verdict}",
          f"Frechet distance ({net}); lower is better", log=True, families=names)
    ax.tick_params(axis="x", labelsize=8)


def _beside_parents() -> list[str]:
    """The families that are a hybrid's parent, in registry order, each hybrid right after its first parent."""
    hybrids = _families("hybrid")
    parents = {p for h in hybrids for p in h.parents}
    return [name for f in _families("family") if f.name in parents
            for name in [f.name] + [h.name for h in hybrids if h.parents[0] == f.name]]


# (row of the summary, the report section it draws, how to draw it)
def _knobs_panel(ax, report: dict, families: list[str], verdict: str) -> None:
    """Each knob from the model as trained to its far end: the change in precision and in recall (first feature
    net, ± the SE of the difference), side by side per family: the folklore's trade is up, then down."""
    sweep = sweep_for(report.get("dataset", "mnist"))
    if sweep is None:
        _not_measured(ax, "Fidelity against diversity", "python -m engines.knob_sweep")
        return
    net = next(iter(report["feature_nets"]))
    names = list(sweep["families"])
    for offset, key, hatch in ((-0.2, "precision", ""), (0.2, "recall", "//")):
        changes, errors = [], []
        for name in names:
            record = sweep["families"][name]
            neutral = next(r for r in record["rows"] if r["value"] == record["neutral"])["nets"][net]
            far = record["rows"][-1]["nets"][net]
            changes.append(far[key] - neutral[key])
            errors.append(math.hypot(far[f"{key}_se"], neutral[f"{key}_se"]))
        ax.bar([i + offset for i in range(len(names))], changes, 0.4, yerr=errors, capsize=3, hatch=hatch,
               color=[FAMILY_COLOURS[n] for n in names], edgecolor="black", label=f"change in {key}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)), [f"{_family(n).title.replace(' ', chr(10))}\n{sweep['families'][n]['symbol']}"
                                      f" -> {sweep['families'][n]['rows'][-1]['label'].split(' = ')[1]}"
                                      for n in names], fontsize=7)
    ax.legend(fontsize=7)
    _title(ax, f"Fidelity against diversity: {verdict}", f"change ({net}); precision up, recall down = the trade")


def _asked_panel(ax, report: dict, families: list[str], verdict: str) -> None:
    """Each class-conditional family's samples read as the class asked, relative to the real test images' own
    accuracy (± SE), a bar per feature net, its family's bar as a dashed line over its bars."""
    from engines.measure.conditional import measured
    records = measured(report)
    nets = list(report["feature_nets"])
    width = 0.8 / len(nets)
    for i, (name, record) in enumerate(records.items()):
        for j, net in enumerate(nets):
            r = record["relative"][net]
            ax.bar(i - 0.4 + width * (j + 0.5), r["accuracy"], width, yerr=r["accuracy_se"], capsize=3,
                   color=FAMILY_COLOURS[name], edgecolor="black", hatch="//" if j else "",
                   label=net if i == 0 else None)
        bar = _family(name).quality_bar
        ax.hlines(bar, i - 0.45, i + 0.45, colors="black", linestyles="dashed", linewidth=1)
    ax.set_xticks(range(len(records)), [_family(n).title.replace(" ", "\n") for n in records], fontsize=8)
    ax.set_ylim(0.5, 1.1)
    ax.legend(fontsize=7, loc="lower right")
    _title(ax, f"Ask for a class: {verdict}", "read as asked / real images' (- - bar)")


PANELS = [("Sample quality", "quality", _quality_panel), ("Likelihood", "likelihood", _likelihood_panel),
          ("Latent space", "latent", _latent_panel), ("Training stability", "seeds", _seeds_panel),
          ("Speed", "speed", _speed_panel), ("Fidelity against diversity", "quality", _knobs_panel),
          ("Hybrids", "quality", _hybrids_panel), ("Ask for a class", "quality", _asked_panel)]
OPTIONAL = ("Hybrids", "Ask for a class")   # rows a report has only where such families were measured


CHARTS_PER_ROW = 2


def summary_charts(report: dict) -> Figure:
    """One small chart per measured row of the comparison, each bar ± its standard error, the row's verdict
    in its title: the report at a glance (the tables are one click away). A section the report lacks says so."""
    verdicts = {row["row"]: row["verdict"] for row in report["summary"]}
    families = [f.name for f in _families("family") if f.name in report.get("engines", ())]
    panels = [p for p in PANELS if p[0] not in OPTIONAL or p[0] in verdicts]
    rows = -(-len(panels) // CHARTS_PER_ROW)
    # Two charts a row at the page's width, so that axis text reads at its size (six in a row shrank it to ~6 px).
    figure = Figure(figsize=(10, 3.6 * rows), layout="constrained")
    axes = figure.subplots(rows, CHARTS_PER_ROW, squeeze=False).flatten()
    for ax, (row, section, draw) in zip(axes, panels):
        if section in report:
            draw(ax, report, families, verdicts[row])
        else:
            _not_measured(ax, row, f"python -m engines.evaluate --sections {section}")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return figure


def elbo_by_level(level: dict, vae: dict | None, title: str) -> Figure:
    """Left: the diffusion bound's KL terms per band of t (bits/dim, log t axis), with the prior and decoder
    terms named; right: the two bounds as stacked bars, the VAE's reconstruction + KL beside diffusion's
    decoder + sum of KL terms + prior: the single KL is the counterpart of the whole sum."""
    figure = Figure(figsize=(11, 3.6), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=[2.2, 1])
    bands = level["bands"]
    widths = [last - first + 1 for first, last in zip(bands["first"], bands["last"])]
    left.bar(bands["first"], bands["bpd"], width=widths, align="edge", color=FAMILY_COLOURS["diffusion"],
             edgecolor="white", linewidth=0.3)
    left.set_xscale("log")
    left.set_xlabel("timestep t (log scale): each bar is one band of KL terms L_t-1", fontsize=7)
    left.text(0.98, 0.95, f"decoder L_0: {level['decoder']:.3f}\nprior L_T: {level['prior']:.2g}",
              transform=left.transAxes, ha="right", va="top", fontsize=7)
    _title(left, title, "bits/dim in the band")
    kl_sum = sum(bands["bpd"])
    diffusion_parts = [("decoder L_0", level["decoder"], "tab:olive"), ("sum of KL terms", kl_sum,
                       FAMILY_COLOURS["diffusion"]), ("prior L_T", level["prior"], "tab:gray")]
    stacks = {_family("diffusion").title: diffusion_parts}
    if vae is not None:
        stacks[_family("vae").title] = [("reconstruction", vae["reconstruction"], "tab:cyan"), ("KL", vae["kl"],
                                                                               FAMILY_COLOURS["vae"])]
    for i, parts in enumerate(stacks.values()):
        bottom = 0.0
        for label, value, colour in parts:
            right.bar(i, value, bottom=bottom, color=colour, label=label)
            bottom += value
        right.text(i, bottom, f"{bottom:.3f}", ha="center", va="bottom", fontsize=7)
    right.set_xticks(range(len(stacks)), list(stacks), fontsize=8)
    right.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _title(right, "-ELBO = reconstruction + KL terms", "bits/dim")
    return figure


def score_levels(levels, extent: float) -> Figure:
    """One panel per noise level: the noised true density, the true score (thin black) and the learned score
    (orange), the relative error in the title. Arrow lengths are clipped at the panel's median true-score length
    (far from the data the score grows like -x / sigma^2 and would dwarf the arrows near the modes)."""
    figure = Figure(figsize=(12, 4.6), layout="constrained")
    for ax, level in zip(figure.subplots(1, len(levels)), levels):
        ax.imshow(level.density.numpy(), origin="lower", extent=(-extent, extent, -extent, extent), cmap="Greys")
        clip = float(level.true.norm(dim=1).median())
        spacing = float(level.points[1, 0] - level.points[0, 0])   # a clipped arrow spans one grid cell
        for vectors, colour, width in ((level.true, "black", 0.003), (level.learned, "tab:orange", 0.005)):
            norms = vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
            v = (vectors * norms.clamp_max(clip) / norms / clip).numpy()
            ax.quiver(level.points[:, 0].numpy(), level.points[:, 1].numpy(), v[:, 0], v[:, 1], color=colour,
                      angles="xy", scale_units="xy", scale=1 / spacing, width=width)
        e = level.error
        ax.set_title(f"t = {level.t}, noise std {level.sigma:.2f}\nrelative score error {e.relative:.3f} ± {e.se:.3f}",
                     fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    return figure


def sample_panels(samples: dict, coverage: dict, n_modes: int, extent: float) -> Figure:
    """One scatter per sampler, with modes covered and the share of samples on a mode in the title."""
    figure = Figure(figsize=(12, 4.2), layout="constrained")
    for ax, (name, x) in zip(figure.subplots(1, len(samples)), samples.items()):
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, alpha=0.5, color="tab:green")
        c = coverage[name]
        ax.set_title(f"{name}\n{c.covered} of {n_modes} modes, {c.on_support:.0%} of samples on a mode", fontsize=8)
        ax.set_xlim(-extent, extent), ax.set_ylim(-extent, extent), ax.set_aspect("equal")
        ax.set_xticks([]), ax.set_yticks([])
    return figure


PIXEL_STYLES = ("-", "--", ":", "-.")


def pixel_paths(paths: list[tuple]) -> Figure:
    """A few pixels' values along each model's path on the straight path, s from 1 (noise) to 0 (an image): one
    colour per pixel, one line style per model. `paths`: (model, its colour, times s, values [K+1, pixels])."""
    figure, ax = _figure(7.0, 3.8)
    pixels = paths[0][3].shape[1]
    colours = plt.get_cmap("tab10")
    for (label, _colour, times, values), style in zip(paths, PIXEL_STYLES):
        for p in range(pixels):
            ax.plot(times, values[:, p].numpy(), style, color=colours(p % 10), linewidth=1.2,
                    label=label if p == 0 else None)
    ax.set_xlim(1, 0)
    ax.set_xlabel("s (1: noise, 0: image), on the straight path y = (1 - s) x0 + s eps")
    ax.legend(fontsize=7, title="line style", title_fontsize=7)
    for line in ax.get_legend().get_lines():
        line.set_color("black")
    _title(ax, f"{pixels} pixels of the same noise, taken to an image by each model", "pixel value y")
    return figure


def speed_race(rows: list[dict]) -> Figure:
    """Frechet distance (± SE) against network evaluations per sample (left) and milliseconds per sample (right),
    one row of panels per feature net: a line per few-step sampler (the family's colour, one style per sampler),
    a marker for a family that samples in one fixed way. `rows`: `speed_race.with_times`."""
    nets = list(rows[0]["frechet_by_net"])
    figure = Figure(figsize=(11, 3.4 * len(nets)), layout="constrained")
    axes = figure.subplots(len(nets), 2, squeeze=False)
    lines: dict[tuple, list[dict]] = {}
    for row in rows:
        lines.setdefault((row["engine"], row.get("line")), []).append(row)
    lines_of: dict[str, int] = {}   # a family's lines so far: its next line takes the next style
    for (name, line), entries in lines.items():
        family = _family(name)
        label = f"{family.heading}, {str(line).replace('diffusers:', '')}" if line else family.heading
        style = ""
        if line:
            style = PIXEL_STYLES[lines_of.get(name, 0) % len(PIXEL_STYLES)]
            lines_of[name] = lines_of.get(name, 0) + 1
        for (ax_nfe, ax_ms), net in zip(axes, nets):
            for ax, x_key in ((ax_nfe, "nfe"), (ax_ms, "ms_per_sample")):
                points = [e for e in entries if e.get(x_key)]
                if not points:
                    continue
                ax.errorbar([e[x_key] for e in points], [e["frechet_by_net"][net]["frechet_distance"] for e in points],
                            yerr=[e["frechet_by_net"][net]["frechet_distance_se"] for e in points], color=family.colour,
                            linestyle=style or "none", marker="o" if line else "D", markersize=3 if line else 6,
                            capsize=2, label=label)
    for (ax_nfe, ax_ms), net in zip(axes, nets):
        for ax, xlabel in ((ax_nfe, "network evaluations per sample"), (ax_ms, "ms per sample (CPU, one thread)")):
            ax.set_xscale("log"), ax.set_yscale("log")
            ax.set_xlabel(xlabel, fontsize=8)
            _title(ax, f"Frechet distance in the {net} net (lower is better)", "Frechet distance")
    axes[0][1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def knob_sweep(sweep: dict) -> Figure:
    """The knob chart (`engines.measure.knobs.figure`, also beside report.md)."""
    return knobs.figure(sweep)
