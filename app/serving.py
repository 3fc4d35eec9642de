"""How the lab is served (app.py, the Space, the load benchmark): one queue setting, and a warm-up that loads every
shipped model and computes each tab's first visit before the first visitor arrives."""
from __future__ import annotations

import ctypes
import heapq
import itertools
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager

# CPU-bound work: more drawing at once than cores only slows each one down. A Space's free CPU has 2; where cores
# allow (a larger machine), more visitors are drawn for at once.
CONCURRENCY = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
TORCH_THREADS = 1  # one core per drawing: no oversubscription
MAX_QUEUE = 64     # requests waiting beyond this are refused with Gradio's "queue is full" message


class DrawingSlots:
    """`count` slots to draw in, each given to the waiter that asked first by its `asked` time (a page's arrival):
    a page that draws its families one after another, a slot each, then keeps its place among the pages waiting,
    and pages finish in the order they came instead of all of them late. A request that waits for a result being
    drawn for someone else holds no slot meanwhile."""

    def __init__(self, count: int):
        self.free, self.waiting, self.order = count, [], itertools.count()
        self.changed = threading.Condition()

    @contextmanager
    def held(self, asked: float):
        with self.changed:
            ticket = (asked, next(self.order))
            heapq.heappush(self.waiting, ticket)
            self.changed.wait_for(lambda: self.free > 0 and self.waiting[0] == ticket)
            heapq.heappop(self.waiting)
            self.free -= 1
            self.changed.notify_all()   # a second free slot goes to the next in line
        try:
            yield
        finally:
            with self.changed:
                self.free += 1
                self.changed.notify_all()


# Drawing: a request whose result others may already have drawn (SharedResults) is taken from the queue at once, up
# to SHARED_CONCURRENCY together, and only what is still to draw waits for one of CONCURRENCY slots. So a visitor
# whose pictures are already drawn, or being drawn for someone else, does not queue behind other drawing.
DRAWING = DrawingSlots(CONCURRENCY)
# Short work first: a streamed trajectory (a few samples, a second or two) asks for a slot as if before every page
# (ten grids, several seconds each), which keeps the mean wait lowest (shortest job first).
FIRST_IN_LINE = float("-inf")
SHARED_CONCURRENCY = 4 * CONCURRENCY   # requests taken from the queue at once where results may be shared
SHARED_POOL = {"concurrency_id": "shared_results", "concurrency_limit": SHARED_CONCURRENCY}
# Streamed trajectories come from the queue in a pool of their own: in the pages' pool they waited behind pages that
# hold its places while they wait for a drawing slot, and short work first never began.
TRAJECTORY_POOL = {"concurrency_id": "trajectories", "concurrency_limit": SHARED_CONCURRENCY}


SHARED_RESULTS = 64            # kept deterministic results
SHARED_BYTES = 128 * 2**20     # and at most this many bytes of them (a 16-sample grid is 0.13 MB, 64 labelled 1.6 MB)


