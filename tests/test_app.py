"""The app launched on a free port and driven through gradio_client, as a Space visitor's API call would."""
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import ValidationError
from PIL import Image

from app import build_demo
from conftest import fashion_or_skip
from engines.checkpoint import CHECKPOINTS
from engines.data.datasets import load_mnist5k
from engines.errors import EngineError
from engines.measure.guide import compare_view
from engines.measure.plain_words import summary_in_words

pytestmark = pytest.mark.slow


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def shown() -> list[str]:
    """The families Side by side draws, in order: its outputs are a grid and a caption each, then what to look at."""
    from engines.registry import families
    return [f.name for f in families()]


def grid_at(name: str) -> int:
    return 2 * shown().index(name)


def caption_at(name: str) -> int:
    return grid_at(name) + 1


def test_side_by_side_a_grid_per_family_with_timings_and_determinism(client):
    from app.tabs.side_by_side import GRIDS
    first = client.predict(3, 4, "ddim", 10, api_name="/side_by_side")
    GRIDS.results.clear()    # drawn again, not served from the shared results
    again = client.predict(3, 4, "ddim", 10, api_name="/side_by_side")
    other = client.predict(4, 4, "ddim", 10, api_name="/side_by_side")
    assert len(first) == 2 * len(shown()) + 1      # a grid and a caption per family, then what to look at
    for name in shown():
        i = grid_at(name)
        assert pixels(first[i]).shape == (3 * 62, 3 * 62)  # 2x2 grid of 28 px + 2 px borders, upscaled 3x
        assert np.array_equal(pixels(first[i]), pixels(again[i]))
        assert not np.array_equal(pixels(first[i]), pixels(other[i]))
    assert "ms for 4 samples" in first[1] and "10 network evaluations" in first[caption_at("diffusion")]
    # flow matching integrates its ODE with as many network evaluations as the page gives diffusion
    assert first[caption_at("flow")].startswith("Flow matching:")
    assert "10 network evaluations per sample (euler, 10 steps)" in first[caption_at("flow")]
    latent, hybrid = first[caption_at("latent_diffusion")], first[caption_at("diffusion_gan")]
    assert latent.startswith("Latent diffusion:") and "10 network evaluations per sample (ddim" in latent
    assert hybrid.startswith("Diffusion GAN:") and "4 network evaluations per sample (its own" in hybrid
    assert first[-1].startswith("**What to look at.**") and "Classifier:" not in first[1]   # unlabelled: no overlay


def test_each_knob_is_a_slider_under_its_grid_that_redraws_that_grid_only(client):
    """Issue 29: each family's fidelity-diversity knob (its record's `knob`) is a slider under its grid, an API
    parameter after `labelled` in registry order. Turned, its family's grid becomes the engine's own sample with
    that option, named in the caption, and every other grid stays; at their defaults the models sample as
    trained; a position off the slider is refused with the knob's range."""
    from app.images import grid_image
    from app.tabs.side_by_side import knobbed
    from engines import load_engine
    knobs = knobbed()
    assert knobs and all(f.knob.slider[0] < f.knob.slider_default() <= f.knob.slider[1] for f in knobs)
    defaults = [f.knob.slider_default() for f in knobs]
    plain = client.predict(3, 4, "ddim", 10, "mnist", False, api_name="/side_by_side")
    as_trained = client.predict(3, 4, "ddim", 10, "mnist", False, "any", *defaults, api_name="/side_by_side")
    assert all(np.array_equal(pixels(plain[grid_at(n)]), pixels(as_trained[grid_at(n)])) for n in shown())
    assert all(f.knob.symbol + " =" not in as_trained[caption_at(f.name)] for f in knobs)
    for i, family in enumerate(knobs):
        low = family.knob.slider[0]
        turned = client.predict(3, 4, "ddim", 10, "mnist", False, "any", *defaults[:i], low, *defaults[i + 1:],
                                api_name="/side_by_side")
        assert turned[caption_at(family.name)].endswith(family.knob.label(low))
        options = {**family.sampling_options("ddim", 10), family.knob.option: low}   # the page's sampler, if taken
        expected = grid_image(load_engine(family.name).sample(4, seed=3, **options))
        assert np.array_equal(pixels(turned[grid_at(family.name)]), np.asarray(expected.convert("L")))
        assert not np.array_equal(pixels(turned[grid_at(family.name)]), pixels(plain[grid_at(family.name)]))
        assert all(np.array_equal(pixels(plain[grid_at(n)]), pixels(turned[grid_at(n)]))
                   for n in shown() if n != family.name)
    family, (low, high, _) = knobs[0], knobs[0].knob.slider
    with pytest.raises(Exception, match=re.escape(f"{family.heading} {family.knob.option}: {family.knob.symbol} must "
                                                  f"be a number between {low:g} and {high:g}, got 9")):
        client.predict(3, 4, "ddim", 10, "mnist", False, "any", 9, *defaults[1:], api_name="/side_by_side")


def test_ask_for_a_class_asks_each_conditional_family_and_says_the_others_cannot(client):
    """Issue 29's class picker: each shipped conditional family draws the class asked, from the page's seed: its
    grid is its engine's `sample(..., labels=k)` and the lab's nets read nearly all of it as that class; every
    unconditional family keeps its samples and its caption says it cannot be asked; a bad class is refused."""
    import torch

    from app.images import grid_image
    from engines import load_engine
    from engines.measure.conditional import asked_class_shares
    from engines.registry import families, family
    conditional = [f.name for f in families() if f.conditional]
    assert conditional, "no class-conditional family ships"
    plain = client.predict(2, 16, "ddim", 5, "mnist", False, "any", api_name="/side_by_side")
    sevens = client.predict(2, 16, "ddim", 5, "mnist", False, "7", api_name="/side_by_side")
    for name in conditional:
        options = family(name).sampling_options("ddim", 5)      # the page's sampler, where the family takes it
        drawn = load_engine(name).sample(16, seed=2, labels=7, **options)
        assert np.array_equal(pixels(sevens[grid_at(name)]), np.asarray(grid_image(drawn).convert("L")))
        assert not np.array_equal(pixels(plain[grid_at(name)]), pixels(sevens[grid_at(name)]))
        assert "cannot be asked" not in sevens[caption_at(name)]
        assert min(asked_class_shares(drawn, torch.full((16,), 7), "mnist").values()) >= 0.8, name
    for name in (n for n in shown() if n not in conditional):
        assert np.array_equal(pixels(sevens[grid_at(name)]), pixels(plain[grid_at(name)]))
        assert sevens[caption_at(name)].endswith("Unconditional: it cannot be asked for a class, these are its "
                                                 "samples as drawn")
    with pytest.raises(Exception, match="unknown class 'seven'"):
        client.predict(2, 16, "ddim", 5, "mnist", False, "seven", api_name="/side_by_side")


