""""What to look at": a few plain sentences per view, made from the dataset's report.json and the view's current
output, never typed numbers. Each says what the view shows, what to notice, and the measured number that says it
(with its standard error). The app shows them; they decide nothing the report has not measured."""
from __future__ import annotations

from engines.data.datasets import LAB_CLASS_NAMES
from engines.measure.plain_words import meaning
from engines.measure.recognition import RECOGNITION_NET, Recognition
from engines.measure.uncertainty import TIE_SE
from engines.registry import families

REAL = "real (train)"


def _title(name: str) -> str:
    return next((f.heading for f in families() if f.name == name), name)


def sharpness_words(value: float, se: float) -> str:
    """Sharpness against the real images' 1.0, read with the report's tie rule (TIE_SE standard errors)."""
    if value + TIE_SE * se < 1:
        return f"{1 - value:.0%} blurrier than real images"
    if value - TIE_SE * se > 1:
        return f"{value - 1:.0%} more fine detail than real images: sharper strokes, or noise"
    return "as sharp as real images"


def family_sentence(report: dict, name: str, net: str = RECOGNITION_NET) -> str:
    """One family's quality row in words: sharpness, recognisable share against the real images', its most
    frequent class, and its Frechet distance."""
    row, real = report["quality"][name], report["quality"][REAL]["nets"][net]
    cells = row["nets"][net]
    histogram = cells["class_histogram"]
    top = max(range(len(histogram)), key=histogram.__getitem__)
    class_names = LAB_CLASS_NAMES[report.get("dataset", "mnist")]
    return (f"**{_title(name)}**: sharpness {row['sharpness']:.2f} ± {row['sharpness_se']:.2f} "
            f"({sharpness_words(row['sharpness'], row['sharpness_se'])}); "
            f"{cells['confident_share']:.0%} ± {cells['confident_share_se']:.0%} recognisable "
            f"(real images: {real['confident_share']:.0%}); most frequent class {class_names[top]} at "
            f"{histogram[top]:.0%} of its samples that are images at all ({1 / len(histogram):.0%} each if "
            f"balanced); Frechet distance "
            f"{cells['frechet_distance']:.3g} ± {cells['frechet_distance_se']:.2g}.")


def one_family(report: dict | None, name: str, look_for: str) -> str:
    """A family's own tab: what to look for in its grid, and its quality row in words (nothing when the report
    has not measured this family)."""
    if not report or name not in report.get("quality", {}):
        return ""
    return f"**What to look at.** {look_for}: over the report's {report['n']} samples, {family_sentence(report, name)}"


def side_by_side(report: dict | None, shown: dict[str, Recognition] | None = None) -> str:
    """The landing view: what each family's grid should show, from the report's {n} samples per family, and (when
    the grids carry the classifier's labels) what this grid shows."""
    ode = [f.title for f in families() if f.straight_path and f.name in (report or {}).get("quality", {})]
    lines = ["**What to look at.** The same seed gives each family its own samples (most families' random inputs "
             "differ in kind, so their grids show different images"
             + (f"; but {' and '.join(ode)} read the same noise from a seed and both follow an ODE from it to the "
                "data, so with a deterministic sampler (DDIM, DPM-Solver, UniPC, Heun; not DDPM or an ancestral "
                "sampler, which add fresh noise at every step) their grids often show the same digit drawn the "
                "same way: the Connections tab shows why" if len(ode) > 1 else "")
             + "). Look for blur (soft strokes), broken or half-formed shapes, and one class repeated more than its "
             "share."]
    if report and "quality" in report:
        lines.append(f"Measured on {report['n']} samples per family (the report, {RECOGNITION_NET} net; sharpness: "
                     "1 = as sharp as real images):")
        lines += [f"- {family_sentence(report, name)}" for name in report["quality"] if name != REAL]
    if shown:
        lines.append("In these grids, the classifier sees:")
        lines += [f"- **{_title(name)}**: {recognition.summary()}" for name, recognition in shown.items()]
        lines.append("(\"Recognisable\" means confidently classified, not a good sample: a blurred or odd sample "
                     "can still get a confident class. Pages that are no image at all, blank, noise or patterns, "
                     "are refused by the net's typicality gate and never count.)")
    return "\n".join(lines)


def truncation(at: Recognition, without: Recognition, value: float) -> str:
    """The GAN's truncation, measured on the grid just drawn: how many samples the classifier recognises with
    truncation at `value` and, from the same seed, without it."""
    return (f"**What to look at.** Truncation at {value:g} keeps every latent entry within {value:g} standard "
            f"deviations, so the samples come from near the centre of the latent distribution. Whether that "
            f"gives cleaner images depends on what this generator puts there: here {at.summary()}; the same seed "
            f"without truncation: {without.summary()}. A GAN whose centre decodes to an average of several "
            f"classes (grey, blended shapes) gets worse, not better, as the truncation tightens.")


