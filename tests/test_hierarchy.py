"""Diffusion as a hierarchical VAE: the per-level split of the bound, and one digit's latent levels."""
import json
import math

import pytest
import torch

from engines.checkpoint import CHECKPOINTS
from engines.data.datasets import load_mnist5k, to_signed
from engines.errors import EngineError
from engines.measure.hierarchy import elbo_by_level, group_by_decade, latent_hierarchy, vae_elbo_terms
from engines.registry import load_engine

REPORT = json.loads((CHECKPOINTS / "report.json").read_text())


@pytest.fixture(scope="module")
def diffusion():
    return load_engine("diffusion")


@pytest.fixture(scope="module")
def digits():
    return load_mnist5k("test").images[::100][:4]


def test_levels_sum_to_the_bound(diffusion, digits):
    level = elbo_by_level(diffusion, digits, strata=20)
    parts = level["prior"] + sum(level["bands"]["bpd"]) + level["decoder"]
    assert math.isclose(parts, level["total"], rel_tol=1e-9)
    assert level["bands"]["first"][0] == 1 and level["bands"]["last"][-1] == diffusion.num_train_timesteps - 1
    assert all(b >= 0 for b in level["bands"]["bpd"])


def test_the_reports_levels_sum_to_its_variational_bound():
    d = REPORT["likelihood"]["diffusion"]
    level = d["vlb_by_level"]
    parts = level["prior"] + sum(level["bands"]["bpd"]) + level["decoder"]
    rounding = 0.5e-4 * (len(level["bands"]["bpd"]) + 2)
    assert abs(parts - d["vlb_bpd"]["fixed_small"]) <= rounding + 1e-4, (parts, d["vlb_bpd"])
    assert len(level["bands"]["bpd"]) == d["vlb_strata"]


def test_group_by_decade_sums_bands_by_where_they_start():
    bands = {"first": [1, 2, 5, 12, 40, 150], "last": [1, 4, 11, 39, 149, 999], "bpd": [1, 2, 3, 4, 5, 6]}
    rows = group_by_decade(bands)
    assert rows == [{"first": 1, "last": 11, "bpd": 6}, {"first": 12, "last": 149, "bpd": 9},
                    {"first": 150, "last": 999, "bpd": 6}]


def test_vae_terms_add_up_to_its_elbo(digits):
    vae = load_engine("vae")
    terms = vae_elbo_terms(vae, digits, seed=3)
    assert math.isclose(terms["reconstruction"] + terms["kl"], terms["total"], rel_tol=1e-6)
    elbo = vae.elbo(digits, seed=3).double()
    assert math.isclose(terms["total"], float((-elbo).mean()) / (784 * math.log(2)), rel_tol=1e-6)
    assert terms["kl"] > 0 and terms["reconstruction"] > 0


def test_the_fixed_encoder_chain_has_the_closed_form_marginal(diffusion, digits):
    """x_t drawn one q(x_t | x_{t-1}) step at a time must be N(sqrt(abar_t) x, (1 - abar_t) I): the pixels'
    standardised residuals are standard normal at every level."""
    x = digits[:1]
    levels = [0, 10, 300, 999]
    h = latent_hierarchy(diffusion, x, levels=levels, seed=5)
    # `encoded` is clamped to [0, 1] for display; recompute the same chain unclamped from the same seed.
    generator = torch.Generator().manual_seed(5)
    schedule, chain = diffusion.schedule, to_signed(x.double())
    for t in range(levels[-1] + 1):
        chain = schedule.alphas[t].sqrt() * chain + schedule.betas[t].sqrt() * torch.randn(
            chain.shape, generator=generator, dtype=torch.float64)
        if t in levels:
            a = schedule.alphas_cumprod[t]
            residual = (chain - a.sqrt() * to_signed(x.double())) / (1 - a).sqrt()
            assert abs(float(residual.mean())) < 0.15 and abs(float(residual.std()) - 1) < 0.1, t
    assert h.encoded.shape == (4, 1, 28, 28) and h.levels == levels
    for images in (h.encoded, h.predicted_x0, h.decoded_mean, h.decoded_draw):
        assert images.min() >= 0 and images.max() <= 1


def test_the_decoder_one_level_down_is_closer_to_the_digit_than_its_input(diffusion, digits):
    """At a low level the learned decoder denoises: its mean is nearer the clean digit than x_t is."""
    x = digits[:1]
    h = latent_hierarchy(diffusion, x, levels=[50, 100], seed=0)
    for i in range(2):
        assert (h.decoded_mean[i] - x[0]).abs().mean() < (h.encoded[i] - x[0]).abs().mean()
        assert (h.predicted_x0[i] - x[0]).abs().mean() < (h.encoded[i] - x[0]).abs().mean()


def test_levels_are_checked(diffusion, digits):
    with pytest.raises(EngineError, match="levels must be timesteps"):
        latent_hierarchy(diffusion, digits[:1], levels=[0, 1000])
    with pytest.raises(EngineError, match="levels must be timesteps"):
        latent_hierarchy(diffusion, digits[:1], levels=[])
