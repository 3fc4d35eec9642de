"""Replaying a shipped run (engines/measure/replay.py): its own command again reproduces its logged losses (here, on
the same machine, bit for bit), and only then are the replay's scores (both nets, with SEs) and frames written into
the shipped folder; a replay that differs beyond rounding is refused and writes nothing."""
import json

import pytest

from conftest import TINY
from engines.errors import EngineError
from engines.measure import replay
from engines.training.loop import main as train
from engines.training.timelapse import frames


def shipped_run(root):
    """A tiny diffusion run trained without scores, as the older shipped runs were, in root/mnist/diffusion."""
    out = root / "mnist" / "diffusion"
    args = ["diffusion", "--out", str(out), "--steps", "6", "--checkpoint-every", "2", "--log-every", "1",
            "--batch-size", "8", "--threads", "1"]
    assert train(args + [a for s in TINY["diffusion"] for a in ("--set", s)]) == 0
    return out


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    monkeypatch.setattr(replay, "checkpoints_dir", lambda dataset: tmp_path / "checkpoints" / dataset)
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))
    return shipped_run(tmp_path / "checkpoints")


def test_a_replay_reproduces_the_run_and_writes_its_scores_and_frames(shipped):
    assert replay.replay("mnist", "diffusion", until=4, every=2, n=20, log=lambda line: None) == 2
    rows = [json.loads(line) for line in (shipped / "quality_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [2, 4]
    for row in rows:
        assert set(row["frechet_by_net"]) == {"lenet", "allconv"} and row["n"] == 20
        assert all(v["frechet_distance_se"] > 0 for v in row["frechet_by_net"].values())
        assert "--stop-at 4" in row["replayed"] and "--eval-every 2" in row["replayed"]
        assert row["replay_loss_drift"] == 0.0   # the same machine and threads: bit for bit
    assert [step for step, _ in frames(shipped)] == [2, 4]
    info = json.loads((shipped / "training_info.json").read_text())
    assert info["step"] == 6   # the shipped model itself is untouched


def test_a_replay_beyond_rounding_of_the_shipped_log_is_refused_and_writes_nothing(shipped):
    log = shipped / "train_log.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    rows[1]["loss"] = rows[1]["loss"] * (1 + 1e-6)   # step 2: as another CPU's rounding: the same run
    rows[2]["loss"] = rows[2]["loss"] * 1.01          # step 3: another run
    log.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(EngineError, match=r"loss at step 3 is .* \(relative difference 9.9e-03, beyond 0.001\)"):
        replay.replay("mnist", "diffusion", until=4, every=2, n=20, log=lambda line: None)
    assert not (shipped / "quality_log.jsonl").exists() and frames(shipped) == []
    del rows[2]
    log.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert replay.replay("mnist", "diffusion", until=4, every=2, n=20, log=lambda line: None) == 2   # continued
    drift = json.loads((shipped / "quality_log.jsonl").read_text().splitlines()[0])["replay_loss_drift"]
    assert drift == pytest.approx(1e-6, rel=1e-3)


def test_the_replay_takes_the_runs_own_command_and_sets_only_folder_scoring_and_stop():
    # Fashion-MNIST's flow run: its beginning on one thread, its end (resumed) on two. A replay of its beginning on
    # two threads differed by 2.7% at step 200: the first command's settings, the last one's --steps.
    info = {"step": 12000, "commands": [
        "python -m engines.train flow --dataset fashion --steps 8000 --checkpoint-every 250 --threads 1 --ledger "
        "--max-minutes 135 --eval-every 1500 --eval-n 250",
        "python -m engines.train flow --dataset fashion --steps 12000 --checkpoint-every 250 --threads 2 --ledger "
        "--max-minutes 20 --eval-every 1500 --eval-n 250 --out /somewhere --resume"]}
    args = replay.replay_arguments(info, "/tmp/r", until=1500, every=250, n=500)
    assert args == ["flow", "--dataset", "fashion", "--steps", "12000", "--checkpoint-every", "250", "--threads", "1",
                    "--out", "/tmp/r", "--stop-at", "1500", "--eval-every", "250", "--eval-n", "500", "--resume"]
    with pytest.raises(EngineError, match="multiple of the run's checkpoint interval, 250"):
        replay.replay_arguments(info, "/tmp/r", until=1500, every=300, n=500)
    with pytest.raises(EngineError, match="past the shipped run's last step"):
        replay.replay_arguments(info, "/tmp/r", until=12500, every=250, n=500)
    info["commands"][0] = info["commands"][0].replace(" --threads 1", "")   # torch's default: as recorded
    info["hardware"] = "2 CPU cores (x86_64), 1 torch threads, no GPU"
    assert replay.shipped_command(info)[-2:] == ["--threads", "1"]
    info["commands"][-1] += "  # warm restart from the shipped weights: optimiser state was not kept"
    args = replay.replay_arguments(info, "/tmp/r", until=1500, every=250, n=500)   # the run before its restart
    assert args[args.index("--steps") + 1] == "8000"
    info["commands"] = info["commands"][1:]
    with pytest.raises(EngineError, match="began with a warm restart"):
        replay.replay_arguments(info, "/tmp/r", until=1500, every=250, n=500)
