"""Compute, measured: what a training run cost, as `python -m engines.train` records it in training_info.json
under "compute", so that runs of different families can be compared on the work they did and not only on
their steps.

    parameters         trained parameters per network ({"generator": .., "discriminator": ..}; a one-network
                       family's named parts, e.g. the VAE's encoder and decoder); EMA copies are not counted
    steps, optimizer_steps, images_seen
    wall_s, cpu_s      training seconds (checkpoint scoring left out); cpu_s is process time summed over ranks
                       and over every command of the run; cpu_s_per_rank is the last command's, per rank;
                       cpu_s_since_step, where present: the step from which on cpu_s counts (the run's earlier
                       commands predate the record)
    flops_by_phase     counted by torch's FlopCounterMode over one real training step of each phase (a family's
                       `phase_starts`: the diffusion GAN trains D alone first): the forward and backward passes
                       of every network the family trains (the GAN's D step and G step), summed over ranks
    flops              the sum over phases of their per-step FLOPs x their steps (flops_per_step: the mean),
                       with flops_source saying how it was obtained
    hardware           CPU model, cores, torch threads, GPU, world size

FlopCounterMode counts matrix products and convolutions (the usual convention: element-wise work, the optimiser
update and communication are left out). It does change the arithmetic it watches (under it a linear layer
runs as its decomposed matrix product, which rounds differently), so each step it counts (the first the run
makes of each phase) is replayed on a copy of the trainer, with copies of the step's generators: the run itself
computes what an uncounted run computes, and a resumed run stays bit-identical to an uninterrupted one.

For a checkpoint trained before this record existed: `python -m engines.training.compute FOLDER [--write]`
measures the per-step FLOPs now, on one step of each phase of a trainer built from the folder's recorded command,
takes the steps from its train_log.jsonl (`measure_checkpoint`), and with --write records it in the folder's
training_info.json (its model card then states it).
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

MEASURED_IN_RUN = ("measured over one step of each phase of this run (FlopCounterMode, forward + backward, on a "
                   "copy) x its steps")
MEASURED_NOW = "measured now over one step of each phase x its steps from train_log.jsonl"


def phase_of(starts: list[int], step: int) -> int:
    """The phase (its first step) that training step `step` (0-based) belongs to."""
    return max(s for s in [0, *starts] if s <= step)


def phase_lengths(starts: list[int], steps: int) -> dict[int, int]:
    """{phase start: how many of the first `steps` training steps fall in that phase}."""
    starts = sorted({0, *starts})
    ends = starts[1:] + [max(steps, starts[-1])]
    return {start: max(0, min(end, steps) - start) for start, end in zip(starts, ends)}


def total_flops(flops_by_phase: dict[int, float], starts: list[int], steps: int) -> float | None:
    """The FLOPs of `steps` training steps from each phase's per-step count (None if a phase they reach was
    never counted)."""
    lengths = {start: n for start, n in phase_lengths(starts, steps).items() if n}
    if any(start not in flops_by_phase for start in lengths):
        return None
    return sum(flops_by_phase[start] * n for start, n in lengths.items())


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


def parameter_text(counts: dict[str, int]) -> str:
    """The card's words for parameter_counts: "generator 990,289, discriminator 243,793", or one network with its
    parts in brackets, "model 1,698,610 (encoder 840,560, decoder 858,050)", so parts do not read as networks."""
    words = []
    for name, n in counts.items():
        if "." in name:
            continue
        own = [f"{part.split('.', 1)[1]} {m:,}" for part, m in counts.items() if part.startswith(f"{name}.")]
        words.append(f"{name} {n:,}" + (f" ({', '.join(own)})" if own else ""))
    return ", ".join(words)


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
    cpu_since_step: int = 0              # > 0: the run's earlier steps were trained before CPU time was recorded
    flops_by_phase: dict[int, float] = field(default_factory=dict)   # per step, summed over ranks
    flops_source: str = ""
    cpu_started: float = field(default_factory=time.process_time)
    cpu_excluded: float = 0.0            # this process's CPU seconds spent scoring checkpoints, not training

    def resume_from(self, previous: dict | None) -> None:
        """Carry on from the record of the run's earlier commands (training_info.json's "compute"); its FLOPs
        per step stand for a command that trains no further (a --push-to-hub retry)."""
        if previous:
            self.cpu_before = previous.get("cpu_s") or 0.0
            unrecorded = previous.get("cpu_s") is None and previous.get("steps")
            self.cpu_since_step = previous["steps"] if unrecorded else previous.get("cpu_s_since_step", 0)
            by_phase = previous.get("flops_by_phase")
            if by_phase is None and previous.get("flops_per_step") is not None:   # a record from before phases
                by_phase = {0: previous["flops_per_step"]}
            self.flops_by_phase = {int(start): flops for start, flops in (by_phase or {}).items()}
            self.flops_source = previous.get("flops_source", "")

    def train_step(self, trainer, shards, step: int, runtime) -> dict[str, float]:
        """One training step; the first of each phase the run reaches is also counted, on a copy (every rank
        counts its own shards at the same step; the ranks' counts are summed)."""
        phase = phase_of(trainer.phase_starts(), step)
        if phase not in self.flops_by_phase:
            flops = step_flops(trainer, shards, step)
            self.flops_by_phase[phase] = runtime.mean({"flops": flops})["flops"] * runtime.world_size
            self.flops_source = MEASURED_IN_RUN
        return trainer.train_shards(shards, step)

    def cpu_per_rank(self, runtime) -> list[float]:
        """This command's training CPU seconds on every rank (a collective: every rank calls it). Each rank
        puts its own seconds in its slot of a zero vector; the mean over ranks, times their number, is the
        vector of all of them."""
        mine = time.process_time() - self.cpu_started - self.cpu_excluded
        slots = {str(r): (mine if r == runtime.rank else 0.0) for r in range(runtime.world_size)}
        return [round(v * runtime.world_size, 2) for v in runtime.mean(slots).values()]

    def record(self, trainer, step: int, wall_s: float, cpu_per_rank: list[float]) -> dict:
        flops = total_flops(self.flops_by_phase, trainer.phase_starts(), step)
        return {
            "parameters": parameter_counts(trainer.modules),
            "shipped_parameters": module_parameters(trainer.export()),
            "steps": step, "optimizer_steps": trainer.optimizer_steps(step),
            "batch_size": trainer.batch_size, "images_seen": step * trainer.batch_size,
            "wall_s": round(wall_s, 1),
            "cpu_s": round(self.cpu_before + sum(cpu_per_rank), 1), "cpu_s_per_rank": cpu_per_rank,
            **({"cpu_s_since_step": self.cpu_since_step} if self.cpu_since_step else {}),
            "flops_by_phase": {str(start): f for start, f in sorted(self.flops_by_phase.items())},
            "flops_per_step": flops / step if flops is not None and step else None, "flops": flops,
            "flops_source": self.flops_source,
            "hardware": hardware_record(len(cpu_per_rank)),
        }


def recorded_args(info: dict):
    """The settings a run was trained with, from training_info.json: the parsed arguments of its last command
    (batch, data), its --set options gathered over every command of the run, a later command's value for a key
    winning (a resume need not repeat them, and may change a schedule's); a '  # ...' remark is dropped."""
    from engines.training.loop import parse_args

    settings, args = {}, None
    for command in info.get("commands", [info["command"]]):
        words = shlex.split(command.split("  #")[0])
        args = parse_args(words[words.index("engines.train") + 1:])
        settings.update({pair.partition("=")[0]: pair for pair in args.overrides})
    args.overrides = list(settings.values())
    return args


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
    log = read_jsonl(folder / LOG_NAME)
    steps = log[-1]["step"] if log else info["step"]
    by_phase = {}
    for start, n in phase_lengths(trainer.phase_starts(), steps).items():
        if n:
            shards = step_shards(data, trainer.batch_size, step_generator(info.get("seed", 0), start), 1, range(1),
                                 torch.device("cpu"))
            by_phase[start] = step_flops(trainer, shards, start)
    flops = total_flops(by_phase, trainer.phase_starts(), steps)
    return {
        "parameters": parameter_counts(trainer.modules),
        "shipped_parameters": module_parameters(trainer.export()),
        "steps": steps, "optimizer_steps": trainer.optimizer_steps(steps),
        "batch_size": trainer.batch_size, "images_seen": steps * trainer.batch_size,
        "wall_s": info.get("wall_time_s"), "cpu_s": None, "cpu_s_per_rank": None,
        "flops_by_phase": {str(start): f for start, f in by_phase.items()},
        "flops_per_step": flops / steps if steps else None, "flops": flops,
        "flops_source": MEASURED_NOW if log else MEASURED_NOW.replace("train_log.jsonl", "training_info.json"),
        "hardware": info.get("hardware"),   # the run's, as recorded (a string before this record existed)
    }


def record_in_folder(folder: str | Path, compute: dict) -> None:
    """Write `compute` into the folder's training_info.json (atomically), where a run trained without it."""
    path = Path(folder) / TRAINING_INFO_NAME
    info = json.loads(path.read_text())
    if info.get("compute", {}).get("flops_source", MEASURED_NOW).startswith("measured over"):
        raise EngineError(f"{path} already holds the compute its run measured: it is not replaced")
    info["compute"] = compute
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(info, indent=1) + "\n")
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    write = "--write" in argv
    folders = [a for a in argv if a != "--write"]
    if len(folders) != 1 or folders[0].startswith("-"):
        print("usage: python -m engines.training.compute CHECKPOINT_FOLDER [--write]", file=sys.stderr)
        return 2
    try:
        compute = measure_checkpoint(folders[0])
        if write:
            record_in_folder(folders[0], compute)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(compute, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
