"""Reflow: its couplings are the flow engine's own (noise, ODE end point) pairs, made resumably and refused when
mixed; its trainer starts from the flow that made them, trains on them by our command, and loads through the
users' code path."""
import json

import pytest
import torch

from engines import EngineError, load_engine
from engines.data.datasets import from_signed
from engines.engine import make_generator
from engines.training.couplings import SEED_BASE, load_couplings, make_couplings
from engines.training.reflow import ReflowTrainer

FLOW = load_engine("flow").directory


@pytest.fixture(scope="module")
def couplings(tmp_path_factory):
    out = tmp_path_factory.mktemp("couplings")
    make_couplings(load_engine("flow"), out, 4, sampler="heun", steps=2, chunk=3, log=lambda line: None)
    return out


def test_each_coupling_is_the_flow_engines_noise_and_the_image_its_ode_reaches(couplings):
    noise, images, info = load_couplings(couplings)
    assert noise.shape == images.shape == (4, 1, 28, 28) and info["nfe_per_pair"] == 3 and info["done"] == 4
    flow = load_engine("flow")
    for k, (start, size) in enumerate([(0, 3), (3, 1)]):    # chunk k is seed SEED_BASE + k
        drawn = torch.randn((size, 1, 28, 28), generator=make_generator(SEED_BASE + k))
        assert torch.equal(noise[start:start + size], drawn)
        sampled = flow.sample(size, seed=SEED_BASE + k, sampler="heun", steps=2, spacing="uniform")
        assert torch.allclose(from_signed(images[start:start + size]), sampled, atol=1e-6)
    assert info["source"] == "checkpoints/mnist/flow" and info["seconds"] >= 0 and "CPU" in info["hardware"]


def test_couplings_resume_and_refuse_other_settings_or_unfinished_folders(couplings, tmp_path):
    out = tmp_path / "more"
    make_couplings(load_engine("flow"), out, 2, sampler="heun", steps=2, chunk=3, log=lambda line: None)
    with pytest.raises(EngineError, match="holds 2 of 5 couplings"):
        (out / "couplings.json").write_text(json.dumps({**json.loads((out / "couplings.json").read_text()), "n": 5}))
        load_couplings(out)
    # continues, to 4
    make_couplings(load_engine("flow"), out, 4, sampler="heun", steps=2, chunk=3, log=lambda line: None)
    assert all(torch.equal(a, b) for a, b in zip(load_couplings(out)[:2], load_couplings(couplings)[:2]))
    with pytest.raises(EngineError, match="made otherwise"):
        make_couplings(load_engine("flow"), out, 4, sampler="heun", steps=3, chunk=3, log=lambda line: None)
    with pytest.raises(EngineError, match="make them first"):
        load_couplings(tmp_path / "none")


def test_the_trainer_starts_from_the_flow_that_made_its_couplings(couplings, tmp_path):
    trainer = ReflowTrainer({"couplings": str(couplings)})
    flow = load_engine("flow").model.state_dict()
    assert all(torch.equal(v, flow[k]) for k, v in trainer.model.state_dict().items())
    assert all(torch.equal(v, flow[k]) for k, v in trainer.export().state_dict().items())
    with pytest.raises(EngineError, match="make them with python -m engines.make_couplings"):
        ReflowTrainer({})
    other = tmp_path / "other_flow"
    other.mkdir()
    for name in ("config.json", "model.safetensors"):
        (other / name).write_bytes((FLOW / name).read_bytes())
    flow_weights = dict(load_engine("flow", other).model.state_dict())
    from safetensors.torch import save_file
    save_file({k: v + 0.0 if i else v + 1e-3 for i, (k, v) in enumerate(flow_weights.items())},
              str(other / "model.safetensors"))
    with pytest.raises(EngineError, match="made by another flow model"):
        ReflowTrainer({"couplings": str(couplings), "flow_from": str(other)})


@pytest.mark.slow   # trains through the command line
def test_trained_by_our_command_loaded_by_the_users_code_path(couplings, tmp_path):
    from engines.training.loop import main
    args = ["reflow", "--out", str(tmp_path), "--steps", "2", "--checkpoint-every", "1", "--log-every", "1",
            "--batch-size", "4", "--threads", "1", "--set", f"couplings={couplings}"]
    assert main(args) == 0
    engine = load_engine("reflow", tmp_path)
    x = engine.sample(2, seed=0, sampler="euler", steps=2, spacing="uniform")
    assert x.shape == (2, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    flow = load_engine("flow").model.state_dict()
    assert any(not torch.equal(v, flow[k]) for k, v in engine.model.state_dict().items())   # it trained
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2] and all(row["loss"] > 0 for row in log)
    from engines.measure.model_card import couplings_lines
    info = json.loads((tmp_path / "training_info.json").read_text())
    assert info["couplings"] == load_couplings(couplings)[2]        # the card's record of its data
    line, = couplings_lines(info["couplings"])
    assert "4 pairs" in line and "heun-2 on the uniform grid, 3 network evaluations each" in line