def test_a_request_made_again_is_served_from_the_shared_results_which_stay_bounded():
    from app.serving import SharedResults
    shared, calls = SharedResults(maxsize=2), []
    def draw(key):
        calls.append(key)
        return [key]
    first = shared.get("a", lambda: draw("a"))
    assert shared.get("a", lambda: draw("a")) is first and calls == ["a"]     # the second visitor: no work
    for key in "bcd":
        shared.get(key, lambda k=key: draw(k))
    assert list(shared.results) == ["c", "d"]                                 # the oldest dropped
    assert shared.get("a", lambda: draw("a")) == ["a"] and calls == ["a", "b", "c", "d", "a"]
    # bounded in bytes too: the oldest go until what is kept fits (the newest stays, whatever its size)
    sized = SharedResults(maxsize=100, max_bytes=10, size_of=len)
    for key in ("abcd", "efgh", "ijkl"):
        sized.get(key, lambda k=key: k)
    assert list(sized.results) == ["efgh", "ijkl"] and sized.held_bytes() == 8
    sized.get("x" * 20, lambda: "x" * 20)
    assert list(sized.results) == ["x" * 20]


def test_identical_requests_in_flight_are_computed_once_and_a_failure_is_not_kept():
    import threading
    import time

    from app.serving import SharedResults
    shared, calls, release = SharedResults(), [], threading.Event()
    def draw(key, fail=False):
        calls.append(key)
        release.wait(timeout=30)
        if fail:
            raise ValueError(f"{key} failed")
        return [key]
    answers = {}
    def ask(name, key, fail=False):
        try:
            answers[name] = shared.get(key, lambda: draw(key, fail))
        except ValueError as error:
            answers[name] = error
    first = threading.Thread(target=ask, args=("first", "a"))
    first.start()
    while "a" not in shared.in_flight:
        time.sleep(0.01)
    second = threading.Thread(target=ask, args=("second", "a"))   # asks while the first is still drawing
    second.start()
    time.sleep(0.3)
    release.set()
    first.join(), second.join()
    assert calls == ["a"] and answers["first"] is answers["second"] == ["a"]
    assert not shared.in_flight
    # a failed drawing: whoever waited for it gets its error, nothing is kept, and the next request draws again
    release.clear()
    threads = [threading.Thread(target=ask, args=(name, "b", True)) for name in ("third", "fourth")]
    threads[0].start()
    while "b" not in shared.in_flight:
        time.sleep(0.01)
    threads[1].start()
    time.sleep(0.3)
    release.set()
    [thread.join() for thread in threads]
    assert calls == ["a", "b"] and all(str(answers[n]) == "b failed" for n in ("third", "fourth"))
    assert "b" not in shared.results and not shared.in_flight
    assert shared.get("b", lambda: draw("b")) == ["b"] and calls == ["a", "b", "b"]


def test_drawing_slots_go_to_the_page_that_asked_first_not_to_the_first_to_wait():
    import threading
    import time

    from app.serving import DrawingSlots
    slots, order, waiting = DrawingSlots(1), [], []
    def draw(asked):
        with slots.held(asked):
            order.append(asked)
    with slots.held(0.0):                                   # the one slot busy while three pages line up
        for asked in (3.0, 1.0, 2.0):
            waiting.append(threading.Thread(target=draw, args=(asked,)))
            waiting[-1].start()
            while len(slots.waiting) < len(waiting):
                time.sleep(0.01)
    [thread.join() for thread in waiting]
    assert order == [1.0, 2.0, 3.0] and slots.free == 1 and not slots.waiting


def test_side_by_side_labels_each_sample_with_what_the_classifier_sees(client):
    from engines import load_engine
    from engines.measure.recognition import recognise
    plain = client.predict(3, 4, "ddim", 10, "mnist", False, api_name="/side_by_side")
    labelled = client.predict(3, 4, "ddim", 10, "mnist", True, api_name="/side_by_side")
    seen = recognise(load_engine("vae").sample(4, seed=3), "mnist")
    assert labelled[1].endswith(f"Classifier: {seen.summary()}")
    def colour(path):   # pixels whose red and blue differ: the labels and frames (a plain grid is grey)
        picture = np.asarray(Image.open(path).convert("RGB")).astype(int)
        return np.abs(picture[..., 0] - picture[..., 2]) > 60
    assert colour(labelled[0]).shape == pixels(plain[0]).shape               # the same grid, written on
    assert colour(labelled[0]).any() and not colour(plain[0]).any()
    assert "In these grids, the classifier sees:" in labelled[-1] and seen.summary() in labelled[-1]


def test_bad_input_gets_a_clear_message(client):
    with pytest.raises(Exception, match="Count must be a whole number between 1 and 64, got 500"):
        client.predict(0, 500, "ddim", 10, api_name="/side_by_side")
    with pytest.raises(Exception, match="Seed must be a whole number between 0 and 2147483647, got -5"):
        client.predict(-5, 4, "ddim", 10, api_name="/side_by_side")
    with pytest.raises(Exception, match="Seed must be a whole number between 0 and"):
        client.predict(2.5, 4, "ddim", 10, api_name="/side_by_side")
    with pytest.raises(Exception, match="Digit A index must be a whole number between 0 and 999"):
        client.predict(5000, 1, 8, "slerp", api_name="/vae_interpolate")
    with pytest.raises(Exception, match="Digit A index must be a whole number between 0 and 999, got -1"):
        client.predict(-1, 1, 8, "slerp", api_name="/vae_interpolate")   # ours, not the Number's own minimum
    with pytest.raises(Exception, match="Steps must be a whole number between 2 and"):
        client.predict(0, 1, 1, "slerp", api_name="/vae_interpolate")


