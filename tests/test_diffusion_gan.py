"""The adversarial few-step diffusion engine (a denoising diffusion GAN): its chain's maths against the
forward process and our DDPM step, its warm start from the diffusion model, its sampling contract on the
shipped checkpoint, and its training through `python -m engines.train`."""
import hashlib
import json
import math
import subprocess
import sys

import pytest
import safetensors.torch
import torch

from conftest import REPO
from engines import EngineError, available_engines, load_engine
from engines.checkpoint import STATE_NAME
from engines.data.datasets import load_mnist5k, to_signed
from engines.engine import step_generator
from engines.models.diffusion_gan import DiffusionGANConfig, forward_pair, posterior_sample, r1_penalty, step_timesteps
from engines.sampling.samplers import ddpm_step
from engines.sampling.schedule import NoiseSchedule
from engines.training import TRAINERS
from engines.training.base import parse_overrides
from engines.training.loop import main

TINY = ["base_channels=8", "channel_mults=[1,2]", "attention_at_lowest=false", "num_train_timesteps=40",
        "d_channels=8", "latent_dim=4", "warm_start_from=none", "d_warmup_steps=1"]
SCHEDULE = NoiseSchedule.from_config(1000, "linear")


@pytest.fixture(scope="module")
def engine():
    return load_engine("diffusion_gan")


# --- the chain's maths ------------------------------------------------------------------------------

def test_the_chain_takes_trailing_steps_from_pure_noise():
    assert step_timesteps(DiffusionGANConfig()) == [999, 749, 499, 249]
    assert step_timesteps(DiffusionGANConfig(num_steps=2)) == [999, 499]


@pytest.mark.parametrize("t, prev_t", [(999, 749), (499, 249), (249, -1)])
def test_posterior_step_is_ddpms_step_at_the_same_x0(t, prev_t):
    """Given x0, the generated step draws from q(x_prev | x_t, x0): exactly what our DDPM step (Ho et al. eq. 7,
    beta-tilde variance) computes from the noise that x0 implies, with the same noise draw."""
    x_t, x0 = torch.randn(3, 1, 28, 28, dtype=torch.float64), torch.rand(3, 1, 28, 28, dtype=torch.float64) * 2 - 1
    abar = float(SCHEDULE.alphas_cumprod[t])
    eps = (x_t - abar ** 0.5 * x0) / (1 - abar) ** 0.5
    expected = ddpm_step(SCHEDULE, eps, t, prev_t, x_t, clip_sample=False,
                         generator=torch.Generator().manual_seed(5)).prev_sample
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(5), dtype=x_t.dtype)
    ours = posterior_sample(SCHEDULE, x0, x_t, torch.full((3,), t), torch.full((3,), prev_t),
                            noise if prev_t >= 0 else torch.zeros_like(x_t))
    assert torch.allclose(ours, expected, atol=1e-10)
    if prev_t < 0:
        assert torch.allclose(ours, x0, atol=1e-12)


