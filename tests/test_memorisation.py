"""The memorisation screen (engines/measure/memorisation.py) on known answers: training images are their own
nearest neighbours (every one a possible copy), held-out test images are possible copies at the screen's own
rate, and the app's section refuses a family that does not ship for the dataset."""
import json

import pytest
import torch

from engines.checkpoint import checkpoints_dir
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
    copying = json.loads((checkpoints_dir("mnist") / "report.json").read_text())["quality"]["gan"]["copying"]
    assert f"Over the report's {copying['n']:,} samples: {copying['possible_copies']} possible copies" in caption
    answers = nearest.check_nearest("diffusion_gan", 0, 99, "fashion")   # ships for both datasets: the count fails
    assert answers[0]["is_valid"] is True and answers[2]["is_valid"] is False
    with pytest.raises(gr.Error, match="Count must be a whole number between 1 and 12"):
        nearest.nearest_training_images("gan", 0, 99, "mnist")


def test_the_reports_copying_line_reads_the_exact_interval_against_new_images_rate():
    from engines.measure.memorisation import copying_record, copying_verdict

    train, test = load_lab_split("mnist", "train"), load_lab_split("mnist", "test")
    copies = copying_record(train.images[:100], "mnist")
    assert copies["possible_copies"] == 100 and copies["interval"][0] > copies["expected_share"]
    assert copying_verdict(copies).startswith("more often than new images")
    new = copying_record(test.images, "mnist")               # the reference itself: at its own 5%
    assert new["interval"][0] <= new["expected_share"] <= new["interval"][1]
    assert copying_verdict(new).startswith("as often as new images")
    noise = copying_record(torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)), "mnist")
    assert noise["possible_copies"] == 0 and copying_verdict(noise).startswith("less often than new images")


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_each_committed_report_says_how_often_each_family_copies(dataset):
    report = json.loads((checkpoints_dir(dataset) / "report.json").read_text())
    generated = [name for name in report["quality"] if name != "real (train)"]
    assert generated and all(report["quality"][name]["copying"]["n"] == report["n"] for name in generated)
    markdown = (checkpoints_dir(dataset) / "report.md").read_text()
    section = markdown.split("### Copying training images")[1].split("\n## ")[0]
    assert all(f"| {name} |" in section for name in generated)
