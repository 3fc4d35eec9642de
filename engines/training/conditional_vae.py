"""The class-conditional VAE trainer: the VAE trainer's Adam step on the negative ELBO, told each image's class.

It trains from scratch by default, at the VAE's settings. A warm start from a shipped VAE (`vae_from=""`: MNIST's,
and `engines.train` names the run's own dataset's; the class embeddings at zero) is possible but does not help:
the VAE's 8-d latent already encodes the class, and only the KL term slowly pushes it out, so the decoder learns to
read the label late. On MNIST, 1,500 warm-started steps drew the class asked in 15% (lenet) of samples (chance:
10%), where a run from scratch drew it in 57% after 1,000 steps.

    python -m engines.train conditional_vae --dataset mnist5k --out DIR
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engines.models.conditional_vae import ConditionalVAE, ConditionalVAEConfig
from engines.models.vae import VAE, VAEConfig
from engines.training.base import Trainer


@dataclass
class ConditionalVAEHParams:
    lr: float = 1e-3          # the VAE's
    batch_size: int = 128
    steps: int = 6000
    warmup_steps: int = 100
    # The zero-initialised class embeddings beside trained layers learn at this multiple of `lr` (as the
    # conditional diffusion model's: at the network's rate they barely move).
    embedding_lr_scale: float = 10.0
    vae_from: str = "none"    # or a VAE checkpoint to start from ("" = MNIST's shipped one): see above


class ConditionalVAETrainer(Trainer):
    hparams_cls, config_cls, model_cls = ConditionalVAEHParams, ConditionalVAEConfig, ConditionalVAE
    from_scratch = "vae_from=none"

    def build(self) -> None:
        super().build()
        embeddings = [p for name, p in self.model.named_parameters() if name.endswith("_embedding.weight")]
        rest = [p for name, p in self.model.named_parameters() if not name.endswith("_embedding.weight")]
        self.opt = torch.optim.Adam([{"params": rest}, {"params": embeddings,
                                                        "lr_scale": self.hparams.embedding_lr_scale}], lr=self.lr)
        self.optimizers["opt"] = self.opt
        source = self.hparams.vae_from
        if source != "none":
            vae = self.unconditional_parent(VAE, VAEConfig, source, "vae")
            missing, unexpected = self.model.load_state_dict(vae.state_dict(), strict=False)
            assert not unexpected and all(k.endswith("_embedding.weight") for k in missing), (missing, unexpected)

    def train_shards(self, shards, step):
        self.warmup_lr(self.opt, step, self.lr)

        def loss_fn(i, shard):
            labels = shard.labels.to(shard.images.device)
            elbo, reconstruction, kl = self.model.elbo(shard.images, labels, shard.generator)
            return -elbo.mean(), {"reconstruction": -reconstruction.mean().item(), "kl": kl.mean().item()}
        return self.optimise(self.opt, self.model, shards, loss_fn, clip=100.0)