def test_vae_interpolation_from_test_digits_by_index_or_class(client):
    strip, recon, animation, notes = client.predict(0, 1, 6, "lerp", "any", "any", api_name="/vae_interpolate")
    assert pixels(strip).shape[1] == 3 * (6 * 30 + 2)
    assert pixels(recon).shape == (3 * 62, 3 * 62)
    gif = Image.open(animation)
    assert gif.format == "GIF" and gif.n_frames == 6 + 4  # there and back
    assert notes == "Digit A: test digit #0 (a 0). Digit B: test digit #1 (a 0)."
    *_, notes = client.predict(0, 0, 6, "lerp", api_name="/vae_interpolate")   # the page's default pair: 0 -> 7
    assert notes == "Digit A: test digit #0 (a 0). Digit B: test 7 no. 0 (test digit #700)."
    _, _, _, notes = client.predict(2, 0, 4, "slerp", "7", "3", api_name="/vae_interpolate")
    assert notes == "Digit A: test 7 no. 2 (test digit #702). Digit B: test 3 no. 0 (test digit #300)."
    with pytest.raises(Exception, match="Digit B index within class 3 must be a whole number between 0 and 99"):
        client.predict(0, 100, 4, "slerp", "any", "3", api_name="/vae_interpolate")


def test_vae_interpolation_from_an_uploaded_or_drawn_digit(client, tmp_path):
    page = np.full((300, 240), 255, dtype=np.uint8)
    page[40:260, 110:130] = 0  # a black "1" on white paper
    Image.fromarray(page).convert("RGB").save(tmp_path / "one.png")
    _, recon, _, notes = client.predict(0, 5, 4, "slerp", "any", "any", handle_file(str(tmp_path / "one.png")),
                                        None, api_name="/vae_interpolate")
    assert notes.startswith("Digit A is your upload: read a 240x300 RGB image; converted RGB to grayscale; "
                            "inverted it")
    digit_a = pixels(recon)[6:6 + 84, 6:6 + 84]  # the top-left cell, 3x upscaled
    assert digit_a[42, 42] > 200 and digit_a[3, 3] == 0  # now a white stroke on black
    sketch = np.zeros((280, 280, 4), dtype=np.uint8)
    sketch[60:220, 130:150] = (0, 0, 0, 255)  # black pen on a transparent canvas
    Image.fromarray(sketch, "RGBA").save(tmp_path / "sketch.png")
    drawing = {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "sketch.png"))}
    _, _, _, notes = client.predict(0, 5, 4, "slerp", "any", "any", None, drawing, api_name="/vae_interpolate")
    assert notes.startswith("Digit A is your drawing: ") and "flattened transparency onto white" in notes
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(Exception, match="Your upload: could not read the upload as an image"):
        client.predict(0, 5, 4, "slerp", "any", "any", handle_file(str(tmp_path / "notes.txt")), None,
                       api_name="/vae_interpolate")
    Image.new("RGB", (64, 64), "white").save(tmp_path / "blank.png")
    with pytest.raises(Exception, match="Your upload: the image is blank"):
        client.predict(0, 5, 4, "slerp", "any", "any", handle_file(str(tmp_path / "blank.png")), None,
                       api_name="/vae_interpolate")


def test_only_files_in_gradios_upload_folder_are_read():
    """The VAE event skips Gradio's preprocessing, so the FileData a caller sends could name any path: the lab
    reads only what the server received (gradio_client uploads a local file first, so this is checked here)."""
    from gradio.utils import get_upload_folder

    from app.inputs import received_file
    received = str(Path(get_upload_folder()) / "0123abcd" / "digit.png")
    assert received_file({"path": received, "meta": {"_type": "gradio.FileData"}}) == received
    assert received_file(None) is None
    for elsewhere in ({"path": "/etc/hostname"}, "/etc/hostname", {"path": f"{get_upload_folder()}/../etc/x"}):
        with pytest.raises(EngineError, match="it is not a file this server received"):
            received_file(elsewhere)


def test_vae_latent_map(client):
    lattice, plot, caption = client.predict(4, api_name="/vae_latent_map")
    assert pixels(lattice).shape == (3 * 122, 3 * 122)
    assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image")
    assert "4x4 points" in caption and "% of the variance" in caption
    assert "12 latent diffusion samples" in caption


def test_the_conditional_vaes_analogies_keep_each_digits_style_under_every_class(client):
    """Issue 29's CVAE analogy grid: each test digit drawn with the seed, then its encoding decoded under every
    label: the engine's `analogies`, read as the label decoded under by both nets (the caption says how often)."""
    import torch

    from app.tabs.vae_latent import analogy_family
    from engines import load_engine
    from engines.data.datasets import load_lab_split
    from engines.measure.conditional import asked_class_shares
    grid, caption = client.predict(5, 3, api_name="/vae_analogies")
    assert pixels(grid).shape == (3 * (3 * 30 + 2), 3 * (11 * 30 + 2))    # 3 digits, then 10 classes
    test = load_lab_split("mnist", "test")
    picked = torch.randperm(len(test.images), generator=torch.Generator().manual_seed(5))[:3]
    assert f"test digits no. {', '.join(map(str, picked.tolist()))}, drawn with seed 5" in caption
    decoded = load_engine(analogy_family("mnist").name).analogies(test.images[picked], test.labels[picked])
    shares = asked_class_shares(decoded, torch.arange(10).repeat(3), "mnist")
    assert all(f"`{net}` reads {share:.0%} of them" in caption for net, share in shares.items())
    assert min(shares.values()) >= 0.6     # the label, not the encoded digit, decides the class
    with pytest.raises(Exception, match="Digits must be a whole number between 1 and 8"):
        client.predict(5, 9, api_name="/vae_analogies")
    grid, caption = client.predict(5, 3, "fashion", api_name="/vae_analogies")   # Fashion-MNIST's own model
    assert pixels(grid).shape == (3 * (3 * 30 + 2), 3 * (11 * 30 + 2)) and "test images no." in caption


