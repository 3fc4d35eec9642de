"""The command every committed 2-D study shares (`path_study`, `guidance_study`): measure the seeds given, write
the study's JSON, and read it back for the lessons and tests."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch


def read_json(path: Path) -> dict | None:
    """A committed study, or None where it was not run."""
    return json.loads(path.read_text()) if path.is_file() else None


def main(prog: str, description: str, study: Callable[[list[int]], dict], out: Path, seeds: list[int],
         argv: list[str] | None = None) -> int:
    """`python -m <prog> [--seeds ...] [--threads 1] [--out FILE]`: study(seeds) written to FILE."""
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=seeds)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=out)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = study(args.seeds)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")
    return 0
