"""Class-conditional diffusion with classifier-free guidance: the guided mix is Ho & Salimans', guidance changes the
network and nothing else, the warm start is the unconditional model exactly, the labels are checked, and the
trainer drops labels and trains by our command, loaded through the users' code path."""
import json

import pytest
import torch

from engines import EngineError, load_engine
from engines.data.datasets import from_signed
from engines.models.conditional_diffusion import (
    ConditionalDiffusionConfig,
    ConditionalDiffusionEngine,
    ConditionalDiffusionModel,
    conditional_diffusion_loss,
)
from engines.sampling.guidance import GuidedDenoiser
from engines.training.conditional_diffusion import ConditionalDiffusionTrainer

TINY = {"base_channels": 8, "channel_mults": (1, 2), "num_train_timesteps": 50}


def tiny_engine(tmp_path, seed: int = 0) -> ConditionalDiffusionEngine:
    torch.manual_seed(seed)
    model = ConditionalDiffusionModel(ConditionalDiffusionConfig(**TINY))
    torch.nn.init.normal_(model.class_embedding.weight)    # as if trained: each class moves the prediction
    model.save_pretrained(tmp_path)
    return ConditionalDiffusionEngine.load(tmp_path)


def test_the_guided_prediction_is_the_unconditional_one_plus_w_times_the_class_direction(tmp_path):
    model = tiny_engine(tmp_path).model
    x, t, labels = torch.randn(3, 1, 28, 28), torch.tensor([40, 10, 0]), torch.tensor([7, 1, 7])
    with torch.no_grad():
        conditional, unconditional = model(x, t, labels), model(x, t, None)
        for w in (0.0, 1.0, 3.0):
            guided = GuidedDenoiser(model, labels, w)(x, t)
            assert torch.allclose(guided, unconditional + w * (conditional - unconditional), atol=1e-5), w
    assert not torch.allclose(conditional, unconditional)       # the class changes the prediction
    assert [GuidedDenoiser(model, labels, w).evaluations_per_step for w in (0, 1, 3)] == [1, 1, 2]


def test_guidance_changes_the_network_not_the_sampler_or_the_start_noise(tmp_path):
    engine = tiny_engine(tmp_path)
    for sampler in ("ddim", "diffusers:DPMSolverMultistepScheduler"):
        sevens = engine.sample(4, seed=3, sampler=sampler, steps=4, labels=7, guidance=3.0)
        assert torch.equal(sevens, engine.sample(4, seed=3, sampler=sampler, steps=4, labels=[7] * 4, guidance=3.0))
        ones = engine.sample(4, seed=3, sampler=sampler, steps=4, labels=1, guidance=3.0)
        assert not torch.allclose(sevens, ones)
    # w = 0 is the unconditional model: the labels do not matter
    assert torch.equal(engine.sample(2, seed=1, sampler="ddim", steps=3, labels=7, guidance=0.0),
                       engine.sample(2, seed=1, sampler="ddim", steps=3, labels=2, guidance=0.0))
    assert engine.network_evaluations("ddim", 10, guidance=3.0) == 20
    assert engine.network_evaluations("ddim", 10, guidance=1.0) == 10
    steps = list(engine.trace(2, seed=0, sampler="ddim", steps=3, labels=5, guidance=2.0))
    assert len(steps) == 3 and torch.equal(from_signed(steps[-1].prev_sample),   # a trace ends where sample() does
                                            engine.sample(2, seed=0, sampler="ddim", steps=3, labels=5, guidance=2.0))


