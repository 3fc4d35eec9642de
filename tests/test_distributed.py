"""Training at scale: `torchrun --nproc_per_node 2 -m engines.train` (gloo, on CPUs), gradient accumulation,
mixed precision, the message when accelerate is missing, and --push-to-hub up to the upload.

Two processes and one process with --grad-accum 2 cut the same global batch into the same two shards, with the
same noise, and average the same two gradients, so they must agree: within TOLERANCE on the weights (the sum
of two gradients may be ordered differently by a collective; measured here: equal, bit for bit).
"""
import json
import os
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, TINY
from engines import load_engine
from engines.training.loop import main

pytestmark = pytest.mark.slow

TOLERANCE = 1e-6  # max |difference| of any weight after 6 steps, 2 processes vs 1 process x 2 micro-batches
STEPS = 6
SETTINGS = ["--batch-size", "16", "--lr", "1e-2", "--threads", "1", "--checkpoint-every", "3", "--log-every", "1",
            "--set", "warmup_steps=0"] + [a for s in TINY["vae"] for a in ("--set", s)]


def torchrun(out, steps, *extra):
    """engines.train vae on 2 CPU processes, as a user launches it; returns (exit code, seconds, output)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "engines.train", "vae",
           "--out", str(out), "--steps", str(steps), *SETTINGS, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    started = time.time()
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    return result.returncode, time.time() - started, result.stdout + result.stderr


def log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def max_weight_difference(a, b):
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    return max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: one process, the same global batch of 16 in two micro-batches of 8."""
    out = tmp_path_factory.mktemp("one") / "run"
    assert main(["vae", "--out", str(out), "--steps", str(STEPS), "--grad-accum", "2", *SETTINGS]) == 0
    return out


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, one_process):
    out = tmp_path / "two"
    code, seconds, output = torchrun(out, STEPS)
    assert code == 0, output[-3000:]
    engine = load_engine("vae", out)
    assert engine.sample(2, seed=0).shape == (2, 1, 28, 28)
    info = json.loads((out / "training_info.json").read_text())
    assert info["processes"] == 2 and info["step"] == STEPS and "on 2 processes" in info["command"]
    two, one = log(out), log(one_process)
    assert [row["step"] for row in two] == list(range(1, STEPS + 1))  # rank 0 alone wrote the log
    losses = [row["loss"] for row in two]
    assert min(losses[-2:]) < 0.9 * losses[0], losses  # it learns
    assert losses == pytest.approx([row["loss"] for row in one], rel=1e-6)
    difference = max_weight_difference(out, one_process)
    print(f"2 processes vs 1 process x 2 micro-batches: max |weight difference| {difference:.3g} "
          f"(tolerance {TOLERANCE}); torchrun took {seconds:.1f} s")
    assert difference <= TOLERANCE


