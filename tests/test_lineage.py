"""A model built on a parent records the parent as it was: a run writes it when it starts and keeps it when it
resumes, and the compute curve and the card read that record, not whatever the parent's folder ships later."""
import json

import pytest

from engines.checkpoint import TRAINING_INFO_NAME, WEIGHTS_NAME, file_sha256
from engines.measure.compute_curve import parent_flops, total_flops
from engines.measure.model_card import built_on_lines
from engines.registry import FAMILIES
from engines.training.lineage import parent_now
from engines.training.loop import main

TINY_GAN = ["--set=latent_dim=8", "--set=g_channels=8", "--set=d_channels=8"]
COMMON = ["--checkpoint-every", "1", "--log-every", "1", "--batch-size", "4", "--threads", "1"]


def info(folder):
    return json.loads((folder / TRAINING_INFO_NAME).read_text())


@pytest.mark.slow   # trains through the command line
def test_a_child_keeps_the_parent_it_was_built_on_when_the_parent_is_shipped_anew(tmp_path):
    gan, child = tmp_path / "gan", tmp_path / "conditional_gan"
    assert main(["gan", "--out", str(gan), "--steps", "2", *COMMON, *TINY_GAN]) == 0
    built_on = {"sha": file_sha256(gan / WEIGHTS_NAME), "flops": total_flops(gan)}
    assert main(["conditional_gan", "--out", str(child), "--steps", "2", *COMMON, *TINY_GAN,
                 f"--set=gan_from={gan}"]) == 0
    parent = info(child)["parent"]
    assert parent["family"] == "gan" and parent["step"] == 2 and parent["directory"] == str(gan)
    assert parent["weights_sha256"] == built_on["sha"] and parent["flops"] == built_on["flops"] > 0
    assert parent_now(parent) == "same" and "the model shipped there now" in built_on_lines(parent)[0]

    # The parent trains on and ships anew (other weights, more compute); the child resumes.
    assert main(["gan", "--out", str(gan), "--steps", "4", "--resume", *COMMON, *TINY_GAN]) == 0
    assert main(["conditional_gan", "--out", str(child), "--steps", "3", "--resume", *COMMON, *TINY_GAN,
                 f"--set=gan_from={gan}"]) == 0
    assert info(child)["parent"] == parent                   # the record of what it was built on, kept
    assert parent_now(parent) == "replaced" and "since replaced" in built_on_lines(parent)[0]
    assert total_flops(gan) == 2 * built_on["flops"]
    assert parent_flops(tmp_path, FAMILIES["conditional_gan"]) == built_on["flops"]   # not the new parent's

    # A child without a record (trained before it existed) is offset by the parent shipped now.
    record = info(child)
    del record["parent"]
    (child / TRAINING_INFO_NAME).write_text(json.dumps(record))
    assert parent_flops(tmp_path, FAMILIES["conditional_gan"]) == total_flops(gan)


def test_a_model_trained_from_scratch_records_no_parent(tmp_path):
    from engines.training.conditional_gan import ConditionalGANTrainer
    from engines.training.lineage import parent_directory
    trainer = ConditionalGANTrainer({"gan_from": "none", "latent_dim": 8, "g_channels": 8, "d_channels": 8})
    assert parent_directory(trainer.hparams, FAMILIES["conditional_gan"].parent_options) is None
    assert built_on_lines(None) == []


def test_a_record_written_after_training_is_marked_so_and_never_replaces_the_runs_own(tmp_path):
    from engines.training.lineage import backfill
    parent, child = tmp_path / "gan", tmp_path / "conditional_gan"
    for folder, record in ((parent, {"step": 7, "compute": {"flops": 5.0}}), (child, {"step": 3})):
        folder.mkdir()
        (folder / TRAINING_INFO_NAME).write_text(json.dumps(record))
    (parent / WEIGHTS_NAME).write_bytes(b"weights")
    record = backfill(child, "gan", parent)
    assert record["recorded_after_training"] and record["step"] == 7 and record["flops"] == 5.0
    assert record["weights_sha256"] == file_sha256(parent / WEIGHTS_NAME) and info(child)["parent"] == record
    assert "recorded after this run's training" in built_on_lines(record)[0]
    (parent / WEIGHTS_NAME).write_bytes(b"other weights")
    assert backfill(child, "gan", parent) == record and parent_now(record) == "replaced"
