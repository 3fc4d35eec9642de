"""The 2-D playground: exact densities, likelihoods with known answers, coverage, trainers, and the app tab
driven through gradio_client (lessons, state, bad input, four visitors at once)."""
import math
import re
import threading

import pytest
import torch
from torch import nn

from engines.errors import EngineError
from engines.toy import metrics, views
from engines.toy.distributions import PRESETS, Checkerboard, GaussianMixture, from_points, make_distribution, ring8
from engines.toy.training import check_lr, make_trainer

torch.set_num_threads(1)  # 2 cores, one busy: a second intra-op thread only waits (the numbers are the same)


def grid_integral(distribution, extent=4.5, size=241) -> float:
    ticks = torch.linspace(-extent, extent, size, dtype=torch.float64)
    cell = float(ticks[1] - ticks[0]) ** 2
    return float(distribution.log_prob(torch.cartesian_prod(ticks, ticks)).exp().sum() * cell)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_density_integrates_to_one_and_its_samples_sit_on_its_modes(name):
    distribution = make_distribution(name)
    assert grid_integral(distribution) == pytest.approx(1.0, abs=2e-3)
    x = distribution.sample(4000, seed=0)
    assert x.dtype == torch.float32 and x.shape == (4000, 2)
    assert torch.equal(x, distribution.sample(4000, seed=0)) and not torch.equal(x, distribution.sample(4000, seed=1))
    coverage = metrics.mode_coverage(distribution, x)
    assert coverage.covered == coverage.n_modes and coverage.on_support > 0.98


def test_user_points_become_a_normalised_kernel_mixture_with_clustered_modes():
    blobs = torch.cat([torch.randn(50, 2, generator=torch.Generator().manual_seed(i)) * 0.3 + 10 * i
                       for i in range(3)])
    distribution = from_points(blobs)
    assert grid_integral(distribution) == pytest.approx(1.0, abs=2e-3)
    assert distribution.n_modes == 8 and distribution.means.abs().max() <= 2.0 + 1e-9
    for bad, message in [(torch.zeros(5, 2), "between 8 and"), (torch.zeros(20, 3), r"\[n, 2\]"),
                         (torch.zeros(20, 2), "all the same point"), (torch.full((20, 2), math.nan), "finite")]:
        with pytest.raises(EngineError, match=message):
            from_points(bad)


def test_log_densities_match_closed_forms():
    one = GaussianMixture("one", torch.tensor([[1.0, -1.0]]), 0.5, torch.zeros(1))
    x = torch.tensor([[1.0, -1.0], [2.0, 0.0]], dtype=torch.float64)
    closed = -((x - torch.tensor([1.0, -1.0])) ** 2).sum(1) / (2 * 0.25) - 2 * math.log(0.5) - math.log(2 * math.pi)
    assert torch.allclose(one.log_prob(x), closed)
    board = Checkerboard()
    inside = board.log_prob(torch.tensor([[-1.5, -1.5]]))   # the centre of a black square: density 1/8
    far = board.log_prob(torch.tensor([[-1.5, -0.5], [40.0, 40.0]]))   # a white square; far away
    assert float(inside) == pytest.approx(math.log(1 / 8), abs=1e-6)
    assert torch.isfinite(far).all() and (far < math.log(1 / 8) - 20).all()
    # The data's own average log-likelihood is minus the entropy: for one Gaussian, -(1 + log(2 pi s^2)).
    assert metrics.true_log_likelihood(one, one.sample(20000, seed=0)) == pytest.approx(
        -(1 + math.log(2 * math.pi * 0.25)), abs=0.03)


def test_coverage_turns_mode_collapse_into_a_number():
    ring = ring8()
    collapsed = ring.means[3].expand(800, 2) + 0.05 * torch.randn(800, 2, generator=torch.Generator().manual_seed(0))
    coverage = metrics.mode_coverage(ring, collapsed)
    assert (coverage.covered, coverage.share, coverage.on_support) == (1, 1 / 8, 1.0)
    assert coverage.counts[3] == 800
    between = metrics.mode_coverage(ring, torch.zeros(100, 2))       # a blur at the centre: on no mode
    assert between.covered == 0 and between.on_support == 0.0
    half = metrics.mode_coverage(ring, torch.cat([ring.sample(1000, seed=1), ring.means[:4].repeat(500, 1).float()]))
    assert half.covered == 8   # over-represented modes do not hide the others


