"""Compute, measured: what a training run cost, as `python -m engines.train` records it in training_info.json
under "compute", so that runs of different families can be compared on the work they did and not only on
their steps.

    parameters         trained parameters per network ({"generator": .., "discriminator": ..}; a one-network
                       family's named parts, e.g. the VAE's encoder and decoder); EMA copies are not counted
    steps, optimizer_steps, images_seen
    wall_s, cpu_s      training seconds (checkpoint scoring left out); cpu_s is process time summed over ranks
                       and over every command of the run; cpu_s_per_rank is the last command's, per rank
    flops_per_step     counted by torch's FlopCounterMode over one real training step: the forward and backward
                       passes of every network the family trains (the GAN's D step and G step), summed over ranks
    flops              flops_per_step x steps, with flops_source saying how it was obtained
    hardware           CPU model, cores, torch threads, GPU, world size

FlopCounterMode counts matrix products and convolutions (the usual convention: element-wise work, the optimiser
update and communication are left out). It does change the arithmetic it watches (under it a linear layer
runs as its decomposed matrix product, which rounds differently), so the step it counts is the run's first
step replayed on a copy of the trainer, with copies of the step's generators: the run itself computes what an
uncounted run computes, and a resumed run stays bit-identical to an uninterrupted one.

For a checkpoint trained before this record existed: `python -m engines.training.compute FOLDER` measures the
per-step FLOPs now, on one step of a trainer built from the folder's recorded command, and takes the steps from
its train_log.jsonl (`measure_checkpoint`).
"""
from __future__ import annotations

import copy
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.flop_counter import FlopCounterMode

from engines.checkpoint import LOG_NAME, TRAINING_INFO_NAME, read_jsonl
from engines.errors import EngineError

MEASURED_IN_RUN = "measured over step {step} of this run (FlopCounterMode, forward + backward, on a copy) x steps"
MEASURED_NOW = "measured per step now x steps from train_log.jsonl"


class GlobalOnly:
    """Stands in for FlopCounterMode's module tracker, which attributes FLOPs to modules through autograd hooks
    that fail inside `torch.autograd.grad` (the diffusion GAN's R1 penalty: "A leaf node was passed to
    _will_engine_execute_node"). We need only the total, which the tracker files under "Global"."""
    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


