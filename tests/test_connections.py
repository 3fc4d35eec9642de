"""The Connections tab's endpoints, driven through gradio_client like a Space visitor's API calls."""
import re

import numpy as np
import pytest
from gradio_client.exceptions import ValidationError
from PIL import Image

pytestmark = pytest.mark.slow


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def test_hierarchy_shows_levels_the_bound_and_its_numbers(client):
    grid, plot, caption = client.predict(0, "7", 0, api_name="/connections_hierarchy")
    # 4 rows (encoder, predicted x0, decoder mean, decoder draw) x 8 levels of 28 px + 2 px borders, upscaled 3x
    assert pixels(grid).shape == (3 * (4 * 30 + 2), 3 * (8 * 30 + 2))
    assert Image.open(plot).format == "PNG" and Image.open(plot).size[0] >= 800
    assert caption.startswith("Digit: test 7 no. 0 (test digit #700)")
    assert "Diffusion's bound for this digit" in caption and "The VAE's bound" in caption
    assert "**What to look at.**" in caption and "until t = 999 is noise" in caption
    again = client.predict(0, "7", 0, api_name="/connections_hierarchy")
    assert np.array_equal(pixels(grid), pixels(again[0])) and caption == again[2]   # seeded
    other = client.predict(0, "7", 1, api_name="/connections_hierarchy")
    assert not np.array_equal(pixels(grid), pixels(other[0]))


def test_hierarchy_refuses_bad_input_clearly(client):
    with pytest.raises(Exception, match="Digit index within class 7 must be a whole number between 0 and 99"):
        client.predict(100, "7", 0, api_name="/connections_hierarchy")
    with pytest.raises(Exception, match="Seed must be a whole number between 0 and 2147483647, got -1"):
        client.predict(0, "any", -1, api_name="/connections_hierarchy")
    with pytest.raises(Exception, match="Seed must be a whole number"):
        client.predict(0, "any", 0.5, api_name="/connections_hierarchy")


def test_score_view_draws_arrows_and_samples_with_numbers(client):
    arrows, samples, caption = client.predict("ring8", 1000, 0, api_name="/connections_score")
    assert Image.open(arrows).format == "PNG" and Image.open(samples).format == "PNG"
    assert caption.count("noise std") == 3 and "Relative score error" in caption
    assert "Tweedie's formula" in caption and "annealed Langevin" in caption
    # The event's validator refuses it (not the Number's own maximum, which preprocess=False skips).
    with pytest.raises(ValidationError, match=re.escape(
            "steps: Training steps must be a whole number between 100 and 5000, got 50000")):
        client.predict("ring8", 50_000, 0, api_name="/connections_score")


def test_one_path_takes_the_same_noise_to_an_image_with_every_ode_family(client):
    from engines.registry import families
    ode = [f for f in families() if f.straight_path]        # every one ships for MNIST
    grid, plot, caption = client.predict(0, 20, api_name="/connections_one_path")
    # a row per ODE family x 6 times s, 28 px + 2 px borders, upscaled 3x
    assert pixels(grid).shape == (3 * (len(ode) * 30 + 2), 3 * (6 * 30 + 2))
    assert Image.open(plot).format == "PNG"
    assert f"Rows top to bottom: {', '.join(f.title for f in ode)}" in caption
    assert "Straightness of these paths" in caption
    assert re.search(", ".join(rf"{f.title} 0\.\d{{4}}" for f in ode), caption)
    assert re.search(r"their images differ by 0\.\d{3} per pixel", caption)
    again = client.predict(0, 20, api_name="/connections_one_path")
    assert np.array_equal(pixels(grid), pixels(again[0])) and caption == again[2]      # seeded
    assert not np.array_equal(pixels(grid), pixels(client.predict(1, 20, api_name="/connections_one_path")[0]))
    with pytest.raises(ValidationError, match="Steps must be a whole number between 2 and 200, got 1"):
        client.predict(0, 1, api_name="/connections_one_path")


def test_the_one_path_view_draws_the_ode_families_a_dataset_has_and_refuses_fewer_than_two(client, monkeypatch):
    from app import inputs
    from app.tabs import connections
    from conftest import fashion_or_skip
    from engines.registry import families
    fashion_or_skip()
    shipped = [f.title for f in families() if f.straight_path and inputs.ships(f.name, "fashion")]
    grid, _, caption = client.predict(0, 20, "fashion", api_name="/connections_one_path")
    assert pixels(grid).shape[0] == 3 * (len(shipped) * 30 + 2) and len(shipped) >= 2
    assert f"Rows top to bottom: {', '.join(shipped)}" in caption
    monkeypatch.setattr(inputs, "ships", lambda name, dataset: name == "diffusion")
    refusal = next(answer for answer in connections.check_paths(0, 20, "fashion") if not answer["is_valid"])
    assert "for Fashion-MNIST (70,000 images) only diffusion ships" in refusal["message"]