class GaussianDataEpsilon(nn.Module):
    """The exact noise predictor for data N(0, s^2 I): E[eps | x_t] = sqrt(1 - abar) x_t / (abar s^2 + 1 - abar)."""

    def __init__(self, s, schedule):
        super().__init__()
        self.s, self.schedule = s, schedule

    def forward(self, x, t):
        abar = math.exp(metrics.log_alpha_bar(self.schedule, float(t[0]))[0])
        return math.sqrt(1 - abar) * x / (abar * self.s ** 2 + 1 - abar)


@pytest.mark.parametrize("s", [0.3, 1.0, 2.0])
def test_ode_likelihood_of_a_known_gaussian_matches_the_closed_form(s):
    model = GaussianDataEpsilon(s, make_trainer("diffusion", ring8()).model.schedule)
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0)) * s
    exact = (-0.5 * (x.double() / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)).sum(1)
    ode = metrics.diffusion_log_likelihood_per_point(model, x)
    assert (ode - exact).abs().max() < 0.02


def test_vae_quadrature_is_exact_for_a_linear_decoder_and_the_elbo_is_below_it():
    vae = make_trainer("vae", ring8(), seed=0).model
    vae.decoder = nn.Linear(2, 2)   # p(x) = N(b, W W^T + sigma^2 I): known in closed form
    with torch.no_grad():
        vae.decoder.weight.copy_(torch.tensor([[0.8, 0.3], [-0.2, 0.5]]))
        vae.decoder.bias.copy_(torch.tensor([0.5, -0.25]))
        vae.decoder_log_std.fill_(math.log(0.3))
    w, b = vae.decoder.weight.detach().double(), vae.decoder.bias.detach().double()
    exact = torch.distributions.MultivariateNormal(b, w @ w.T + 0.09 * torch.eye(2, dtype=torch.float64))
    torch.manual_seed(0)
    x = exact.sample((100,)).float()   # typical points: their posteriors lie inside the quadrature box
    quadrature = metrics.vae_log_likelihood_per_point(vae, x)
    assert (quadrature - exact.log_prob(x.double())).abs().max() < 1e-3
    assert metrics.vae_elbo(vae, x) < float(quadrature.mean())


@pytest.mark.slow   # trains 400 steps
def test_trained_vae_elbo_below_exact_which_matches_importance_sampling():
    ring = ring8()
    trainer = make_trainer("vae", ring, seed=0)
    trainer.train(400)
    vae, x = trainer.eval_model, ring.sample(100, seed=5)
    exact = metrics.vae_log_likelihood_per_point(vae, x)
    with torch.no_grad():   # importance sampling with the encoder as proposal, K = 4000
        mean, logvar = vae.encode(x)
        std = (0.5 * logvar).exp()
        z = mean + std * torch.randn((4000, *mean.shape), generator=torch.Generator().manual_seed(0))
        normal = torch.distributions.Normal(0, 1)
        log_w = vae.log_px_given_z(x, z) + normal.log_prob(z).sum(-1) \
            - torch.distributions.Normal(mean, std).log_prob(z).sum(-1)
        importance = torch.logsumexp(log_w.double(), 0) - math.log(4000)
    assert float((importance - exact).mean()) == pytest.approx(0, abs=0.05)
    assert metrics.vae_elbo(vae, x) < float(exact.mean()) < metrics.true_log_likelihood(ring, x)


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion", "flow", "diffusion_gan"])
def test_training_is_seeded_resumable_and_keeps_the_sample_contract(family):
    ring = ring8()
    whole, pieces, other = (make_trainer(family, ring, seed=s) for s in (3, 3, 4))
    whole.train(30)
    pieces.train(12)
    pieces.train(18)
    other.train(30)
    for a, b in zip(whole.eval_model.state_dict().values(), pieces.eval_model.state_dict().values()):
        assert torch.equal(a, b)
    x = whole.sample(64, seed=1)
    assert x.shape == (64, 2) and x.dtype == torch.float32
    assert torch.equal(x, pieces.sample(64, seed=1)) and not torch.equal(x, other.sample(64, seed=1))
    assert whole.step == 30 and len(next(iter(whole.losses.values()))) == 30
    whole.set_lr(1e-4)
    assert whole.lr == 1e-4