class SharedResults:
    """The last `maxsize` results of a deterministic request, and no more than `max_bytes` of them as `size_of`
    counts a result, each for at most `max_age_s`, shared among visitors: a class that presses "New seed" together
    asks for seeds 1, 2, 3... at about the same time, and the second visitor to ask for a seed gets the first one's
    pictures at no cost, also while the first is still drawing them (`get` waits for that drawing instead of
    starting its own: identical requests in flight are computed once). `stream` does the same for a streamed
    result: the first asker watches it drawn, later ones get its updates replayed. Only a computation takes one of
    the `slots`. Thread-safe; a computation that fails is not kept: those waiting for it get its error, the next
    request tries again."""

    def __init__(self, maxsize: int = SHARED_RESULTS, max_bytes: int = SHARED_BYTES,
                 size_of: Callable[[object], int] = lambda result: 0,
                 slots: DrawingSlots = DRAWING,
                 max_age_s: float = float("inf")):
        self.maxsize, self.max_bytes, self.size_of = maxsize, max_bytes, size_of
        self.slots = slots
        self.max_age_s = max_age_s
        self.results, self.sizes, self.lock = OrderedDict(), {}, threading.Lock()   # key -> (result, time kept)
        self.in_flight: dict[Hashable, Future] = {}

    def held_bytes(self) -> int:
        return sum(self.sizes.values())

    def _kept(self, key: Hashable):
        """(True, result) if `key`'s result is kept and fresh, else (False, None); call with the lock held."""
        if key in self.results:
            result, kept_at = self.results[key]
            if time.monotonic() - kept_at <= self.max_age_s:
                self.results.move_to_end(key)
                return True, result
            del self.results[key], self.sizes[key]
        return False, None

    def _keep(self, key: Hashable, result) -> None:
        size = self.size_of(result)
        with self.lock:
            self.results[key], self.sizes[key] = (result, time.monotonic()), size
            while len(self.results) > self.maxsize or (len(self.results) > 1 and self.held_bytes() > self.max_bytes):
                del self.sizes[self.results.popitem(last=False)[0]]   # the least recently asked for

    def get(self, key: Hashable, compute: Callable[[], object], asked: float | None = None):
        """`key`'s result: kept, or being drawn (then waited for), or drawn now by `compute` in a drawing slot,
        in the order of `asked` (default: now)."""
        with self.lock:
            found, result = self._kept(key)
            if found:
                return result
            drawing = self.in_flight.get(key)
            first = drawing is None
            if first:
                drawing = self.in_flight[key] = Future()
        if not first:
            return drawing.result()   # the first asker's pictures (or its error), once drawn
        try:
            with self.slots.held(time.monotonic() if asked is None else asked):   # outside the lock
                result = compute()
        except BaseException as error:
            with self.lock:
                del self.in_flight[key]
            drawing.set_exception(error)
            raise
        self._keep(key, result)   # kept before it leaves the in-flight table: a request between finds one of them
        with self.lock:
            del self.in_flight[key]
        drawing.set_result(result)
        return result

    def stream(self, key: Hashable, updates: Callable[[], Iterator], pace_s: float = 0.0,
               asked: float | None = None) -> Iterator:
        """`updates()`'s updates, drawn in a drawing slot (in the order of `asked`, default now) and kept once
        complete; or, when kept, replayed (one every `pace_s` seconds, so that a replayed animation still plays)."""
        with self.lock:
            found, kept = self._kept(key)
        if found:
            for update in kept:
                yield update
                time.sleep(pace_s)
            return
        drawn = []
        with self.slots.held(time.monotonic() if asked is None else asked):
            for update in updates():
                drawn.append(update)
                yield update
        self._keep(key, drawn)


MALLOC_ARENAS = 2   # see limit_malloc_arenas
M_ARENA_MAX = -8    # glibc's mallopt parameter number (malloc.h)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Let glibc's malloc use at most `arenas` arenas (as MALLOC_ARENA_MAX does), for threads started after this
    call; whether it could. By default each thread that allocates may get an arena of its own (up to eight per
    core), and the pictures that twenty-odd request threads free stay in their arenas: the server's memory grew
    several times as much under the load benchmark (scripts/classroom_load.py) as with two. Elsewhere than glibc:
    nothing to do."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return libc.mallopt(M_ARENA_MAX, arenas) == 1


def queue(demo):
    """The app's queue, as every way of serving it sets it."""
    return demo.queue(default_concurrency_limit=CONCURRENCY, max_size=MAX_QUEUE)


def warm_up() -> None:
    """Load every shipped model once, and compute every tab's first visit on the default dataset (cached per
    process): even the first visitor then waits for nothing, and thirty visitors who open the page at once share
    one computation instead of queueing thirty."""
    import torch
    torch.set_num_threads(TORCH_THREADS)
    from app.inputs import SHIPPED_DATASETS, engine, ships
    from app.ui import FIRST_VISIT_TABS
    from engines.registry import families
    print(f"loading the models of {', '.join(SHIPPED_DATASETS)}...", file=sys.stderr, flush=True)
    for dataset in SHIPPED_DATASETS:
        for family in families():
            if ships(family.name, dataset):
                engine(family.name, dataset)
    for tab in FIRST_VISIT_TABS:
        tab.first_visit()
