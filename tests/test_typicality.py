"""The feature nets' typicality gate: a page with no digit (or garment) on it is never "recognisable", real test
images are, and the training command fits the gate of every net it trains."""
import json

import pytest
import torch

from conftest import TINY
from engines.data.datasets import LAB_DATASETS, load_lab_split
from engines.errors import EngineError
from engines.fit_typicality import main as fit_main
from engines.measure.quality import CONFIDENT
from engines.measure.typicality import GATE_NAME, QUANTILE, load_gate
from engines.models.classifier import classify, feature_nets, load_classifier
from engines.training.loop import main as train_main

SHIPPED_NETS = [(dataset, name) for dataset in LAB_DATASETS for name in feature_nets(dataset)]


def pages_with_nothing_to_recognise(n: int = 16) -> dict[str, torch.Tensor]:
    """The pages a review found the nets confident about (max softmax 0.93-1.00 before the gate), seeded."""
    generator = torch.Generator().manual_seed(2026)
    rows, columns = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    return {
        "blank page": torch.zeros(n, 1, 28, 28),
        "uniform noise": torch.rand(n, 1, 28, 28, generator=generator),
        "Gaussian noise": (0.5 + 0.5 * torch.randn(n, 1, 28, 28, generator=generator)).clamp(0, 1),
        "4-pixel checkerboard": ((rows // 4 + columns // 4) % 2).float().expand(n, 1, 28, 28),
    }


@pytest.mark.parametrize("dataset, net_name", SHIPPED_NETS)
def test_no_page_without_an_image_is_recognisable_and_the_gate_is_why(dataset, net_name):
    directory = feature_nets(dataset)[net_name]
    gated, ungated = load_classifier(directory), load_classifier(directory, gate=False)
    fooled_before = []
    for page, images in pages_with_nothing_to_recognise().items():
        assert classify(gated, images)[1].max() < CONFIDENT, page
        if classify(ungated, images)[1].max() >= CONFIDENT:
            fooled_before.append(page)
    assert fooled_before, "no probe fooled the net without its gate: the probes no longer test the gate"


@pytest.mark.parametrize("dataset, net_name", SHIPPED_NETS)
def test_real_test_images_pass_the_gate_and_keep_their_classes(dataset, net_name):
    directory = feature_nets(dataset)[net_name]
    test = load_lab_split(dataset, "test")
    classes, confidence, features = classify(load_classifier(directory), test.images)
    ungated_classes, ungated_confidence, ungated_features = classify(load_classifier(directory, gate=False),
                                                                     test.images)
    refused = (confidence == 0) & (ungated_confidence > 0)
    assert refused.float().mean() <= 0.03       # held-out train images: about 2 x (1 - QUANTILE)
    assert torch.equal(classes, ungated_classes) and torch.equal(features, ungated_features)
    record = json.loads((directory / "training_info.json").read_text())["typicality"]
    assert record["quantile"] == QUANTILE and 0 < record["held_out_refused"] <= 2.5 * (1 - QUANTILE)
    assert record["test_refused"] == pytest.approx(float(refused.float().mean()), abs=1e-4)   # the card's figure
    shipped_folder = directory.relative_to(directory.parents[2])   # checkpoints/<dataset>/<net>
    assert record["command"].startswith(f"python -m engines.fit_typicality {shipped_folder} ")


def test_a_net_without_its_gate_is_refused_with_the_command_that_fits_it(tmp_path, capsys):
    with pytest.raises(EngineError, match="fit it with `python -m engines.fit_typicality"):
        load_gate(tmp_path)
    assert fit_main([str(tmp_path / "nowhere"), "--dataset", "mnist"]) == 2
    assert "checkpoint folder" in capsys.readouterr().err


@pytest.mark.slow
def test_the_training_command_fits_the_gate_of_the_net_it_trains(tmp_path):
    args = ["classifier", "--out", str(tmp_path), "--steps", "30", "--checkpoint-every", "30", "--log-every", "10",
            "--batch-size", "32", "--threads", "1", "--lr", "3e-3"]
    for setting in TINY["classifier"]:
        args += ["--set", setting]
    assert train_main(args) == 0
    assert (tmp_path / GATE_NAME).is_file()
    info = json.loads((tmp_path / "training_info.json").read_text())
    assert info["typicality"]["command"].endswith("# typicality gate fitted after the last step")
    noise = pages_with_nothing_to_recognise()["uniform noise"]
    assert classify(load_classifier(tmp_path), noise)[1].max() < CONFIDENT


@pytest.mark.parametrize("dataset, refused_label", [("mnist", "not a digit"), ("fashion", "not an item")])
def test_the_app_labels_a_refused_page_as_no_image_instead_of_a_class(dataset, refused_label):
    from engines.measure.recognition import recognise

    seen = recognise(pages_with_nothing_to_recognise(2)["uniform noise"], dataset)
    assert [seen.label(i) for i in range(2)] == [refused_label] * 2 and not any(seen.recognisable)
    assert seen.summary().startswith("0 of 2 recognisable")


def test_the_class_histogram_leaves_out_the_pages_the_gate_refuses():
    """A set of real digits with blank pages mixed in has the real digits' class histogram, and says how many it
    left out: the gate's refused pages have an argmax but no class."""
    from engines.measure.quality import judge
    net = load_classifier(feature_nets("mnist")["lenet"])
    real = load_lab_split("mnist", "test").images[:64]
    alone = judge(net, real)
    mixed = judge(net, torch.cat([real, pages_with_nothing_to_recognise(64)["blank page"]]))
    assert mixed["class_histogram"] == alone["class_histogram"] and mixed["class_entropy"] == alone["class_entropy"]
    assert mixed["refused_share"] == pytest.approx(0.5 + alone["refused_share"] / 2, abs=1e-4)
    assert judge(net, torch.zeros(4, 1, 28, 28))["class_histogram"] == [0.0] * 10    # nothing accepted: no classes
