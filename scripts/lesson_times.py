"""Seconds each 2-D playground lesson takes on this machine, end to end (training, snapshots, measurements),
by the library call the app streams (`engines.toy.lessons.run_lesson`), without the browser round trips.

    .venv/bin/python scripts/lesson_times.py [--lessons KEY ...] [--threads 1]

The lessons are meant to finish in well under a minute on 2 idle CPU cores, so that a visitor watches one to
its end; other work on the machine slows every figure (the load average at the start is printed).
This is a benchmark, not a test: the lesson tests check what each lesson shows, not how fast.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run as a script from any folder
from engines.toy.lessons import LESSONS, run_lesson  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lessons", nargs="+", choices=list(LESSONS), default=list(LESSONS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app uses one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; torch threads: {args.threads}")
    print(f"{'lesson':<20} {'seconds':>8}  claims")
    for key in args.lessons:
        start = time.perf_counter()
        *_, measured = run_lesson(key)
        seconds = time.perf_counter() - start
        holds = sum(claim["holds"] for claim in measured["claims"])
        print(f"{key:<20} {seconds:8.1f}  {holds}/{len(measured['claims'])} hold")


if __name__ == "__main__":
    main()
