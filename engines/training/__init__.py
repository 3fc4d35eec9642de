"""Training: one trainer per family (what it owns and one optimisation step) and the loop that runs, logs,
checkpoints and resumes them (`python -m engines.train`)."""