def test_the_guided_trace_shows_both_predictions_and_ends_on_the_sample(tmp_path):
    """guided_trace: both x0 at every w (even where sampling skips one), the guided x0 their mix (eq. 6 in image
    space: x0 is linear in eps at a fixed x_t), and the engine's sample at its end."""
    engine = tiny_engine(tmp_path)
    for w, sampler in ((3.0, "diffusers:HeunDiscreteScheduler"), (1.0, "ddim")):
        guided = list(engine.guided_trace(2, seed=4, sampler=sampler, steps=4, labels=[3, 8], guidance=w))
        assert len(guided) == engine.network_evaluations(sampler, 4, guidance=0.0)   # one per network call
        middle = guided[1]
        mixed = middle.unconditional_x0 + w * (middle.conditional_x0 - middle.unconditional_x0)
        shown = middle.step.predicted_x0
        assert torch.allclose(mixed.clamp(-1, 1) if sampler == "ddim" else mixed, shown, atol=1e-4)
        assert not torch.allclose(middle.conditional_x0, middle.unconditional_x0)
        assert torch.allclose(from_signed(guided[-1].step.prev_sample), atol=1e-5,
                              other=engine.sample(2, seed=4, sampler=sampler, steps=4, labels=[3, 8], guidance=w))


def test_ddim_draws_the_class_asked_at_strong_guidance():
    """The shipped model asked for 7s at w = 3 and 8 by deterministic DDIM: with x0 clipped but the guided eps kept,
    DDIM walked them to 0s and 6s; with eps re-derived from the clipped x0 they stay 7s (`ddim_step`)."""
    from engines.measure.recognition import recognise
    engine = load_engine("conditional_diffusion")
    for w in (3.0, 8.0):
        seen = recognise(engine.sample(16, seed=2, sampler="ddim", steps=20, labels=7, guidance=w), "mnist")
        assert sum(c == 7 and ok for c, ok in zip(seen.classes, seen.recognisable)) >= 14, (w, seen.summary())


def test_labels_default_to_every_class_in_turn_and_bad_ones_are_refused(tmp_path):
    engine = tiny_engine(tmp_path)
    assert engine.labels_for(12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert engine.labels_for(3, 4).tolist() == [4, 4, 4]
    for labels, message in ((10, "classes 0 to 9"), (-1, "classes 0 to 9"), ([1, 2], "3 whole numbers"),
                            ([1.5, 2, 3], "3 whole numbers"), ("seven", "a class number or one per sample")):
        with pytest.raises(EngineError, match=message):
            engine.sample(3, seed=0, sampler="ddim", steps=2, labels=labels)
    for guidance in (-1, 25, "high", True):
        with pytest.raises(EngineError, match="guidance must be a number from 0"):
            engine.sample(1, seed=0, sampler="ddim", steps=2, guidance=guidance)


def test_dropped_labels_train_the_null_class():
    model = ConditionalDiffusionModel(ConditionalDiffusionConfig(**TINY))
    x0, labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8)
    for dropout, null_used in ((1e-9, False), (1 - 1e-9, True)):
        model.zero_grad()
        conditional_diffusion_loss(model, x0, labels, torch.Generator().manual_seed(0), dropout).backward()
        null_gradient = model.class_embedding.weight.grad[model.null_label].abs().sum()
        assert (null_gradient > 0) == null_used, dropout


def test_the_warm_start_predicts_exactly_what_the_shipped_diffusion_model_does():
    trainer = ConditionalDiffusionTrainer({})
    diffusion = load_engine("diffusion").model
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([500, 20])
    with torch.no_grad():
        for model in (trainer.model.eval(), trainer.export().eval()):
            assert torch.equal(model(x, t, torch.tensor([3, 8])), diffusion(x, t))
    trainer.warmup_lr(trainer.opt, 10_000, trainer.lr)     # past warm-up: the class embedding learns 10x faster
    groups = {len(g["params"]): g["lr"] for g in trainer.opt.param_groups}
    assert groups[1] == pytest.approx(10 * trainer.lr) and trainer.opt.param_groups[0]["lr"] == trainer.lr
    assert trainer.opt.param_groups[1]["params"][0] is trainer.model.class_embedding.weight
    with pytest.raises(EngineError, match="label_dropout must be between 0 and 1"):
        ConditionalDiffusionTrainer({"label_dropout": 0.0, "diffusion_from": "none"})
    with pytest.raises(EngineError, match="network differs from this config"):
        ConditionalDiffusionTrainer({"base_channels": 8})


