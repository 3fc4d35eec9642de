"""A family is one record. A throwaway family, defined in this file and registered in one place (its record),
with a real checkpoint folder written by PyTorchModelHubMixin, appears in evaluation, in its model card and in
the app's Side by side tab, which read the registry: no other file is touched for it."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import gradio as gr
import pytest
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from engines.checkpoint import TRAINING_INFO_NAME, checkpoints_dir, load_pretrained
from engines.engine import Engine, check_count, make_generator
from engines.family import Family
from engines.registry import FAMILIES, available_engines, load_engine, register_family

NAME = "throwaway_blobs"


@dataclass
class BlobsConfig:
    image_size: int = 28
    width: float = 2.5


class Blobs(nn.Module, PyTorchModelHubMixin):
    """A 'generator' with one weight (the blob's width): a Gaussian blob at a given centre, in [0, 1]."""

    def __init__(self, config: BlobsConfig):
        super().__init__()
        self.config = config
        self.width = nn.Parameter(torch.tensor(config.width))

    def forward(self, centres: torch.Tensor) -> torch.Tensor:
        pixels = torch.arange(self.config.image_size, dtype=torch.float32)
        dy = (pixels[None, :, None] - centres[:, 0, None, None]) ** 2
        dx = (pixels[None, None, :] - centres[:, 1, None, None]) ** 2
        return torch.exp(-(dx + dy) / (2 * self.width ** 2))[:, None]


class BlobsEngine(Engine):
    family = NAME

    @classmethod
    def load(cls, directory):
        return cls(load_pretrained(Blobs, BlobsConfig, directory), directory)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        centres = 8 + 12 * torch.rand((check_count(n), 2), generator=make_generator(seed))
        return self.model(centres)

    def network_evaluations(self) -> int:
        return 1


RECORD = Family(name=NAME, title="throwaway blobs", engine=BlobsEngine, trainer="tests:NoTrainer",
                colour="tab:brown", description="Blobs of one learned width: a test's throwaway family.",
                quality_bar=0.5, objective="none (a test)")


@pytest.fixture
def throwaway():
    """The record registered, and its checkpoint in checkpoints/mnist/<name>/ for the test's duration."""
    folder = checkpoints_dir("mnist") / NAME
    Blobs(BlobsConfig()).save_pretrained(folder)
    info = {"dataset": "mnist5k", "command": "(a test's throwaway family, not trained)", "step": 0,
            "batch_size": 1, "lr": 0.0, "seed": 0, "hardware": "none", "wall_time_s": 0.0, "torch": torch.__version__}
    (folder / TRAINING_INFO_NAME).write_text(json.dumps(info))
    register_family(RECORD)
    try:
        yield info
    finally:
        FAMILIES.pop(NAME, None)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_a_throwaway_family_appears_in_evaluation_its_card_and_side_by_side(throwaway):
    from app.tabs import side_by_side
    from app.ui import build_demo
    from engines.measure.evaluation import evaluate
    from engines.measure.model_card import card
    from engines.measure.verdicts import summarise

    assert available_engines()[-1] == NAME and load_engine(NAME).sample(2, seed=1).shape == (2, 1, 28, 28)

    report = evaluate([NAME], n=40, seed=0, diffusion_options={"sampler": "ddim", "steps": 5},
                      sections=("quality", "speed"), settings={"speed_batch": 4})
    report.update(command="python -m engines.evaluate --engines " + NAME)
    report["summary"] = summarise(report)
    quality = report["quality"][NAME]
    assert set(quality["nets"]) == {"lenet", "allconv"} and quality["nets"]["lenet"]["frechet_distance"] > 0
    assert [r for r in report["speed"]["rows"] if r["engine"] == NAME][0]["nfe"] == 1
    cells = {row["row"]: row["cells"] for row in report["summary"]}
    assert NAME in cells["Sample quality"] and cells["Objective"][NAME] == "none (a test)"

    text = card(NAME, throwaway, report)
    assert text.startswith(f"# {NAME} (mnist5k)\n\n{RECORD.description}")
    assert f"{quality['nets']['lenet']['frechet_distance']:.1f}" in text and "Quality bar, in each feature net:" in text

    outputs = side_by_side.side_by_side(0, 2, "ddim", 5, "mnist")
    assert len(outputs) == 2 * len(FAMILIES) + 1 and outputs[-2].startswith(f"{RECORD.heading}: ")
    assert "1 network evaluation per sample" in outputs[-2]
    labels = [block.label for block in build_demo().blocks.values() if isinstance(block, gr.Image)]
    assert RECORD.heading in labels
