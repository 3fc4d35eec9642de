"""The sampling contract on the shipped checkpoints, loaded through the same code users run."""
import hashlib
import json
import shutil
import subprocess
import sys

import pytest
import torch

from engines import MAX_SAMPLES, EngineError, available_engines, load_engine
from engines.checkpoint import CHECKPOINTS, checkpoints_dir
from engines.data.datasets import load_mnist5k
from engines.registry import FAMILIES, families

FAST = {"vae": {}, "gan": {}, "diffusion": {"sampler": "ddim", "steps": 5}}


@pytest.fixture(scope="module", params=[(d, n) for d in ("mnist", "fashion") for n in ("vae", "gan", "diffusion")],
                ids=lambda p: "-".join(p))
def engine(request):
    dataset, name = request.param
    return load_engine(name, dataset=dataset)


def test_every_registered_family_ships_for_mnist_and_the_seeds_three_for_fashion():
    assert available_engines() == [f.name for f in families()]
    assert available_engines()[:3] == ["vae", "gan", "diffusion"] and {"latent_diffusion", "diffusion_gan"} <= set(
        available_engines())
    assert available_engines(checkpoints_dir("fashion"))[:3] == ["vae", "gan", "diffusion"]


def test_each_dataset_loads_its_own_models_and_refuses_what_does_not_ship():
    mnist, fashion = load_engine("gan"), load_engine("gan", dataset="fashion")
    assert not torch.equal(mnist.sample(4, seed=0), fashion.sample(4, seed=0))
    by_folder = load_engine("gan", checkpoints_dir("fashion") / "gan")
    assert torch.equal(fashion.sample(4, seed=0), by_folder.sample(4, seed=0))
    info = json.loads((checkpoints_dir("fashion") / "gan" / "training_info.json").read_text())
    assert info["dataset"] == "fashion" and info["train_images"] == 60000
    for name in FAMILIES:
        if name not in available_engines(checkpoints_dir("fashion")):
            with pytest.raises(EngineError, match=f"no {name} model ships for the fashion dataset"):
                load_engine(name, dataset="fashion")
    with pytest.raises(EngineError, match="unknown lab dataset 'cifar': choose one of mnist, fashion"):
        load_engine("vae", dataset="cifar")


def test_contract_shape_range_dtype(engine):
    x = engine.sample(5, seed=3, **FAST[engine.family])
    assert x.shape == (5, 1, 28, 28)
    assert x.dtype == torch.float32 and x.device.type == "cpu"
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert x.std() > 0.05  # not a constant image


def test_same_seed_same_images_other_seed_other_images(engine):
    a = engine.sample(4, seed=7, **FAST[engine.family])
    b = engine.sample(4, seed=7, **FAST[engine.family])
    c = engine.sample(4, seed=8, **FAST[engine.family])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_family_and_info(engine):
    info = engine.info
    assert engine.family in ("vae", "gan", "diffusion") and info["family"] == engine.family
    assert info["parameters"] > 1000 and info["dataset"] in ("mnist5k", "fashion")
    assert f"checkpoints/{'mnist' if info['dataset'] == 'mnist5k' else 'fashion'}/" in str(engine.directory)
    assert info["training_steps"] > 0 and info["training_time_s"] > 0
    assert "python -m engines.train" in info["command"]


SCRIPT = """
import hashlib, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from engines import load_engine
kw = {"vae": {}, "gan": {}, "diffusion": {"sampler": "ddim", "steps": 5}}
for name in ("vae", "gan", "diffusion"):
    x = load_engine(name).sample(3, seed=11, **kw[name])
    print(name, hashlib.sha256(x.numpy().tobytes()).hexdigest())
    torch.save(x, sys.argv[2] + name + ".pt")
"""


def sample_in_subprocess(threads: int, prefix) -> str:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(threads), str(prefix)], capture_output=True,
                         text=True, check=True, cwd=str(CHECKPOINTS.parent.parent))
    return out.stdout


@pytest.mark.slow
def test_bit_identical_across_processes(tmp_path):
    """Same seed, same options, same torch thread count -> the same bits in any process. (CPU kernels split
    their sums by thread, so another thread count may differ in the last float bits: checked below.)"""
    threads = torch.get_num_threads()
    first = sample_in_subprocess(threads, tmp_path / "a-")
    assert first == sample_in_subprocess(threads, tmp_path / "b-") and len(first.splitlines()) == 3
    here = {name: hashlib.sha256(load_engine(name).sample(3, seed=11, **FAST[name]).numpy().tobytes()).hexdigest()
            for name in FAST}
    assert first == "".join(f"{k} {v}\n" for k, v in here.items())


