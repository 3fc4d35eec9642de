"""Class-conditional VAE (Sohn et al. 2015; the generative half of Kingma et al. 2014's M2): ask for a 7, or
redraw one digit's style as every class.

The VAE's encoder and decoder, each told the class y by a learned embedding added to its first hidden layer:

    q(z | x, y) = N(mu(x, y), diag sigma^2(x, y)),    p(x | z, y): the VAE's discretised logistic,

trained on the conditional ELBO

    log p(x | y) >= E_q(z|x,y) log p(x | z, y) - KL(q(z | x, y) || N(0, I))        (Sohn et al., eq. 4)

The label carries the class, so z is free to carry what the class does not: the style (slant, thickness, width).
Encoding a test digit with its own label and decoding its z under each of the ten labels draws that style as
every class (Kingma et al. 2014, Figure 1: analogies, `ConditionalVAEEngine.analogies`).

The embeddings start at zero, so a model warm-started from the shipped VAE would be that VAE for every label; it
trains from scratch instead (`engines.training.conditional_vae` says why: the VAE's latent already holds the
class, and the decoder then learns to read the label late).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engines.checkpoint import hub_metadata, load_pretrained
from engines.data.datasets import from_signed, to_signed
from engines.engine import AsksForClasses, check_count, class_labels
from engines.errors import EngineError
from engines.family import Family, Knob
from engines.models.vae import MIN_LOG_SCALE, VAE, VAEConfig, VAEEngine, discretized_logistic_log_prob

ENCODER_HIDDEN = 6   # encoder[:6] ends at its first hidden layer (conv, conv, flatten, linear): the label joins there


@dataclass
class ConditionalVAEConfig(VAEConfig):
    """The VAE's fields plus the classes it is conditioned on."""
    num_classes: int = 10


class ConditionalVAE(VAE, **hub_metadata("vae", "class-conditional")):
    """The VAE with the class added to the first hidden layer of its encoder and of its decoder."""

    def __init__(self, config: ConditionalVAEConfig):
        super().__init__(config)
        self.encoder_embedding = nn.Embedding(config.num_classes, config.hidden_dim)
        self.decoder_embedding = nn.Embedding(config.num_classes, config.hidden_dim)
        for embedding in (self.encoder_embedding, self.decoder_embedding):
            nn.init.zeros_(embedding.weight)   # at first, every label gives what the warm start gave

    def encode(self, x01: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x, y) = N(mean, exp(logvar)) for images in [0, 1] and their classes."""
        hidden = self.encoder[:ENCODER_HIDDEN](to_signed(x01)) + self.encoder_embedding(labels)
        mean, logvar = self.encoder[ENCODER_HIDDEN:](hidden).chunk(2, dim=1)
        return mean, logvar.clamp(-12, 8)

    def decode_params(self, z: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Location (in [-1, 1] space) and log-scale of p(x | z, y)."""
        hidden = self.decoder_fc[1:](self.decoder_fc[0](z) + self.decoder_embedding(labels))
        h = hidden.reshape(-1, 2 * self.config.channels, self.feature_size, self.feature_size)
        loc, log_scale = self.decoder_conv(h).chunk(2, dim=1)
        return loc, log_scale.clamp_min(MIN_LOG_SCALE)

    def log_px_given_z(self, x01: torch.Tensor, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """log p(x | z, y) in nats per image, summed over pixels."""
        loc, log_scale = self.decode_params(z, labels)
        return discretized_logistic_log_prob(to_signed(x01), loc, log_scale).flatten(1).sum(1)

    def elbo(self, x01: torch.Tensor, labels: torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Single-sample conditional ELBO per image in nats (a bound on log p(x | y)), with its two terms."""
        mean, logvar = self.encode(x01, labels)
        eps = torch.randn(mean.shape, generator=generator).to(mean.device)
        z = mean + (0.5 * logvar).exp() * eps
        reconstruction = self.log_px_given_z(x01, z, labels)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return reconstruction - kl, reconstruction, kl

    def forward(self, x01: torch.Tensor, labels: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Training loss: negative conditional ELBO, nats per image, batch mean."""
        return -self.elbo(x01, labels, generator)[0].mean()


class ConditionalVAEEngine(AsksForClasses, VAEEngine):
    """The VAE engine's prior draws, decoded under the classes asked (`labels`: as `class_labels` takes them)."""
    family = "conditional_vae"
    likelihood_text = None   # the VAE's words are of its bound on log p(x); ours would be of log p(x | y)

    @classmethod
    def load(cls, directory: Path) -> "ConditionalVAEEngine":
        return cls(load_pretrained(ConditionalVAE, ConditionalVAEConfig, directory), directory)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        """Decoder location for latents z [N, latent_dim] under `labels`, as images in [0, 1]."""
        z = self.checked_latents(z)
        return from_signed(self.model.decode_params(z, class_labels(len(z), labels, self.num_classes))[0])

    def sample(self, n: int, seed: int = 0, temperature: float = 1.0, labels=None) -> torch.Tensor:
        """n prior draws decoded as the classes asked; the same seed draws the same z whatever the labels, so
        asking another class keeps the style."""
        return self.decode(self.latents(n, seed, temperature), labels)

    def network_evaluations(self, temperature: float = 1.0, labels=None) -> int:
        """One decoder pass per sample, whatever the temperature and classes."""
        return 1

    @torch.no_grad()
    def encode(self, x: torch.Tensor, labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance of images in [0, 1] told their classes (`labels`, required)."""
        x = self._check_images(x)
        if labels is None:
            raise EngineError("a conditional VAE encodes an image with its class: pass labels")
        return self.model.encode(x, class_labels(len(x), labels, self.num_classes))

    def analogies(self, x: torch.Tensor, labels) -> torch.Tensor:
        """Each image's style under every class: encode it with its own label, decode its posterior mean with
        each of the classes in turn. Returns [N * classes, C, H, W], one row of `classes` images per input."""
        means = self.encode(x, labels)[0]
        n, classes = check_count(len(means)), self.num_classes
        return self.decode(means.repeat_interleave(classes, 0), torch.arange(classes).repeat(n))

    def reconstruct(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        return self.decode(self.encode(x, labels)[0], labels)


DESCRIPTION = ("The VAE told the class: a learned class embedding added to the first hidden layer of its encoder "
               "q(z | x, y) and of its decoder p(x | z, y) (Sohn et al. 2015; Kingma et al. 2014's M2), trained on "
               "the conditional ELBO, from scratch at the VAE's settings. Ask for a class; "
               "or encode a digit with its label and decode its z under every label: its style as each class.")
FAMILY = Family(name="conditional_vae", title="conditional VAE", engine=ConditionalVAEEngine,
                trainer="engines.training.conditional_vae:ConditionalVAETrainer", colour="tab:pink",
                description=DESCRIPTION, quality_bar=0.90, conditional=True,
                no_likelihood="its bound is on log p(x | y), an image given its class: not the others' log p(x)",
                objective="maximise the conditional ELBO", loss_scale="log",
                knob=Knob("temperature", "tau", (1.2, 1.0, 0.8, 0.6, 0.4), 1.0,
                          "a lower temperature (z drawn nearer the prior's centre) gives more typical, less varied "
                          "samples", slider=(0.2, 1.5, 0.05)))

__all__ = ["FAMILY", "ConditionalVAE", "ConditionalVAEConfig", "ConditionalVAEEngine"]
