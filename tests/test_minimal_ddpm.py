"""scripts/minimal_ddpm.py, the one-screen twin of `python -m engines.train diffusion`, trains the same weights.

The seam: the training command's public entry point, `engines.train.main(argv)`, run in-process with tiny
settings (as tests/test_training.py runs it), and the files it writes (model.safetensors, the EMA that ships,
and training_state.safetensors, whose `model.` tensors are the online weights). Nothing inside
engines/training/ is imported, so the trainer's modules can be rearranged freely; only its arithmetic may not
change without this page changing with it.
"""
import runpy
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engines.checkpoint import STATE_NAME, WEIGHTS_NAME
from engines.train import main

pytestmark = pytest.mark.slow  # two short training runs: tens of seconds on a busy CPU
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "minimal_ddpm.py"
# Tiny and short, but past the warm-up (2 steps), with a seed other than the default.
SETTINGS = {"seed": 3, "steps": 4, "batch_size": 6, "lr": 1e-3}
MODEL = {"warmup_steps": 2, "base_channels": 8, "channel_mults": "[1,2]", "num_train_timesteps": 50}


def run_script(monkeypatch, out: Path) -> dict:
    argv = [f"{k}={v}" for k, v in {**SETTINGS, **MODEL, "out": out}.items()]
    monkeypatch.setattr(sys, "argv", [str(SCRIPT)] + argv)
    return runpy.run_path(str(SCRIPT), run_name="__main__")


def run_command(out: Path) -> None:
    argv = ["diffusion", "--out", str(out), "--seed", str(SETTINGS["seed"]), "--steps", str(SETTINGS["steps"]),
            "--batch-size", str(SETTINGS["batch_size"]), "--lr", str(SETTINGS["lr"])]
    assert main(argv + [a for k, v in MODEL.items() for a in ("--set", f"{k}={v}")]) == 0


def assert_same(ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name


def test_minimal_ddpm_trains_the_weights_engines_train_does(tmp_path, monkeypatch):
    run_command(tmp_path / "command")
    script = run_script(monkeypatch, tmp_path / "script")
    # What ships (the EMA), bit for bit, and the online weights the EMA follows.
    assert_same(load_file(tmp_path / "script" / WEIGHTS_NAME), load_file(tmp_path / "command" / WEIGHTS_NAME))
    state = load_file(tmp_path / "command" / STATE_NAME)
    online = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    assert_same({k: v.detach() for k, v in script["model"].state_dict().items()}, online)
    # It trained: the weights moved from their initial values.
    torch.manual_seed(SETTINGS["seed"])
    initial = type(script["model"])(script["model"].config).state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in online.items())