def test_latent_map_projects_latent_diffusion_paths_onto_its_axes():
    import torch

    from engines import load_engine
    vae, latent = load_engine("vae"), load_engine("latent_diffusion")
    view = vae.latent_map(load_mnist5k("test").images[:200], grid=3)
    means = vae.encode(load_mnist5k("test").images[:200])[0]
    assert torch.allclose(view.project(means), view.coordinates, atol=1e-5)   # the digits' own coordinates
    paths = latent.latent_trajectories(3, seed=1, sampler="ddim", steps=10)
    assert paths.shape == (11, 3, vae.latent_dim)
    assert torch.equal(paths[-1], latent.latents(3, seed=1, sampler="ddim", steps=10))
    assert view.project(paths).shape == (11, 3, 2)


def test_gan_sampling_and_interpolation(client):
    grid, caption = client.predict(1, 9, 0.7, api_name="/gan_sample")
    assert pixels(grid).shape == (3 * 92, 3 * 92) and "9 samples" in caption
    strip, animation = client.predict(0, 1, 5, "slerp", 0, api_name="/gan_interpolate")
    again, _ = client.predict(0, 1, 5, "slerp", 0, api_name="/gan_interpolate")
    assert pixels(strip).shape[1] == 3 * (5 * 30 + 2) and np.array_equal(pixels(strip), pixels(again))
    assert Image.open(animation).n_frames == 5 + 3
    # The path's ends are the two seeds' own samples.
    first, _ = client.predict(0, 1, 0, api_name="/gan_sample")
    assert np.array_equal(pixels(strip)[:, :90], pixels(first)[:, :90])


@pytest.mark.parametrize("sampler,steps,frames", [("ddim", 20, 20), ("diffusers:HeunDiscreteScheduler", 8, 15)])
def test_streamed_diffusion_then_scrub_and_gif(client, sampler, steps, frames):
    job = client.submit(0, 2, sampler, steps, api_name="/diffusion_steps")
    job.result()
    outputs = job.outputs()
    assert len(outputs) >= 10  # streamed frame by frame, not one final image
    final = outputs[-1]
    assert final[2] == f"step {frames}/{frames}, t = 0"
    assert final[3]["maximum"] == frames - 1  # the scrubber spans the stored steps
    assert Image.open(final[4]).n_frames == frames
    x_t, x0, label = client.predict(3, api_name="/diffusion_scrub")  # this client's own stored run
    assert label.startswith(f"step 4/{frames}, t = ")
    assert pixels(x_t).shape == pixels(x0).shape
    with pytest.raises(Exception, match=f"Value {frames + 5} is greater than maximum value {frames - 1}"):
        client.predict(frames + 5, api_name="/diffusion_scrub")


def test_a_trajectory_asked_again_by_another_visitor_is_replayed_not_drawn_again(client, monkeypatch):
    from gradio_client import Client

    from app.tabs import diffusion
    drawn = []
    streamed = diffusion._stream_trace
    monkeypatch.setattr(diffusion, "_stream_trace", lambda *a, **k: drawn.append(1) or streamed(*a, **k))
    first = client.submit(5, 2, "ddim", 10, api_name="/diffusion_steps")
    first.result()
    other = Client(client.src, verbose=False)   # another visitor, the same inputs
    again = other.submit(5, 2, "ddim", 10, api_name="/diffusion_steps")
    again.result()
    assert drawn == [1]                          # drawn once
    assert len(again.outputs()) == len(first.outputs()) >= 10   # and streamed again, frame by frame
    for mine, theirs in zip(first.outputs()[-1][:2], again.outputs()[-1][:2]):
        assert np.array_equal(pixels(mine), pixels(theirs))
    assert again.outputs()[-1][2] == first.outputs()[-1][2] == "step 10/10, t = 0"
    assert other.predict(3, api_name="/diffusion_scrub")[2].startswith("step 4/10, t = ")   # its own stored run


def test_guidance_step_by_step_shows_both_predictions_and_their_mix(client):
    """Each frame: x_t, the unconditional and conditional x0 from the same x_t, and the sampler's guided x0, which
    is unconditional + w (conditional - unconditional), clipped (DDIM clips x0), to the PNG's 8 bits; the last
    frame's x_t is the engine's own guided sample."""
    from app.images import grid_image
    from engines import load_engine
    job = client.submit(2, 3, "ddim", 10, "7", 3.0, api_name="/guided_steps")
    job.result()
    outputs = job.outputs()
    final, words = outputs[-2], outputs[-1][-1]
    assert len(outputs) >= 10 and final[4] == "step 10/10, t = 0"
    assert Image.open(final[6]).n_frames == 10 and final[5]["maximum"] == 9
    model = load_engine("conditional_diffusion")
    sample = model.sample(3, seed=2, sampler="ddim", steps=10, labels=7, guidance=3.0)
    assert np.abs(pixels(final[0]).astype(int) - np.asarray(grid_image(sample).convert("L"))).max() <= 1
    _, unconditional, conditional, guided, label = client.predict(2, api_name="/guided_scrub")
    assert label.startswith("step 3/10, t = ")
    u, c, g = (pixels(picture).astype(float) for picture in (unconditional, conditional, guided))
    mixed = np.clip(u + 3.0 * (c - u), 0, 255)   # the grids' [0, 1] -> [0, 255] map is affine: eq. 6 holds in pixels
    frame = (slice(3 * 2, 3 * 30), slice(3 * 2, 3 * 30))   # the first sample, clear of the grid's padding
    assert np.abs(mixed - g)[frame].mean() < 3 and np.abs(c - u)[frame].mean() > 3   # the mix, not a copy
    assert "w = 3" in words and 'told "7"' in words and "finished samples" in words
    with pytest.raises(Exception, match="Guidance w must be a number from 0 to 8"):
        client.predict(2, 3, "ddim", 10, "7", 9.5, api_name="/guided_steps")


