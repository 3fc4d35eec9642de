"""Processes, devices and mixed precision for `engines.train`: the one module that knows about accelerate.

Plain `python -m engines.train` (no launcher, no --mixed-precision) runs on `Local`: one process on the CPU,
nothing but torch, the arithmetic of every run before this module existed. Under a launcher (`torchrun
--nproc_per_node N -m engines.train ...`, `accelerate launch [--multi_gpu] -m engines.train ...`) or with
--mixed-precision, `Accelerated` wraps an accelerate `Accelerator`: it joins the process group (gloo on CPUs,
NCCL on GPUs), takes this rank's device (its GPU where there are GPUs) and provides autocast and, for fp16,
the gradient scaler.

Data parallelism, and why every rank stays in sync (each point is what keeps the next one true):
- the (seed, step) generator gives every rank the same global batch indices; the batch is cut into
  processes x grad-accum shards with a generator each, and rank r trains on its own shards (engines.training
  .loop.step_shards), so the global batch does not depend on the number of processes;
- ranks start from the same weights (rank 0's are broadcast after set-up or resume) and the same optimiser
  state (none yet, or read from the same training state file);
- each optimiser step averages the gradients over all ranks (one all-reduce of the flattened gradients, the
  mean that DDP computes) before clipping and stepping, so every rank applies the same update to the same
  weights: the parameters stay identical, bit for bit (all ranks receive the same all-reduce result);
- the EMA is a function of the parameter sequence, hence identical too; the one data-dependent state,
  batch-norm running statistics (the GAN's generator, the allconv classifier), is averaged over ranks after
  each step, before the EMA reads it. `check_in_sync` verifies all this at every checkpoint;
- rank 0 alone writes checkpoints, logs and the progress bar and scores checkpoints; the others wait.

Why not DistributedDataParallel: DDP needs each forward to be followed by its own backward inside one
gradient-sync context, which the GAN's step breaks (G's output is computed once and backpropagated in two
phases, D's then G's) and gradient accumulation over shards complicates; one all-reduce per optimiser step
gives DDP's result for every family, at the price of not overlapping communication with the backward pass
(one all-reduce of a few MB per step for these models).
"""
from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

from engines.errors import EngineError

MIXED_PRECISION = ("no", "bf16", "fp16")


def launched() -> bool:
    """Whether a launcher started this process: torchrun and accelerate's multi-process launchers set WORLD_SIZE,
    accelerate's one-process launcher ACCELERATE_USE_CPU."""
    return "WORLD_SIZE" in os.environ or "ACCELERATE_USE_CPU" in os.environ


def make_runtime(mixed_precision: str = "no") -> "Local":
    """Local for a plain one-process full-precision run, else Accelerated (which needs accelerate)."""
    if mixed_precision not in MIXED_PRECISION:
        raise EngineError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}, got {mixed_precision!r}")
    if mixed_precision == "fp16" and not torch.cuda.is_available():
        raise EngineError("--mixed-precision fp16 needs a CUDA GPU (its loss scaling exists for GPU half "
                          "precision); on CPUs use --mixed-precision bf16, or no")
    if not launched() and mixed_precision == "no":
        return Local()
    try:
        import accelerate  # noqa: F401
    except ImportError as e:
        raise EngineError("runs under torchrun / accelerate launch and --mixed-precision need the accelerate "
                          "package (pinned in requirements.txt: pip install -r requirements.txt); a plain "
                          "`python -m engines.train` without --mixed-precision runs without it") from e
    return Accelerated(mixed_precision)


class Local:
    """One process, full precision, on the CPU: plain torch; every hook below is the identity."""

    world_size, rank, is_main = 1, 0, True
    device = torch.device("cpu")
    mixed_precision = "no"

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def reduce_gradients(self, optimizer: torch.optim.Optimizer, module: nn.Module) -> None:
        """Make the gradients of `module` those of the global batch (and unscaled), ready to clip."""

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()

    def end_step(self) -> None:
        """Once per training step, after every optimiser of the step has stepped."""

    def average_batch_norm(self, module: nn.Module) -> None:
        """Average batch-norm running statistics over ranks."""

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Per-process averages of logged values -> averages over all ranks."""
        return values

    def broadcast(self, modules: dict[str, nn.Module]) -> None:
        """Give every rank rank 0's weights and buffers."""

    def check_in_sync(self, modules: dict[str, nn.Module]) -> None:
        """Raise if the ranks' modules differ."""

    def wait(self) -> None:
        """Barrier: every rank reaches this point before any goes on."""

    def state(self) -> dict:
        """What a resume needs beyond weights and optimisers (the fp16 loss scale), JSON-serialisable."""
        return {}

    def load_state(self, state: dict) -> None:
        pass

    def close(self) -> None:
        pass


class Accelerated(Local):
    """A rank of a data-parallel run (or a one-process mixed-precision run), through accelerate."""

    def __init__(self, mixed_precision: str):
        from accelerate import Accelerator
        from accelerate.utils import broadcast, reduce

        self._broadcast, self._reduce = broadcast, reduce
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision)
        self.world_size = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        self.is_main = self.accelerator.is_main_process
        self.device = self.accelerator.device
        self.mixed_precision = mixed_precision
        self.scaler = self.accelerator.scaler  # fp16 on a GPU only; None otherwise

    def autocast(self):
        return self.accelerator.autocast()

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def reduce_gradients(self, optimizer: torch.optim.Optimizer, module: nn.Module) -> None:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if self.world_size > 1 and grads:
            flat = self._reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
            for grad, mean in zip(grads, flat.split([g.numel() for g in grads])):
                grad.copy_(mean.view_as(grad))
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)  # skips the step where the gradients overflowed
        else:
            optimizer.step()

    def end_step(self) -> None:
        if self.scaler is not None:
            self.scaler.update()

    def average_batch_norm(self, module: nn.Module) -> None:
        if self.world_size == 1:
            return
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                for stat in (m.running_mean, m.running_var):
                    stat.copy_(self._reduce(stat, reduction="mean"))

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        if self.world_size == 1:
            return values
        averaged = self._reduce(torch.tensor(list(values.values()), dtype=torch.float64, device=self.device))
        return dict(zip(values, averaged.tolist()))

    def broadcast(self, modules: dict[str, nn.Module]) -> None:
        if self.world_size == 1:
            return
        for module in modules.values():
            for tensor in module.state_dict().values():
                self._broadcast(tensor)  # in place: state_dict tensors share the modules' storage

    def check_in_sync(self, modules: dict[str, nn.Module]) -> None:
        if self.world_size == 1:
            return
        sums = torch.stack([t.detach().double().sum() for m in modules.values() for t in m.state_dict().values()])
        if not torch.equal(self._reduce(sums, reduction="max"), -self._reduce(-sums, reduction="max")):
            raise EngineError("the processes' weights have drifted apart (a bug in the data-parallel set-up: "
                              "see engines/training/distributed.py); stopping rather than saving one of them")

    def wait(self) -> None:
        self.accelerator.wait_for_everyone()

    def state(self) -> dict:
        return {"grad_scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state(self, state: dict) -> None:
        if self.scaler is not None and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])

    def close(self) -> None:
        self.accelerator.end_training()  # leaves the process group
        # accelerate keeps its settings in a process-wide singleton that refuses different ones later; reset
        # it so that main() can run again in this process with other settings (as the tests do).
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
