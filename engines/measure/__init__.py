"""Measuring the models: metrics as functions over tensors (quality, likelihood, latent paths, stability), the
evaluation run that applies them to the shipped models, the verdicts against folklore, report.md, the
reproduction check, the model cards and the sampler benchmark."""