@pytest.mark.slow   # trains through the command line
def test_trained_by_our_command_loaded_by_the_users_code_path(tmp_path):
    from engines.training.loop import main
    args = ["conditional_diffusion", "--out", str(tmp_path), "--steps", "2", "--checkpoint-every", "1",
            "--eval-every", "2", "--eval-n", "20", "--log-every", "1", "--batch-size", "4", "--threads", "1",
            "--set", "diffusion_from=none",
            "--set", "base_channels=8", "--set", "channel_mults=[1,2]", "--set", "num_train_timesteps=50"]
    assert main(args) == 0
    engine = load_engine("conditional_diffusion", tmp_path)
    x = engine.sample(2, seed=0, sampler="ddim", steps=2, labels=3, guidance=2.0)
    assert x.shape == (2, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2] and all(row["loss"] > 0 for row in log)
    score, = [json.loads(line) for line in (tmp_path / "quality_log.jsonl").read_text().splitlines()]
    assert set(score["asked_class_share"]) == {"lenet", "allconv"}     # is each sample of the class it was asked?
    assert all(0 <= share <= 1 for share in score["asked_class_share"].values())
    from PIL import Image

    from engines.training.timelapse import FRAME_SAMPLES, frames
    (step, frame), = frames(tmp_path)             # the time-lapse: one frame per scored checkpoint
    grid = Image.open(frame)
    assert step == 2 and grid.mode == "L" and grid.size == (4 * 30 + 2, 4 * 30 + 2) and FRAME_SAMPLES == 16
    first = torch.tensor(list(grid.getdata()), dtype=torch.float32).reshape(grid.size[1], grid.size[0])[2:30, 2:30]
    scored = engine.sample(1, seed=0, sampler="ddim", steps=20)[0, 0]   # the scoring sampler, seed 0, sample 0
    assert (first / 255 - scored).abs().max() < 1 / 255 + 1e-6


def test_a_score_counts_a_sample_right_only_when_the_net_reads_the_asked_class():
    from engines.data.datasets import load_lab_split
    from engines.measure.conditional import asked_class_shares
    test = load_lab_split("mnist", "test")
    images, labels = test.images[:50], test.labels[:50]
    right = asked_class_shares(images, labels, "mnist")
    assert all(share >= 0.9 for share in right.values())                   # real digits, asked for their own class
    assert all(share <= 0.2 for share in asked_class_shares(images, (labels + 1) % 10, "mnist").values())
    assert asked_class_shares(torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), "mnist") == {
        "lenet": 0.0, "allconv": 0.0}                                       # a blank page is no class at all
    assert load_engine("diffusion").asked_classes(4) is None               # an unconditional engine asks none


def test_the_confusion_matrix_reads_real_images_against_their_own_labels_as_the_reference():
    """Issue 29's conditional accuracy: rows asked, columns read (+ refused); real test images asked for their own
    labels are the reference a model is read against (relative accuracy 1.0), wrong labels score near 0, and a blank
    page lands in the refused column."""
    from engines.data.datasets import load_lab_split
    from engines.measure.conditional import CLASSES, conditional_accuracy, confusion
    test = load_lab_split("mnist", "test")
    own = conditional_accuracy(test.images, test.labels, "mnist")
    for net, record in own["relative"].items():
        assert record["accuracy"] == 1.0 and all(r == 1.0 for r in record["per_class"]), net
        counts = torch.tensor(own["samples"][net]["counts"])
        assert counts.shape == (CLASSES, CLASSES + 1) and counts.sum() == len(test.labels)
        assert counts.sum(1).tolist() == torch.bincount(test.labels, minlength=CLASSES).tolist()   # rows: asked
        assert own["real"][net]["accuracy"] > 0.95 and 0 < own["samples"][net]["accuracy_se"] < 0.01
    shifted = conditional_accuracy(test.images[:200], (test.labels[:200] + 1) % 10, "mnist")
    assert all(record["accuracy"] < 0.1 for record in shifted["relative"].values())
    blank = confusion(torch.zeros(3, 1, 28, 28), torch.tensor([0, 5, 9]), "mnist")
    assert all(torch.tensor(r["counts"])[:, CLASSES].sum() == 3 and r["accuracy"] == 0.0 for r in blank.values())
