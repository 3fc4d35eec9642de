"""The class-conditional GAN trainer: the GAN trainer's steps (one D step, one G step, EMA of G, the same options),
with G asked for each real image's class and D judging (image, class) pairs by projection.

G starts from a shipped GAN's generator (`gan_from`; "" = MNIST's, and `engines.train` names the run's own
dataset's) with its class changes at zero; the discriminator starts anew (the GAN's judges no class): like a
GAN's D meeting a trained G, it learns to tell the classes apart first. "none" trains G from scratch too.

    python -m engines.train conditional_gan --dataset mnist5k --out DIR --set g_channels=48 --set d_channels=48
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engines.models.conditional_gan import ConditionalGANConfig, ConditionalGenerator, ProjectionDiscriminator
from engines.models.gan import GANConfig, Generator
from engines.training.diff_augment import diff_augment
from engines.training.gan import GANHParams, GANTrainer


@dataclass
class ConditionalGANHParams(GANHParams):
    gan_from: str = ""        # the GAN checkpoint whose generator G starts from: "" = MNIST's shipped one; "none"


class ConditionalGANTrainer(GANTrainer):
    hparams_cls, config_cls, model_cls = ConditionalGANHParams, ConditionalGANConfig, ConditionalGenerator
    generator_cls, discriminator_cls = ConditionalGenerator, ProjectionDiscriminator
    from_scratch = "gan_from=none"

    def warm_start_generator(self) -> None:
        source = self.hparams.gan_from
        if source == "none":
            return
        gan = self.unconditional_parent(Generator, GANConfig, source, "gan")
        missing, unexpected = self.generator.load_state_dict(gan.state_dict(), strict=False)
        assert not unexpected and all(k.startswith(("class_scale.", "class_shift.")) for k in missing), missing

    def generated(self, z: torch.Tensor, shard) -> torch.Tensor:
        """G's images of the shard's real classes (the classes as often as the data has them)."""
        return self.generator(z, shard.labels.to(z.device))

    def judged(self, images: torch.Tensor, shard) -> torch.Tensor:
        """D's logits for (image, class of the shard's image at the same place): real pairs and G's pairs."""
        augmented = diff_augment(images, self.hparams.diff_augment, shard.generator)
        return self.discriminator(augmented, shard.labels.to(images.device))

