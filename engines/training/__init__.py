"""Training: one trainer per family (engines/training/<family>.py, on the shared `base.Trainer`), the feature
nets' classifier trainer, and the loop that runs, logs, checkpoints and resumes them (`python -m engines.train`).

    trainers()                # {"vae": VAETrainer, ..., "diffusion_gan": ..., "classifier": ClassifierTrainer}
    TRAINERS["diffusion"]     # the same table, read on first use

The table is the families' records (`Family.trainer`, in the registry's order; then the staged families, in
training for their first checkpoint) plus the classifier, which is no family: adding a family to
`engines.registry` adds its trainer here, and no trainer module registers itself.
"""
from __future__ import annotations


def trainers() -> dict[str, type]:
    """Every trainer `python -m engines.train` runs, by the name on its command line."""
    # Imported here, not at the top: importing one trainer module (or the toy playground importing `base`)
    # must not import every family's trainer, and the trainer modules, which import this package, must not
    # be imported back by it while it loads.
    from engines.registry import FAMILIES, STAGED
    from engines.training.classifier import ClassifierTrainer

    records = {**FAMILIES, **{name: record for name, record in STAGED.items() if name not in FAMILIES}}
    return {**{name: record.trainer_class() for name, record in records.items()}, "classifier": ClassifierTrainer}


def __getattr__(name: str):
    # TRAINERS is read afresh each time, so a family registered later (a test's throwaway one) is in it.
    if name == "TRAINERS":
        return trainers()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
