"""How the lab is served (app.py, the Space, the load benchmark): one queue setting, and a warm-up that loads every
shipped model and computes each tab's first visit before the first visitor arrives."""
from __future__ import annotations

import sys

CONCURRENCY = 2    # CPU-bound work: more parallel requests than cores only slows each one down
TORCH_THREADS = 1  # one core per request, two requests at a time: no oversubscription on 2 cores
MAX_QUEUE = 64     # requests waiting beyond this are refused with Gradio's "queue is full" message


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
