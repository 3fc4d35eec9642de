"""The "2-D playground" tab: train VAE, GAN and diffusion on toy distributions and watch them differ.

Layout and small handlers only; the maths lives in `engines.toy`. Each visitor's training lives in their own
gr.State (a `Visitor`), never in a global, and training streams its pictures from a generator handler every
`VIEW_EVERY` steps. Training and lessons share a concurrency pool of PLAYGROUND_CONCURRENCY, apart from the
other tabs' events, so a visitor training here does not hold up anyone elsewhere.

Caps (bad input gets a gr.Error saying so): learning rate in (0, 0.1]; 1 .. MAX_STEPS_PER_START steps per
Start and 20,000 per family per playground; seed 0 .. 2^31 - 1; a CSV of at most 1 MB and 8 .. 5,000 points.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import gradio as gr
import torch

from app.inputs import user_error, whole_number
from app.playground_figures import NAMES, family_strip, truth_image
from app.widgets import pick_brush, picture
from engines import MAX_SEED
from engines.errors import EngineError
from engines.toy import views
from engines.toy.distributions import PRESETS, from_points, make_distribution
from engines.toy.lessons import LESSONS, get_lesson, run_lesson
from engines.toy.models import GENERATOR_LOSSES, TOY_SAMPLERS
from engines.toy.session import Playground
from engines.toy.training import CLASSIC_FAMILIES, DEFAULT_LR, FAMILIES, check_lr
from engines.toy.user_points import read_csv_points, sketch_points

MAX_STEPS_PER_START = 5000
VIEW_EVERY = 250
PLAYGROUND_CONCURRENCY = 4   # visitors training at once; beyond that they queue (the page says so)
USER_POINTS = "points"
DISTRIBUTION_CHOICES = [(label, key) for key, (label, _) in PRESETS.items()] + \
                       [("Your points (sketch or CSV below)", USER_POINTS)]
# What the live view draws, one strip each: the free play's families, reflow, which a lesson builds from its flow, and
# the guidance lesson's class-conditional diffusion model.
VIEWED = (*FAMILIES, "reflow", "conditional_diffusion")
LESSON_CHOICES = [(lesson.title, key) for key, lesson in LESSONS.items()]
INTRO = ("Small MLPs of each family (VAE, GAN, diffusion, flow matching; the diffusion GAN; reflow in its lesson) "
         "learn a 2-D distribution whose density is known exactly, so "
         "their differences become numbers: **modes covered** (mode collapse is this dropping), the share of "
         "samples **on a mode**, their **energy distance** to the truth (lessons), the **true log-likelihood** "
         "of their samples, and each model's own "
         "log-likelihood of held-out data (VAE: ELBO and exact; diffusion: probability-flow ODE), against the "
         "truth's. Pick a lesson, or train freely below.")


@dataclass
class Visitor:
    """One visitor's playground and what it was built from.

    `run` numbers the current Start: Pause and Reset bump it, and a training loop stops at its next chunk
    once the number is no longer its own (this works for API clients too, which Gradio's `cancels` does
    not reach). The lock keeps a chunk that is still finishing from overlapping the next Start's."""
    playground: Playground
    settings: tuple
    density: torch.Tensor
    run: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _lr(value) -> float:
    try:
        return check_lr(float(value))
    except (TypeError, ValueError, EngineError):
        raise user_error(f"Learning rate must be a number greater than 0 and at most 0.1, got {value}") from None


def _file_path(upload) -> str | None:
    if upload is None:
        return None
    return upload if isinstance(upload, str) else getattr(upload, "name", None) or upload.get("path")


def _user_points(sketch, upload):
    """CSV first (it is explicit); otherwise the sketch's ink."""
    path = _file_path(upload)
    if path:
        return read_csv_points(path)
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    if composite is None:
        raise EngineError("draw some points on the canvas or upload a CSV of x, y pairs first")
    return sketch_points(composite)


def _distribution(name, sketch, upload, seed: int):
    try:
        if name == USER_POINTS:
            return from_points(_user_points(sketch, upload), seed=seed)
        return make_distribution(name)
    except EngineError as e:
        raise user_error(str(e)) from None


def _fmt(value) -> str:
    return "" if value is None else f"{value:.2f}"


GAN_LOSS_NOTE = {
    "minimax": "the minimax loss log(1 − D(G(z))): against D* its gradient is that of 2 JSD (Goodfellow et al. "
               "2014, Thm 1)",
    "non-saturating": "the non-saturating loss −log D(G(z)): against D* its gradient is that of KL(p_g ‖ p_data) "
                      "− 2 JSD (Arjovsky & Bottou 2017, Thm 2.5)",
}


