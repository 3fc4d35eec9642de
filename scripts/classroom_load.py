"""A classroom at once: simulated visitors use the lab through the API the page calls, on loopback, for a bounded
time; printed are each endpoint's latency (p50, p95, max), every error, what a visitor beyond the queue's limit
is told, and the server process's resident memory at start and end.

    .venv/bin/python scripts/classroom_load.py [--visitors 30] [--seconds 180] [--burst 80]

The app is app.py itself, run in a process of its own (models loaded and first visits computed before the first
visitor, the same queue): the memory printed is that server's alone, the simulated visitors run in this one. Each
visitor opens the page (the landing tab's first visit), then loops until --seconds are up: Side by side with the
next seed (or, one time in five, a seed of their own), the GAN tab with that seed, and a streamed diffusion
trajectory, with a few seconds of reading between clicks. After the visitors, --burst requests are submitted at
once to show what a visitor beyond the queue's MAX_QUEUE is told.
Loopback only, bounded in visitors and time; other work on the machine slows every figure (the load average at
the start is printed). A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run as a script from any folder
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from app import serving  # noqa: E402
from app.inputs import DEFAULT_DATASET, DEFAULT_UI_STEPS, default_sampler  # noqa: E402

MAX_VISITORS, MAX_SECONDS, MAX_BURST = 100, 900, 200
READING_S = (2.0, 6.0)   # a visitor looks at each result for this long (uniform) before the next click
NEW_SEED_SHARE = 0.8     # how often a visitor presses "New seed" rather than typing a seed


def resident_mib(pid: int) -> float:
    """A process's resident memory (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def serve() -> tuple[subprocess.Popen, str]:
    """app.py on a free loopback port, as a visitor's machine would find it: (its process, its address)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--no-browser", "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in server.stdout:   # its warm-up, then the line that says where it listens
        if "is running on" in line:
            threading.Thread(target=server.stdout.read, daemon=True).start()   # keep its pipe drained
            return server, f"http://127.0.0.1:{port}/"
    raise SystemExit(f"app.py exited with code {server.wait()} before serving")


def visit(client, visitor: int, until: float, record, new_seed_share: float = NEW_SEED_SHARE) -> None:
    """One visitor: the page opens, then side by side, the GAN and a diffusion trajectory until `until`."""
    rng = random.Random(visitor)
    sampler = default_sampler()[0]
    record("first_visit", client.predict, api_name="/first_visit")
    seed = 0
    while time.perf_counter() < until:
        # "New seed" (the next seed, as a class following the teacher does), or now and then a seed typed in
        seed = seed + 1 if rng.random() < new_seed_share else rng.randrange(10_000)
        record("side_by_side", client.predict, seed, 16, sampler, DEFAULT_UI_STEPS, DEFAULT_DATASET, False,
               api_name="/side_by_side")
        time.sleep(rng.uniform(*READING_S))
        record("gan_sample", client.predict, seed, 36, 0, DEFAULT_DATASET, api_name="/gan_sample")
        time.sleep(rng.uniform(*READING_S))
        # streamed: the job's result is its last update, when the trajectory has finished
        record("diffusion_steps", lambda *a, **k: client.submit(*a, **k).result(), seed, 4, sampler,
               DEFAULT_UI_STEPS, DEFAULT_DATASET, api_name="/diffusion_steps")
        time.sleep(rng.uniform(*READING_S))


def burst(url: str, count: int) -> dict[str, int]:
    """`count` side-by-side requests at once, each from its own visitor (one client each: a single client does not
    put them all in the queue at once): how many are served, and what the others are told. One sample each: the
    burst measures the queue's limit, not the work."""
    from gradio_client import Client
    clients = [Client(url, verbose=False) for _ in range(count)]
    answers: dict[str, int] = defaultdict(int)
    lock, start = threading.Lock(), threading.Barrier(count)

    def ask(client, seed: int) -> None:
        start.wait()   # every visitor asks at the same moment
        try:
            client.predict(seed, 1, default_sampler()[0], DEFAULT_UI_STEPS, DEFAULT_DATASET, False,
                           api_name="/side_by_side")
            answer = "served"
        except Exception as e:   # noqa: BLE001 -- the message is what the benchmark reports
            answer = f"refused: {str(e).strip()[:160]}"
        with lock:
            answers[answer] += 1

    threads = [threading.Thread(target=ask, args=(c, seed)) for seed, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return dict(answers)


def run(url: str, visitors: int, seconds: float, new_seed_share: float = NEW_SEED_SHARE):
    from gradio_client import Client
    latencies, errors, lock = defaultdict(list), [], threading.Lock()

    def record(endpoint: str, call, *args, **kwargs) -> None:
        started = time.perf_counter()
        try:
            call(*args, **kwargs)
        except Exception as e:   # noqa: BLE001 -- every error is counted and printed, none allowed
            with lock:
                errors.append(f"{endpoint}: {type(e).__name__}: {str(e)[:200]}")
            return
        with lock:
            latencies[endpoint].append(time.perf_counter() - started)

    clients = [Client(url, verbose=False) for _ in range(visitors)]
    until = time.perf_counter() + seconds
    threads = [threading.Thread(target=visit, args=(c, i, until, record, new_seed_share))
               for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=30, help=f"visitors at once (at most {MAX_VISITORS})")
    parser.add_argument("--seconds", type=float, default=180, help=f"how long they click (at most {MAX_SECONDS})")
    parser.add_argument("--burst", type=int, default=serving.MAX_QUEUE + 16,
                        help=f"requests submitted at once after the visitors (at most {MAX_BURST}; 0: none)")
    parser.add_argument("--new-seed-share", type=float, default=NEW_SEED_SHARE,
                        help="how often a visitor presses New seed (the next seed, which others may have drawn "
                             "already) rather than typing a seed of their own; 0: every request its own")
    args = parser.parse_args()
    if not 0 <= args.new_seed_share <= 1:
        parser.error(f"--new-seed-share must be between 0 and 1, got {args.new_seed_share:g}")
    for name, value, most in [("visitors", args.visitors, MAX_VISITORS), ("seconds", args.seconds, MAX_SECONDS),
                              ("burst", args.burst, MAX_BURST)]:
        if not 0 <= value <= most or (name != "burst" and value == 0):
            parser.error(f"--{name} must be between {0 if name == 'burst' else 1} and {most}, got {value:g}")
    started = time.perf_counter()
    server, url = serve()
    try:
        memory_start = resident_mib(server.pid)
        print(f"app.py served on {url} after {time.perf_counter() - started:.0f} s of warm-up; load average "
              f"{os.getloadavg()[0]:.2f}; concurrency {serving.CONCURRENCY}, queue limit {serving.MAX_QUEUE}; "
              f"{args.visitors} visitors for {args.seconds:g} s, New seed {args.new_seed_share:.0%} of the time; "
              f"server's resident memory {memory_start:.0f} MiB",
              flush=True)
        latencies, errors = run(url, args.visitors, args.seconds, args.new_seed_share)
        print(f"{'endpoint':<18} {'calls':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7}")
        for endpoint, times in latencies.items():
            p50, p95 = np.percentile(times, [50, 95])
            print(f"{endpoint:<18} {len(times):6d} {p50:7.2f} {p95:7.2f} {max(times):7.2f}")
        print(f"errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors[:20]))
        kept = serving.SHARED_BYTES / 2**20
        print(f"server's resident memory: {memory_start:.0f} MiB at start, {resident_mib(server.pid):.0f} MiB after "
              f"the visitors (the side-by-side grids it keeps to share: at most {kept:.0f} MiB)", flush=True)
        if args.burst:
            print(f"burst of {args.burst} side-by-side requests at once: {burst(url, args.burst)}")
            print(f"server's resident memory after the burst: {resident_mib(server.pid):.0f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
