"""Command: `python -m engines.make_couplings --dataset mnist [--n 10000] [--out DIR]`: reflow's (noise, image)
couplings from a flow model's ODE, resumable (engines/training/couplings.py has the code)."""
import argparse
import shlex
import sys
from pathlib import Path

import torch

from engines.checkpoint import checkpoints_dir
from engines.data.datasets import LAB_DATASETS
from engines.errors import EngineError
from engines.training.couplings import make_couplings
from engines.training.ledger import runs_root
from engines.training.reflow import COUPLING_SOURCE, coupling_source


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="python -m engines.make_couplings", description=__doc__)
    p.add_argument("--dataset", default="mnist", choices=list(LAB_DATASETS), help="whose shipped flow model")
    p.add_argument("--flow", type=Path, default=None, help="a flow checkpoint folder instead of the shipped one")
    p.add_argument("--n", type=int, default=10000, help="couplings to make")
    p.add_argument("--sampler", default="heun", help="the flow's solver (euler, heun, midpoint)")
    p.add_argument("--steps", type=int, default=8, help="its steps on the uniform grid (Heun-8: 15 evaluations)")
    p.add_argument("--chunk", type=int, default=500, help="couplings per saved file")
    p.add_argument("--out", type=Path, default=None,
                   help="default $LAB_RUNS/<dataset>/reflow-couplings, outside the work tree")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=None, help="stop between chunks after M minutes")
    args = p.parse_args(argv)
    if args.n < 1 or args.chunk < 1:
        print("error: --n and --chunk must be at least 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    out = args.out or runs_root() / args.dataset / "reflow-couplings"
    try:
        source = coupling_source(args.flow or checkpoints_dir(args.dataset) / COUPLING_SOURCE)
        info = make_couplings(source, out, args.n, args.sampler, args.steps, args.chunk, args.max_minutes,
                              "python -m engines.make_couplings " + shlex.join(argv),
                              log=lambda line: print(line, file=sys.stderr))
    except EngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{info['done']} of {info['n']} couplings in {out} ({info['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
