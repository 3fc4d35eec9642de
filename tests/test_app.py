"""The app launched on a free port and driven through gradio_client, as a Space visitor's API call would."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from app import build_demo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    demo = build_demo()
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    yield Client(url, verbose=False)
    demo.close()


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def test_side_by_side_three_grids_with_timings_and_determinism(client):
    first = client.predict(3, 4, "ddim", 10, api_name="/side_by_side")
    again = client.predict(3, 4, "ddim", 10, api_name="/side_by_side")
    other = client.predict(4, 4, "ddim", 10, api_name="/side_by_side")
    assert len(first) == 6
    for i in (0, 2, 4):
        assert pixels(first[i]).shape == (3 * 62, 3 * 62)  # 2x2 grid of 28 px + 2 px borders, upscaled 3x
        assert np.array_equal(pixels(first[i]), pixels(again[i]))
        assert not np.array_equal(pixels(first[i]), pixels(other[i]))
    assert "ms for 4 samples" in first[1] and "10 network evaluations" in first[5]


def test_bad_input_gets_a_clear_message(client):
    with pytest.raises(Exception, match="Value 500 is greater than maximum value 64"):
        client.predict(0, 500, "ddim", 10, api_name="/side_by_side")
    with pytest.raises(Exception, match="Seed must be a whole number between 0 and"):
        client.predict(-5, 4, "ddim", 10, api_name="/side_by_side")
    with pytest.raises(Exception, match="Digit A must be a whole number between 0 and 999"):
        client.predict(5000, 1, 8, "slerp", api_name="/vae_interpolate")


def test_vae_gan_and_streamed_diffusion(client):
    strip, recon = client.predict(0, 1, 6, "lerp", api_name="/vae_interpolate")
    assert pixels(strip).shape[1] == 3 * (6 * 30 + 2)
    grid, caption = client.predict(1, 9, 0.7, api_name="/gan_sample")
    assert pixels(grid).shape == (3 * 92, 3 * 92) and "9 samples" in caption
    job = client.submit(0, 2, "ddim", 20, api_name="/diffusion_steps")
    frames = job.result() and job.outputs()
    assert len(frames) >= 10  # streamed frame by frame, not one final image
    assert frames[-1][2] == "step 20/20, t = 0"


def test_eight_concurrent_visitors_get_their_own_results(client):
    seeds = list(range(8))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda s: client.predict(s, 2, 1.0, api_name="/gan_sample"), seeds))
    for seed, (grid, _) in zip(seeds, results):
        alone = client.predict(seed, 2, 1.0, api_name="/gan_sample")
        assert np.array_equal(pixels(grid), pixels(alone[0]))
    assert len({pixels(g).tobytes() for g, _ in results}) == 8