def test_the_diffusion_gans_four_steps_in_the_diffusion_tab(client):
    from app.images import grid_image
    from engines import load_engine
    job = client.submit(5, 3, api_name="/diffusion_gan_steps")
    job.result()
    final = job.outputs()[-1]
    assert [o[2] for o in job.outputs()[:4]] == [f"step {i}/4, t = {t}" for i, t in
                                                 zip(range(1, 5), (999, 749, 499, 249))]
    assert final[3]["maximum"] == 3 and Image.open(final[4]).n_frames == 4
    # the last frame shows the chain's end: the engine's sample() for that seed
    assert np.array_equal(pixels(final[0]), np.asarray(grid_image(load_engine("diffusion_gan").sample(3, seed=5))))
    # The event's validator refuses it (not the Number's own range check, which preprocess=False skips).
    with pytest.raises(ValidationError, match=re.escape(
            "count: Count must be a whole number between 1 and 16, got 40")):
        client.predict(0, 40, api_name="/diffusion_gan_steps")


def test_the_flow_matching_ode_step_by_step_in_the_diffusion_tab(client):
    """The flow's trajectory, shown as diffusion's: t from 1 (noise) to 0, its last frame the engine's sample()
    at the options the page's sampler maps to (Heun at 3 steps: Heun, as many evaluations)."""
    from app.images import grid_image
    from engines import load_engine
    from engines.sampling.flow import make_flow_times
    job = client.submit(5, 2, "diffusers:HeunDiscreteScheduler", 3, api_name="/flow_steps")
    job.result()
    final = job.outputs()[-1]
    assert [o[2] for o in job.outputs()[:3]] == [f"step {i}/3, t = {t:.3f}"
                                                 for i, t in zip(range(1, 4), make_flow_times(3))]
    assert final[3]["maximum"] == 2 and Image.open(final[4]).n_frames == 3
    flow = load_engine("flow").sample(2, seed=5, sampler="heun", steps=3)
    assert np.array_equal(pixels(final[0]), np.asarray(grid_image(flow)))
    from engines.registry import family
    fashion = client.predict(0, 2, "ddim", 10, "fashion", api_name="/flow_steps")     # Fashion-MNIST's own flow
    options = family("flow").sampling_options("ddim", 10)
    expected = load_engine("flow", dataset="fashion").sample(2, seed=0, **options)
    assert np.array_equal(pixels(fashion[0]), np.asarray(grid_image(expected)))


def test_the_diffusion_tab_integrates_reflow_in_its_own_few_steps(client):
    """Reflow's two Euler steps, shown as the flow's are; its last frame is the engine's sample() (each dataset's)."""
    from app.images import grid_image
    from engines import load_engine
    from engines.registry import family
    options = family("reflow").evaluation_options
    job = client.submit(3, 2, api_name="/reflow_steps")
    job.result()
    final = job.outputs()[-1]
    steps = options["steps"]
    assert [o[2] for o in job.outputs()[:steps]] == [f"step {i}/{steps}, t = {1 - (i - 1) / steps:.3f}"
                                                     for i in range(1, steps + 1)]
    expected = load_engine("reflow").sample(2, seed=3, **options)
    assert np.array_equal(pixels(final[0]), np.asarray(grid_image(expected)))
    assert Image.open(final[4]).n_frames == options["steps"]
    fashion = client.predict(0, 2, "fashion", api_name="/reflow_steps")                # Fashion-MNIST's own
    expected = load_engine("reflow", dataset="fashion").sample(2, seed=0, **options)
    assert np.array_equal(pixels(fashion[0]), np.asarray(grid_image(expected)))


def test_scrubbing_before_any_run_asks_for_one():
    demo = build_demo()
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        with pytest.raises(Exception, match="Denoise first"):
            Client(url, verbose=False).predict(0, api_name="/diffusion_scrub")
    finally:
        demo.close()


def test_diffusion_forward_process(client):
    strip, caption = client.predict(0, "7", 0, 6, api_name="/diffusion_forward")
    assert pixels(strip).shape == (3 * 32, 3 * (6 * 30 + 2))
    assert caption.startswith("Digit: test 7 no. 0 (test digit #700).") and "t=999: 0.01" in caption
    cells = [pixels(strip)[6:90, 6 + 90 * i:90 + 90 * i].astype(float) for i in range(6)]
    digit = np.asarray(Image.fromarray((load_mnist5k("test").images[700, 0].numpy() * 255).astype(np.uint8))
                       .resize((84, 84), Image.NEAREST), dtype=float)
    assert abs(cells[0] - digit).mean() < 2  # t = 0 is the clean digit
    assert abs(np.corrcoef(cells[-1].ravel(), digit.ravel())[0, 1]) < 0.2  # t = T - 1 is noise
    assert abs(cells[0] - cells[1]).mean() < abs(cells[0] - cells[-1]).mean()


def test_compare_shows_the_measured_table_and_plots(client):
    charts, verdicts, text, losses, quality, steps, levels, race, knobs, asked, compute, lapse, lapse_words = (
        client.predict(api_name="/compare"))
    assert Image.open(compute).format == "PNG"     # quality against training compute, every family
    assert Image.open(charts).format == "PNG"
    assert "| Sample quality |" in verdicts and "| Likelihood |" in verdicts
    report = json.loads((CHECKPOINTS / "report.json").read_text())
    assert summary_in_words(report) in verdicts                            # every check in words, under the table
    assert verdicts.startswith(compare_view(report))                       # what to look at, from the summary
    assert "diffusion" in text and "gan" in text and "vae" in text
    # report.md folded by section (each "## " heading a click away), the live benchmark among them
    assert "<summary><b>Sampling: steps vs quality</b></summary>" in text and "| ddpm | 20 | 20 |" in text
    assert text.count("<details>") == text.count("</details>") >= 8 and "\n## " not in text
    assert "### Fidelity against diversity: each family's knob" in verdicts and "the VAE's temperature tau" in verdicts
    assert "| Ask for a class |" in verdicts   # the class-conditional families' accuracy, and their matrices
    from engines.measure import compute_curve
    reading = compute_curve.reading_text(compute_curve.equal_compute(compute_curve.curves("mnist")))
    assert "### Quality at equal training compute" in verdicts and reading in verdicts   # as report.md says it
    assert reading in (CHECKPOINTS / "report.md").read_text()
    # the runs trained with --eval-every kept time-lapse frames: one picture, each frame whole and captioned
    assert lapse_words.count("FLOPs") >= 3 and "Conditional GAN: step" in lapse_words
    for plot in (losses, quality, steps, levels, race, knobs, asked, lapse):     # plots come back as image files
        assert Image.open(plot).format == "PNG" and Image.open(plot).size[0] >= 600


