"""Seconds each 2-D playground visitor waits for their first picture while others train, through the API the page
calls (gradio_client against the app launched here, on a free local port, queued as app.py queues it).

    .venv/bin/python scripts/playground_concurrency.py [--visitors 4] [--steps 1000] [--family gan]

`--visitors` start training at once (the playground's pool trains PLAYGROUND_CONCURRENCY at a time); then one
more visitor starts training while they run, and another reads a lesson's text. Printed: each visitor's wait
for a first picture and for the end of their Start, the extra visitor's wait for a first picture (queued when
the pool is full), and the reader's wait for an answer. Other work on the machine slows every figure (the load
average at the start is printed). This is a benchmark, not a test: tests/test_playground.py checks that the
visitors train at once, each with their own numbers, not how fast.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run as a script from any folder
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from app import build_demo, serving  # noqa: E402
from app.playground import MAX_STEPS_PER_START, PLAYGROUND_CONCURRENCY  # noqa: E402


def watch(job, started: float, times: dict, showed: threading.Event | None = None) -> None:
    """Record, in seconds after `started`, the job's first output and its end (iterating a job blocks until
    each output arrives); set `showed` once it has shown something or ended."""
    for _ in job:
        times.setdefault("first", time.perf_counter() - started)
        if showed:
            showed.set()
    times["end"] = time.perf_counter() - started
    if showed:
        showed.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=PLAYGROUND_CONCURRENCY, help="visitors training at once")
    parser.add_argument("--steps", type=int, default=1000, help=f"steps per Start (max {MAX_STEPS_PER_START})")
    parser.add_argument("--family", default="gan", help="the family each visitor trains")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app uses one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from gradio_client import Client

    demo = serving.queue(build_demo())
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        print(f"load average at start: {os.getloadavg()[0]:.2f}; torch threads: {args.threads}; playground pool: "
              f"{PLAYGROUND_CONCURRENCY}; {args.visitors} visitors x {args.steps} {args.family} steps")
        train = ("ring8", [args.family], 0.002, args.steps)
        clients = [Client(url, verbose=False) for _ in range(args.visitors + 2)]
        started = time.perf_counter()
        jobs = [c.submit(*train, seed, None, None, api_name="/playground_train")
                for seed, c in enumerate(clients[:args.visitors])]
        times, showed = [{} for _ in jobs], [threading.Event() for _ in jobs]
        watchers = [threading.Thread(target=watch, args=(job, started, t, s)) for job, t, s in zip(jobs, times, showed)]
        for watcher in watchers:
            watcher.start()
        for event in showed:   # the extra visitors come once every visitor has shown a picture
            event.wait()
        extra_started = time.perf_counter()
        extra = clients[-2].submit(*train, 99, None, None, api_name="/playground_train")
        reader_started = time.perf_counter()
        clients[-1].predict("vae_blur", api_name="/playground_describe")
        reader_s = time.perf_counter() - reader_started
        extra_times: dict = {}
        watch(extra, extra_started, extra_times)
        for watcher in watchers:
            watcher.join()
        print(f"{'visitor':<24} {'first picture s':>16} {'end of Start s':>15}")
        for i, t in enumerate(times):
            print(f"{f'training visitor {i + 1}':<24} {t.get('first', float('nan')):16.1f} {t['end']:15.1f}")
        print(f"{'one more, training':<24} {extra_times.get('first', float('nan')):16.1f} {extra_times['end']:15.1f}"
              f"  (from when it started, once the others trained)")
        print(f"{'one more, reading':<24} {reader_s:16.2f}  (a lesson's text, while the others train)")
    finally:
        demo.close()


if __name__ == "__main__":
    main()
