"""The memorisation screen (engines/measure/memorisation.py) on known answers: training images are their own
nearest neighbours (every one a possible copy), held-out test images are possible copies at the screen's own
rate, and the app's section refuses a family that does not ship for the dataset."""
import pytest
import torch

from engines.data.datasets import load_lab_split
from engines.measure.memorisation import COPY_PERCENTILE, nearest_training, training_neighbours


def test_training_images_are_their_own_nearest_training_images():
    train = load_lab_split("mnist", "train")
    picked = torch.tensor([0, 17, 1234, len(train) - 1])
    neighbours, images = nearest_training(train.images[picked], "mnist")
    assert max(neighbours.distances) < 1e-5 and neighbours.percentiles == [0.0] * 4
    assert neighbours.possible_copies == 4 and torch.equal(images, train.images[picked])


def test_held_out_images_are_possible_copies_at_the_screens_own_rate():
    test = load_lab_split("mnist", "test")
    neighbours, _ = nearest_training(test.images, "mnist")
    share, se = neighbours.share_se()
    assert abs(share - COPY_PERCENTILE / 100) <= 0.002 and se > 0     # the reference itself: its 5% by definition
    reference = training_neighbours("mnist")
    assert neighbours.copy_distance == reference.copy_distance > 0
    assert sorted(neighbours.distances) == pytest.approx(reference.test_distances.tolist(), abs=1e-3)


def test_noise_is_no_copy_and_the_summary_says_how_many_are():
    noise = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    neighbours, images = nearest_training(noise, "mnist")
    assert neighbours.possible_copies == 0 and images.shape == (6, 1, 28, 28)
    assert neighbours.summary().startswith("0 of 6 samples (0%) are nearer to a training image than 95%")


def test_the_app_section_shows_samples_above_their_neighbours_and_refuses_clearly():
    import gradio as gr

    from app.tabs import nearest
    picture, caption = nearest.nearest_training_images("gan", 0, 3, "mnist")
    assert picture.size[0] > picture.size[1] and "What to look at" in caption and " of 3 samples" in caption   # 2x3
    answers = nearest.check_nearest("diffusion_gan", 0, 3, "fashion")
    assert answers[0]["is_valid"] is False and "not trained for Fashion-MNIST" in answers[0]["message"]
    with pytest.raises(gr.Error, match="Count must be a whole number between 1 and 12"):
        nearest.nearest_training_images("gan", 0, 99, "mnist")
