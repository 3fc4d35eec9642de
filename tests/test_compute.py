"""What a training run records of its compute (engines/training/compute.py), and runs that outlive the work
tree: the LAB_RUNS folder, --max-minutes and the runs ledger (engines/training/ledger.py)."""
import json
import os
import shlex
import subprocess
import sys

import pytest
import torch

from conftest import REPO, TINY
from engines.checkpoint import CHECKPOINTS, WEIGHTS_NAME
from engines.data.datasets import load_mnist5k, to_signed
from engines.engine import step_generator
from engines.measure.model_card import compute_lines
from engines.models.diffusion import diffusion_loss
from engines.training import compute, ledger, trainers
from engines.training.base import parse_overrides
from engines.training.loop import main

pytestmark = pytest.mark.slow   # every test here trains a few steps


def tiny_args(family, steps, *extra, out=None):
    args = [family, "--steps", str(steps), "--checkpoint-every", "2", "--log-every", "1", "--batch-size", "8",
            "--threads", "1", *(["--out", str(out)] if out else [])]
    return args + [a for setting in TINY[family] for a in ("--set", setting)] + list(extra)


def info_of(folder):
    return json.loads((folder / "training_info.json").read_text())


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("diffusion")
    assert main(tiny_args("diffusion", 3, out=out)) == 0
    return out


def test_a_run_records_its_compute(diffusion_run):
    record = info_of(diffusion_run)["compute"]
    assert record["steps"] == 3 and record["optimizer_steps"] == {"opt": 3}
    assert record["images_seen"] == 3 * 8 == record["steps"] * record["batch_size"]
    assert record["wall_s"] >= 0 and record["cpu_s"] > 0 and len(record["cpu_s_per_rank"]) == 1
    assert record["hardware"]["world_size"] == 1 and record["hardware"]["torch_threads"] == 1
    trainer = trainers()["diffusion"](parse_overrides(TINY["diffusion"]))
    assert record["parameters"] == {"model": sum(p.numel() for p in trainer.model.parameters())}
    # One step is a forward and a backward pass (about twice the forward's work): more than 2 forwards.
    images = to_signed(load_mnist5k("train").images[:8])
    with torch.no_grad():
        _, forward = compute.count_flops(lambda: diffusion_loss(trainer.model, images, step_generator(0, 0)))
    assert forward > 0 and record["flops_per_step"] > 2 * forward
    assert record["flops"] == record["flops_per_step"] * 3
    assert record["flops_by_phase"] == {"0": record["flops_per_step"]}
    assert record["flops_source"].startswith("measured over one step of each phase of this run")
    line = compute_lines(record)[0]   # what a model card says of it
    assert "training FLOPs" in line and "24 images seen" in line


def test_every_network_a_family_trains_is_counted(tmp_path):
    assert main(tiny_args("gan", 1, out=tmp_path)) == 0
    record = info_of(tmp_path)["compute"]
    trainer = trainers()["gan"](parse_overrides(TINY["gan"]))
    assert record["parameters"] == {name: sum(p.numel() for p in getattr(trainer, name).parameters())
                                    for name in ("generator", "discriminator")}   # the EMA is not trained
    assert record["optimizer_steps"] == {"opt_g": 1, "opt_d": 1}
    # The step counted is D's step and G's step: more than one forward and backward pass of each network.
    fresh = trainers()["gan"](parse_overrides(TINY["gan"]))
    _, g_flops = compute.count_flops(lambda: fresh.generator(torch.randn(8, fresh.config.latent_dim)).sum().backward())
    _, d_flops = compute.count_flops(lambda: fresh.discriminator(torch.zeros(8, 1, 28, 28)).sum().backward())
    assert record["flops_per_step"] > g_flops + d_flops > 0


def test_the_vae_is_counted_by_its_encoder_and_decoder():
    counts = compute.parameter_counts(trainers()["vae"](parse_overrides(TINY["vae"])).modules)
    assert set(counts) == {"model", "model.encoder", "model.decoder"}
    assert counts["model.encoder"] + counts["model.decoder"] == counts["model"]
    # The card names the parts inside their network's count, not beside it as if they were more networks.
    assert compute.parameter_text(counts) == (f"model {counts['model']:,} (encoder {counts['model.encoder']:,}, "
                                              f"decoder {counts['model.decoder']:,})")