def test_every_diffusers_sampler_is_offered_and_bad_ones_refused(client):
    out = client.predict(0, 1, "diffusers:HeunDiscreteScheduler", 5, api_name="/side_by_side")
    assert "9 network evaluations per sample" in out[caption_at("diffusion")]
    assert "9 network evaluations per sample (heun, 5 steps)" in out[caption_at("flow")]   # its own Heun
    assert "5 network evaluations per sample (ddim" in out[caption_at("latent_diffusion")]   # ours: DDIM, same steps
    # The event's validator refuses it, naming the choices (not the Dropdown's own check: preprocess=False).
    with pytest.raises(ValidationError, match=re.escape(
            "sampler: unknown sampler 'diffusers:Nope': choose one of ddpm")):
        client.predict(0, 1, "diffusers:Nope", 5, api_name="/side_by_side")


def test_eight_concurrent_visitors_get_their_own_results(client):
    seeds = list(range(8))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda s: client.predict(s, 2, 1.0, api_name="/gan_sample"), seeds))
    for seed, (grid, _) in zip(seeds, results):
        alone = client.predict(seed, 2, 1.0, api_name="/gan_sample")
        assert np.array_equal(pixels(grid), pixels(alone[0]))
    assert len({pixels(g).tobytes() for g, _ in results}) == 8


def test_side_by_side_diffusion_grid_is_the_engines_sample(client):
    # The handler runs the trace (for progress); the grid must still be exactly sample()'s images.
    from app.images import grid_image
    from engines import load_engine
    out = client.predict(11, 4, "diffusers:UniPCMultistepScheduler", 7, api_name="/side_by_side")
    expected = grid_image(load_engine("diffusion").sample(4, seed=11, sampler="diffusers:UniPCMultistepScheduler",
                                                          steps=7))
    assert np.array_equal(pixels(out[4]), np.asarray(expected))


def test_new_seed_advances_the_seed(client):
    assert client.predict(41, api_name="/new_seed") == 42
    assert client.predict(2147483647, api_name="/new_seed") == 0     # after the largest seed, the first again
    with pytest.raises(Exception, match="Seed must be a whole number"):
        client.predict(0.5, api_name="/new_seed")


def test_every_output_of_every_endpoint_has_a_name(client):
    """view_api names an output by its component's label: no `value_<id>` for a reader of the API."""
    for endpoint, info in client.view_api(print_info=False, return_format="dict")["named_endpoints"].items():
        for output in info["returns"]:
            assert output["label"] and not output["label"].startswith("value_"), (endpoint, output)


def test_too_few_steps_to_denoise_are_refused_with_the_reason(client):
    from engines import load_engine
    diffusion = load_engine("diffusion")
    for sampler in ("ddim", "ddpm", "diffusers:EulerDiscreteScheduler"):
        fewest = diffusion.fewest_steps(sampler)
        assert fewest > 1 and diffusion.first_timestep(sampler, 1) == 0   # one step: only t = 0, pure noise out
        with pytest.raises(Exception, match=f"{sampler} needs at least {fewest} steps: with 1 its chain starts "
                                            f"at t = 0"):
            client.predict(0, 1, sampler, 1, api_name="/side_by_side")
        client.predict(0, 1, sampler, fewest, api_name="/side_by_side")   # the fewest it states work
    assert diffusion.fewest_steps("diffusers:DPMSolverMultistepScheduler") == 1   # starts at T - 1 already


def test_the_default_sampler_is_the_benchmarks_best_and_says_why():
    from app import inputs
    from engines.measure.sampler_benchmark import OUT
    rows = [r for r in json.loads(OUT.read_text())["rows"] if r["steps"] == inputs.DEFAULT_UI_STEPS]
    best = min(rows, key=lambda r: r["frechet_distance"])
    sampler, why = inputs.default_sampler()
    assert sampler == best["sampler"] and f"{best['frechet_distance']:.1f}" in why


def test_the_landing_tab_shows_samples_before_any_click(client):
    """demo.load fills Side by side with the defaults' samples (computed once, then cached)."""
    first = client.predict(api_name="/first_visit")
    again = client.predict(api_name="/first_visit")
    assert len(first) == 2 * len(shown()) + 1 and all(Path(first[grid_at(name)]).is_file() for name in shown())
    assert first[-1].startswith("**What to look at.**") and "recognisable" in first[-1]
    assert "16 samples" in first[1] and first[5] == again[5]      # the same cached result, timing included


def test_optional_inputs_are_optional_in_the_api(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for endpoint in ("/playground_train", "/playground_truth"):
        optional = {"sketch", "upload"}
        parameters = {p["parameter_name"]: p for p in endpoints[endpoint]["parameters"]}
        assert all(parameters[name]["parameter_has_default"] for name in optional), endpoint
    assert "frames" in {p["parameter_name"] for p in endpoints["/diffusion_forward"]["parameters"]}


def test_a_refused_input_logs_one_line_not_a_traceback(client, capfd):
    capfd.readouterr()
    with pytest.raises(Exception, match="Seed must be a whole number"):
        client.predict(2.5, 4, "ddim", 10, api_name="/side_by_side")
    err = capfd.readouterr().err
    assert "refused input: Seed must be a whole number" in err and "Traceback" not in err


def test_a_busy_port_is_reported_before_any_model_loads():
    import socket
    import subprocess
    import sys
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "app.py", "--port", str(port), "--no-browser"], capture_output=True,
                              text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr and f"--port {port + 1}" in done.stderr
    assert "loading the VAE" not in done.stderr and "Traceback" not in done.stderr


