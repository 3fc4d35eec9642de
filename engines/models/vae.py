"""VAE family: a convolutional VAE with a Gaussian encoder and a discretised-logistic decoder.

Pixels are 8-bit intensities, so the decoder is a *discrete* distribution over the 256 levels of each pixel:
a logistic with a per-pixel location and scale, integrated over each level's bin (Salimans et al. 2017,
PixelCNN++; Kingma et al. 2016). That makes log p(x|z) a true log-probability, so the ELBO (and the IWAE
bound) are lower bounds on log P(x) in nats and convert to bits/dim that compare directly with the diffusion
model's bound. A Bernoulli decoder would not be a likelihood for grey pixels.

Displayed samples are the decoder's location (the per-pixel median), as is usual: drawing the pixel noise on
top would show speckle, not the model's idea of a digit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from engines.checkpoint import hub_metadata, load_pretrained
from engines.data.datasets import from_signed, to_signed
from engines.engine import Engine, check_count, make_generator
from engines.errors import EngineError
from engines.family import Family, Knob
from engines.sampling.interpolation import interpolate_latents

MIN_LOG_SCALE = -7.0
MAX_IWAE_SAMPLES = 4096


@dataclass
class VAEConfig:
    image_channels: int = 1
    image_size: int = 28
    latent_dim: int = 8  # the shipped model; 16 gave blurrier, less recognisable prior samples
    channels: int = 32
    hidden_dim: int = 256


def discretized_logistic_log_prob(x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor,
                                  levels: int = 256) -> torch.Tensor:
    """Per-pixel log P(x) for x in [-1, 1] on a grid of `levels` values; edge bins take the tails."""
    half_bin = 1.0 / (levels - 1)
    centered = x - loc
    inv_scale = torch.exp(-log_scale)
    plus_in = inv_scale * (centered + half_bin)
    min_in = inv_scale * (centered - half_bin)
    log_cdf_plus = plus_in - F.softplus(plus_in)        # log sigmoid(plus_in): the lowest bin
    log_one_minus_cdf_min = -F.softplus(min_in)         # log(1 - sigmoid(min_in)): the highest bin
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_scale * centered
    # Where the bin mass underflows, use density * bin width (the log of 2 * half_bin).
    log_pdf_mid = mid_in - log_scale - 2.0 * F.softplus(mid_in) + math.log(2 * half_bin)
    interior = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp_min(1e-12)), log_pdf_mid)
    return torch.where(x < -1 + half_bin, log_cdf_plus, torch.where(x > 1 - half_bin, log_one_minus_cdf_min,
                                                                     interior))


class VAE(nn.Module, PyTorchModelHubMixin, **hub_metadata("vae")):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        c, ch, s = config.image_channels, config.channels, config.image_size
        self.feature_size = s // 4
        flat = 2 * ch * self.feature_size ** 2
        self.encoder = nn.Sequential(
            nn.Conv2d(c, ch, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.SiLU(),
            nn.Flatten(), nn.Linear(flat, config.hidden_dim), nn.SiLU(),
            nn.Linear(config.hidden_dim, 2 * config.latent_dim),
        )
        self.decoder_fc = nn.Sequential(
            nn.Linear(config.latent_dim, config.hidden_dim), nn.SiLU(), nn.Linear(config.hidden_dim, flat), nn.SiLU())
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), nn.SiLU(),
            nn.ConvTranspose2d(ch, ch, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(ch, 2 * c, 3, padding=1),  # location and log-scale per pixel
        )

    def encode(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) = N(mean, exp(logvar)) for images in [0, 1]."""
        mean, logvar = self.encoder(to_signed(x01)).chunk(2, dim=1)
        return mean, logvar.clamp(-12, 8)

    def decode_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Location (in [-1, 1] space) and log-scale of p(x|z)."""
        h = self.decoder_fc(z).reshape(-1, 2 * self.config.channels, self.feature_size, self.feature_size)
        loc, log_scale = self.decoder_conv(h).chunk(2, dim=1)
        return loc, log_scale.clamp_min(MIN_LOG_SCALE)

    def log_px_given_z(self, x01: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) in nats per image, summed over pixels."""
        loc, log_scale = self.decode_params(z)
        return discretized_logistic_log_prob(to_signed(x01), loc, log_scale).flatten(1).sum(1)

    def elbo(self, x01: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Single-sample ELBO per image in nats, with its reconstruction and KL terms."""
        mean, logvar = self.encode(x01)
        eps = torch.randn(mean.shape, generator=generator).to(mean.device)  # CPU generator, any device
        z = mean + (0.5 * logvar).exp() * eps  # reparameterisation: gradients flow through mean and logvar
        reconstruction = self.log_px_given_z(x01, z)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1)  # KL(N(mean, var) || N(0, I)), closed form
        return reconstruction - kl, reconstruction, kl

    def forward(self, x01: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training loss: negative ELBO, nats per image, batch mean."""
        return -self.elbo(x01, generator)[0].mean()


def bits_per_dim(log_prob_nats: torch.Tensor, dims: int) -> torch.Tensor:
    """-log p in nats per image -> bits per dimension."""
    return -log_prob_nats / (dims * math.log(2))


@dataclass
class LatentMap:
    decoded: torch.Tensor           # [grid * grid, C, H, W], row-major, top row = highest 2nd coordinate
    coordinates: torch.Tensor       # [N, 2] the images' posterior means on the two axes, in std units
    ticks: torch.Tensor             # [grid] the axis values decoded, in std units
    explained_variance: list[float]  # share of the latent means' variance along each axis
    centre: torch.Tensor            # [latent_dim] the plane's origin: the mean of the posterior means
    axes: torch.Tensor              # [2, latent_dim] its two orthonormal directions
    stds: torch.Tensor              # [2] the means' standard deviation along each (the plot's unit)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Any latents [..., latent_dim] -> their coordinates [..., 2] on the map's axes, in std units."""
        return (z - self.centre) @ self.axes.T / self.stds


class VAEEngine(Engine):
    family = "vae"

    @classmethod
    def load(cls, directory: Path) -> "VAEEngine":
        return cls(load_pretrained(VAE, VAEConfig, directory), directory)

    @property
    def latent_dim(self) -> int:
        return self.model.config.latent_dim

    def _check_images(self, x: torch.Tensor) -> torch.Tensor:
        c, s = self.model.config.image_channels, self.model.config.image_size
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise EngineError(f"images must have shape [N, {c}, {s}, {s}] (or [{c}, {s}, {s}]), got "
                              f"{tuple(x.shape)}")
        if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise EngineError("image values must be finite and in [0, 1]")
        check_count(x.shape[0])
        return x.float()

    def latents(self, n: int, seed: int = 0, temperature: float = 1.0) -> torch.Tensor:
        """z ~ N(0, temperature^2 I): the prior at temperature 1, seeded (the same draws scaled at any
        temperature, so a sweep changes the spread and nothing else)."""
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature <= 10:
            raise EngineError(f"temperature must be a number in (0, 10], got {temperature!r}")
        return temperature * torch.randn((check_count(n), self.latent_dim), generator=make_generator(seed))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance for images in [0, 1]."""
        return self.model.encode(self._check_images(x))

    def checked_latents(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise EngineError(f"latents must have shape [N, {self.latent_dim}], got {tuple(z.shape)}")
        return z.float()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder location for latents z [N, latent_dim], as images in [0, 1]."""
        return from_signed(self.model.decode_params(self.checked_latents(z))[0])

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)[0])

    def sample(self, n: int, seed: int = 0, temperature: float = 1.0) -> torch.Tensor:
        """n decoded draws of the prior; `temperature` < 1 draws nearer its centre (more typical, less varied)."""
        return self.decode(self.latents(n, seed, temperature))

    def network_evaluations(self, temperature: float = 1.0) -> int:
        """One decoder pass per sample, at any temperature."""
        return 1

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8, method: str = "slerp") -> torch.Tensor:
        """Decode a path between the posterior means of images a and b (each [C, H, W] or [1, C, H, W])."""
        za, zb = self.encode(torch.cat([self._check_images(a), self._check_images(b)]))[0]
        return self.decode(interpolate_latents(za, zb, steps, method))

    def latent_map(self, x: torch.Tensor, grid: int = 9, span: float = 2.5) -> LatentMap:
        """A 2-D view of the latent space: the plane through the mean of the images' posterior means along
        their two principal directions. Decodes a grid x grid lattice over +-span standard deviations of each
        direction, and places the images on the same axes (in those standard deviations)."""
        grid = check_count(grid, 16, "grid")
        means = self.encode(x)[0]
        centre = means.mean(0)
        _, singular, directions = torch.linalg.svd(means - centre, full_matrices=False)
        axes = directions[:2]                                     # [2, latent_dim], orthonormal
        stds = singular[:2] / (len(means) - 1) ** 0.5
        coordinates = (means - centre) @ axes.T / stds            # [N, 2]
        ticks = torch.linspace(-span, span, grid)
        # Row r, column c decodes (ticks[c], -ticks[r]): the image grid reads like a plot, y upwards.
        u, v = ticks.repeat(grid), (-ticks).repeat_interleave(grid)
        lattice = centre + (u[:, None] * stds[0]) * axes[0] + (v[:, None] * stds[1]) * axes[1]
        explained = (singular[:2] ** 2 / (singular ** 2).sum()).tolist()
        return LatentMap(self.decode(lattice), coordinates, ticks, explained, centre, axes, stds)

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Single-sample ELBO per image, in nats (a lower bound on log P(x))."""
        return self.elbo_parts(x, seed)["elbo"]

    @torch.no_grad()
    def elbo_parts(self, x: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
        """The same ELBO per image (nats) with its two parts: reconstruction = -E_q log p(x|z) (one draw) and
        kl = KL(q(z|x) || N(0, I)); elbo = -(reconstruction + kl)."""
        elbo, log_px, kl = self.model.elbo(self._check_images(x), make_generator(seed))
        return {"elbo": elbo, "reconstruction": -log_px, "kl": kl}

    @torch.no_grad()
    def iwae(self, x: torch.Tensor, k: int = 64, seed: int = 0) -> torch.Tensor:
        """Importance-weighted bound (Burda et al. 2016) per image in nats; tighter than the ELBO as k grows."""
        x = self._check_images(x)
        k = check_count(k, MAX_IWAE_SAMPLES, "k")
        generator = make_generator(seed)
        mean, logvar = self.model.encode(x)
        std = (0.5 * logvar).exp()
        log_weights = []
        for _ in range(k):
            eps = torch.randn(mean.shape, generator=generator)
            z = mean + std * eps
            log_prior = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)
            log_q = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(1)
            log_weights.append(self.model.log_px_given_z(x, z) + log_prior - log_q)
        return torch.logsumexp(torch.stack(log_weights), dim=0) - math.log(k)

    def bits_per_dim(self, log_prob_nats: torch.Tensor) -> torch.Tensor:
        c, s = self.model.config.image_channels, self.model.config.image_size
        return bits_per_dim(log_prob_nats, c * s * s)

    # ---------------------------------------------------------------- the report's measurements of the family
    # (engines.measure imports this module, so they import engines.measure when called)

    def likelihood(self, digits: torch.Tensor, settings: dict, seed: int) -> tuple[dict, dict]:
        """The report's likelihood cell: ELBO and IWAE (k = settings["iwae_k"]) bits/dim of 8-bit `digits` in
        [0, 1], rounded for report.json, and each digit's IWAE bits/dim (the bound other families pair with)."""
        from engines.measure.likelihood import rounded, vae_bits_per_dim
        result = vae_bits_per_dim(self, digits, k=settings["iwae_k"], seed=seed)
        per_image = result.pop("per_image_bpd")
        return rounded(result), {"iwae": per_image["iwae"]}

    @staticmethod
    def likelihood_bounds(summary: dict) -> list[tuple[str, float, float]]:
        """(bound, bits/dim, standard error) of the bounds `likelihood` pairs, tightest first: the IWAE."""
        return [("iwae", summary["iwae_bpd"], summary["iwae_bpd_se"])]

    @staticmethod
    def likelihood_text(summary: dict) -> dict:
        """Its likelihood in words: the comparison table's cell, the model card's line, report.md's bullets."""
        from engines.measure.verdicts import pm
        s, k = summary, summary["iwae_k"]
        return {"cell": f"ELBO {pm(s['elbo_bpd'], s['elbo_bpd_se'], 3)}, IWAE(k={k}) "
                        f"{pm(s['iwae_bpd'], s['iwae_bpd_se'], 3)} bpd",
                "card": f"ELBO {pm(s['elbo_bpd'], s['elbo_bpd_se'], 3)}, IWAE (k = {k}) "
                        f"{pm(s['iwae_bpd'], s['iwae_bpd_se'], 3)} bits/dim on {s['n']} test digits",
                "report": [f"VAE: ELBO {pm(s['elbo_bpd'], s['elbo_bpd_se'], 4)}, IWAE (k = {k}) "
                           f"{pm(s['iwae_bpd'], s['iwae_bpd_se'], 4)} bits/dim ({s['seconds']:.0f} s)."]}

    def latent_space(self, pairs: int, seed: int, digits: torch.Tensor, settings: dict, classifier) -> tuple:
        """What the report's latent section measures: the decoder and `pairs` pairs of prior draws to walk
        between, and the cell's other entries (its latent, and the encoder round trip of `digits`)."""
        from engines.measure.latent import reconstruction_scores
        extra = {"latent": f"z, {self.latent_dim}-d", "reconstruction": {
            "method": "decoder location at the posterior mean",
            **reconstruction_scores(classifier, digits, self.reconstruct(digits))}}
        return self.decode, self.latents(pairs, seed + 1), self.latents(pairs, seed + 2), extra


DESCRIPTION = ("Convolutional VAE: Gaussian encoder q(z|x) (8-d latent: fewer dimensions leave fewer holes between "
               "the prior and the encoded digits, so prior samples look more like digits), reparameterisation, "
               "discretised-logistic decoder p(x|z) over the 256 pixel levels, trained by maximising the ELBO. "
               "Samples shown are the decoder's location for z ~ N(0, I).")
FAMILY = Family(name="vae", title="VAE", engine=VAEEngine, trainer="engines.training.vae:VAETrainer",
                colour="tab:blue", description=DESCRIPTION, likelihood=True, latent=True, quality_bar=0.65,
                objective="maximise the ELBO", loss_scale="log",
                knob=Knob("temperature", "tau", (1.2, 1.0, 0.8, 0.6, 0.4), 1.0,
                          "a lower temperature (z drawn nearer the prior's centre) gives more typical, less varied "
                          "samples", slider=(0.2, 1.5, 0.05)))
