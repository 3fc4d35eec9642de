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
