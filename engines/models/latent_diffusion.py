"""Latent diffusion family: a diffusion model over the VAE's 8-d latent space, decoded by the VAE's decoder.

The idea of latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models", the design behind Stable Diffusion) and of the latent score-based generative model (Vahdat et al.
2021, LSGM): a VAE compresses images into latents, and a diffusion model learns the *distribution* of those
latents. The VAE's own prior is N(0, I), but its encoder never fills that ball evenly: the aggregate posterior
(the encoded digits) has holes and a shape of its own, and prior draws that land in a hole decode to blends
that are no digit. A learned prior samples where the encoder actually puts digits.

Here the VAE is the shipped `checkpoints/mnist/vae`, frozen. The diffusion model is an MLP eps-network with
sinusoidal time features (the toy diffusion's idea, in 8-d) trained on the VAE encoder's posterior means of
the train split, standardised per dimension (mean and std stored in the config, so the network works on
unit-scale data, as Rombach et al. rescale their latents). Sampling runs our DDPM / DDIM samplers
(`engines.sampling.samplers`, with clip_sample=False: latents are not images in [-1, 1]), un-standardises,
and decodes with the VAE decoder's location, as the VAE engine shows its samples. The config records the
SHA-256 of the VAE weights it was trained on; another VAE's latent space means nothing to it, so loading
refuses one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from engines.checkpoint import (
    CHECKPOINTS,
    REPO_ROOT,
    TRAINING_INFO_NAME,
    WEIGHTS_NAME,
    file_sha256,
    hub_metadata,
    load_pretrained,
)
from engines.data.datasets import from_signed
from engines.engine import Engine, check_count, make_generator
from engines.errors import EngineError
from engines.family import Family
from engines.models.unet import timestep_embedding
from engines.models.vae import VAEEngine
from engines.sampling.samplers import SamplerStep, ddim_step, ddpm_step, iterate, make_timesteps, run
from engines.sampling.schedule import NoiseSchedule

SAMPLERS = ("ddpm", "ddim")
DEFAULT_VAE = CHECKPOINTS / "vae"


@dataclass
class LatentDiffusionConfig:
    latent_dim: int = 8                 # the VAE's
    hidden: int = 256
    depth: int = 4                      # residual MLP blocks
    time_features: int = 64
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # Per-dimension mean and std of the VAE encoder's posterior means on its train split: the network sees
    # (z - latent_mean) / latent_std. Filled in by the trainer from the VAE; empty = not fitted yet.
    latent_mean: tuple[float, ...] = ()
    latent_std: tuple[float, ...] = ()
    vae_sha256: str = ""                # SHA-256 of the VAE's model.safetensors these latents come from


def own_vae(directory: Path, config: LatentDiffusionConfig) -> Path:
    """The VAE folder whose weights are the ones `config` was trained on (its SHA-256), among the VAE beside
    `directory`, the one its run recorded, and MNIST's; the first of them where none is (load then says why)."""
    info = directory / TRAINING_INFO_NAME
    recorded = (json.loads(info.read_text()) if info.is_file() else {}).get("parent") or {}
    candidates = [directory.parent / "vae"]
    if recorded.get("directory"):
        path = Path(recorded["directory"])
        candidates.append(path if path.is_absolute() else REPO_ROOT / path)
    candidates.append(DEFAULT_VAE)
    for candidate in candidates:
        weights = candidate / WEIGHTS_NAME
        if weights.is_file() and file_sha256(weights) == config.vae_sha256:
            return candidate
    return next((c for c in candidates if (c / WEIGHTS_NAME).is_file()), DEFAULT_VAE)


