"""The latent diffusion trainer: DDPM's simple loss on the frozen VAE's encoded digits.

Each step encodes the step's batch (the images the loop drew from the (seed, step) generator) with the frozen
VAE encoder to its posterior means, standardises them with the per-dimension mean and std fitted once at the
start on the VAE's whole train split, and takes one step of `diffusion_loss` on them, with an EMA of the
weights as the image diffusion trainer keeps. The latents are a pure function of the batch and the fitted
statistics a pure function of the VAE and its train split, so nothing outside the training state carries over
from one step to the next and `--resume` continues exactly; encoding a batch of 28x28 digits costs about as
much as the MLP's step, and keeps the loop's batches, shards and --grad-accum meaning what they mean for the
other families.

    python -m engines.train latent_diffusion --dataset mnist5k --out DIR [--set vae_directory=DIR]
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from engines.checkpoint import TRAINING_INFO_NAME, WEIGHTS_NAME, file_sha256
from engines.data.datasets import load_dataset
from engines.errors import EngineError
from engines.models.diffusion import diffusion_loss
from engines.models.latent_diffusion import DEFAULT_VAE, LatentDiffusionConfig, LatentDiffusionModel
from engines.models.vae import VAEEngine
from engines.training.base import Trainer


@dataclass
class LatentDiffusionHParams:
    lr: float = 1e-3
    batch_size: int = 256
    steps: int = 8000
    warmup_steps: int = 200
    ema_decay: float = 0.999
    vae_directory: str = ""   # the frozen VAE; "" = checkpoints/mnist/vae (another lab dataset's: loop.with_parent)


@torch.no_grad()
def encoder_means(vae: VAEEngine, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Posterior means of q(z|x) for images in [0, 1] (no range checks: the training data are fine)."""
    device = next(vae.model.parameters()).device
    return torch.cat([vae.model.encode(chunk.to(device))[0] for chunk in images.split(batch)])


def fit_latent_stats(vae: VAEEngine) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-dimension mean and std of the encoder means over the train split of the data the VAE was trained
    on (its training_info.json; mnist5k where it does not say)."""
    info_path = vae.directory / TRAINING_INFO_NAME
    dataset = json.loads(info_path.read_text()).get("dataset", "mnist5k") if info_path.is_file() else "mnist5k"
    means = encoder_means(vae, load_dataset(dataset, "train").images).double()
    return tuple(means.mean(0).tolist()), tuple(means.std(0).clamp_min(1e-6).tolist())


class LatentDiffusionTrainer(Trainer):
    hparams_cls, config_cls, model_cls = LatentDiffusionHParams, LatentDiffusionConfig, LatentDiffusionModel

    def build(self) -> None:
        vae_directory = Path(self.hparams.vae_directory) if self.hparams.vae_directory else DEFAULT_VAE
        with torch.random.fork_rng(devices=[]):  # building the VAE must not move the run's initial weights
            self.vae = VAEEngine.load(vae_directory)
        if self.config.latent_mean or self.config.latent_std or self.config.vae_sha256:
            raise EngineError("latent_mean, latent_std and vae_sha256 are fitted from the VAE, not settings: "
                              "choose the VAE with --set vae_directory=DIR")
        if self.config.latent_dim != self.vae.latent_dim:
            raise EngineError(f"latent_dim must be the VAE's ({self.vae.latent_dim}), got {self.config.latent_dim}")
        mean, std = fit_latent_stats(self.vae)
        self.config = dataclasses.replace(self.config, latent_mean=mean, latent_std=std,
                                          vae_sha256=file_sha256(vae_directory / WEIGHTS_NAME))
        super().build()

    def place(self, runtime) -> None:
        super().place(runtime)
        self.vae.model.to(runtime.device)

    @torch.no_grad()
    def latents(self, images: torch.Tensor) -> torch.Tensor:
        """The standardised encoder means of a batch: what the diffusion model learns the distribution of."""
        return self.model.standardise(self.vae.model.encode(images)[0])

    def train_shards(self, shards, step):
        self.warmup_lr(self.opt, step, self.lr)
        latents = [self.latents(s.images) for s in shards]  # in float32, outside any autocast
        losses = self.optimise(self.opt, self.model, shards,
                               lambda i, s: (diffusion_loss(self.model, latents[i], s.generator), {}))
        self.ema.update_parameters(self.model)
        return losses
