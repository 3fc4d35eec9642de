"""The class-conditional VAE: the warm start is the shipped VAE exactly for every label, the label changes the
decoder and not the latent draw, the analogy grid is each digit's style under every class, the conditional ELBO
is the VAE's with the class added, and the trainer trains by our command, loaded through the users' code path."""
import json

import pytest
import torch

from engines import EngineError, load_engine
from engines.models.conditional_vae import ConditionalVAE, ConditionalVAEConfig, ConditionalVAEEngine
from engines.training.conditional_vae import ConditionalVAETrainer


def tiny_engine(tmp_path, seed: int = 0) -> ConditionalVAEEngine:
    torch.manual_seed(seed)
    model = ConditionalVAE(ConditionalVAEConfig(channels=8, hidden_dim=32, latent_dim=4))
    for embedding in (model.encoder_embedding, model.decoder_embedding):
        torch.nn.init.normal_(embedding.weight)    # as if trained: each class moves the hidden layers
    model.save_pretrained(tmp_path)
    return ConditionalVAEEngine.load(tmp_path)


def test_the_warm_start_is_the_shipped_vae_for_every_label():
    trainer = ConditionalVAETrainer({"vae_from": ""})     # (from scratch by default: the docstring says why)
    vae = load_engine("vae").model
    x, z = load_engine("vae").sample(3, seed=1), torch.randn(3, vae.config.latent_dim)
    with torch.no_grad():
        for model in (trainer.model.eval(), trainer.export().eval()):
            for labels in (torch.tensor([0, 4, 9]), torch.tensor([7, 7, 7])):
                assert torch.equal(model.decode_params(z, labels)[0], vae.decode_params(z)[0])
                assert torch.equal(model.encode(x, labels)[0], vae.encode(x)[0])
    trainer.warmup_lr(trainer.opt, 10_000, trainer.lr)     # past warm-up: the embeddings learn 10x faster
    assert trainer.opt.param_groups[1]["lr"] == pytest.approx(10 * trainer.lr)
    assert {id(p) for p in trainer.opt.param_groups[1]["params"]} == {
        id(trainer.model.encoder_embedding.weight), id(trainer.model.decoder_embedding.weight)}
    with pytest.raises(EngineError, match="network differs from this config"):
        ConditionalVAETrainer({"latent_dim": 4, "vae_from": ""})


def test_the_label_changes_the_decoder_not_the_latent_draw(tmp_path):
    engine = tiny_engine(tmp_path)
    sevens = engine.sample(4, seed=3, labels=7)
    assert torch.equal(sevens, engine.decode(engine.latents(4, seed=3), [7] * 4))
    assert not torch.allclose(sevens, engine.sample(4, seed=3, labels=1))
    assert torch.equal(engine.sample(12, seed=0), engine.sample(12, seed=0, labels=list(range(10)) + [0, 1]))
    assert engine.asked_classes(3).tolist() == [0, 1, 2]
    cool = engine.sample(4, seed=3, labels=7, temperature=0.5)   # the knob: the same draws, nearer the centre
    assert torch.equal(cool, engine.decode(0.5 * engine.latents(4, seed=3), 7))
    for labels, message in ((10, "classes 0 to 9"), ([1, 2], "4 whole numbers"), ("seven", "a class number")):
        with pytest.raises(EngineError, match=message):
            engine.sample(4, seed=0, labels=labels)


def test_the_analogy_grid_is_each_digits_style_under_every_class(tmp_path):
    engine = tiny_engine(tmp_path)
    x, labels = torch.rand(2, 1, 28, 28), [3, 8]
    grid = engine.analogies(x, labels)
    assert grid.shape == (20, 1, 28, 28)
    means = engine.encode(x, labels)[0]
    for row in range(2):
        for cls in (0, 5, 9):
            assert torch.allclose(grid[10 * row + cls], engine.decode(means[row:row + 1], cls)[0])
    assert torch.allclose(grid[3], engine.reconstruct(x[:1], 3)[0])   # its own class: its reconstruction
    with pytest.raises(EngineError, match="encodes an image with its class"):
        engine.encode(x)


def test_the_conditional_elbo_is_reconstruction_minus_kl_and_gives_every_embedding_a_gradient():
    model = ConditionalVAE(ConditionalVAEConfig(channels=8, hidden_dim=32, latent_dim=4))
    x, labels = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5])
    elbo, reconstruction, kl = model.elbo(x, labels, torch.Generator().manual_seed(0))
    assert torch.allclose(elbo, reconstruction - kl) and (kl >= 0).all() and (reconstruction < 0).all()
    model(x, labels, torch.Generator().manual_seed(0)).backward()
    for embedding in (model.encoder_embedding, model.decoder_embedding):
        used = embedding.weight.grad.abs().sum(1) > 0
        assert used.tolist() == [True] * 6 + [False] * 4      # the classes in the batch, and only those


@pytest.mark.slow   # trains through the command line
def test_trained_by_our_command_loaded_by_the_users_code_path(tmp_path):
    from engines.training.loop import main
    args = ["conditional_vae", "--out", str(tmp_path), "--steps", "2", "--checkpoint-every", "1",
            "--eval-every", "2", "--eval-n", "20", "--log-every", "1", "--batch-size", "4", "--threads", "1",
            "--set", "channels=8", "--set", "hidden_dim=32"]
    assert main(args) == 0
    engine = load_engine("conditional_vae", tmp_path)
    x = engine.sample(3, seed=0, labels=5)
    assert x.shape == (3, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2] and all(row["loss"] > 0 for row in log)
    score, = [json.loads(line) for line in (tmp_path / "quality_log.jsonl").read_text().splitlines()]
    assert set(score["asked_class_share"]) == {"lenet", "allconv"}
