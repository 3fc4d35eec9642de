"""The training command: loss goes down, save -> load round trip, exact resume, kill -9 recovery."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import safetensors
import safetensors.torch
import torch

from conftest import REPO, TINY
from engines import load_engine
from engines.checkpoint import STATE_NAME
from engines.data.datasets import load_mnist5k
from engines.engine import step_generator
from engines.training import TRAINERS
from engines.training.base import parse_overrides
from engines.training.loop import main

pytestmark = pytest.mark.slow


def tiny_trainer(family, **kw):
    torch.manual_seed(0)
    return TRAINERS[family](parse_overrides(TINY[family]), **kw)


@pytest.mark.parametrize("family", ["vae", "diffusion", "classifier"])
def test_a_few_steps_reduce_the_loss_on_a_tiny_batch(family):
    data = load_mnist5k("train")
    images, labels = data.images[:16], data.labels[:16]
    trainer = tiny_trainer(family, lr=3e-3)

    def loss_on_batch():
        # Fixed generator: the same t / noise / shifts each time, so the loss is comparable.
        return trainer.train_step(images, labels, step_generator(0, 0), 1000)["loss"]

    first = loss_on_batch()
    for _ in range(25):
        last = loss_on_batch()
    assert last < 0.8 * first, (first, last)


def test_gan_steps_do_what_each_player_wants():
    from engines.models.gan import discriminator_loss, generator_loss
    data = load_mnist5k("train")
    trainer = tiny_trainer("gan", lr=2e-3)
    real = data.images[:32] * 2 - 1
    z = torch.randn(32, trainer.config.latent_dim, generator=torch.Generator().manual_seed(0))

    def d_loss():
        with torch.no_grad():
            return discriminator_loss(trainer.discriminator(real), trainer.discriminator(trainer.generator(z))).item()

    before = d_loss()
    for step in range(10):
        trainer.train_step(data.images[:32], data.labels[:32], step_generator(0, step), step)
    # Discriminator alone on a fixed batch: its loss falls.
    for _ in range(15):
        loss = discriminator_loss(trainer.discriminator(real), trainer.discriminator(trainer.generator(z).detach()))
        trainer.update(trainer.opt_d, loss, trainer.discriminator.parameters(), clip=None)
    trained = d_loss()
    assert trained < before
    # Generator alone against that fixed discriminator: its loss falls.
    g_before = generator_loss(trainer.discriminator(trainer.generator(z))).item()
    for _ in range(15):
        trainer.update(trainer.opt_g, generator_loss(trainer.discriminator(trainer.generator(z))),
                       trainer.generator.parameters(), clip=None)
    assert generator_loss(trainer.discriminator(trainer.generator(z))).item() < g_before


def run_cli(family, out, steps, *extra):
    args = [family, "--out", str(out), "--steps", str(steps), "--checkpoint-every", "2", "--log-every", "1",
            "--batch-size", "8", "--threads", "1"]
    for setting in TINY[family]:
        args += ["--set", setting]
    assert main(args + list(extra)) == 0


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion"])
def test_save_load_round_trip_through_the_engine(family, tmp_path):
    run_cli(family, tmp_path, 3)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors", "train_log.jsonl",
                                                     "training_info.json", STATE_NAME}
    engine = load_engine(family, tmp_path)
    kw = {"sampler": "ddim", "steps": 5} if family == "diffusion" else {}
    x = engine.sample(2, seed=0, **kw)
    assert x.shape == (2, 1, 28, 28)
    assert torch.equal(x, load_engine(family, tmp_path).sample(2, seed=0, **kw))
    info = engine.info
    assert info["training_steps"] == 3 and info["dataset"] == "mnist5k"
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3]


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion"])
def test_resume_continues_exactly(family, tmp_path):
    run_cli(family, tmp_path / "straight", 4)
    run_cli(family, tmp_path / "resumed", 2)
    run_cli(family, tmp_path / "resumed", 4, "--resume")
    a = (tmp_path / "straight" / "model.safetensors").read_bytes()
    b = (tmp_path / "resumed" / "model.safetensors").read_bytes()
    assert a == b


def test_gan_with_diff_augment_resumes_exactly_and_differs_from_plain(tmp_path, capsys):
    augment = ("--set", "diff_augment=translation,cutout")
    run_cli("gan", tmp_path / "straight", 4, *augment)
    run_cli("gan", tmp_path / "resumed", 2, *augment)
    run_cli("gan", tmp_path / "resumed", 4, "--resume", *augment)
    run_cli("gan", tmp_path / "plain", 4)
    weights = {name: (tmp_path / name / "model.safetensors").read_bytes() for name in ("straight", "resumed", "plain")}
    assert weights["straight"] == weights["resumed"] != weights["plain"]
    args = ["gan", "--out", str(tmp_path / "bad"), "--steps", "2", "--set", "diff_augment=rotation"]
    assert main(args) == 2
    assert "unknown DiffAugment policy rotation" in capsys.readouterr().err


def test_refuses_to_overwrite_a_run_without_resume(tmp_path, capsys):
    run_cli("vae", tmp_path, 2)
    args = ["vae", "--out", str(tmp_path), "--steps", "4"] + [a for s in TINY["vae"] for a in ("--set", s)]
    assert main(args) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["vae", "--out", str(tmp_path / "other"), "--set", "colour=red"]) == 2
    assert "unknown setting 'colour'" in capsys.readouterr().err


def saved_step(out) -> int | None:
    """The step of the resumable state in `out` (what --resume continues from), read from its header; None before
    the first checkpoint. The file is replaced atomically, so it is never half written; but safetensors opens it
    twice (header, then mapping), and a checkpoint replacing it in between gives a size mismatch: look again."""
    for _ in range(20):
        try:
            with safetensors.safe_open(out / STATE_NAME, framework="pt") as f:
                return json.loads(f.metadata()["meta"])["step"]
        except FileNotFoundError:
            return None
        except (RuntimeError, OSError):   # replaced between safetensors' two opens
            time.sleep(0.01)
    raise AssertionError(f"{out / STATE_NAME} could not be read 20 times in a row")


def test_kill_minus_9_loses_at_most_the_work_since_the_last_checkpoint(tmp_path):
    cmd = [sys.executable, "-m", "engines.train", "diffusion", "--out", str(tmp_path), "--steps", "400",
           "--checkpoint-every", "5", "--log-every", "1", "--batch-size", "4", "--threads", "1"]
    cmd += [a for s in TINY["diffusion"] for a in ("--set", s)]
    out = tmp_path / "run"
    cmd[5] = str(out)
    stderr = open(tmp_path / "stderr.txt", "w")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
    log = out / "train_log.jsonl"
    # Wait for the second checkpoint on disk, then kill the trainer wherever it is. The deadline only guards
    # against a hang: how fast it trains is not checked.
    deadline = time.monotonic() + 300
    while (saved_step(out) or 0) < 10:
        assert time.monotonic() < deadline, "no second checkpoint in 300 s: " + \
            (tmp_path / "stderr.txt").read_text()[-2000:]
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)   # between looks at the file; returns at once if the trainer exits
        assert proc.poll() is None, "trainer exited early: " + (tmp_path / "stderr.txt").read_text()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    logged = len(log.read_text().splitlines())
    saved = saved_step(out)
    assert 10 <= saved <= logged < 400
    assert saved % 5 == 0 and logged - saved < 5 + 2  # at most a checkpoint interval (+ the step in flight)
    result = subprocess.run(cmd[:7] + ["20"] + cmd[8:] + ["--resume"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"resuming diffusion from step {saved}" in result.stderr
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == list(range(1, 21))  # lines past the checkpoint were dropped, none duplicated


def test_resume_without_training_state_warm_restarts_from_the_shipped_weights(tmp_path, capsys):
    # A fresh clone has the shipped weights but not the (git-ignored) optimiser state.
    run_cli("diffusion", tmp_path, 2)
    (tmp_path / "training_state.safetensors").unlink()
    shipped = load_engine("diffusion", tmp_path).model.state_dict()
    run_cli("diffusion", tmp_path, 3, "--resume")
    assert "warm restart of diffusion from the shipped weights at step 2" in capsys.readouterr().err
    info = json.loads((tmp_path / "training_info.json").read_text())
    assert info["step"] == 3 and "warm restart" in info["commands"][-1]
    after = load_engine("diffusion", tmp_path).model.state_dict()
    assert any(not torch.equal(shipped[k], after[k]) for k in shipped)  # it trained on from there
    log = [json.loads(line)["step"] for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3]


def test_a_gan_ships_its_discriminator_and_warm_restarts_with_it(tmp_path, capsys):
    # The discriminator ships beside G (weights only), so a shipped GAN can be trained on from a fresh clone.
    run_cli("gan", tmp_path, 2)
    (tmp_path / "training_state.safetensors").unlink()
    shipped_d = safetensors.torch.load_file(str(tmp_path / "discriminator.safetensors"))
    trainer = TRAINERS["gan"](parse_overrides(TINY["gan"]))
    fresh_d = trainer.discriminator.state_dict()
    assert any(not torch.equal(fresh_d[k], v) for k, v in shipped_d.items())   # a new D is not the trained one
    trainer.warm_start(load_engine("gan", tmp_path).model, 2, tmp_path)
    assert all(torch.equal(trainer.discriminator.state_dict()[k], v) for k, v in shipped_d.items())
    run_cli("gan", tmp_path, 3, "--resume")
    assert "warm restart of gan from the shipped weights at step 2" in capsys.readouterr().err
    after = safetensors.torch.load_file(str(tmp_path / "discriminator.safetensors"))
    assert any(not torch.equal(shipped_d[k], after[k]) for k in shipped_d)   # D trained on from there


def test_a_gan_shipped_without_its_discriminator_cannot_warm_restart(tmp_path, capsys):
    run_cli("gan", tmp_path, 2)
    for name in ("training_state.safetensors", "discriminator.safetensors"):   # as GANs shipped before it did
        (tmp_path / name).unlink()
    args = ["gan", "--out", str(tmp_path), "--steps", "3", "--resume"]
    assert main(args + [a for s in TINY["gan"] for a in ("--set", s)]) == 2
    err = capsys.readouterr().err
    assert "only with discriminator.safetensors beside them" in err and "Traceback" not in err


def test_eval_every_scores_each_checkpoint_into_the_quality_log(tmp_path):
    run_cli("gan", tmp_path, 4, "--eval-every", "2", "--eval-n", "20")
    rows = [json.loads(line) for line in (tmp_path / "quality_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [2, 4]
    for row in rows:
        assert 0 <= row["confident_share"] <= 1 and row["frechet_distance"] > 0 and row["n"] == 20
        assert set(row["share_of_real"]) == {"lenet", "allconv"}   # the quality bars hold in both nets


def test_eval_every_needs_a_lab_classifier_for_the_runs_data(tmp_path, capsys):
    """Checkpoint scores are in the features of the run's own dataset's lab net; a folder of the user's images has
    none, and the run says so before it trains rather than scoring with the wrong judge."""
    from PIL import Image
    for i in range(4):
        Image.new("L", (28, 28), 40 * i).save(tmp_path / f"{i}.png")
    args = ["gan", "--dataset", "folder", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "2",
            "--eval-every", "2", "--checkpoint-every", "2"]
    assert main(args + [a for s in TINY["gan"] for a in ("--set", s)]) == 2
    assert "there is none for --dataset folder: leave --eval-every out" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_hybrid_starts_from_the_parent_trained_on_the_runs_own_images(tmp_path, capsys):
    """MNIST's hybrids start from MNIST's shipped parents (the settings' default); another lab dataset's from its
    own; a folder of the user's images has none, and the run says so before training instead of starting a
    hybrid from a parent that never saw its images."""
    from engines.checkpoint import checkpoints_dir
    from engines.training.loop import with_parent
    assert with_parent("diffusion_gan", "mnist5k", {}) == {}
    assert with_parent("diffusion_gan", "fashion", {}) == {"warm_start_from": str(checkpoints_dir("fashion") /
                                                                                  "diffusion")}
    assert with_parent("latent_diffusion", "fashion", {})["vae_directory"].endswith("fashion/vae")
    assert with_parent("latent_diffusion", "folder", {"vae_directory": "my/vae"}) == {"vae_directory": "my/vae"}
    assert with_parent("gan", "folder", {}) == {}
    assert with_parent("diffusion_gan", "mnist-idx", {}) == {}     # MNIST's own IDX files: MNIST's parent
    assert with_parent("diffusion_gan", "fashion-idx", {})["warm_start_from"].endswith("fashion/diffusion")
    for family, key in (("diffusion_gan", "warm_start_from"), ("latent_diffusion", "vae_directory")):
        args = [family, "--dataset", "folder", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"),
                "--steps", "2"]
        assert main(args) == 2
        assert f"none ships for --dataset folder: train one and pass --set {key}=DIR" in capsys.readouterr().err
        assert not (tmp_path / "run").exists()


def test_gan_learning_rates_decay_linearly_over_the_last_steps_when_asked():
    import torch

    from engines.training.gan import GANTrainer
    images = torch.rand(8, 1, 28, 28)
    labels = torch.zeros(8, dtype=torch.long)
    constant = GANTrainer({}, steps=20, batch_size=8)
    decaying = GANTrainer({"lr_decay_steps": 10}, steps=20, batch_size=8)
    for step, expected in ((0, 1.0), (10, 1.0), (15, 0.5), (19, 0.1)):
        for trainer in (constant, decaying):
            trainer.train_step(images, labels, torch.Generator().manual_seed(step), step)
        for optimizer in (decaying.opt_g, decaying.opt_d):
            assert abs(optimizer.param_groups[0]["lr"] - decaying.lr * expected) < 1e-12
        assert constant.opt_g.param_groups[0]["lr"] == constant.lr
