"""How the lab is served (app.py, the Space, the load benchmark): one queue setting, and a warm-up that loads every
shipped model and computes each tab's first visit before the first visitor arrives."""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

CONCURRENCY = 2    # CPU-bound work: more parallel requests than cores only slows each one down
TORCH_THREADS = 1  # one core per request, two requests at a time: no oversubscription on 2 cores
MAX_QUEUE = 64     # requests waiting beyond this are refused with Gradio's "queue is full" message


SHARED_RESULTS = 64   # kept deterministic results (a side-by-side page is about 1 MB of pictures)


class SharedResults:
    """The last `maxsize` results of a deterministic request, shared among visitors: a class that presses "New
    seed" together asks for seeds 1, 2, 3... at about the same time, and the second visitor to ask for a seed gets
    the first one's pictures at no cost. Thread-safe (two requests run at once)."""

    def __init__(self, maxsize: int = SHARED_RESULTS):
        self.maxsize, self.results, self.lock = maxsize, OrderedDict(), threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], object]):
        with self.lock:
            if key in self.results:
                self.results.move_to_end(key)
                return self.results[key]
        result = compute()   # outside the lock: the other request runs meanwhile
        with self.lock:
            self.results[key] = result
            while len(self.results) > self.maxsize:
                self.results.popitem(last=False)
        return result


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