def test_the_summary_charts_draw_every_measured_row_and_name_the_missing_ones():
    from app import plots
    from engines.checkpoint import CHECKPOINTS
    report = json.loads((CHECKPOINTS / "report.json").read_text())
    titles = [ax.get_title() for ax in plots.summary_charts(report).axes]
    assert all(verdict in " ".join(titles).replace("\n", " ") for verdict in
               (row["verdict"] for row in report["summary"] if row["row"] != "Objective"))
    partial = {k: v for k, v in report.items() if k != "seeds"}
    texts = [t.get_text() for ax in plots.summary_charts(partial).axes for t in ax.texts]
    assert "not measured:\npython -m engines.evaluate --sections seeds" in texts


def test_every_tab_switches_to_fashion_mnist_through_the_dataset_argument(client):
    """The dataset is the last argument of every endpoint (MNIST where it is left out): Fashion-MNIST's own
    models, test images and report come back, and what does not ship for it says so."""
    from app.images import grid_image
    from engines import load_engine
    fashion_or_skip()   # its test images come from Debian's package
    mnist = client.predict(3, 4, "ddim", 10, api_name="/side_by_side")
    fashion = client.predict(3, 4, "ddim", 10, "fashion", api_name="/side_by_side")
    for i in (0, 2, 4):   # VAE, GAN, diffusion: grids of other models
        assert not np.array_equal(pixels(mnist[i]), pixels(fashion[i]))
    assert not np.array_equal(pixels(mnist[grid_at("latent_diffusion")]),                 # on Fashion-MNIST's VAE
                              pixels(fashion[grid_at("latent_diffusion")]))
    assert all(fashion[grid_at(name)] is not None for name in shown())   # every family ships for both
    *_, notes = client.predict(0, 0, 6, "lerp", "any", "7", None, None, "fashion", api_name="/vae_interpolate")
    assert notes == "Digit A: test image #0 (a T-shirt/top). Digit B: test Sneaker no. 0 (test image #700)."
    _, _, caption = client.predict(5, "fashion", api_name="/vae_latent_map")
    assert "Black paths" in caption   # Fashion-MNIST's latent diffusion walks its own VAE's latent space
    grid, _ = client.predict(0, 4, 0, "fashion", api_name="/gan_sample")
    assert not np.array_equal(pixels(grid), pixels(client.predict(0, 4, 0, api_name="/gan_sample")[0]))
    _, caption = client.predict(0, "2", 0, 3, "fashion", api_name="/diffusion_forward")
    assert caption.startswith("Digit: test Pullover no. 0")
    *_, caption = client.predict(0, "2", 0, "fashion", api_name="/connections_hierarchy")
    assert caption.startswith("Digit: test Pullover no. 0")
    charts, verdicts, report, losses, quality, steps, levels, race, knobs, asked, compute, *lapse = client.predict(
        "fashion", api_name="/compare")
    assert Image.open(race).format == "PNG" and Image.open(knobs).format == "PNG"   # Fashion-MNIST's own
    assert Image.open(compute).format == "PNG"
    assert Image.open(steps).format == "PNG"     # the benchmark measured MNIST only: the panel says so, not empty
    assert report.startswith("# The generative lab: the comparison table, measured on Fashion-MNIST")
    assert "### The verdicts on each dataset" in verdicts and "| MNIST (5,000 digits) | Fashion-MNIST" in verdicts
    job = client.submit(0, 2, "fashion", api_name="/diffusion_gan_steps")   # Fashion-MNIST's own diffusion GAN
    job.result()
    assert np.array_equal(pixels(job.outputs()[-1][0]),
                          np.asarray(grid_image(load_engine("diffusion_gan", dataset="fashion").sample(2, seed=0))))
    with pytest.raises(Exception, match="unknown dataset 'cifar': choose one of mnist, fashion"):
        client.predict(0, 4, 0, "cifar", api_name="/gan_sample")


def test_a_family_not_trained_for_a_dataset_says_so_in_every_view(monkeypatch):
    """Every family ships for both datasets today; a family that does not (a new one, on its first dataset) gets
    no grid and a caption, a disabled button that says why, and a refusal in words."""
    import gradio as gr

    from app import inputs, widgets
    from app.tabs import nearest, side_by_side
    from engines.registry import family
    missing = lambda name, dataset: not (name == "diffusion_gan" and dataset == "fashion")   # noqa: E731
    for module in (inputs, nearest, side_by_side):
        monkeypatch.setattr(module, "ships", missing)
    grid, caption = side_by_side.family_grid(family("diffusion_gan"), 0, 4, {}, "fashion", None)[0]
    assert grid is None and caption == "Diffusion GAN: not trained for Fashion-MNIST (70,000 images) (it ships " \
                                       "for MNIST)"
    button, = widgets.button_states([(None, "Denoise with the diffusion GAN (its 4 steps)", "diffusion_gan")],
                                    "fashion")
    assert button.value == "Denoise with the diffusion GAN (its 4 steps): not trained for Fashion-MNIST"
    assert button.interactive is False
    assert widgets.button_states([(None, "Denoise", "diffusion_gan")], "mnist")[0].interactive is True
    refusal = "diffusion GAN is not trained for Fashion-MNIST (70,000 images): choose another family"
    with pytest.raises(gr.Error, match=re.escape(refusal)):
        nearest.nearest_training_images("diffusion_gan", 0, 3, "fashion")


def test_a_refused_input_is_named_by_the_validator_and_the_first_refusal_only():
    """A validator answers one gr.validate per input: the refused input carries the message, the others pass
    (a sampler refused is not refused again as the steps)."""
    from app.tabs.side_by_side import check_side_by_side
    answers = check_side_by_side(0, 4, "diffusers:Nope", 1, "mnist")
    # then labelled and the class asked (the knob sliders, not given here, add one each)
    assert [a["is_valid"] for a in answers] == [True, True, False, True, True, True, True]
    assert answers[2]["message"].startswith("unknown sampler 'diffusers:Nope'")
    assert all(a["is_valid"] for a in check_side_by_side(0, 4, "ddim", 10, "mnist"))
    from app.tabs.side_by_side import knobbed
    defaults = [f.knob.slider_default() for f in knobbed()]
    answers = check_side_by_side(0, 4, "ddim", 10, "mnist", False, "seven", *defaults)
    assert [a["is_valid"] for a in answers] == [True] * 6 + [False] + [True] * len(defaults)
    assert answers[6]["message"].startswith("unknown class 'seven'")


