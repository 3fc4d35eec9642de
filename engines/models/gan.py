"""GAN family: a DCGAN-style generator and discriminator with the non-saturating loss (Goodfellow et al. 2014).

What makes it train reliably on a CPU budget, and why:
- spectral normalisation on every discriminator layer (Miyato et al. 2018) keeps D 1-Lipschitz-ish, so its
  gradients stay informative instead of saturating;
- the generator that ships is an exponential moving average of G's weights (Karras et al.; Yazici et al.
  2019), which smooths the oscillation that alternating updates cause;
- Adam with beta1 = 0.5, as in DCGAN;
- optionally (`diff_augment`, engines/training/diff_augment.py) D sees only augmented images, real and generated
  alike (DiffAugment, Zhao et al. 2020): on a few thousand digits an un-augmented D starts to memorise them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from engines.checkpoint import hub_metadata, load_pretrained
from engines.data.datasets import from_signed
from engines.engine import Engine, check_count, make_generator
from engines.errors import EngineError
from engines.family import Family, Knob
from engines.sampling.interpolation import interpolate_latents

MAX_TRUNCATION_DRAWS = 1000


@dataclass
class GANConfig:
    image_channels: int = 1
    image_size: int = 28
    latent_dim: int = 64
    g_channels: int = 32
    d_channels: int = 32


class Generator(nn.Module, PyTorchModelHubMixin, **hub_metadata("gan")):
    """z [N, latent_dim] -> image in [-1, 1]: 7x7 -> 14x14 -> 28x28 with transposed convolutions."""

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        ch = config.g_channels
        self.fc = nn.Sequential(nn.Linear(config.latent_dim, 4 * ch * 7 * 7, bias=False),
                                nn.BatchNorm1d(4 * ch * 7 * 7), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(4 * ch, 2 * ch, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ch), nn.ReLU(),
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(),
            nn.Conv2d(ch, config.image_channels, 3, padding=1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).reshape(z.shape[0], -1, 7, 7))


class Discriminator(nn.Module):
    """image in [-1, 1] -> one logit (real vs generated), every layer spectrally normalised."""

    def __init__(self, config: GANConfig):
        super().__init__()
        ch = config.d_channels
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(config.image_channels, ch, 4, 2, 1)), nn.LeakyReLU(0.2),   # 14x14
            spectral_norm(nn.Conv2d(ch, 2 * ch, 4, 2, 1)), nn.LeakyReLU(0.2),                  # 7x7
            spectral_norm(nn.Conv2d(2 * ch, 4 * ch, 3, 2, 1)), nn.LeakyReLU(0.2),              # 4x4
            nn.Flatten(), spectral_norm(nn.Linear(4 * ch * 16, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), written with softplus for stability."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating loss -log D(G(z)): strong gradients when D confidently rejects the fakes."""
    return F.softplus(-fake_logits).mean()


class GANEngine(Engine):
    family = "gan"

    @classmethod
    def load(cls, directory: Path) -> "GANEngine":
        return cls(load_pretrained(Generator, GANConfig, directory), directory)

    @property
    def latent_dim(self) -> int:
        return self.model.config.latent_dim

    def latents(self, n: int, seed: int = 0, truncation: float | None = None) -> torch.Tensor:
        """z ~ N(0, I), or with `truncation` a truncated normal: entries with |z| > truncation are redrawn
        (BigGAN's truncation trick: less variety, more typical samples)."""
        generator = make_generator(seed)
        z = torch.randn((check_count(n), self.latent_dim), generator=generator)
        if truncation is None:
            return z
        if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not 0 < truncation <= 10:
            raise EngineError(f"truncation must be a number in (0, 10] or None, got {truncation!r}")
        for _ in range(MAX_TRUNCATION_DRAWS):
            outside = z.abs() > truncation
            if not outside.any():
                return z
            z = torch.where(outside, torch.randn(z.shape, generator=generator), z)
        raise EngineError(f"truncation {truncation} is too small to sample from; use 0.05 or more")

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise EngineError(f"latents must have shape [N, {self.latent_dim}], got {tuple(z.shape)}")
        check_count(z.shape[0])
        return from_signed(self.model(z.float()))

    def sample(self, n: int, seed: int = 0, truncation: float | None = None) -> torch.Tensor:
        return self.generate(self.latents(n, seed, truncation))

    def network_evaluations(self, truncation: float | None = None) -> int:
        """One generator pass per sample, truncated or not."""
        return 1

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8, method: str = "slerp") -> torch.Tensor:
        """Images along a path between latents a and b (each [latent_dim])."""
        return self.generate(interpolate_latents(a.reshape(-1).float(), b.reshape(-1).float(), steps, method))

    # ---------------------------------------------------------------- the report's measurements of the family

    @staticmethod
    def likelihood_text(summary: dict) -> dict:
        """Why it has no likelihood, in words: the comparison table's cell, the card's line, report.md's bullet."""
        return {"cell": "none (implicit model)", "card": summary["note"], "report": [f"GAN: {summary['note']}."]}

    def latent_space(self, pairs: int, seed: int, digits: torch.Tensor, settings: dict, classifier) -> tuple:
        """What the report's latent section measures: the generator and `pairs` pairs of prior draws to walk
        between; no reconstruction (it has no encoder)."""
        extra = {"latent": f"z, {self.latent_dim}-d", "reconstruction": None,
                 "note": "no encoder: a digit can only be found by optimising z (not measured)"}
        return self.generate, self.latents(pairs, seed + 1), self.latents(pairs, seed + 2), extra


# Why the report has no bits/dim for it.
NO_LIKELIHOOD = ("no explicit likelihood: the generator is an implicit model (a deterministic map of z, its images "
                 "lie on a 64-d surface in 784-d pixel space), so it assigns no probability to a test digit")
DESCRIPTION = ("DCGAN-style generator (transposed convolutions, batch norm) and a spectrally normalised "
               "discriminator (latent size and widths in config.json), non-saturating loss, Adam(beta1=0.5); the "
               "commands below say whether the learning rate was decayed over the run's last steps (lr_decay_steps) "
               "and whether the discriminator saw only augmented images, real and generated alike (diff_augment: "
               "DiffAugment's translation and cutout, Zhao et al. 2020, against a discriminator memorising a small "
               "train split). The shipped generator is the EMA of G's weights (decay 0.999).")
FAMILY = Family(name="gan", title="GAN", engine=GANEngine, trainer="engines.training.gan:GANTrainer",
                colour="tab:orange", description=DESCRIPTION, no_likelihood=NO_LIKELIHOOD, latent=True,
                quality_bar=0.80, objective="minimax game, non-saturating loss",
                knob=Knob("truncation", "psi", (None, 2.0, 1.5, 1.0, 0.5), None,
                          "truncation (latent entries beyond psi redrawn, BigGAN's trick) trades variety for "
                          "typical samples", slider=(0.25, 3.0, 0.25)))