def divergence_markdown(numbers: dict | None, loss: str | None = None) -> str:
    """The GAN against the optimal discriminator D*: the line under the table (empty without a GAN)."""
    if not numbers:
        return ""
    trained = f"The GAN's generator trains with {GAN_LOSS_NOTE[loss]}. " if loss in GAN_LOSS_NOTE else ""
    return (f"\nGAN as divergence minimisation: {trained}JSD(p_data ‖ p_g) = **{numbers['jsd']:.2f} ± "
            f"{numbers['jsd_se']:.2f}** nats (0: the same distribution; log 2 = 0.69: no overlap), KL(p_g ‖ p_data) "
            f"= **{numbers['kl']:.2f} ± {numbers['kl_se']:.2f}** nats, KL − 2 JSD = {numbers['kl_minus_2jsd']:.2f} "
            f"± {numbers['kl_minus_2jsd_se']:.2f}; the learned D "
            f"against the optimal D*: mean |D − D*| = **{numbers['gap']:.2f}** (and |D − 1/2| = "
            f"{numbers['d_confidence']:.2f}: D at 1/2 has given up); game value V(D, G) = "
            f"{numbers['game_value']:.3f} against D*'s −log 4 + 2 JSD = {numbers['game_optimum']:.3f} ± "
            f"{numbers['game_optimum_se']:.3f} (no D beats D*).")


def divergence_table(by_loss: dict[str, list[dict]]) -> str:
    """A lesson's divergences per checkpoint under each generator loss (`run_lesson`'s "divergence_by_loss")."""
    losses = list(by_loss)
    lines = ["\n| step | " + " | ".join(f"{loss}: JSD | KL(p_g ‖ p_data) | KL − 2 JSD" for loss in losses) + " |",
             "|---|" + "---|---|---|" * len(losses)]
    for rows in zip(*by_loss.values()):
        cells = [f"{r['jsd']:.2f} ± {r['jsd_se']:.2f} | {r['kl']:.2f} ± {r['kl_se']:.2f} | "
                 f"{r['kl_minus_2jsd']:.2f} ± {r['kl_minus_2jsd_se']:.2f}" for r in rows]
        lines.append(f"| {rows[0]['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def numbers_markdown(rows: dict[str, dict], data_true_loglik: float | None = None, claims=None,
                     divergence: dict | None = None, by_loss: dict | None = None, loss: str | None = None) -> str:
    lines = ["| model | step | modes covered | on a mode | energy distance to the truth | true log-lik of samples "
             "| ELBO | model's log-lik |", "|---|---|---|---|---|---|---|---|"]
    for label, row in rows.items():
        energy = "" if row.get("energy") is None else f"{row['energy']:.3g}"   # measured at the end of a Start
        lines.append(f"| {label} | {row['step']} | {row['modes_covered']}/{row['n_modes']} | {row['on_support']:.0%} "
                     f"| {energy} | {_fmt(row['sample_true_loglik'])} | {_fmt(row.get('elbo'))} "
                     f"| {_fmt(row.get('model_loglik'))} |")
    if data_true_loglik is not None:
        lines.append(f"\nTrue log-likelihood of held-out data: **{data_true_loglik:.2f}** nats per point; no model "
                     "beats it on average. Log-likelihoods are nats per point; the GAN has none.")
    if divergence:
        lines.append(divergence_markdown(divergence, loss))
    if by_loss:
        lines.append(divergence_table(by_loss))
    for claim in claims or []:
        lines.append(f"- **{'holds' if claim['holds'] else 'does not hold'}**: {claim['text']}")
    return "\n".join(lines)


def _snapshot_rows(snapshot) -> dict[str, dict]:
    return {f: {"family": f, "step": snapshot.step[f], "modes_covered": c.covered, "n_modes": c.n_modes,
                "on_support": c.on_support, "sample_true_loglik": snapshot.sample_true_loglik[f]}
            for f, c in snapshot.coverage.items()}


def _strips(density, snapshot) -> list:
    """One strip per family in this run; the others are hidden rather than left as empty frames."""
    return [gr.update(value=family_strip(f, density, snapshot), visible=True) if f in snapshot.coverage
            else gr.update(value=None, visible=False) for f in VIEWED]


def _view(density, snapshot, status: str, loss: str | None = None) -> tuple:
    rows = _snapshot_rows(snapshot)
    view = snapshot.extra.get("gan_divergence")
    return (status, *_strips(density, snapshot), numbers_markdown(rows, divergence=view and view.numbers(), loss=loss),
            {"done": False, "rows": rows})


def _final(density, snapshot, measured: dict, status: str, loss: str | None = None) -> tuple:
    return (status, *_strips(density, snapshot),
            numbers_markdown(measured["rows"], measured["data_true_loglik"], measured.get("claims"),
                             measured.get("gan_divergence"), measured.get("divergence_by_loss"), loss),
            {"done": True, **measured})