def test_a_checkpoint_without_a_record_is_measured_now(diffusion_run):
    in_run = info_of(diffusion_run)["compute"]
    now = compute.measure_checkpoint(diffusion_run)
    assert now["flops_source"] == compute.MEASURED_NOW
    assert now["flops_per_step"] == in_run["flops_per_step"]   # FLOPs depend on shapes, not on weights or step
    assert now["steps"] == 3 and now["parameters"] == in_run["parameters"]


def test_cpu_seconds_say_which_steps_they_cover_when_a_run_began_before_the_record():
    """A run resumed from a record measured afterwards (no CPU time) counts CPU time from its step on, and says so;
    an older record with neither field but FLOPs measured afterwards is read as covering only part of the run."""
    meter = compute.Meter()
    meter.resume_from({"steps": 10500, "cpu_s": None, "flops_per_step": 5.0, "flops_source": compute.MEASURED_NOW})
    assert meter.cpu_before == 0.0 and meter.cpu_since_step == 10500
    card = {"parameters": {"model": 10}, "images_seen": 64, "flops": None, "cpu_s": 2500.0}
    assert compute_lines({**card, "cpu_s_since_step": 10500})[0].endswith(
        "2500 CPU s (steps 10,500 on; its earlier commands predate the record)")
    assert "only its commands that recorded it" in compute_lines({**card, "flops_source": compute.MEASURED_NOW})[0]
    assert compute_lines(card)[0].endswith("parameters: model 10, 2500 CPU s")
    meter.resume_from({"steps": 12000, "cpu_s": 90.0, "cpu_s_since_step": 10500})   # a later command keeps it
    assert meter.cpu_before == 90.0 and meter.cpu_since_step == 10500


def test_a_family_whose_steps_change_is_counted_phase_by_phase():
    """The diffusion GAN trains D alone for its first d_warmup_steps: those steps cost less, and G's optimiser has
    not stepped yet. Three steps, phases from step 2: two D-only steps and one D and G step."""
    trainer = trainers()["diffusion_gan"](parse_overrides(["d_warmup_steps=2"]))
    assert trainer.phase_starts() == [0, 2] and trainer.optimizer_steps(3) == {"opt_d": 3, "opt_g": 1}
    assert compute.phase_lengths([0, 2], 3) == {0: 2, 2: 1} and compute.phase_lengths([0, 2], 1) == {0: 1, 2: 0}
    assert compute.total_flops({0: 10.0, 2: 25.0}, [0, 2], 3) == 45.0
    assert compute.total_flops({0: 10.0}, [0, 2], 3) is None         # a phase reached but never counted
    assert compute.total_flops({0: 10.0}, [0, 2], 2) == 20.0


def test_a_shipped_checkpoint_is_measured_from_its_recorded_command():
    now = compute.measure_checkpoint(CHECKPOINTS / "vae")
    log = (CHECKPOINTS / "vae" / "train_log.jsonl").read_text().splitlines()
    assert now["steps"] == json.loads(log[-1])["step"]
    assert now["images_seen"] == now["steps"] * info_of(CHECKPOINTS / "vae")["batch_size"]
    assert now["flops"] == now["flops_per_step"] * now["steps"] > 0
    assert set(now["parameters"]) == {"model", "model.encoder", "model.decoder"}


