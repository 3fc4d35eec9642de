"""Class-conditional GAN: conditional batch norm in the generator, a projection discriminator (Miyato & Koyama
2018): ask for a 7.

Generator: the GAN's, with each batch norm's scale and shift made the class's (conditional batch norm; de Vries
et al. 2017, as Miyato & Koyama use it), written as a per-class change of the shared ones:

    h -> BN(h) * (1 + gamma_y) + beta_y,    gamma_y = beta_y = 0 at the start,

so a generator warm-started from the shipped GAN is that GAN for every label until training teaches it the
classes. The same z under two labels: the same "style" (pose, stroke) as two classes.

Discriminator: the GAN's spectrally normalised network phi, with the class entering by projection (Miyato &
Koyama, eq. 3):

    D(x, y) = psi(phi(x)) + <embed(y), phi(x)>,

the form that follows when log p(y | x) is a log-linear model on phi(x); it asks "is this a real image of class
y", so a generator that draws a good 3 when asked for a 7 loses.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engines.checkpoint import hub_metadata, load_pretrained
from engines.data.datasets import from_signed
from engines.engine import AsksForClasses, check_count, class_labels
from engines.errors import EngineError
from engines.family import Family, Knob
from engines.models.gan import Discriminator, GANConfig, GANEngine, Generator


@dataclass
class ConditionalGANConfig(GANConfig):
    """The GAN's fields plus the classes it is conditioned on."""
    num_classes: int = 10


class ConditionalGenerator(Generator, **hub_metadata("gan", "class-conditional")):
    """z [N, latent_dim] and classes [N] -> image in [-1, 1]: the GAN's generator with conditional batch norm."""

    def __init__(self, config: ConditionalGANConfig):
        super().__init__(config)
        norms = [m for m in (*self.fc, *self.net) if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
        self.class_scale = nn.ModuleList(nn.Embedding(config.num_classes, m.num_features) for m in norms)
        self.class_shift = nn.ModuleList(nn.Embedding(config.num_classes, m.num_features) for m in norms)
        for embedding in (*self.class_scale, *self.class_shift):
            nn.init.zeros_(embedding.weight)   # at first, every label gives what the warm start gave

    def conditioned(self, h: torch.Tensor, index: int, labels: torch.Tensor) -> torch.Tensor:
        """The output of batch norm number `index` with its class's change of scale and shift."""
        shape = (h.shape[0], h.shape[1]) + (1,) * (h.dim() - 2)
        scale, shift = self.class_scale[index](labels).view(shape), self.class_shift[index](labels).view(shape)
        return h * (1 + scale) + shift

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h, index = z, 0
        for layers, reshape in ((self.fc, True), (self.net, False)):
            for layer in layers:
                h = layer(h)
                if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    h, index = self.conditioned(h, index, labels), index + 1
            if reshape:
                h = h.reshape(z.shape[0], -1, 7, 7)
        return h


class ProjectionDiscriminator(Discriminator):
    """(image in [-1, 1], class) -> one logit: the GAN's discriminator plus the projection <embed(y), phi(x)>."""

    def __init__(self, config: ConditionalGANConfig):
        super().__init__(config)
        # (not spectrally normalised as Miyato & Koyama's: it starts at zero, where a spectral norm is undefined)
        self.class_embedding = nn.Embedding(config.num_classes, self.net[-1].in_features)
        nn.init.zeros_(self.class_embedding.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = self.net[:-1](x)                      # phi(x), flattened
        return self.net[-1](features).squeeze(1) + (self.class_embedding(labels) * features).sum(1)


class ConditionalGANEngine(AsksForClasses, GANEngine):
    """The GAN engine's latents (truncation included), generated as the classes asked (`labels`: as
    `class_labels` takes them)."""
    family = "conditional_gan"
    likelihood_text = None   # the GAN's words name the GAN; the record's note says ours

    @classmethod
    def load(cls, directory: Path) -> "ConditionalGANEngine":
        return cls(load_pretrained(ConditionalGenerator, ConditionalGANConfig, directory), directory)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise EngineError(f"latents must have shape [N, {self.latent_dim}], got {tuple(z.shape)}")
        n = check_count(z.shape[0])
        return from_signed(self.model(z.float(), class_labels(n, labels, self.num_classes)))

    def sample(self, n: int, seed: int = 0, truncation: float | None = None, labels=None) -> torch.Tensor:
        """n images of the classes asked; the same seed draws the same z whatever the labels."""
        return self.generate(self.latents(n, seed, truncation), labels)

    def network_evaluations(self, truncation: float | None = None, labels=None) -> int:
        """One generator pass per sample."""
        return 1


DESCRIPTION = ("The GAN told the class: conditional batch norm in the generator (each batch norm's scale and shift "
               "changed per class, zero change at the start) and a projection discriminator D(x, y) = psi(phi(x)) + "
               "<embed(y), phi(x)> (Miyato & Koyama 2018), non-saturating loss. The generator is warm-started from "
               "the shipped GAN's (the discriminator starts anew: the GAN's judges no class). The shipped generator "
               "is the EMA of G's weights.")
FAMILY = Family(name="conditional_gan", title="conditional GAN", engine=ConditionalGANEngine,
                trainer="engines.training.conditional_gan:ConditionalGANTrainer", colour="tab:gray",
                description=DESCRIPTION, quality_bar=0.90, conditional=True, parent_options={"gan_from": "gan"},
                no_likelihood="none (implicit model, as the GAN)",
                objective="minimax game told the class, non-saturating loss",
                knob=Knob("truncation", "psi", (None, 2.0, 1.5, 1.0, 0.5), None,
                          "truncation (latent entries beyond psi redrawn, BigGAN's trick) trades variety for "
                          "typical samples", slider=(0.25, 3.0, 0.25)))

__all__ = ["FAMILY", "ConditionalGANConfig", "ConditionalGANEngine", "ConditionalGenerator",
           "ProjectionDiscriminator"]