def latent_walk(report: dict | None) -> str:
    """The VAE tab: what a latent walk should look like, and the report's measure of how even each family's
    steps are (the coefficient of variation of the step sizes along slerp paths: 0 = every step the same size)."""
    text = ("**What to look at.** Each frame of the path should look like a real image, and neighbouring frames "
            "should differ by a little, evenly; a jump means the path crosses a region the decoder maps to "
            "something abrupt. The bottom row of the pair shows the reconstructions: softer than the inputs.")
    if not report or "latent" not in report:
        return text
    walks = [(name, row["slerp"]) for name, row in report["latent"].items() if isinstance(row, dict) and "slerp" in row]
    steps = "; ".join(f"{_title(name)} {w['step_cv']:.2f} ± {w['step_cv_se']:.2f}" for name, w in walks)
    text += f" Over {walks[0][1]['pairs']} pairs of test images the report measures how uneven the steps are " \
            f"(slerp, step CV, lower = smoother): {steps}." if walks else ""
    kept = [(name, row["reconstruction"]) for name, row in report["latent"].items()
            if isinstance(row, dict) and isinstance(row.get("reconstruction"), dict)]
    text += "".join(f" {_title(name)}'s reconstructions keep the class of {r['same_class']:.0%} of {r['n']} test "
                    "images." for name, r in kept)
    return text


def denoising(benchmark_rows: list[dict], sampler: str, steps: int, net: str = RECOGNITION_NET) -> str:
    """The diffusion tab: what the two pictures show, and the sampler benchmark's Frechet distance for the
    sampler and step count just run, beside the best it measured (where the benchmark has them)."""
    text = ("**What to look at.** Left, x_t: noise becoming an image. Right, the predicted x0: the network's guess "
            "of the finished image at that step. The guess settles the coarse shape (and the class) in the first, "
            "noisiest steps and the fine strokes last (Ho et al. 2020, fig. 6); scrub back to find the step where "
            "the class is decided.")
    row = next((r for r in benchmark_rows if r["sampler"] == sampler and r["steps"] == steps), None)
    if row is None or not benchmark_rows:
        return text
    best = min(benchmark_rows, key=lambda r: r["frechet_distance"])
    return (text + f" The sampler benchmark measured {sampler} at {steps} steps at Frechet distance "
            f"{row['frechet_distance']:.1f} ({net} net); its best, {best['sampler']} at {best['steps']} steps: "
            f"{best['frechet_distance']:.1f}.")


def guided_denoising(asked: list[str], w: float, gaps: list[tuple[str, float]], seen: Recognition | None) -> str:
    """The guided step-by-step view: what its pictures show, how far apart the two predictions were along the run
    (`gaps`: (the step's label, mean |conditional x0 - unconditional x0| as shown, in [0, 1]) in order), and
    what the lab's classifier reads in the finished samples (`asked`: the class each was asked for)."""
    told = f'"{asked[0]}"' if len(set(asked)) == 1 else "each sample's class (" + ", ".join(asked) + ")"
    where = "the unconditional model" if w == 0 else "the conditional model" if w == 1 else (
        f"{w:g} times as far, past the conditional x0" if w > 1 else f"{w:g} of the way to the conditional x0")
    text = (f"**What to look at.** The same x_t, two predictions of the finished image: without a class "
            f"(unconditional) and told {told} (conditional). Classifier-free guidance moves the sampler's x0 "
            f"from the unconditional one towards the conditional one by w times their difference (Ho & Salimans "
            f"2022, eq. 6, in image space since x0 is linear in the noise prediction): here w = {w:g}, "
            f"{where}. The two differ where the class decides the shape, in the noisy early steps, and agree once "
            "the image has settled.")
    if gaps:
        widest = max(gaps, key=lambda gap: gap[1])
        text += (f" Measured on this run: the mean pixel difference between the two x0 is largest at "
                 f"{widest[0]} ({widest[1]:.3f}) and {gaps[-1][1]:.3f} at the last step.")
    if seen is not None:
        asked_count = sum(seen.class_names[c] == name and ok
                          for c, ok, name in zip(seen.classes, seen.recognisable, asked))
        text += (f" The lab's classifier reads {asked_count} of the {len(seen.classes)} finished samples "
                 f"recognisably as the class asked ({seen.summary()}).")
    return text


def compare_view(report: dict) -> str:
    """The Compare tab: how to read its charts, and which rows of the seed's table the lab's measurements bear out,
    from the report's summary (each row's verdict as the report words it)."""
    rows = {}
    for row in report.get("summary", []):
        rows.setdefault(row["verdict"].split(":")[0], []).append(row["row"])
    said = "; ".join(f"{', '.join(names)}: {meaning(verdict)}" for verdict, names in rows.items())
    return ("**What to look at.** One chart per row of the seed's table, each titled with the lab's verdict on its "
            "folklore. Whiskers are one standard error (stability: exact 95% intervals over the seeds); two "
            f"numbers differ only when their difference exceeds {TIE_SE:g} standard errors of it, so overlapping "
            "whiskers usually mean a tie. A \"mixed\" row holds several checks that came out differently: "
            f"\"Each verdict, check by check\" below says which. The rows here: {said}.")
