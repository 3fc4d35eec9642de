"""The class-conditional GAN: the warm-started generator is the shipped GAN's for every label, the projection
discriminator adds exactly <embed(y), phi(x)> to the GAN's logit, the label changes the image and not the latent
draw, and the trainer trains by our command (the GAN's steps, told the classes), loaded through the users' code
path."""
import json

import pytest
import torch

from engines import EngineError, load_engine
from engines.models.conditional_gan import (
    ConditionalGANConfig,
    ConditionalGANEngine,
    ConditionalGenerator,
    ProjectionDiscriminator,
)
from engines.models.gan import Discriminator
from engines.training.conditional_gan import ConditionalGANTrainer

TINY = {"g_channels": 8, "d_channels": 8, "latent_dim": 16}


def tiny_engine(tmp_path, seed: int = 0) -> ConditionalGANEngine:
    torch.manual_seed(seed)
    model = ConditionalGenerator(ConditionalGANConfig(**TINY))
    for embedding in (*model.class_scale, *model.class_shift):
        torch.nn.init.normal_(embedding.weight, std=0.5)    # as if trained: each class changes the batch norms
    model.eval().save_pretrained(tmp_path)
    return ConditionalGANEngine.load(tmp_path)


def test_the_warm_started_generator_is_the_shipped_gans_for_every_label():
    shipped = load_engine("gan")
    trainer = ConditionalGANTrainer({"g_channels": shipped.model.config.g_channels,
                                     "d_channels": shipped.model.config.d_channels})
    z = shipped.latents(4, seed=2)
    with torch.no_grad():
        for model in (trainer.generator.eval(), trainer.export().eval()):
            for labels in (torch.tensor([0, 3, 6, 9]), torch.tensor([7, 7, 7, 7])):
                assert torch.equal(model(z, labels), shipped.model(z))
    with pytest.raises(EngineError, match="network differs from this config"):
        ConditionalGANTrainer({})   # the shipped GAN is 48 channels wide; the default config is 32


def test_the_projection_adds_the_class_embedding_dotted_with_the_features():
    torch.manual_seed(0)
    config = ConditionalGANConfig(**TINY)
    projection, plain = ProjectionDiscriminator(config).eval(), Discriminator(config).eval()
    plain.load_state_dict({k: v for k, v in projection.state_dict().items() if not k.startswith("class_")})
    x, labels = torch.rand(3, 1, 28, 28) * 2 - 1, torch.tensor([1, 4, 4])
    with torch.no_grad():
        assert torch.allclose(projection(x, labels), plain(x))           # zero embedding: the GAN's D
        torch.nn.init.normal_(projection.class_embedding.weight)
        features = projection.net[:-1](x)
        expected = plain(x) + (projection.class_embedding.weight[labels] * features).sum(1)
        assert torch.allclose(projection(x, labels), expected, atol=1e-5)
        assert not torch.allclose(projection(x, labels), projection(x, torch.tensor([2, 2, 2])))


def test_the_label_changes_the_image_not_the_latent_draw(tmp_path):
    engine = tiny_engine(tmp_path)
    sevens = engine.sample(4, seed=3, labels=7)
    assert torch.equal(sevens, engine.generate(engine.latents(4, seed=3), [7] * 4))
    assert not torch.allclose(sevens, engine.sample(4, seed=3, labels=1))
    assert torch.equal(engine.sample(12, seed=0), engine.sample(12, seed=0, labels=list(range(10)) + [0, 1]))
    assert engine.asked_classes(3).tolist() == [0, 1, 2]
    truncated = engine.sample(4, seed=3, labels=7, truncation=0.5)   # the knob: the GAN's truncated draws
    assert torch.equal(truncated, engine.generate(engine.latents(4, seed=3, truncation=0.5), 7))
    for labels, message in ((10, "classes 0 to 9"), ([1, 2], "4 whole numbers"), ("seven", "a class number")):
        with pytest.raises(EngineError, match=message):
            engine.sample(4, seed=0, labels=labels)


@pytest.mark.slow   # trains through the command line
def test_trained_by_our_command_loaded_by_the_users_code_path(tmp_path):
    from engines.training.loop import main
    args = ["conditional_gan", "--out", str(tmp_path), "--steps", "2", "--checkpoint-every", "1",
            "--eval-every", "2", "--eval-n", "20", "--log-every", "1", "--batch-size", "4", "--threads", "1",
            "--set", "gan_from=none", *[f"--set={k}={v}" for k, v in TINY.items()]]
    assert main(args) == 0
    engine = load_engine("conditional_gan", tmp_path)
    x = engine.sample(3, seed=0, labels=5)
    assert x.shape == (3, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2] and all(row["d_loss"] > 0 for row in log)
    score, = [json.loads(line) for line in (tmp_path / "quality_log.jsonl").read_text().splitlines()]
    assert set(score["asked_class_share"]) == {"lenet", "allconv"}
