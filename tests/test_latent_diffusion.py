"""The latent diffusion engine (diffusion over the VAE's latents): its sampling contract on the shipped
checkpoint, its training through `python -m engines.train`, and its refusal of a VAE it was not trained on."""
import hashlib
import json
import shutil
import subprocess
import sys

import pytest
import safetensors.torch
import torch

from conftest import REPO
from engines import EngineError, available_engines, load_engine
from engines.checkpoint import CHECKPOINTS, STATE_NAME, WEIGHTS_NAME, file_sha256
from engines.data.datasets import load_mnist5k
from engines.engine import step_generator
from engines.models.latent_diffusion import LatentDiffusionEngine
from engines.training import TRAINERS
from engines.training.base import parse_overrides
from engines.training.loop import main

FAST = {"sampler": "ddim", "steps": 10}
TINY = ["hidden=32", "depth=1", "time_features=16", "num_train_timesteps=50"]


@pytest.fixture(scope="module")
def engine():
    return load_engine("latent_diffusion")


def test_it_ships_and_is_listed():
    assert "latent_diffusion" in available_engines()
    assert "latent_diffusion" in TRAINERS


def test_contract_shape_range_dtype(engine):
    x = engine.sample(5, seed=3, **FAST)
    assert x.shape == (5, 1, 28, 28)
    assert x.dtype == torch.float32 and x.device.type == "cpu"
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert x.std() > 0.05


def test_same_seed_same_images_other_seed_other_images(engine):
    for options in (FAST, {"sampler": "ddpm", "steps": 20}):
        a, b = engine.sample(4, seed=7, **options), engine.sample(4, seed=7, **options)
        assert torch.equal(a, b)
        assert not torch.equal(a, engine.sample(4, seed=8, **options))


def test_default_is_ddpm_over_all_steps(engine):
    assert engine.network_evaluations() == engine.num_train_timesteps == 1000
    x = engine.sample(2, seed=0)
    assert x.shape == (2, 1, 28, 28) and torch.equal(x, engine.sample(2, seed=0, sampler="ddpm", steps=1000))


def test_sample_decodes_latents_and_trace_ends_in_sample(engine):
    z = engine.latents(3, seed=5, **FAST)
    assert z.shape == (3, engine.vae.latent_dim)
    x = engine.sample(3, seed=5, **FAST)
    assert torch.equal(x, engine.vae.decode(z))
    steps = list(engine.trace(3, seed=5, **FAST))
    assert len(steps) == 10 and [s.index for s in steps] == list(range(10))
    assert steps[0].x_t.shape == steps[-1].predicted_x0.shape == (3, 1, 28, 28)
    assert steps[0].predicted_noise.shape == (3, engine.vae.latent_dim)
    assert torch.equal(((steps[-1].prev_sample + 1) / 2).clamp(0, 1), x)
    assert torch.equal(steps[-1].latent_prev, z)
    assert all(torch.equal(a.latent_prev, b.latent_t) for a, b in zip(steps, steps[1:]))


@pytest.mark.parametrize("n", [0, -3, 1025, 2.5, "4", True, None])
def test_bad_counts(engine, n):
    with pytest.raises(EngineError, match="n must"):
        engine.sample(n, seed=0, **FAST)


@pytest.mark.parametrize("seed", [1.5, "3", True, None, -1, 2**64])
def test_bad_seeds(engine, seed):
    with pytest.raises(EngineError, match="seed must"):
        engine.sample(2, seed=seed, **FAST)


def test_bad_options(engine):
    with pytest.raises(EngineError, match="unknown sampler"):
        engine.sample(2, seed=0, sampler="euler")
    with pytest.raises(EngineError, match="steps must"):
        engine.sample(2, seed=0, steps=0)


def test_info_names_the_vae(engine):
    info = engine.info
    assert info["family"] == "latent_diffusion" and info["dataset"] == "mnist5k"
    assert info["vae_sha256"] == file_sha256(CHECKPOINTS / "vae" / WEIGHTS_NAME)
    assert "python -m engines.train latent_diffusion" in info["command"]