def test_a_two_process_run_resumes_exactly(tmp_path, one_process):
    # Stop the one-process run halfway, continue it on two processes: the same weights as never stopping.
    out = tmp_path / "resumed"
    assert main(["vae", "--out", str(out), "--steps", str(STEPS // 2), "--grad-accum", "2", *SETTINGS]) == 0
    code, _, output = torchrun(out, STEPS, "--resume")
    assert code == 0, output[-3000:]
    assert f"resuming vae from step {STEPS // 2}" in output
    assert [row["step"] for row in log(out)] == list(range(1, STEPS + 1))
    assert max_weight_difference(out, one_process) <= TOLERANCE


def test_the_global_batch_must_split_evenly(tmp_path, capsys):
    args = ["vae", "--out", str(tmp_path), "--steps", "1", "--batch-size", "10", "--grad-accum", "4"]
    assert main(args + [a for s in TINY["vae"] for a in ("--set", s)]) == 2
    assert "must be a multiple of processes x --grad-accum = 1 x 4" in capsys.readouterr().err


def test_grad_accum_one_equals_a_plain_run(tmp_path):
    # --grad-accum 1 is the default: the same bytes as a run that never heard of it.
    args = ["--steps", "2", "--batch-size", "8", "--threads", "1"] + [a for s in TINY["vae"] for a in ("--set", s)]
    assert main(["vae", "--out", str(tmp_path / "a"), *args]) == 0
    assert main(["vae", "--out", str(tmp_path / "b"), "--grad-accum", "1", *args]) == 0
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion"])
def test_bf16_mixed_precision_on_a_cpu_gives_finite_losses_and_samples(tmp_path, family):
    args = [family, "--out", str(tmp_path), "--steps", "2", "--batch-size", "8", "--threads", "1", "--log-every", "1",
            "--mixed-precision", "bf16"] + [a for s in TINY[family] for a in ("--set", s)]
    assert main(args) == 0
    assert all(torch.isfinite(torch.tensor(v)) for row in log(tmp_path) for k, v in row.items() if k != "step")
    assert json.loads((tmp_path / "training_info.json").read_text())["mixed_precision"] == "bf16"
    kw = {"sampler": "ddim", "steps": 5} if family == "diffusion" else {}
    assert torch.isfinite(load_engine(family, tmp_path).sample(2, seed=0, **kw)).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is refused on CPU-only machines")
def test_fp16_is_refused_on_a_cpu(tmp_path, capsys):
    assert main(["vae", "--out", str(tmp_path), "--steps", "1", "--mixed-precision", "fp16"]) == 2
    assert "fp16 needs a CUDA GPU" in capsys.readouterr().err


def test_without_accelerate_plain_runs_work_and_the_rest_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "accelerate", None)  # import accelerate -> ImportError
    args = ["--steps", "1", "--batch-size", "4", "--threads", "1"] + [a for s in TINY["vae"] for a in ("--set", s)]
    assert main(["vae", "--out", str(tmp_path / "plain"), *args]) == 0
    assert main(["vae", "--out", str(tmp_path / "bf16"), "--mixed-precision", "bf16", *args]) == 2
    assert "need the accelerate package" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun
    assert main(["vae", "--out", str(tmp_path / "launched"), *args]) == 2
    assert "need the accelerate package" in capsys.readouterr().err


class FakeHub:
    """Stands in for huggingface_hub's HfApi inside push_to_hub: keeps a copy of the folder it would upload."""
    pushed = None

    def __init__(self, token=None):
        pass

    def create_repo(self, repo_id, private=None, exist_ok=False):
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, **kwargs):
        FakeHub.pushed = shutil.copytree(folder_path, FakeHub.destination)
        return f"https://huggingface.co/{repo_id}/commit/0"

    def upload_file(self, path_or_fileobj, path_in_repo, repo_id, **kwargs):
        shutil.copy(path_or_fileobj, FakeHub.destination / path_in_repo)


def test_push_to_hub_uploads_config_weights_and_our_model_card(tmp_path, monkeypatch, capsys):
    import huggingface_hub.hub_mixin
    FakeHub.destination = tmp_path / "pushed"
    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", FakeHub)
    out = tmp_path / "run"
    args = ["vae", "--out", str(out), "--steps", "2", "--batch-size", "4", "--threads", "1", "--push-to-hub",
            "lab/tiny-vae"] + [a for s in TINY["vae"] for a in ("--set", s)]
    assert main(args) == 0
    assert "pushed" in capsys.readouterr().err
    pushed = FakeHub.destination
    assert {p.name for p in pushed.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    assert json.loads((pushed / "config.json").read_text()) == json.loads((out / "config.json").read_text())
    assert max_weight_difference(pushed, out) == 0
    card = (pushed / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    body = body.lstrip()
    assert "pipeline_tag: unconditional-image-generation" in front and "library_name: generative-lab" in front
    assert "- vae" in front
    assert body.startswith("# vae (mnist5k)") and "## Training" in body and "--push-to-hub lab/tiny-vae" in body
    assert load_engine("vae", pushed).sample(1, seed=0).shape == (1, 1, 28, 28)


def test_a_failed_push_keeps_the_run_and_says_how_to_retry(tmp_path, monkeypatch, capsys):
    import huggingface_hub.hub_mixin

    class Offline(FakeHub):
        def create_repo(self, repo_id, private=None, exist_ok=False):
            raise OSError("no network")
    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", Offline)
    args = ["vae", "--out", str(tmp_path), "--steps", "1", "--batch-size", "4", "--threads", "1", "--push-to-hub",
            "lab/tiny-vae"] + [a for s in TINY["vae"] for a in ("--set", s)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "pushing it to lab/tiny-vae failed: no network" in err and "--resume" in err
    assert load_engine("vae", tmp_path).sample(1, seed=0).shape == (1, 1, 28, 28)
    # The retry the message suggests: --resume at the last step trains no further and pushes.
    weights = (tmp_path / "model.safetensors").read_bytes()
    FakeHub.destination = tmp_path / "pushed"
    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", FakeHub)
    assert main(args + ["--resume"]) == 0
    assert (tmp_path / "model.safetensors").read_bytes() == weights
    assert (FakeHub.destination / "model.safetensors").is_file()


def test_a_pushed_feature_net_takes_its_typicality_gate_along(tmp_path, monkeypatch):
    """The classifier's gate (typicality.safetensors, written after its last step) is part of what loads it."""
    import huggingface_hub.hub_mixin

    from engines.models.classifier import load_classifier
    FakeHub.destination = tmp_path / "pushed"
    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", FakeHub)
    out = tmp_path / "run"
    args = ["classifier", "--out", str(out), "--steps", "2", "--batch-size", "16", "--threads", "1",
            "--push-to-hub", "lab/tiny-net"] + [a for s in TINY["classifier"] for a in ("--set", s)]
    assert main(args) == 0
    pushed = FakeHub.destination
    assert {p.name for p in pushed.iterdir()} == {"config.json", "model.safetensors", "README.md",
                                                  "typicality.safetensors"}
    assert (pushed / "typicality.safetensors").read_bytes() == (out / "typicality.safetensors").read_bytes()
    load_classifier(pushed)