@pytest.mark.slow
def test_other_thread_counts_agree_to_float_rounding(tmp_path):
    sample_in_subprocess(1, tmp_path / "one-")
    sample_in_subprocess(2, tmp_path / "two-")
    for name in FAST:
        a = torch.load(tmp_path / f"one-{name}.pt", weights_only=True)
        b = torch.load(tmp_path / f"two-{name}.pt", weights_only=True)
        assert (a - b).abs().max() < 1e-4, name


# --- family abilities -----------------------------------------------------------------------------

def test_vae_encode_decode_interpolate_elbo():
    vae = load_engine("vae")
    digits = load_mnist5k("test").images[:8]
    mean, logvar = vae.encode(digits)
    assert mean.shape == logvar.shape == (8, vae.latent_dim)
    recon = vae.decode(mean)
    assert recon.shape == digits.shape
    # reconstructions are closer to their own digit than to the others
    err = ((recon[:, None] - digits[None]) ** 2).flatten(2).mean(2)
    assert (err.argmin(1) == torch.arange(8)).float().mean() >= 0.75
    path = vae.interpolate(digits[0], digits[1], steps=6, method="lerp")
    assert path.shape == (6, 1, 28, 28)
    assert torch.allclose(path[0], vae.decode(mean[:1])[0], atol=1e-5)
    elbo = vae.elbo(digits)
    assert elbo.shape == (8,) and (elbo < 0).all()
    # IWAE_k >= E[ELBO] holds in expectation (Burda et al.); a single ELBO draw is too noisy to compare
    # image by image, so compare with the ELBO averaged over 32 draws, over the 8 digits.
    mean_elbo = torch.stack([vae.elbo(digits, seed=s) for s in range(32)]).mean()
    assert vae.iwae(digits, k=64).mean() > mean_elbo


def test_gan_latents_generate_truncation_interpolate():
    gan = load_engine("gan")
    z = gan.latents(4, seed=5)
    assert torch.equal(gan.generate(z), gan.sample(4, seed=5))
    zt = gan.latents(64, seed=5, truncation=0.5)
    assert zt.abs().max() <= 0.5
    assert torch.equal(gan.sample(3, seed=1, truncation=0.7), gan.sample(3, seed=1, truncation=0.7))
    path = gan.interpolate(z[0], z[1], steps=5)
    assert path.shape == (5, 1, 28, 28)
    assert torch.allclose(path[0], gan.generate(z[:1])[0], atol=1e-5)


def test_diffusion_q_sample_matches_closed_form():
    diff = load_engine("diffusion")
    x0 = load_mnist5k("test").images[:2]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    abar = diff.schedule.alphas_cumprod[500].item()
    expected = abar ** 0.5 * (x0 * 2 - 1) + (1 - abar) ** 0.5 * noise
    assert torch.allclose(diff.q_sample(x0, 500, noise), expected, atol=1e-6)
    x_late = diff.q_sample(x0, 999, noise)
    assert torch.allclose(x_late, noise, atol=0.01)  # almost pure noise at t = T-1


def test_default_ddpm_sampler_runs_all_steps():
    """The default sampler visits every timestep, T-1 down to 0; which timesteps it asks for does not depend on
    the network's answers, so a stand-in network that predicts zero noise saves 1000 UNet evaluations."""
    diff = load_engine("diffusion")
    calls = []
    model = diff.model
    model.forward = lambda x, t: (calls.append(int(t[0])), torch.zeros_like(x))[1]
    try:
        diff.sample(1, seed=0)
    finally:
        del model.forward
    assert calls == list(range(999, -1, -1))


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, -3, MAX_SAMPLES + 1, 2.5, "4", True, None])
def test_bad_counts(engine, n):
    with pytest.raises(EngineError, match="n must"):
        engine.sample(n, seed=0, **FAST[engine.family])


@pytest.mark.parametrize("seed", [1.5, "3", True, None, -1, 2**64])
def test_bad_seeds(engine, seed):
    with pytest.raises(EngineError, match="seed must"):
        engine.sample(2, seed=seed, **FAST[engine.family])


def test_unknown_engine():
    with pytest.raises(EngineError, match="unknown engine 'nope': choose one of vae, gan, diffusion"):
        load_engine("nope")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        load_engine("vae", tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="config.json is missing"):
        load_engine("vae", tmp_path / "empty")