def train_process(args, env):
    return subprocess.run([sys.executable, "-m", "engines.train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_max_minutes_stops_at_a_checkpoint_and_the_printed_command_continues_exactly(tmp_path):
    env = {**os.environ, "LAB_RUNS": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    first = train_process(tiny_args("vae", 4, "--max-minutes", "0.001"), env)   # no --out: $LAB_RUNS
    assert first.returncode == 0, first.stderr
    run = tmp_path / "runs" / "mnist5k" / "vae"
    assert info_of(run)["step"] < 4 and "stopped after --max-minutes" in first.stderr
    words = shlex.split(first.stderr.split("continue with\n")[1].splitlines()[0])
    assert words[:3] == ["python", "-m", "engines.train"] and "--resume" in words and str(run) in words
    at = words.index("--max-minutes")   # the printed command keeps the time limit: this time, train to the end
    second = train_process(words[3:at] + words[at + 2:], env)
    assert second.returncode == 0, second.stderr
    assert main(tiny_args("vae", 4, out=tmp_path / "straight")) == 0
    assert (run / WEIGHTS_NAME).read_bytes() == (tmp_path / "straight" / WEIGHTS_NAME).read_bytes()
    steps = [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert info_of(run)["compute"]["steps"] == 4 and info_of(run)["compute"]["images_seen"] == 32


def test_the_ledger_follows_a_run_and_says_when_it_is_gone(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ledger, "ROOT", tmp_path / "checkpoints")
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    assert main(tiny_args("diffusion", 2, "--ledger")) == 0
    entry = json.loads((tmp_path / "checkpoints" / "mnist" / "runs.json").read_text())["diffusion"]
    run = tmp_path / "runs" / "mnist5k" / "diffusion"
    assert entry["run"] == str(run) and entry["step"] == 2 and "--resume" in entry["continue"]
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "elsewhere"))   # the ledger, not LAB_RUNS, finds the run
    assert main(tiny_args("diffusion", 3, "--ledger", "--resume")) == 0
    assert info_of(run)["step"] == 3 and ledger.read_ledger("mnist5k")["diffusion"]["step"] == 3

    for path in run.iterdir():   # another machine: the run's folder is gone
        path.unlink()
    capsys.readouterr()
    assert main(tiny_args("diffusion", 4, "--ledger", "--resume")) == 2
    err = capsys.readouterr().err
    assert "is gone" in err and "restarts from scratch" in err and "Traceback" not in err
    shipped = tmp_path / "checkpoints" / "mnist" / "diffusion"
    shipped.mkdir()
    (shipped / WEIGHTS_NAME).write_bytes(b"")
    assert main(tiny_args("diffusion", 4, "--ledger", "--resume")) == 2
    assert "restarts from the shipped weights" in capsys.readouterr().err
    assert main(tiny_args("diffusion", 4, "--ledger")) == 0   # restarted from scratch: the lost run stays on record
    entry = ledger.read_ledger("mnist5k")["diffusion"]
    assert entry["step"] == 4 and [lost["step"] for lost in entry["lost"]] == [3]
    assert main(tiny_args("diffusion", 5, "--ledger", "--resume")) == 0
    assert [lost["step"] for lost in ledger.read_ledger("mnist5k")["diffusion"]["lost"]] == [3]

    ledger.record_run("mnist5k", "gan", tmp_path / "gone", "python -m engines.train gan", "", 5, 10)
    (tmp_path / "checkpoints" / "mnist" / "gan").mkdir()
    (tmp_path / "checkpoints" / "mnist" / "gan" / WEIGHTS_NAME).write_bytes(b"")
    assert main(tiny_args("gan", 10, "--ledger", "--resume")) == 2
    err = capsys.readouterr().err
    assert "restarts from scratch" in err and "only with discriminator.safetensors beside them" in err


def test_a_resume_keeps_the_runs_settings_and_refuses_another_network(tmp_path, capsys):
    # The run's --set options, --steps, --batch-size and --seed come from its training_info.json: the short
    # command continues it exactly (it had loaded a default-width network into the 8-channel state: a traceback).
    run = tmp_path / "run"
    assert main(tiny_args("gan", 4, "--seed", "3", "--stop-at", "2", out=run)) == 0
    short = ["gan", "--out", str(run), "--resume", "--threads", "1", "--checkpoint-every", "2", "--log-every", "1"]
    assert main(short) == 0
    assert main(tiny_args("gan", 4, "--seed", "3", out=tmp_path / "straight")) == 0
    assert (run / WEIGHTS_NAME).read_bytes() == (tmp_path / "straight" / WEIGHTS_NAME).read_bytes()
    assert info_of(run)["step"] == 4 and info_of(run)["seed"] == 3
    assert compute.recorded_args(info_of(run)).overrides == [f"{s}" for s in TINY["gan"]]

    assert main(short + ["--steps", "6", "--set", "g_channels=16"]) == 2
    err = capsys.readouterr().err
    assert "does not fit this command's settings" in err and "Traceback" not in err
    assert main(short + ["--steps", "6"]) == 0 and info_of(run)["step"] == 6   # --steps given now wins


def test_a_two_process_run_records_both_ranks_and_stops_together(tmp_path):
    # Under torchrun each rank counts its own half of the batch: summed, the step of one process with
    # --grad-accum 2 (the same global batch). --max-minutes stops both ranks at the same step.
    assert main(tiny_args("vae", 2, "--grad-accum", "2", out=tmp_path / "one")) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "engines.train",
           *tiny_args("vae", 4, "--max-minutes", "0.001", out=tmp_path / "two")]
    env = {key: value for key, value in os.environ.items() if key != "WORLD_SIZE"}
    result = subprocess.run(cmd, cwd=REPO, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    two, one = info_of(tmp_path / "two")["compute"], info_of(tmp_path / "one")["compute"]
    assert two["steps"] < 4 and "stopped after --max-minutes" in result.stderr
    assert two["hardware"]["world_size"] == 2 and len(two["cpu_s_per_rank"]) == 2
    assert all(seconds > 0 for seconds in two["cpu_s_per_rank"]) and two["cpu_s"] >= sum(two["cpu_s_per_rank"]) - 0.1
    assert two["flops_per_step"] == one["flops_per_step"]


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_every_shipped_model_states_its_compute_in_its_card_and_the_report(dataset):
    from engines.checkpoint import checkpoints_dir
    from engines.measure.report_markdown import title
    from engines.registry import families

    root = checkpoints_dir(dataset)
    shipped = [f.name for f in families() if (root / f.name / WEIGHTS_NAME).is_file()]
    section = (root / "report.md").read_text().split("### Training compute")[1].split("\n## ")[0]
    for name in shipped + ["classifier", "classifier_allconv"]:
        record = info_of(root / name)["compute"]
        # counted in its run, or (trained before the record existed) measured now from its log
        assert record["flops"] > 0 and record["flops_source"] in (compute.MEASURED_IN_RUN, compute.MEASURED_NOW)
        assert compute_lines(record)[0] in (root / name / "README.md").read_text()
    assert all(f"| {title(name)} | {info_of(root / name)['compute']['flops']:.3g} |" in section for name in shipped)


def test_ship_copies_a_run_without_its_training_state_and_refuses_what_should_not_ship(tmp_path, monkeypatch,
                                                                                       capsys):
    from engines.registry import load_engine
    from engines.training import ship

    monkeypatch.setattr(ledger, "ROOT", tmp_path / "checkpoints")
    run, shipped = tmp_path / "runs" / "gan", tmp_path / "checkpoints" / "mnist" / "gan"
    assert main(tiny_args("gan", 4, "--stop-at", "2", "--ledger", out=run)) == 0
    assert ship.main(["gan"]) == 2   # the ledger's run, short of its --steps
    assert "stopped at step 2 of 4" in capsys.readouterr().err and not shipped.exists()
    assert ship.main(["gan", "--stopped-at-budget"]) == 0
    printed = capsys.readouterr().out
    assert "engines.knob_sweep --dataset mnist" in printed and "--sections speed   # every row" in printed
    assert "engines.speed_race --dataset mnist" in printed and "sampler_benchmark" not in printed
    assert "--summarise checkpoints/fashion/report.json" in printed   # its table between datasets quotes MNIST's
    names = sorted(path.name for path in shipped.iterdir())
    assert "discriminator.safetensors" in names and "training_state.safetensors" not in names
    assert {"config.json", "model.safetensors", "train_log.jsonl", "training_info.json"} <= set(names)
    assert load_engine("gan", shipped).sample(2, seed=0).shape[0] == 2   # through the users' code path

    assert main(tiny_args("gan", 4, "--resume", out=run)) == 0   # finished now
    assert ship.main(["gan", "--run", str(run)]) == 2
    assert "already ships a model: --replace" in capsys.readouterr().err
    assert ship.main(["gan", "--run", str(run), "--replace"]) == 0
    assert json.loads((shipped / "training_info.json").read_text())["step"] == 4
    assert ship.main(["gan", "--run", str(tmp_path / "nowhere")]) == 2
    assert "holds no finished checkpoint" in capsys.readouterr().err