def test_bad_settings_raise_engine_errors_that_say_what_to_do():
    for lr in (0, -1e-3, 1.0, "fast", True):
        with pytest.raises(EngineError, match="learning rate must be a number in"):
            check_lr(lr)
    with pytest.raises(EngineError, match="unknown distribution"):
        make_distribution("spiral")
    with pytest.raises(EngineError, match="unknown family"):
        make_trainer("reflow", ring8())     # built from a trained flow (ReflowTrainer), not from nothing
    with pytest.raises(EngineError, match="unknown sampler"):
        make_trainer("diffusion", ring8()).sample(4, sampler="euler")


def test_views_have_the_shapes_the_app_draws():
    ring = ring8()
    trainers = {f: make_trainer(f, ring) for f in ("vae", "gan", "diffusion")}
    assert views.true_density(ring, 50).shape == (50, 50)
    assert views.discriminator_map(trainers["gan"].model, 40).shape == (40, 40)
    means, lines = views.latent_maps(trainers["vae"].model, ring.sample(30))
    assert means.shape == (30, 2) and lines.shape == (22, 60, 2)
    assert views.trajectories(trainers["diffusion"].eval_model, n=5, steps=10).shape == (11, 5, 2)


def test_the_toy_diffusion_gans_chain_ends_at_its_generators_x0_and_starts_near_the_identity():
    """Four steps at the trailing timesteps of the toy schedule; the last step's output is G's x0 itself (no
    noise added); the chain drawn is the chain sampled; and thanks to the preconditioning an untrained G already
    maps a barely noised point at the last level close to itself, so that step need not first learn the identity."""
    from engines.engine import make_generator
    trainer = make_trainer("diffusion_gan", ring8())
    model = trainer.eval_model
    assert model.timesteps == [199, 149, 99, 49]
    steps = []
    x = model.sample(6, make_generator(0), callback=steps.append)
    assert len(steps) == 4 and torch.equal(steps[-1].prev_sample, steps[-1].predicted_x0)
    assert torch.equal(x, steps[-1].prev_sample)
    path = views.chain_trajectories(model, n=6, seed=0)
    assert path.shape == (5, 6, 2) and torch.equal(path[-1], x) and torch.equal(path[0], steps[0].x_t)
    points = ring8().sample(500, seed=0)
    t = torch.full((500,), 49)
    x_t = model.schedule.q_sample(points, t, torch.randn(points.shape, generator=make_generator(1)))
    with torch.no_grad():
        guess = model.predicted_x0(x_t, model.latents(500, make_generator(2)), t)
    error = (guess - points).pow(2).sum(1).mean()
    assert error < 1.5 * (x_t - points).pow(2).sum(1).mean()      # about as close as x_t itself
    assert error < 0.2 * points.pow(2).sum(1).mean()              # an unconditioned net's ~0 would be off by |x0|^2


# ------------------------------------------------------------------------------------------ the app's tab
def test_user_points_from_csv_and_sketch(tmp_path):
    from engines.toy.user_points import read_csv_points, sketch_points
    good = tmp_path / "good.csv"
    good.write_text("x,y\n" + "\n".join(f"{i % 5},{i // 5}" for i in range(20)))
    assert read_csv_points(good).shape == (20, 2)
    for text, message in [("x,y,z\n1,2,3\n", "exactly two columns"), ("a,b\n1,oops\n", "row 1 is not two numbers"),
                          ("x,y\n1,2\n", "between 8 and")]:
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(EngineError, match=message):
            read_csv_points(bad)
    canvas = torch.full((50, 80, 4), 255, dtype=torch.uint8)
    canvas[10:20, 5:15, :3] = 0   # a black square, drawn near the top left
    points = sketch_points(canvas.numpy())
    assert points.shape == (100, 2) and points[:, 1].min() >= 50 - 20 and points[:, 0].max() <= 14
    with pytest.raises(EngineError, match="the canvas is empty"):
        sketch_points(torch.full((50, 80, 4), 255, dtype=torch.uint8).numpy())


def new_client(client):
    """Another visitor: a fresh session (its own gr.State) on the same server."""
    from gradio_client import Client
    return Client(client.src, verbose=False)


def run_to_end(job, timeout=900):
    # A hang guard, not a speed claim (lesson times are a benchmark: scripts/lesson_times.py); the divergence
    # lesson trains a minimax twin beside its GAN and takes minutes on a busy 2-core machine.
    job.result(timeout=timeout)
    return job.outputs()