def _copy(name, tmp_path):
    target = tmp_path / name
    shutil.copytree(CHECKPOINTS / name, target, ignore=shutil.ignore_patterns("training_state*"))
    return target


@pytest.mark.parametrize("name", ["vae", "gan", "diffusion"])
def test_corrupt_weights(name, tmp_path):
    target = _copy(name, tmp_path)
    weights = target / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(EngineError, match="corrupt"):
        load_engine(name, target)


@pytest.mark.parametrize("name,field,value", [("vae", "latent_dim", 7), ("gan", "g_channels", 16),
                                              ("diffusion", "base_channels", 16)])
def test_config_that_does_not_match_weights(name, field, value, tmp_path):
    target = _copy(name, tmp_path)
    config = json.loads((target / "config.json").read_text())
    config[field] = value
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(EngineError, match="does not match"):
        load_engine(name, target)


def test_missing_weights_and_broken_config(tmp_path):
    target = _copy("vae", tmp_path)
    (target / "config.json").write_text("{not json")
    with pytest.raises(EngineError, match="not a valid VAEConfig"):
        load_engine("vae", target)
    (target / "config.json").write_text(json.dumps({"latent_dim": 16, "colour": "red"}))
    with pytest.raises(EngineError, match="unknown fields"):
        load_engine("vae", target)
    (target / "model.safetensors").unlink()
    with pytest.raises(EngineError):
        load_engine("vae", target)


def test_pickle_is_never_loaded(tmp_path):
    """A folder with only a pickled state dict is refused, not unpickled."""
    target = _copy("gan", tmp_path)
    (target / "model.safetensors").unlink()
    torch.save({}, target / "pytorch_model.bin")
    with pytest.raises(EngineError, match="model.safetensors is missing"):
        load_engine("gan", target)


def test_family_specific_bad_input():
    diff, gan, vae = load_engine("diffusion"), load_engine("gan"), load_engine("vae")
    with pytest.raises(EngineError, match="unknown sampler 'euler'"):
        diff.sample(1, seed=0, sampler="euler")
    for steps in (0, 1001, 2.5):
        with pytest.raises(EngineError, match="steps must be"):
            diff.sample(1, seed=0, sampler="ddim", steps=steps)
    with pytest.raises(EngineError, match="eta must"):
        diff.sample(1, seed=0, sampler="ddim", steps=2, eta=1.5)
    with pytest.raises(EngineError, match="truncation must"):
        gan.sample(2, seed=0, truncation=-1)
    with pytest.raises(EngineError, match="latents must have shape"):
        gan.generate(torch.zeros(2, 3))
    with pytest.raises(EngineError, match="images must have shape"):
        vae.encode(torch.zeros(2, 1, 14, 14))
    with pytest.raises(EngineError, match="in \\[0, 1\\]"):
        vae.encode(torch.full((1, 1, 28, 28), 3.0))
    with pytest.raises(EngineError, match="unknown interpolation"):
        vae.interpolate(torch.zeros(1, 28, 28), torch.zeros(1, 28, 28), method="cubic")
    with pytest.raises(EngineError, match="t must be"):
        diff.q_sample(torch.zeros(1, 1, 28, 28), 1000, torch.zeros(1, 1, 28, 28))


def test_vae_latent_map_spans_the_two_main_directions_of_the_test_digits():
    vae = load_engine("vae")
    digits = load_mnist5k("test").images[:300]
    view = vae.latent_map(digits, grid=5, span=2.0)
    assert view.decoded.shape == (25, 1, 28, 28) and 0 <= view.decoded.min() and view.decoded.max() <= 1
    assert view.ticks.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    coords = view.coordinates
    assert coords.shape == (300, 2)
    assert torch.allclose(coords.mean(0), torch.zeros(2), atol=1e-4)
    assert torch.allclose(coords.std(0), torch.ones(2), atol=1e-4)  # in standard deviations, as the ticks
    assert abs(float(torch.corrcoef(coords.T)[0, 1])) < 1e-4  # principal directions: uncorrelated
    assert 1 > view.explained_variance[0] >= view.explained_variance[1] > 0
    # The centre tile is the decoded mean latent; moving along an axis changes the digit.
    centre = vae.decode(vae.encode(digits)[0].mean(0, keepdim=True))
    assert torch.allclose(view.decoded[12], centre[0], atol=1e-5)
    assert (view.decoded[10] - view.decoded[14]).abs().mean() > 0.05
    with pytest.raises(EngineError, match="grid must be"):
        vae.latent_map(digits, grid=0)