class ResidualBlock(nn.Module):
    """h + MLP(h + time): the timestep enters every block, not only the input."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.time = nn.Linear(hidden, hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.mlp(nn.functional.silu(self.norm(h) + self.time(emb)))


class LatentDiffusionModel(nn.Module, PyTorchModelHubMixin, **hub_metadata("latent-diffusion", "ddpm")):
    """eps_theta(x_t, t) over standardised latents, and the schedule it was trained with (rebuilt from the
    config, not a weight): the interface `diffusion_loss` and our samplers expect of a diffusion model."""

    def __init__(self, config: LatentDiffusionConfig):
        super().__init__()
        for name in ("latent_mean", "latent_std"):
            if len(getattr(config, name)) not in (0, config.latent_dim):
                raise ValueError(f"{name} has {len(getattr(config, name))} values for latent_dim "
                                 f"{config.latent_dim}")
        self.config = config
        h = config.hidden
        self.time_mlp = nn.Sequential(nn.Linear(config.time_features, h), nn.SiLU(), nn.Linear(h, h))
        self.input = nn.Linear(config.latent_dim, h)
        self.blocks = nn.ModuleList(ResidualBlock(h) for _ in range(config.depth))
        self.output = nn.Sequential(nn.LayerNorm(h), nn.SiLU(), nn.Linear(h, config.latent_dim))
        self.schedule = NoiseSchedule.from_config(config.num_train_timesteps, config.beta_schedule,
                                                  config.beta_start, config.beta_end)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.time_features))
        h = self.input(x_t)
        for block in self.blocks:
            h = block(h, emb)
        return self.output(h)

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.config.latent_mean or not self.config.latent_std:
            raise EngineError("this latent diffusion config has no latent_mean / latent_std: it was never "
                              "fitted to a VAE. Train it with `python -m engines.train latent_diffusion`.")
        mean = torch.tensor(self.config.latent_mean, dtype=like.dtype, device=like.device)
        std = torch.tensor(self.config.latent_std, dtype=like.dtype, device=like.device)
        return mean, std

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        """VAE latents -> the unit-scale space the network works in."""
        mean, std = self._stats(z)
        return (z - mean) / std

    def unstandardise(self, x: torch.Tensor) -> torch.Tensor:
        """The network's space -> VAE latents."""
        mean, std = self._stats(x)
        return x * std + mean


@dataclass
class LatentSamplerStep(SamplerStep):
    """A SamplerStep as DiffusionEngine.trace yields it: x_t, predicted_x0 and prev_sample are images in
    [-1, 1] (the VAE decoder's location for those latents), predicted_noise is the network's eps in the
    standardised latent space [N, latent_dim]. The latents themselves, in the VAE's latent space, ride along
    (for drawing the trajectory on the VAE's latent map)."""
    latent_t: torch.Tensor
    latent_x0: torch.Tensor
    latent_prev: torch.Tensor


class LatentDiffusionEngine(Engine):
    family = "latent_diffusion"

    def __init__(self, model: LatentDiffusionModel, directory: Path, vae: VAEEngine):
        super().__init__(model, directory)
        self.vae = vae
        self.schedule = model.schedule
        self.config = model.config

    @classmethod
    def load(cls, directory: Path, vae_directory: str | Path | None = None) -> "LatentDiffusionEngine":
        """The latent diffusion model in `directory` and the VAE it belongs to, refused unless the VAE's weights
        are exactly those it was trained on. Default: the first of the VAE beside it (a shipped dataset's folder),
        the VAE its run recorded (training_info.json's "parent") and MNIST's shipped one that holds those weights."""
        model = load_pretrained(LatentDiffusionModel, LatentDiffusionConfig, directory)
        vae_directory = Path(vae_directory) if vae_directory is not None else own_vae(Path(directory), model.config)
        vae = VAEEngine.load(vae_directory)
        actual, expected = file_sha256(vae_directory / WEIGHTS_NAME), model.config.vae_sha256
        if actual != expected:
            raise EngineError(
                f"{directory} was trained on the latents of the VAE whose {WEIGHTS_NAME} has SHA-256 {expected}, "
                f"but {vae_directory / WEIGHTS_NAME} has SHA-256 {actual}: another VAE has another latent space, "
                f"so its samples would be meaningless. Restore that VAE's weights (git), or retrain on this VAE: "
                f"`python -m engines.train latent_diffusion --out DIR --set vae_directory={vae_directory}`.")
        if vae.latent_dim != model.config.latent_dim:
            raise EngineError(f"{directory} has latent_dim {model.config.latent_dim}, the VAE {vae.latent_dim}")
        return cls(model, directory, vae)

    @property
    def info(self) -> dict:
        return {**super().info, "vae_checkpoint": str(self.vae.directory), "vae_sha256": self.config.vae_sha256}

    @property
    def num_train_timesteps(self) -> int:
        return self.config.num_train_timesteps

    def samplers(self) -> list[str]:
        return list(SAMPLERS)

    def network_evaluations(self, sampler: str = "ddpm", steps: int | None = None) -> int:
        """One noise-predictor call per step (the VAE decoder's one pass at the end is not counted)."""
        steps = self.num_train_timesteps if steps is None else steps
        return len(make_timesteps(self.num_train_timesteps, steps))

    def _trajectory(self, n: int, seed: int, sampler: str, steps: int | None):
        """Check the options; the generator of SamplerSteps (in the standardised latent space) of one
        trajectory from the seed's x_T, its first draw."""
        if not isinstance(sampler, str) or sampler not in SAMPLERS:
            raise EngineError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
        steps = self.num_train_timesteps if steps is None else steps
        timesteps = make_timesteps(self.num_train_timesteps, steps)  # checks steps
        n = check_count(n)
        generator = make_generator(seed)
        x = torch.randn((n, self.config.latent_dim), generator=generator)
        step_fn, options = (ddpm_step, {"variance_type": "fixed_small"}) if sampler == "ddpm" else (ddim_step, {})
        return iterate(step_fn, self.model, self.schedule, x, timesteps, generator=generator, clip_sample=False,
                       **options)

    def _decode(self, latent: torch.Tensor) -> torch.Tensor:
        """The VAE decoder's location for VAE latents, in [-1, 1] (unclamped), as VAEEngine.decode before it
        maps to [0, 1]."""
        return self.vae.model.decode_params(latent)[0]

    @torch.no_grad()
    def latents(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None) -> torch.Tensor:
        """The sampled latents [n, latent_dim] in the VAE's latent space (what `sample` decodes)."""
        return self.model.unstandardise(run(self._trajectory(n, seed, sampler, steps)))

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None) -> torch.Tensor:
        """n images [n, 1, 28, 28] in [0, 1]. Default: ancestral DDPM over all T steps (beta-tilde variance);
        sampler="ddim" is deterministic given x_T; steps: fewer, evenly spaced ("leading") steps."""
        return from_signed(self._decode(self.latents(n, seed, sampler, steps)))

    @torch.no_grad()
    def latent_trajectories(self, n: int, seed: int = 0, sampler: str = "ddim", steps: int | None = 50):
        """[steps + 1, n, latent_dim]: the latents from the start noise to the samples, in the VAE's latent space
        (what the VAE's latent map draws as paths); the last row is `latents(n, seed, sampler, steps)`."""
        path = []
        for step in self._trajectory(n, seed, sampler, steps):
            if not path:
                path.append(step.x_t)
            path.append(step.prev_sample)
        return self.model.unstandardise(torch.stack(path))

    @torch.no_grad()  # torch applies it to each resumption of the generator
    def trace(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None):
        """Yield a LatentSamplerStep per step: the latent trajectory, each latent decoded. The last step's
        prev_sample, mapped to [0, 1], equals sample() bit for bit."""
        decoded_t = None
        for step in self._trajectory(n, seed, sampler, steps):
            latent_t, latent_x0, latent_prev = (self.model.unstandardise(v)
                                                for v in (step.x_t, step.predicted_x0, step.prev_sample))
            decoded_t = self._decode(latent_t) if decoded_t is None else decoded_t
            decoded_prev = self._decode(latent_prev)
            yield LatentSamplerStep(step.index, step.timestep, decoded_t, step.predicted_noise,
                                    self._decode(latent_x0), decoded_prev, latent_t, latent_x0, latent_prev)
            decoded_t = decoded_prev