def train(state, distribution, families, lr, steps, seed, sketch=None, upload=None, sampler="ddpm",
          gan_loss="non-saturating"):
    """Start or continue: the same distribution, families and seed continue the visitor's playground (with
    the new learning rate, diffusion sampler and GAN generator loss); anything else starts a fresh one."""
    lr = _lr(lr)
    if sampler not in TOY_SAMPLERS:
        raise user_error(f"Diffusion sampler must be one of {', '.join(TOY_SAMPLERS)}, got {sampler!r}")
    if gan_loss not in GENERATOR_LOSSES:
        raise user_error(f"GAN generator loss must be one of {', '.join(GENERATOR_LOSSES)}, got {gan_loss!r}")
    steps = whole_number(steps, "Steps", 1, MAX_STEPS_PER_START)
    seed = whole_number(seed, "Seed", 0, MAX_SEED)
    families = [f for f in FAMILIES if f in (families or [])]
    if not families:
        raise user_error("Choose at least one family to train")
    dist = _distribution(distribution, sketch, upload, seed)
    settings = (distribution, dist.name, tuple(dist.means.flatten().tolist()) if distribution == USER_POINTS else (),
                tuple(families), seed)
    visitor = state if isinstance(state, Visitor) and state.settings == settings else None
    if visitor is None:
        visitor = Visitor(Playground(dist, families, seed, lr), settings, views.true_density(dist))
    with visitor.lock:
        visitor.playground.set_lr(lr)
        visitor.playground.diffusion_sampler = sampler
        visitor.playground.set_generator_loss(gan_loss)
        visitor.run += 1
        run = visitor.run
    try:
        chunks = visitor.playground.train(steps, VIEW_EVERY)
        while True:
            with visitor.lock:
                latest = next(chunks, None) if visitor.run == run else None
            if latest is None:
                break
            snapshot = latest
            trained = ", ".join(f"{f} {s}" for f, s in snapshot.step.items())
            yield (visitor, *_view(visitor.density, snapshot, f"Training… steps: {trained}", gan_loss))
        if visitor.run != run:
            return   # paused or reset: the last picture stays; Start continues from here
        yield (visitor, *_view(visitor.density, snapshot, "Measuring likelihoods…", gan_loss))
        with visitor.lock:
            measured = visitor.playground.measure()
    except EngineError as e:
        raise user_error(str(e)) from None
    yield (visitor, *_final(visitor.density, snapshot, measured,
                            f"Paused at steps: {trained}. Start trains {steps} more; change the distribution, "
                            f"families or seed to start afresh.", gan_loss))


def lesson(key):
    try:
        chosen = get_lesson(key)
    except EngineError as e:
        raise user_error(str(e)) from None
    density = views.true_density(make_distribution(chosen.distribution))
    loss = chosen.generator_losses[0] if chosen.generator_losses else None   # the shown GAN's; twins: the table
    snapshot = None
    for item in run_lesson(key):
        if isinstance(item, dict):
            done = all(c["holds"] for c in item["claims"])
            yield _final(density, snapshot, item, f"**{chosen.title}**: done. "
                         + ("Every claim holds." if done else "Not every claim holds on this machine."), loss)
        else:
            snapshot = item
            budget = {**chosen.steps, **chosen.derived}
            trained = ", ".join(f"{f} {s}/{budget[f]}" for f, s in snapshot.step.items())
            pending = [f for f in chosen.derived if f not in snapshot.step]
            if pending and all(snapshot.step.get(f, 0) >= n for f, n in chosen.steps.items()):
                # the models a lesson derives (a reflow) first draw their data from the trained ones: say so
                trained += f"; next: {', '.join(pending)}, from the trained models' own samples (a few seconds)"
            yield _view(density, snapshot, f"**{chosen.title}**: training… {trained}", loss)


def describe(key):
    try:
        chosen = get_lesson(key)
    except EngineError as e:
        raise user_error(str(e)) from None
    steps = ", ".join([f"{f} {n} steps at lr {chosen.lr[f]:g}" for f, n in chosen.steps.items()]
                      + [f"then {f} {n} steps" for f, n in chosen.derived.items()])
    return f"**What to look at.** {chosen.look_at}\n\n*{PRESETS[chosen.distribution][0]}; {steps}; seed " \
           f"{chosen.seed}.* {chosen.notes}"


def truth(distribution, seed, sketch=None, upload=None):
    seed = whole_number(seed, "Seed", 0, MAX_SEED)
    dist = _distribution(distribution, sketch, upload, seed)
    points = dist.sample(500, seed=seed).numpy()
    return truth_image(views.true_density(dist), points, f"{dist.name}: {dist.n_modes} modes")