def count_flops(fn):
    """(fn(), the FLOPs it did): FlopCounterMode's total over everything fn runs, backward passes included."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = GlobalOnly()   # a private attribute of torch's class (torch is pinned; see GlobalOnly)
    with counter:
        result = fn()
    return result, counter.get_total_flops()


def step_flops(trainer, shards: list, step: int) -> float:
    """The FLOPs of one training step on `shards`, counted on a copy of the trainer (its modules, EMA and
    optimisers; a one-process runtime instead of the run's, so that no rank waits on another) with copies of
    the shards' generators, the global random state kept: nothing the run computes afterwards changes."""
    from engines.training.base import Shard
    from engines.training.distributed import Local

    twin = copy.deepcopy(trainer, memo={id(trainer.runtime): Local()})
    twin_shards = []
    for shard in shards:
        generator = torch.Generator(device=shard.generator.device)
        generator.set_state(shard.generator.get_state())
        twin_shards.append(Shard(shard.images, shard.labels, generator))
    with torch.random.fork_rng():
        _, flops = count_flops(lambda: twin.train_shards(twin_shards, step))
    return float(flops)


def module_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(modules: dict[str, nn.Module]) -> dict[str, int]:
    """Parameters per trained network, by the name a checkpoint saves it under. EMAs are averages of a network
    already counted, not trained, so they are left out. A family that trains one network is split into its
    named parts (top-level children grouped by the name before "_": the VAE's encoder, decoder_fc and
    decoder_conv give encoder and decoder) where it has more than one, since that is what a reader compares."""
    trained = {name: m for name, m in modules.items() if not isinstance(m, AveragedModel)}
    counts = {name: module_parameters(m) for name, m in trained.items()}
    if len(trained) == 1:
        (name, module), = trained.items()
        parts: dict[str, int] = {}
        for child_name, child in module.named_children():
            key = f"{name}.{child_name.split('_')[0]}"
            parts[key] = parts.get(key, 0) + module_parameters(child)
        parts = {key: n for key, n in parts.items() if n}
        if len(parts) > 1:
            counts.update(parts)
    return counts


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux; platform's answer elsewhere, often only the architecture)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_record(world_size: int = 1) -> dict:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": gpu, "world_size": world_size}


@dataclass
class Meter:
    """The compute of one training command, kept by the loop: it counts the FLOPs of the first step the
    command runs and the process time it spends training, on top of what earlier commands of the run spent."""
    cpu_before: float = 0.0              # CPU seconds of the run's earlier commands, all ranks
    flops_per_step: float | None = None  # summed over ranks
    flops_source: str = ""
    cpu_started: float = field(default_factory=time.process_time)
    cpu_excluded: float = 0.0            # this process's CPU seconds spent scoring checkpoints, not training
    counted: bool = False                # whether this command has counted a step yet

    def resume_from(self, previous: dict | None) -> None:
        """Carry on from the record of the run's earlier commands (training_info.json's "compute"); its FLOPs
        per step stand for a command that trains no further (a --push-to-hub retry)."""
        if previous:
            self.cpu_before = previous.get("cpu_s") or 0.0
            self.flops_per_step = previous.get("flops_per_step")
            self.flops_source = previous.get("flops_source", "")

    def train_step(self, trainer, shards, step: int, runtime) -> dict[str, float]:
        """One training step; the first this command runs is also counted, on a copy (every rank counts its
        own shards; the ranks' counts are summed)."""
        if not self.counted:
            self.counted = True
            flops = step_flops(trainer, shards, step)
            self.flops_per_step = runtime.mean({"flops": flops})["flops"] * runtime.world_size
            self.flops_source = MEASURED_IN_RUN.format(step=step + 1)
        return trainer.train_shards(shards, step)

    def cpu_per_rank(self, runtime) -> list[float]:
        """This command's training CPU seconds on every rank (a collective: every rank calls it). Each rank
        puts its own seconds in its slot of a zero vector; the mean over ranks, times their number, is the
        vector of all of them."""
        mine = time.process_time() - self.cpu_started - self.cpu_excluded
        slots = {str(r): (mine if r == runtime.rank else 0.0) for r in range(runtime.world_size)}
        return [round(v * runtime.world_size, 2) for v in runtime.mean(slots).values()]

    def record(self, trainer, step: int, wall_s: float, cpu_per_rank: list[float]) -> dict:
        flops = self.flops_per_step
        return {
            "parameters": parameter_counts(trainer.modules),
            "shipped_parameters": module_parameters(trainer.export()),
            "steps": step,
            # every family steps each of its optimisers once per training step
            "optimizer_steps": {name: step for name in trainer.optimizers},
            "batch_size": trainer.batch_size, "images_seen": step * trainer.batch_size,
            "wall_s": round(wall_s, 1),
            "cpu_s": round(self.cpu_before + sum(cpu_per_rank), 1), "cpu_s_per_rank": cpu_per_rank,
            "flops_per_step": flops, "flops": flops * step if flops is not None else None,
            "flops_source": self.flops_source,
            "hardware": hardware_record(len(cpu_per_rank)),
        }


def recorded_args(info: dict):
    """The parsed arguments of the last command of a run (its --set options, batch, data), from
    training_info.json: resumed commands repeat the first one's settings, and a '  # ...' remark is dropped."""
    from engines.training.loop import parse_args

    command = info.get("commands", [info["command"]])[-1].split("  #")[0]
    words = shlex.split(command)
    return parse_args(words[words.index("engines.train") + 1:])


def measure_checkpoint(folder: str | Path) -> dict:
    """The compute record of a run folder trained without one (a shipped checkpoint): the FLOPs of one
    training step measured now (a trainer of the same settings on a real batch: FLOPs do not depend on the
    weights' values), times the steps of its train_log.jsonl; parameters counted, wall time as recorded,
    CPU time unknown."""
    from engines.data.datasets import load_dataset
    from engines.engine import step_generator
    from engines.training import trainers
    from engines.training.base import parse_overrides
    from engines.training.loop import step_shards, with_parent

    folder = Path(folder)
    if not (folder / TRAINING_INFO_NAME).is_file():
        raise EngineError(f"{folder / TRAINING_INFO_NAME} is missing: it is what says how the run was trained")
    info = json.loads((folder / TRAINING_INFO_NAME).read_text())
    args = recorded_args(info)
    overrides = with_parent(args.family, args.dataset, parse_overrides(args.overrides))
    trainer = trainers()[args.family](overrides, lr=info["lr"], batch_size=info["batch_size"])
    data = load_dataset(args.dataset, "train", args.data_dir)
    shards = step_shards(data, trainer.batch_size, step_generator(args.seed, 0), 1, range(1), torch.device("cpu"))
    flops = step_flops(trainer, shards, 0)
    log = read_jsonl(folder / LOG_NAME)
    steps = log[-1]["step"] if log else info["step"]
    return {
        "parameters": parameter_counts(trainer.modules),
        "shipped_parameters": module_parameters(trainer.export()),
        "steps": steps, "optimizer_steps": {name: steps for name in trainer.optimizers},
        "batch_size": trainer.batch_size, "images_seen": steps * trainer.batch_size,
        "wall_s": info.get("wall_time_s"), "cpu_s": None, "cpu_s_per_rank": None,
        "flops_per_step": float(flops), "flops": float(flops) * steps,
        "flops_source": MEASURED_NOW if log else MEASURED_NOW.replace("train_log.jsonl", "training_info.json"),
        "hardware": info.get("hardware"),   # the run's, as recorded (a string before this record existed)
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m engines.training.compute CHECKPOINT_FOLDER", file=sys.stderr)
        return 2
    try:
        print(json.dumps(measure_checkpoint(argv[0]), indent=1))
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