def test_real_pairs_have_the_forward_marginals():
    """x_t of a real pair must be N(sqrt(abar_t) x0, (1 - abar_t) I) whichever step it belongs to, and x_prev
    N(sqrt(abar_prev) x0, (1 - abar_prev) I): the two-hop draw composes to the one-jump marginal."""
    n = 200_000
    x0 = torch.full((n, 1), 0.6, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    for t, prev_t in [(999, 749), (499, 249), (249, -1)]:
        noises = (torch.randn(x0.shape, generator=g, dtype=x0.dtype), torch.randn(x0.shape, generator=g,
                                                                               dtype=x0.dtype))
        x_prev, x_t = forward_pair(SCHEDULE, x0, torch.full((n,), t), torch.full((n,), prev_t), noises)
        for x, s in ((x_t, t), (x_prev, prev_t)):
            abar = float(SCHEDULE.alphas_cumprod[s]) if s >= 0 else 1.0
            assert abs(x.mean().item() - abar ** 0.5 * 0.6) < 5 * math.sqrt((1 - abar) / n) + 1e-12
            assert abs(x.var().item() - (1 - abar)) < 0.01


def test_r1_is_half_the_squared_input_gradient():
    class Linear(torch.nn.Module):
        def forward(self, x_prev, x_t, step):
            return 3.0 * x_prev.flatten(1).sum(1)
    x = torch.randn(4, 1, 2, 2)
    logits, r1 = r1_penalty(Linear(), x, x, torch.zeros(4, dtype=torch.long))
    assert torch.allclose(logits, 3 * x.flatten(1).sum(1))
    assert r1.item() == pytest.approx(0.5 * 9 * 4)  # |grad|^2 = 9 per pixel, 4 pixels


def test_the_generator_starts_as_the_diffusion_model():
    """Warm start: the UNet is the shipped diffusion model's and z enters through a zero map, so G's x0 is
    the diffusion model's clipped x0 prediction, for any z."""
    trainer = TRAINERS["diffusion_gan"]({})
    diffusion = load_engine("diffusion")
    x_t = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([749, 249])
    with torch.no_grad():
        expected = diffusion.schedule.predict_x0(x_t, t, diffusion.model(x_t, t)).clamp(-1, 1)
        for z in (torch.zeros(2, 32), torch.randn(2, 32)):
            assert torch.allclose(trainer.generator(x_t, t, z), expected, atol=1e-5)


def test_warm_start_refuses_another_architecture():
    with pytest.raises(EngineError, match="cannot warm-start .*base_channels"):
        TRAINERS["diffusion_gan"](parse_overrides(["base_channels=16"]))
    TRAINERS["diffusion_gan"](parse_overrides(["base_channels=16", "warm_start_from=none"]))  # from scratch


# --- the shipped engine -----------------------------------------------------------------------------

def test_it_ships_and_is_listed():
    assert "diffusion_gan" in available_engines() and "diffusion_gan" in TRAINERS


def test_contract_shape_range_determinism(engine):
    x = engine.sample(5, seed=3)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
    assert torch.equal(x, engine.sample(5, seed=3))
    assert not torch.equal(x, engine.sample(5, seed=4))
    assert engine.network_evaluations() == 4


def test_trace_yields_its_few_steps_and_ends_in_sample(engine):
    steps = list(engine.trace(3, seed=2))
    assert [s.index for s in steps] == [0, 1, 2, 3] and [s.timestep for s in steps] == [999, 749, 499, 249]
    assert all(torch.equal(a.prev_sample, b.x_t) for a, b in zip(steps, steps[1:]))
    assert torch.equal(steps[-1].prev_sample, steps[-1].predicted_x0)  # the last step lands on G's x0
    assert torch.equal(((steps[-1].prev_sample + 1) / 2).clamp(0, 1), engine.sample(3, seed=2))


@pytest.mark.parametrize("n", [0, -3, 1025, 2.5, "4", True, None])
def test_bad_counts(engine, n):
    with pytest.raises(EngineError, match="n must"):
        engine.sample(n, seed=0)


@pytest.mark.parametrize("seed", [1.5, "3", True, None, -1, 2**64])
def test_bad_seeds(engine, seed):
    with pytest.raises(EngineError, match="seed must"):
        engine.sample(2, seed=seed)


def test_info(engine):
    info = engine.info
    assert info["family"] == "diffusion_gan" and info["dataset"] == "mnist5k"
    assert "python -m engines.train diffusion_gan" in info["command"]


SCRIPT = """
import hashlib, torch
torch.set_num_threads(1)
from engines import load_engine
print(hashlib.sha256(load_engine("diffusion_gan").sample(3, seed=11).numpy().tobytes()).hexdigest())
"""


@pytest.mark.slow   # a subprocess
def test_bit_identical_across_processes(engine):
    torch.set_num_threads(1)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True,
                         cwd=str(REPO)).stdout.strip()
    assert out == hashlib.sha256(engine.sample(3, seed=11).numpy().tobytes()).hexdigest()


# --- training ---------------------------------------------------------------------------------------

def run_cli(out, steps, *extra):
    args = ["diffusion_gan", "--out", str(out), "--steps", str(steps), "--checkpoint-every", "2",
            "--log-every", "1", "--batch-size", "8", "--threads", "1"]
    for setting in TINY:
        args += ["--set", setting]
    assert main(args + list(extra)) == 0


def test_a_few_steps_teach_the_discriminator_and_move_the_generator():
    """On a fixed tiny batch D learns to tell the pairs apart (its loss falls below the chance value 2 log 2)
    and G's steps respond (its loss moves) - a GAN's losses do not both fall, so this is what can be asked."""
    data = load_mnist5k("train")
    images, labels = data.images[:16], data.labels[:16]
    torch.manual_seed(0)
    trainer = TRAINERS["diffusion_gan"](parse_overrides(TINY + ["r1_gamma=0", "d_lr=2e-3"]), lr=1e-3)
    rows = [trainer.train_step(images, labels, step_generator(0, 0), step) for step in range(30)]
    assert rows[0]["d_loss"] == pytest.approx(2 * math.log(2), abs=0.05)
    assert min(r["d_loss"] for r in rows[-5:]) < 2 * math.log(2) - 0.1
    assert rows[-1]["g_loss"] != rows[1]["g_loss"]          # TINY's one D-only warm-up step has no g_loss
    assert set(rows[1]) >= {"d_loss", "g_loss", "r1", "d_real", "d_fake"}


def test_the_generator_waits_while_the_discriminator_warms_up():
    """For d_warmup_steps only D trains: G's weights stay as they started (no loss, no gradient), then move."""
    data = load_mnist5k("train")
    trainer = TRAINERS["diffusion_gan"](parse_overrides(TINY + ["d_warmup_steps=2"]))
    before = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    d_before = next(trainer.discriminator.parameters()).clone()
    rows = [trainer.train_step(data.images[:8], data.labels[:8], step_generator(0, step), step) for step in range(2)]
    assert all("g_loss" not in row for row in rows)
    assert all(torch.equal(v, before[k]) for k, v in trainer.generator.state_dict().items())
    assert not torch.equal(next(trainer.discriminator.parameters()), d_before)
    assert "g_loss" in trainer.train_step(data.images[:8], data.labels[:8], step_generator(0, 2), 2)
    assert any(not torch.equal(v, before[k]) for k, v in trainer.generator.state_dict().items())


