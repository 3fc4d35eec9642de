"""Reflow's training data: (noise, image) couplings drawn from a flow model's ODE (Liu et al. 2022, Algorithm 1).

    python -m engines.make_couplings --dataset mnist [--n 10000] [--sampler heun --steps 8] [--out DIR]

Each chunk of `chunk` pairs is the noise the flow engine draws for seed `seed + k` and the image its solver takes
that noise to (in [-1, 1], not rounded to 8 bits: the ODE's own end point), saved as soon as it is made, so the
command resumes where it stopped (--max-minutes stops it between chunks). couplings.json records the flow's
weights (the reflow trainer refuses couplings of another flow), the solver, the pairs, and what they cost
(seconds, CPU, hardware), which the reflow model's card reports. The default solver, Heun with 8 steps (15
evaluations), is where the MNIST speed race's Heun line stops improving beyond its standard errors: more
evaluations per pair would buy no better images.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from engines.errors import EngineError
from engines.measure.sampler_benchmark import weights_hash
from engines.runtime import hardware

INFO_NAME = "couplings.json"
SEED_BASE = 1_000_000   # couplings' seeds, far from the seeds the report and the app sample with


def shown_path(directory: Path) -> str:
    """The folder relative to the working directory where it is inside it (a card shows a repository path)."""
    try:
        return str(Path(directory).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(directory)


def chunk_path(out: Path, k: int) -> Path:
    return out / f"chunk-{k:05d}.safetensors"


@torch.no_grad()
def make_chunk(engine, n: int, seed: int, sampler: str, steps: int) -> dict[str, torch.Tensor]:
    """n couplings: the noise the engine starts from for `seed` (its first draw) and the image its ODE reaches."""
    noise, images = None, None
    for step in engine.trace(n, seed, sampler, steps, spacing="uniform"):
        noise = step.x_t if noise is None else noise
        images = step.prev_sample
    return {"noise": noise.contiguous(), "images": images.contiguous()}


def make_couplings(engine, out: Path, n: int, sampler: str = "heun", steps: int = 8, chunk: int = 500,
                   max_minutes: float | None = None, command: str = "", log=print) -> dict:
    """Make (or continue making) n couplings of the flow `engine` (loaded from its checkpoint folder) into `out`;
    returns the info."""
    out.mkdir(parents=True, exist_ok=True)
    info_path = out / INFO_NAME
    settings = {"source": shown_path(engine.directory), "source_weights": weights_hash(engine.directory), "n": n,
                "sampler": sampler, "steps": steps, "spacing": "uniform", "chunk": chunk,
                "nfe_per_pair": engine.network_evaluations(sampler, steps)}
    info = json.loads(info_path.read_text()) if info_path.is_file() else {**settings, "seconds": 0.0,
                                                                          "cpu_seconds": 0.0, "done": 0}
    changed = {k: (info[k], v) for k, v in settings.items() if k not in ("n", "source") and info.get(k) != v}
    if changed:
        raise EngineError(f"{out} holds couplings made otherwise ({changed}): choose another --out")
    began = time.time()
    info.update(n=n, command=command or info.get("command", ""), hardware=hardware())
    for k in range(info["done"] // chunk, -(-n // chunk)):
        if max_minutes is not None and time.time() - began > 60 * max_minutes:
            log(f"stopped after --max-minutes {max_minutes:g}: {info['done']} of {n} couplings; rerun to continue")
            break
        wall, cpu = time.time(), time.process_time()
        size = min(chunk, n - k * chunk)
        save_file(make_chunk(engine, size, SEED_BASE + k, sampler, steps), str(chunk_path(out, k)))
        info.update(done=k * chunk + size, seconds=round(info["seconds"] + time.time() - wall, 1),
                    cpu_seconds=round(info["cpu_seconds"] + time.process_time() - cpu, 1))
        info_path.write_text(json.dumps(info, indent=1) + "\n")
        log(f"couplings: {info['done']} of {n} ({info['seconds']:.0f} s)")
    return info


def load_couplings(directory: Path) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(noise, images, info) of a finished couplings folder, or a clear error saying how to make or finish it."""
    directory = Path(directory)
    info_path = directory / INFO_NAME
    make = "python -m engines.make_couplings --dataset DATASET --out " + str(directory)
    if not info_path.is_file():
        raise EngineError(f"no couplings in {directory}: make them first ({make}), then pass --set couplings=DIR")
    info = json.loads(info_path.read_text())
    if info["done"] < info["n"]:
        raise EngineError(f"{directory} holds {info['done']} of {info['n']} couplings: finish them ({make})")
    chunks = [load_file(str(chunk_path(directory, k))) for k in range(-(-info["n"] // info["chunk"]))]
    return torch.cat([c["noise"] for c in chunks]), torch.cat([c["images"] for c in chunks]), info