def truth_quietly(distribution, seed, sketch, upload):
    """The automatic preview: choosing "Your points" before drawing anything is not an error yet."""
    try:
        return truth(distribution, seed, sketch, upload)
    except gr.Error:
        return gr.skip()


def pause(state):
    if not isinstance(state, Visitor):
        return "Nothing is training."
    state.run += 1
    steps = ", ".join(f"{f} {t.step}" for f, t in state.playground.trainers.items())
    return f"Paused at steps: {steps}. Press Start to continue."


def reset(state):
    if isinstance(state, Visitor):
        state.run += 1   # stops a running loop; its playground is dropped with the state
    return None, "Reset: the next Start begins from fresh weights.", *(None for _ in VIEWED), "", {}


def build_tab() -> None:
    """The tab's contents; `app.ui.build_demo` calls it inside `with gr.Tab(...)`."""
    state = gr.State(None)
    gr.Markdown(INTRO)
    with gr.Row():
        lesson_key = gr.Dropdown(LESSON_CHOICES, value=LESSON_CHOICES[0][1], label="Lesson")
        lesson_run = gr.Button("Run lesson", variant="primary")
    lesson_text = gr.Markdown(describe(LESSON_CHOICES[0][1]), label="Lesson text")
    with gr.Accordion("Free play: your own distribution, families and settings", open=False) as free_play:
        with gr.Row():
            distribution = gr.Dropdown(DISTRIBUTION_CHOICES, value="ring8", label="Distribution")
            families = gr.CheckboxGroup(list(FAMILIES), value=list(CLASSIC_FAMILIES), label="Families",
                                        info="flow: flow matching (Euler paths); diffusion_gan: the GAN + "
                                             "diffusion hybrid, a GAN in 4 denoising steps")
            lr = gr.Number(DEFAULT_LR["diffusion"], label="Learning rate (0 < lr <= 0.1)")
            steps = gr.Number(1000, precision=0, label=f"Steps per Start (max {MAX_STEPS_PER_START})")
            seed = gr.Number(0, precision=0, label="Seed")
            sampler = gr.Dropdown(list(TOY_SAMPLERS), value="ddpm", label="Diffusion sampler",
                                  info="langevin: annealed Langevin dynamics with the learned score alone")
            gan_loss = gr.Dropdown(list(GENERATOR_LOSSES), value="non-saturating", label="GAN generator loss",
                                   info="minimax log(1 - D(G(z))) descends the JSD against D*; non-saturating "
                                        "-log D(G(z)) descends KL(p_g || p_data) - 2 JSD")
        with gr.Row():
            sketch = gr.Sketchpad(label="Your points: draw them here", type="numpy", canvas_size=(400, 400),
                                  transforms=(), layers=False, elem_id="points-sketch")
            upload = gr.File(label="…or upload a CSV of x, y (8 to 5,000 rows)", file_types=[".csv"])
            truth_view = picture(label="True density and 500 of its points", type="pil", format="png")
        with gr.Row():
            start = gr.Button("Start / continue", variant="primary")
            pause_button = gr.Button("Pause")
            reset_button = gr.Button("Reset")
            truth_button = gr.Button("Show the true density")
    status = gr.Markdown(label="Status")
    strips = [picture(label=NAMES[family], type="pil", format="png", elem_classes="family-strip")
              for family in VIEWED]
    numbers = gr.Markdown(label="Numbers table")
    numbers_json = gr.JSON(label="Numbers")

    free_play.expand(None, None, None, js=pick_brush("points-sketch"))
    view_outputs = [status, *strips, numbers, numbers_json]
    pool = {"concurrency_limit": PLAYGROUND_CONCURRENCY, "concurrency_id": "playground"}
    lesson_key.change(describe, lesson_key, lesson_text, api_name="playground_describe")
    lesson_event = lesson_run.click(lesson, lesson_key, view_outputs, api_name="playground_lesson", **pool)
    start.click(train, [state, distribution, families, lr, steps, seed, sketch, upload, sampler, gan_loss],
                              [state, *view_outputs], api_name="playground_train", **pool)
    preview = [distribution, seed, sketch, upload]
    distribution.change(truth_quietly, preview, truth_view, api_visibility="private")
    # An upload means "train on these": switch the distribution to the user's points, then preview them.
    upload.upload(lambda: USER_POINTS, None, distribution, api_visibility="private").then(
        truth_quietly, preview, truth_view, api_visibility="private")
    truth_button.click(truth, preview, truth_view, api_name="playground_truth")
    # Training stops itself at its next chunk (see Visitor.run); a lesson has no state, so it is cancelled.
    pause_button.click(pause, state, status, cancels=[lesson_event], api_name="playground_pause")
    reset_button.click(reset, state, [state, status, *strips, numbers, numbers_json], cancels=[lesson_event],
                       api_name="playground_reset")