def wait_for_outputs(job, n: int = 1, timeout=900) -> list:
    """Block until `job` has streamed `n` outputs; its outputs so far. Iterating a job blocks until its next output
    arrives; the thread and the event only let a hung server fail the test instead of hanging it."""
    arrived = threading.Event()

    def read():
        try:
            while len(job.outputs()) < n:
                next(job)
        except StopIteration:   # the job ended first
            pass
        arrived.set()

    threading.Thread(target=read, daemon=True).start()
    assert arrived.wait(timeout), f"no {n} outputs in {timeout} s: the server hangs"
    outputs = job.outputs()
    if len(outputs) < n:
        job.result()   # raises the job's error, if it failed
    assert len(outputs) >= n, f"the job ended after {len(outputs)} outputs"
    return outputs


LESSON_NUMBERS = {
    "gan_collapse": lambda rows, truth: rows["GAN"]["modes_covered"] <= 6 and rows["diffusion"]["modes_covered"] == 8,
    "vae_blur": lambda rows, truth: rows["VAE"]["elbo"] <= rows["VAE"]["model_loglik"] <= truth
    and rows["VAE"]["on_support"] < 0.8,
    "diffusion_steps": lambda rows, truth: rows["diffusion, 200 steps"]["modes_covered"] == 8
    and rows["diffusion, 5 steps"]["on_support"] < rows["diffusion, 200 steps"]["on_support"]
    and rows["diffusion, 200 steps"]["model_loglik"] <= truth,
    "gan_divergence": lambda rows, truth: rows["GAN"]["step"] == 2500,   # its numbers: checked below, beyond rows
    "diffusion_gan": lambda rows, truth: rows["diffusion GAN"]["modes_covered"] == 8
    and rows["diffusion GAN"]["on_support"] >= 0.8 and rows["diffusion GAN"]["step"] == rows["GAN"]["step"] == 2500,
    "straight_paths": lambda rows, truth: rows["reflow, 1 step"]["modes_covered"] == 8
    and rows["flow, 1 step"]["modes_covered"] < 8 and rows["reflow, 1 step"]["step"] == 1000
    and rows["reflow, 1 step"]["energy"] < rows["flow, 1 step"]["energy"] / 10,
    "guidance": lambda rows, truth: rows["w = 1"]["modes_covered"] == 8 and rows["w = 1"]["step"] == 3000
    and rows["w = 0"]["on_support"] < rows["w = 1"]["on_support"],
}


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.parametrize("key", list(LESSON_NUMBERS))
def test_each_lesson_streams_and_ends_with_numbers_that_show_its_claim(client, key):
    """Every lesson's claims, checked once, through the API the page calls (tests/test_browser.py runs one lesson
    in the browser, end to end)."""
    from app.playground import VIEWED
    from engines.toy.lessons import LESSONS
    assert set(LESSON_NUMBERS) == set(LESSONS)
    # How long a lesson takes is a benchmark (scripts/lesson_times.py), not a test: it depends on the machine.
    frames = run_to_end(client.submit(key, api_name="/playground_lesson"))
    assert len(frames) >= 4                                   # live updates, not one final answer
    status, *strips, table, numbers = frames[-1]
    assert numbers["done"] and numbers["lesson"] == key
    assert numbers["claims"] and all(claim["holds"] for claim in numbers["claims"]), numbers["claims"]
    assert LESSON_NUMBERS[key](numbers["rows"], numbers["data_true_loglik"])
    if key == "gan_divergence":   # the JSD falls over the checkpoints, and no learned D beats D*'s value
        history, end = numbers["divergence_history"], numbers["gan_divergence"]
        assert len(history) == 10 and history[-1][1] < history[0][1] - 0.2
        assert end["game_value"] <= end["game_optimum"] + 2 * end["game_optimum_se"]
    assert f"**{LESSONS[key].title}**: done. Every claim holds." in status
    assert table.count("- **holds**:") == len(numbers["claims"])
    # One live view per family the lesson trains (and, once built, each it derives from them), in every frame;
    # the others are hidden, not empty frames.
    assert len(strips) == len(VIEWED)
    trained, derived = set(LESSONS[key].families), set(LESSONS[key].derived)
    for name in derived:   # while a derived model draws its data, the status says what comes next
        assert any(f"next: {name}, from the trained models' own samples" in frame[0] for frame in frames), key
    for frame in frames:   # each strip arrives as an update: {"visible": ..., "value": image path or None}
        shown = {f for f, strip in zip(VIEWED, frame[1:1 + len(VIEWED)]) if strip["visible"]}
        assert shown in (trained, trained | derived), (key, shown)
        assert all(bool(strip["value"]) == strip["visible"] for strip in frame[1:1 + len(VIEWED)])
    assert shown == trained | derived