@pytest.mark.slow   # trains through the command line
def test_save_load_round_trip_and_exact_resume(tmp_path):
    run_cli(tmp_path / "straight", 4)
    run_cli(tmp_path / "resumed", 2)
    run_cli(tmp_path / "resumed", 4, "--resume")
    assert {p.name for p in (tmp_path / "resumed").iterdir()} >= {"config.json", "model.safetensors",
                                                                "train_log.jsonl", "training_info.json", STATE_NAME}
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "straight" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes()
    engine = load_engine("diffusion_gan", tmp_path / "resumed")
    x = engine.sample(2, seed=0)
    assert x.shape == (2, 1, 28, 28) and torch.equal(x, engine.sample(2, seed=0))
    assert engine.info["training_steps"] == 4
    log = [json.loads(line) for line in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3, 4]


@pytest.mark.slow   # trains through the command line
def test_a_warm_restart_goes_on_from_the_shipped_generator_and_discriminator(tmp_path, capsys):
    run_cli(tmp_path, 2)
    (tmp_path / STATE_NAME).unlink()
    shipped_d = safetensors.torch.load_file(str(tmp_path / "discriminator.safetensors"))
    run_cli(tmp_path, 3, "--resume")
    assert "warm restart of diffusion_gan from the shipped weights at step 2" in capsys.readouterr().err
    after = safetensors.torch.load_file(str(tmp_path / "discriminator.safetensors"))
    assert any(not torch.equal(shipped_d[k], after[k]) for k in shipped_d)
    (tmp_path / STATE_NAME).unlink()
    (tmp_path / "discriminator.safetensors").unlink()   # as the diffusion GAN shipped before its D did
    args = ["diffusion_gan", "--out", str(tmp_path), "--steps", "4", "--resume"]
    assert main(args + [a for s in TINY for a in ("--set", s)]) == 2
    assert "discriminator.safetensors" in capsys.readouterr().err


def test_the_real_pairs_in_training_are_the_forward_process():
    """The trainer's real pair for step k, for every item of a batch, is a forward draw from the item's own digit
    x0: x_prev ~ q(x_{t_{k+1}} | x0) = N(sqrt(abar_prev) x0, (1 - abar_prev) I) (x0 itself at the last step),
    then x_t given x_prev ~ N(sqrt(alpha) x_prev, (1 - alpha) I), alpha = abar_t / abar_prev (the chain's steps
    skip timesteps, so alpha is the product of the 1 - beta between them). Checked over many draws: the
    standardised residuals of every step have mean 0 and variance 1, and the two noises are uncorrelated."""
    from engines.training.base import Shard
    trainer = TRAINERS["diffusion_gan"](parse_overrides(TINY))
    images = load_mnist5k("train").images[:4]
    x0 = to_signed(images).double()
    step, x_prev, x_t, fake_prev = trainer.pairs(Shard(images, torch.zeros(4), step_generator(0, 3)))
    assert step.shape == (4,) and x_prev.shape == x_t.shape == fake_prev.shape == images.shape
    assert fake_prev.requires_grad
    abar = trainer.generator.schedule.alphas_cumprod
    n_steps = len(trainer.timesteps)
    prev_noise, step_noise = ([[] for _ in range(n_steps)] for _ in range(2))
    with torch.no_grad():
        for draw in range(64):
            step, x_prev, x_t, _ = trainer.pairs(Shard(images, torch.zeros(4), step_generator(0, draw)))
            x_prev, x_t = x_prev.double(), x_t.double()
            for i, k in enumerate(step.tolist()):
                t, prev_t = int(trainer.timesteps[k]), int(trainer.previous[k])
                abar_prev = abar[prev_t] if prev_t >= 0 else torch.tensor(1.0, dtype=torch.float64)
                alpha = abar[t] / abar_prev
                if prev_t < 0:   # the last step's x_prev is the clean digit itself
                    assert torch.equal(x_prev[i], x0[i].to(x_prev.dtype))
                else:
                    prev_noise[k].append(((x_prev[i] - abar_prev.sqrt() * x0[i]) / (1 - abar_prev).sqrt()).flatten())
                step_noise[k].append(((x_t[i] - alpha.sqrt() * x_prev[i]) / (1 - alpha).sqrt()).flatten())
    for k in range(n_steps):
        assert len(step_noise[k]) >= 20, (k, len(step_noise[k]))   # every step drawn, for many items
        z = torch.cat(step_noise[k])                                 # thousands of pixels per step
        assert abs(float(z.mean())) < 0.03 and abs(float(z.var()) - 1) < 0.05, (k, float(z.mean()), float(z.var()))
        if prev_noise[k]:
            e = torch.cat(prev_noise[k])
            assert abs(float(e.mean())) < 0.03 and abs(float(e.var()) - 1) < 0.05, (k, float(e.mean()))
            assert abs(float(torch.corrcoef(torch.stack([e, z]))[0, 1])) < 0.03, k