# Why the report has no bits/dim for it.
NO_LIKELIHOOD = ("not measured: its likelihood is the VAE's ELBO with the latent diffusion model as the prior "
                 "(Vahdat et al. 2021, LSGM), E_q[log p(x|z)] + E_q[log p_prior(z)] + H[q(z|x)], with the latent "
                 "model's own variational bound for log p_prior(z); the lab has not implemented that estimator yet")
DESCRIPTION = ("Latent diffusion (Rombach et al. 2022; Vahdat et al. 2021, LSGM): a learned prior over the shipped "
               "VAE's 8-d latent space. An MLP noise predictor (4 residual blocks of width 256, sinusoidal time "
               "features) trained with the simple DDPM loss (linear beta schedule 1e-4..0.02 over T=1000 steps, EMA "
               "weights, decay 0.999) on the VAE encoder's posterior means of the train split, standardised per "
               "dimension. Samples: our DDPM (default, all 1000 steps) or DDIM sampler in the latent space, "
               "un-standardised, decoded by the frozen VAE decoder's location. `config.json` records the SHA-256 of "
               "the VAE weights it belongs to; loading refuses any other VAE.")


def own_sampler(sampler: str, steps: int) -> dict:
    """A page's diffusion sampler and step count as latent diffusion samples them: the sampler where it is ours,
    else DDIM, with the same number of steps (its MLP makes even 1000 steps cheap)."""
    return {"sampler": sampler if sampler in SAMPLERS else "ddim", "steps": steps}


FAMILY = Family(name="latent_diffusion", title="latent diffusion", engine=LatentDiffusionEngine,
                trainer="engines.training.latent_diffusion:LatentDiffusionTrainer", colour="tab:purple",
                description=DESCRIPTION, parents=("vae", "diffusion"), no_likelihood=NO_LIKELIHOOD,
                evaluation_options={"sampler": "ddpm", "steps": 1000}, parent_options={"vae_directory": "vae"},
                card_targets=("prior_against_parent",),
                caption=" ({sampler}, the VAE's decoder)", own_sampler=own_sampler)