@pytest.mark.slow
def test_train_pause_continue_and_reset_keep_state_per_visitor(client):
    visitor = new_client(client)
    args = ["ring8", ["vae"], 0.002, 300, 0, None, None]
    first = run_to_end(visitor.submit(*args, api_name="/playground_train"))[-1][-1]
    assert first["done"] and first["rows"]["vae"]["step"] == 300 and "elbo" in first["rows"]["vae"]
    args[3] = 200
    assert run_to_end(visitor.submit(*args, api_name="/playground_train"))[-1][-1]["rows"]["vae"]["step"] == 500
    # Pause in the middle of a long Start: training stops where it was, and Start continues from there.
    args[3] = 5000
    job = visitor.submit(*args, api_name="/playground_train")
    wait_for_outputs(job, 2)   # two pictures in: training is under way
    assert "Paused at steps: vae" in visitor.predict(api_name="/playground_pause")
    paused = run_to_end(job)[-1][-1]["rows"]["vae"]["step"]   # the loop stops at its next chunk, without measuring
    assert 500 < paused < 5500 and not job.outputs()[-1][-1]["done"]
    args[3] = 250
    resumed = run_to_end(visitor.submit(*args, api_name="/playground_train"))[-1][-1]["rows"]["vae"]["step"]
    assert resumed == paused + 250
    visitor.predict(api_name="/playground_reset")
    assert run_to_end(visitor.submit(*args, api_name="/playground_train"))[-1][-1]["rows"]["vae"]["step"] == 250


@pytest.mark.slow
def test_bad_input_gets_a_clear_message_not_a_traceback(client, tmp_path):
    from gradio_client import handle_file
    base = ["ring8", ["gan"], 0.002, 100, 0, None, None]
    wrong_columns = tmp_path / "three.csv"
    wrong_columns.write_text("x,y,z\n" + "\n".join("1,2,3" for _ in range(10)))
    cases = [({2: 0}, "Learning rate must be a number greater than 0 and at most 0.1"),
             ({2: 0.5}, "Learning rate must be a number greater than 0 and at most 0.1"),
             ({3: 6000}, "Steps must be a whole number between 1 and 5000"),
             ({1: []}, "Choose at least one family"),
             ({0: "points"}, "draw some points on the canvas or upload a CSV"),
             ({0: "points", 6: handle_file(str(wrong_columns))}, "every row needs exactly two columns, x and y")]
    for change, message in cases:
        args = list(base)
        for index, value in change.items():
            args[index] = value
        with pytest.raises(Exception, match=message):
            client.predict(*args, api_name="/playground_train")


@pytest.mark.slow
def test_uploaded_points_train_and_show(client, tmp_path):
    from gradio_client import handle_file
    points = tmp_path / "points.csv"
    points.write_text("x,y\n" + "\n".join(f"{10 * (i % 3) + 0.1 * (i % 7)},{0.1 * (i % 5)}" for i in range(60)))
    image = client.predict("points", 0, None, handle_file(str(points)), api_name="/playground_truth")
    assert image.endswith(".png")
    numbers = run_to_end(client.submit("points", ["gan"], 0.002, 250, 0, None, handle_file(str(points)),
                                       api_name="/playground_train"))[-1][-1]
    assert numbers["done"] and numbers["rows"]["gan"]["n_modes"] == 8 and numbers["rows"]["gan"]["step"] == 250