def test_side_by_side_shows_every_registered_family_from_its_record(monkeypatch):
    """A family registered with its record gets its own grid, heading, caption and button count, untouched app."""
    import torch

    from app.tabs import side_by_side
    from engines.family import Family
    from engines.registry import FAMILIES, register_family

    class Flat:
        def sample(self, n, seed=0, sampler="ddim", steps=None):
            return torch.full((n, 1, 28, 28), 0.5)

        def network_evaluations(self, sampler="ddim", steps=None):
            return 2

    toy = Family(name="toy_flat", title="toy flat", engine=Flat, trainer="x:Y", colour="tab:brown",
                 description="", caption=" ({sampler}, its own way)", own_sampler=lambda s, n: {"sampler": "ddim"})
    register_family(toy)
    try:
        shipped, loaded = side_by_side.ships, side_by_side.engine
        monkeypatch.setattr(side_by_side, "ships", lambda name, dataset: name == toy.name or shipped(name, dataset))
        monkeypatch.setattr(side_by_side, "engine", lambda name, d: Flat() if name == toy.name else loaded(name, d))
        out = side_by_side.side_by_side(0, 1, "ddim", 5, "mnist")
        assert len(out) == 2 * len(FAMILIES) + 1 and out[-2].startswith("Toy flat: ")   # then "what to look at"
        assert out[-2].endswith("2 network evaluations per sample (ddim, its own way)")
        words, count = side_by_side.NUMBER_WORDS, len(FAMILIES)
        assert side_by_side.run_label() == f"Sample all {words[count] if count < len(words) else count}"
        assert toy.heading == "Toy flat"
        assert "#side-by-side-toy_flat { border-top: 4px solid #8c564b" in side_by_side.colour_css()
    finally:
        FAMILIES.pop(toy.name)


def test_the_time_lapse_shows_each_family_at_the_same_training_compute(monkeypatch, tmp_path):
    """Issue 30's "how they learned": each family's frame kept at or below the compute the slider picks (log scale
    between the first frame kept and the largest budget); a family with none by then is left out; no frames: []."""
    from PIL import Image as PILImage

    from app.tabs import compare
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        PILImage.new("L", (8, 8), 40 * i).save(paths[-1])
    kept = {"vae": [(1e10, 100, paths[0]), (1e12, 1000, paths[1])], "gan": [(1e11, 500, paths[2]),
                                                                             (1e14, 5000, paths[3])]}
    monkeypatch.setattr(compare.compute_curve, "frames_by_compute", lambda dataset: kept)
    assert compare.time_lapse_frames("mnist", 0) == (1e10, [(str(paths[0]), "VAE: step 100, 1e+10 FLOPs")])
    flops, middle = compare.time_lapse_frames("mnist", 50)          # 1e12 FLOPs: the VAE's last, the GAN's first
    assert middle == [(str(paths[1]), "VAE: step 1,000, 1e+12 FLOPs"), (str(paths[2]), "GAN: step 500, 1e+11 FLOPs")]
    assert [caption for _, caption in compare.time_lapse_frames("mnist", 100)[1]][1] == "GAN: step 5,000, 1e+14 FLOPs"
    with pytest.raises(Exception, match="Training compute must be a whole number between 0 and 100"):
        compare.time_lapse("mnist", 101)
    # the page's picture: both frames whole (each scaled 2x), side by side, their captions written under them
    picture, words = compare.time_lapse("mnist", 50)
    sheet = np.asarray(PILImage.open(picture).convert("L"))
    assert (sheet[:16, :16] == 40).all() and (sheet[:16] == 80).sum() == 16 * 16   # each frame whole
    assert (sheet[20:, :16] < 128).any()                            # caption text under the first frame
    assert words == ("At 1e+12 training FLOPs, each family's last kept frame: VAE: step 1,000, 1e+12 FLOPs; GAN: "
                     "step 500, 1e+11 FLOPs.")
    monkeypatch.setattr(compare.compute_curve, "frames_by_compute", lambda dataset: {})
    assert compare.time_lapse_frames("mnist", 50) == (None, [])
    assert compare.time_lapse("mnist", 50)[0] is None and "kept" in compare.time_lapse("mnist", 50)[1]


def test_a_visitor_beyond_the_queue_limit_is_told_the_queue_is_full_and_the_others_are_served(monkeypatch):
    """The queue as app.py sets it (serving.queue), its limit made 2: with every drawing slot busy and two
    requests waiting, the next visitor is refused with a message that says so, and everyone else is served."""
    import threading
    import time

    from gradio_client import Client

    from app import build_demo, serving
    from app.tabs import gan
    release, real_engine = threading.Event(), gan.engine

    class Held:   # the shipped GAN, which waits for `release` before it draws: the slots stay busy meanwhile
        def __init__(self, model):
            self.model = model

        def sample(self, *args, **kwargs):
            release.wait(timeout=120)
            return self.model.sample(*args, **kwargs)

    monkeypatch.setattr(gan, "engine", lambda *args: Held(real_engine(*args)))
    monkeypatch.setattr(serving, "MAX_QUEUE", 2)
    demo = serving.queue(build_demo())
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        visitors = [Client(url, verbose=False) for _ in range(serving.CONCURRENCY + 3)]
        jobs = []
        for seed, visitor in enumerate(visitors[:-1]):   # the drawing slots fill, then the queue's two places
            jobs.append(visitor.submit(seed, 4, 0, "mnist", api_name="/gan_sample"))
            time.sleep(1.0)
        with pytest.raises(Exception, match="Queue is full"):
            visitors[-1].predict(99, 4, 0, "mnist", api_name="/gan_sample")
        release.set()
        assert all(pixels(job.result(timeout=120)[0]).shape == (3 * 62, 3 * 62) for job in jobs)
    finally:
        release.set()
        demo.close()