SCRIPT = """
import hashlib, sys, torch
torch.set_num_threads(1)
from engines import load_engine
x = load_engine("latent_diffusion").sample(3, seed=11, sampler=sys.argv[1], steps=int(sys.argv[2]))
print(hashlib.sha256(x.numpy().tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_bit_identical_across_processes(engine):
    torch.set_num_threads(1)
    for sampler, steps in (("ddim", 10), ("ddpm", 50)):
        out = subprocess.run([sys.executable, "-c", SCRIPT, sampler, str(steps)], capture_output=True, text=True,
                             check=True, cwd=str(REPO)).stdout.strip()
        here = engine.sample(3, seed=11, sampler=sampler, steps=steps)
        assert out == hashlib.sha256(here.numpy().tobytes()).hexdigest()


# --- the VAE it belongs to --------------------------------------------------------------------------

def test_refuses_a_vae_with_other_weights(tmp_path):
    vae = tmp_path / "vae"
    shutil.copytree(CHECKPOINTS / "vae", vae)
    LatentDiffusionEngine.load(CHECKPOINTS / "latent_diffusion", vae_directory=vae)  # a byte copy is fine
    tensors = safetensors.torch.load_file(vae / WEIGHTS_NAME)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1e-3
    safetensors.torch.save_file(tensors, vae / WEIGHTS_NAME)
    expected = file_sha256(CHECKPOINTS / "vae" / WEIGHTS_NAME)
    with pytest.raises(EngineError) as error:
        LatentDiffusionEngine.load(CHECKPOINTS / "latent_diffusion", vae_directory=vae)
    message = str(error.value)
    assert expected in message and file_sha256(vae / WEIGHTS_NAME) in message
    assert "retrain" in message and "vae_directory" in message


def test_finds_its_own_vae_beside_it_else_the_one_holding_its_weights(tmp_path):
    # A dataset's folder holds its VAE beside its latent diffusion model (checkpoints/fashion/...): that one is
    # loaded, not MNIST's; where the VAE beside it holds other weights, the one that holds its own is found.
    model = tmp_path / "latent_diffusion"
    model.mkdir()
    for name in ("config.json", WEIGHTS_NAME):
        shutil.copyfile(CHECKPOINTS / "latent_diffusion" / name, model / name)
    shutil.copytree(CHECKPOINTS / "vae", tmp_path / "vae")
    assert LatentDiffusionEngine.load(model).vae.directory == tmp_path / "vae"
    tensors = safetensors.torch.load_file(tmp_path / "vae" / WEIGHTS_NAME)
    name = sorted(tensors)[0]
    safetensors.torch.save_file({**tensors, name: tensors[name] + 1e-3}, tmp_path / "vae" / WEIGHTS_NAME)
    assert LatentDiffusionEngine.load(model).vae.directory == CHECKPOINTS / "vae"


# --- training ---------------------------------------------------------------------------------------

def run_cli(out, steps, *extra):
    args = ["latent_diffusion", "--out", str(out), "--steps", str(steps), "--checkpoint-every", "2",
            "--log-every", "1", "--batch-size", "16", "--threads", "1"]
    for setting in TINY:
        args += ["--set", setting]
    assert main(args + list(extra)) == 0


@pytest.mark.slow
def test_a_few_steps_reduce_the_loss_on_a_tiny_batch():
    data = load_mnist5k("train")
    images, labels = data.images[:16], data.labels[:16]
    torch.manual_seed(0)
    trainer = TRAINERS["latent_diffusion"](parse_overrides(TINY), lr=3e-3)
    assert trainer.config.vae_sha256 == file_sha256(CHECKPOINTS / "vae" / WEIGHTS_NAME)
    assert len(trainer.config.latent_mean) == len(trainer.config.latent_std) == 8

    def loss_on_batch():  # the same t and noise each time, so the loss is comparable
        return trainer.train_step(images, labels, step_generator(0, 0), 1000)["loss"]

    first = loss_on_batch()
    for _ in range(25):
        last = loss_on_batch()
    assert last < 0.8 * first, (first, last)


def test_fitted_fields_are_not_settings():
    with pytest.raises(EngineError, match="fitted from the VAE"):
        TRAINERS["latent_diffusion"](parse_overrides(["vae_sha256=abc"]))
    with pytest.raises(EngineError, match="latent_dim must be the VAE's"):
        TRAINERS["latent_diffusion"](parse_overrides(["latent_dim=4"]))


@pytest.mark.slow
def test_save_load_round_trip_through_the_engine(tmp_path):
    run_cli(tmp_path, 3)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors", "train_log.jsonl",
                                                     "training_info.json", STATE_NAME}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["vae_sha256"] == file_sha256(CHECKPOINTS / "vae" / WEIGHTS_NAME)
    engine = load_engine("latent_diffusion", tmp_path)
    x = engine.sample(2, seed=0, sampler="ddim", steps=5)
    assert x.shape == (2, 1, 28, 28)
    assert torch.equal(x, load_engine("latent_diffusion", tmp_path).sample(2, seed=0, sampler="ddim", steps=5))
    assert engine.info["training_steps"] == 3
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3]


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    run_cli(tmp_path / "straight", 4)
    run_cli(tmp_path / "resumed", 2)
    run_cli(tmp_path / "resumed", 4, "--resume")
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "straight" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes()
    straight = [json.loads(line)["loss"] for line in (tmp_path / "straight" / "train_log.jsonl").open()]
    resumed = [json.loads(line)["loss"] for line in (tmp_path / "resumed" / "train_log.jsonl").open()]
    assert straight == resumed