@pytest.mark.slow
def test_four_visitors_train_at_once_without_blocking_or_mixing(client):
    """How long a visitor waits for a picture depends on the machine: scripts/playground_concurrency.py measures
    it. Here: the four train at once (each shows a picture while none has ended a long Start: a visitor queued
    behind another would show nothing until that one's 5000 steps end), a fifth is served meanwhile, each
    visitor's own Pause stops their own training, and no numbers leak between sessions."""
    from app.playground import MAX_STEPS_PER_START, VIEW_EVERY
    visitors = [new_client(client) for _ in range(4)]
    seeds = [0, 1, 0, 1]   # two pairs: each pair must agree exactly, so nothing leaks between sessions
    jobs = [v.submit("ring8", ["gan"], 0.002, MAX_STEPS_PER_START, s, None, None, api_name="/playground_train")
            for v, s in zip(visitors, seeds)]
    firsts = [wait_for_outputs(job, 1)[0][-1]["rows"]["gan"] for job in jobs]
    assert not any(job.done() for job in jobs)   # all four were training at once, none queued behind another
    assert "What to look at" in new_client(client).predict("vae_blur", api_name="/playground_describe")
    assert not any(job.done() for job in jobs)   # the fifth visitor was answered while the four trained
    assert all(first["step"] == VIEW_EVERY for first in firsts)
    assert firsts[0] == firsts[2] and firsts[1] == firsts[3] and firsts[0] != firsts[1]
    for visitor in visitors:
        assert "Paused at steps: gan" in visitor.predict(api_name="/playground_pause")
    for job in jobs:
        last = run_to_end(job)[-1][-1]
        assert not last["done"] and VIEW_EVERY <= last["rows"]["gan"]["step"] < MAX_STEPS_PER_START


@pytest.mark.slow   # trains 300 steps
def test_the_diffusion_sampler_of_a_playground_can_be_langevin():
    from engines.toy.distributions import make_distribution
    from engines.toy.session import Playground
    playground = Playground(make_distribution("ring8"), ["diffusion"], seed=0)
    for _ in playground.train(300, every=300):
        pass
    ddpm = playground.samples("diffusion", n=200)
    playground.diffusion_sampler = "langevin"
    langevin = playground.samples("diffusion", n=200)
    assert not torch.equal(ddpm, langevin) and torch.isfinite(langevin).all()
    snapshot = playground.snapshot()
    assert snapshot.extra["diffusion"].shape[1:] == (24, 2)   # Langevin's own paths, one point per level


@pytest.mark.slow
def test_playground_train_takes_the_diffusion_sampler(client):
    numbers = run_to_end(client.submit("ring8", ["diffusion"], 0.002, 250, 0, None, None, "langevin",
                                       api_name="/playground_train"))[-1][-1]
    assert numbers["done"] and numbers["rows"]["diffusion"]["step"] == 250
    from gradio_client.exceptions import AppError
    # The train event has no validator: the Dropdown's own choice check refuses it, before the handler runs.
    with pytest.raises(AppError, match=re.escape(
            "Value: euler is not in the list of choices: ['ddpm', 'ddim', 'langevin']")):
        client.predict("ring8", ["diffusion"], 0.002, 250, 0, None, None, "euler", api_name="/playground_train")


def test_energy_distance_is_zero_for_one_sample_and_grows_with_a_shift():
    x = ring8().sample(400, seed=0)
    assert metrics.energy_distance(x, x) == pytest.approx(0, abs=1e-12)
    near, far = (metrics.energy_distance(x, x + torch.tensor([shift, 0.0])) for shift in (0.1, 1.0))
    assert 0 < near < far
    # for a shift of a point mass, the energy distance is 2|shift|: both samples single points
    assert metrics.energy_distance(torch.zeros(3, 2), torch.ones(3, 2)) == pytest.approx(2 * 2 ** 0.5)


def test_reflow_starts_from_its_flow_and_learns_the_flows_own_couplings():
    from engines.toy.training import ReflowTrainer
    flow = make_trainer("flow", ring8(), seed=1)
    flow.train(20)
    reflow = ReflowTrainer(flow, couplings=64, steps=5)
    for a, b in zip(flow.eval_model.state_dict().values(), reflow.model.state_dict().values()):
        assert torch.equal(a, b)
    again = flow.eval_model.sample(64, None, steps=5, noise=reflow.noise)
    assert torch.equal(reflow.images, again) and reflow.noise.shape == (64, 2)
    reflow.train(3)
    assert reflow.step == 3 and len(reflow.losses["loss"]) == 3 and torch.equal(flow.eval_model.sample(
        64, None, steps=5, noise=reflow.noise), again)   # training reflow leaves its flow alone


@pytest.mark.slow
def test_the_committed_straight_paths_study_is_what_its_code_measures():
    """docs/straight_paths.json's seed 0, re-measured (one thread, as the study ran): the same numbers."""
    from engines.toy.path_study import one_seed, read_study
    study = read_study()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        again = one_seed(0, study["settings"])
    finally:
        torch.set_num_threads(threads)
    assert again == study["runs"]["0"]
