"""The seed study: drop and collapse counting on hand-made series, a tiny real study's shape and
determinism, and bad arguments. The counting is pure, so its known answers need no training."""
import json
import math
import statistics

import pytest
import torch

from engines.engine import make_generator
from engines.errors import EngineError
from engines.measure.verdicts import ALIKE, unlike
from engines.toy.distributions import make_distribution
from engines.toy.seed_study import count_drops, seed_study, summarise_seeds
from engines.toy.training import FAMILIES, TRAINERS, ToyTrainer, make_trainer

torch.set_num_threads(1)  # 2 cores shared: and the study's numbers are reproducible at a fixed thread count

TINY = dict(families=("gan", "vae", "diffusion"), seeds=2, steps=8, check_every=2, samples=200)


@pytest.fixture(scope="module")
def tiny():
    return seed_study(**TINY)


@pytest.mark.parametrize("modes, on, expected", [
    ([0, 0, 8, 8, 8, 8], [0.0, 0.1, 0.5, 0.6, 0.45, 0.5], 1),    # 0.60 -> 0.45 in the second half
    ([8, 8, 8, 8], [0.9, 0.1, 0.2, 0.3], 0),                      # a fall in the first half is not counted
    ([8, 8, 8, 8], [0.5, 0.5, 0.8, 0.7], 0),                      # exactly 0.10 is not "more than", in floats too
    ([8, 8, 8, 8], [0.5, 0.5, 0.8, 0.69], 1),                     # 0.11 is
    ([8, 8, 8, 7], [0.5, 0.5, 0.8, 0.8], 1),                      # modes covered falling counts on its own
    ([8, 8, 8, 6], [0.5, 0.5, 0.8, 0.5], 1),                      # both falling at once is one drop
    ([8, 8, 7, 8, 7], [0.9, 0.2, 0.9, 0.7, 0.9], 2),              # odd length: the last 3 checkpoints, 2 transitions
    ([3, 5, 8, 7, 8, 6], [0.1, 0.3, 0.8, 0.9, 0.5, 0.6], 2),      # 8 -> 7 leads into the half: not counted
])
def test_count_drops_known_answers(modes, on, expected):
    assert count_drops(modes, on, threshold=0.10) == expected


def test_count_drops_refuses_series_of_different_lengths():
    with pytest.raises(EngineError, match="one value per checkpoint"):
        count_drops([8, 8, 8], [0.5, 0.5])


def test_summarise_seeds_counts_collapse_and_oscillation_on_hand_made_runs():
    runs = [{"seed": 0, "modes_covered": [8, 8, 8, 8], "on_mode": [0.5, 0.6, 0.7, 0.8]},    # smooth
            {"seed": 1, "modes_covered": [8, 8, 8, 6], "on_mode": [0.5, 0.6, 0.7, 0.7]},    # collapses: 1 drop
            {"seed": 2, "modes_covered": [2, 4, 6, 7], "on_mode": [0.1, 0.2, 0.3, 0.4]},    # falls short of 8
            {"seed": 3, "modes_covered": [8, 8, 8, 8], "on_mode": [0.5, 0.6, 0.9, 0.7]}]    # oscillates: 1 drop
    out = summarise_seeds(runs, n_modes=8)
    assert [s["collapsed"] for s in out["per_seed"]] == [False, True, False, False]   # lost modes it had
    assert [s["fell_short"] for s in out["per_seed"]] == [False, False, True, False]  # never had them all
    assert [s["oscillated"] for s in out["per_seed"]] == [False, True, False, True]
    assert [s["peak_modes_covered"] for s in out["per_seed"]] == [8, 8, 7, 8]
    assert [s["seed"] for s in out["per_seed"]] == [0, 1, 2, 3]
    assert out["collapse_rate"] == 0.25 and out["collapse_rate_se"] == pytest.approx(math.sqrt(0.25 * 0.75 / 4))
    assert out["short_rate"] == 0.25
    assert out["oscillation_rate"] == 0.5 and out["oscillation_rate_se"] == pytest.approx(0.25)
    assert out["drops_mean"] == 0.5 and out["drops_std"] == pytest.approx(statistics.stdev([0, 1, 0, 1]))
    assert out["final_modes_covered_mean"] == pytest.approx(29 / 4)
    assert out["final_modes_covered_std"] == pytest.approx(statistics.stdev([8, 6, 7, 8]))
    assert out["final_on_mode_mean"] == pytest.approx(0.65)
    everyone_fine = summarise_seeds([runs[0], runs[0]], n_modes=8)
    assert everyone_fine["collapse_rate"] == 0 and everyone_fine["collapse_rate_se"] == 0
    with pytest.raises(EngineError, match="at least 2 seeds"):
        summarise_seeds(runs[:1], n_modes=8)


def test_a_tiny_study_returns_the_documented_numbers(tiny):
    assert set(tiny) == {"settings", "definitions", "families"}
    settings = tiny["settings"]
    assert settings["seeds"] == [0, 1] and settings["checkpoints"] == [2, 4, 6, 8]
    assert settings["distribution"] == "ring8" and settings["n_modes"] == 8
    assert settings["lr"] == {"gan": 1e-3, "vae": 2e-3, "diffusion": 2e-3}   # the playground's defaults
    assert {"collapse", "drop", "oscillation", "rate_se", "modes_covered", "on_mode"} <= set(tiny["definitions"])
    assert all(isinstance(text, str) and text for text in tiny["definitions"].values())
    assert list(tiny["families"]) == ["gan", "vae", "diffusion"]
    for family in tiny["families"].values():
        for name in ("collapse_rate", "oscillation_rate"):
            p, se = family[name], family[f"{name}_se"]
            assert 0 <= p <= 1 and se == pytest.approx(math.sqrt(p * (1 - p) / 2))
        for key in ("drops", "final_modes_covered", "final_on_mode"):
            assert math.isfinite(family[f"{key}_mean"]) and family[f"{key}_std"] >= 0
        for run in family["per_seed"]:
            assert len(run["modes_covered"]) == len(run["on_mode"]) == 4
            assert all(0 <= m <= 8 for m in run["modes_covered"]) and all(0 <= v <= 1 for v in run["on_mode"])
            assert (run["final_modes_covered"], run["final_on_mode"]) == (run["modes_covered"][-1], run["on_mode"][-1])
    assert json.loads(json.dumps(tiny)) == tiny   # plain JSON numbers, nothing lost on the way
    assert settings["weights"] == "ema" and settings["sensitivity_weights"] == "raw"
    assert "weights" in tiny["definitions"]


def test_every_family_is_measured_alike_from_its_ema_with_the_raw_weights_beside(tiny):
    """Like for like (issue 26): each family's rates are its EMA's, on the same samples at the same checkpoints,
    and its record says so; the raw weights' rates, measured at the same checkpoints, are beside them."""
    records = tiny["families"]
    for name, record in records.items():
        assert record["measured"] == {"weights": "ema", "ema_decay": ToyTrainer.ema_decay, "samples": 200,
                                      "checkpoints": 4, "check_every": 2, "steps": 8}, name
        raw = record["sensitivity"]
        assert raw["measured"] == {"weights": "raw", "samples": 200, "checkpoints": 4, "check_every": 2, "steps": 8}
        assert {"collapse_rate", "oscillation_rate", "per_seed"} <= set(raw)
        assert [run["seed"] for run in raw["per_seed"]] == [run["seed"] for run in record["per_seed"]] == [0, 1]
    for a in records:
        for b in records:
            assert unlike(records[a]["measured"], records[b]["measured"]) == [], (a, b)
            assert unlike(records[a]["sensitivity"]["measured"], records[b]["sensitivity"]["measured"]) == []
        assert unlike(records[a]["measured"], records[a]["sensitivity"]["measured"]) == ["weights ema vs raw"]
    assert set(ALIKE) == {"weights", "samples", "checkpoints"}


def test_every_trainer_keeps_an_ema_of_its_sampling_network_with_one_decay():
    ring = make_distribution("ring8")
    assert all(cls.ema_decay == ToyTrainer.ema_decay for cls in TRAINERS.values())   # one class-level decay
    assert "ema_decay" not in vars(TRAINERS["diffusion"])                            # generalised, not repeated
    for family in FAMILIES:
        trainer = make_trainer(family, ring, seed=0)
        trainer.train(5)
        raw, ema = trainer.sampling_model("raw"), trainer.sampling_model("ema")
        assert raw is trainer.model and trainer.ema.n_averaged.item() == 5
        if family in ("gan", "diffusion_gan"):   # the EMA is of the generator; the discriminator does not sample
            assert ema.generator is trainer.ema.module and ema.discriminator is trainer.model.discriminator
            assert trainer.model.generator is not ema.generator and ema.config is trainer.model.config
        else:
            assert ema is trainer.ema.module
        net = trainer.ema.module
        changed = any(not torch.equal(p, q) for p, q in zip(net.parameters(), trainer.sampling_network.parameters()))
        assert changed, family                   # an average of 5 steps' weights, not the last step's
        assert torch.equal(trainer.sample(50, seed=3, weights="ema"), ema.sample(50, make_generator(3)).float())
        assert not torch.equal(trainer.sample(50, seed=3, weights="ema"), trainer.sample(50, seed=3, weights="raw"))
        # the playground's views keep sampling what they sampled: diffusion and flow their EMA, the others their raw
        # weights
        view = "ema" if family in ("diffusion", "flow") else "raw"
        assert trainer.eval_model is trainer.sampling_model(view)
        assert torch.equal(trainer.sample(50, seed=3), trainer.sample(50, seed=3, weights=view))
        with pytest.raises(EngineError, match="weights must be one of"):
            trainer.sample(5, weights="average")


def test_the_ema_does_not_change_training():
    """The EMA only reads the weights: a trainer's raw weights after k steps are what they were without it."""
    ring = make_distribution("ring8")
    a, b = make_trainer("gan", ring, seed=4), make_trainer("gan", ring, seed=4)
    a.train(6)
    b.after_step = lambda: None   # no EMA updates at all
    b.train(6)
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_the_same_arguments_give_the_same_numbers(tiny):
    assert seed_study(**TINY) == tiny
    other = seed_study(**{**TINY, "families": ("gan",), "lr": {"gan": 5e-3}})
    assert other["settings"]["lr"] == {"gan": 5e-3}
    # (the raw weights': after 8 steps both rates' EMAs, a ~200-step average, have barely left the start)
    assert other["families"]["gan"]["sensitivity"]["per_seed"] != tiny["families"]["gan"]["sensitivity"]["per_seed"]


def test_families_can_have_their_own_training_budget(tiny):
    out = seed_study(**{**TINY, "families": ("gan", "diffusion_gan"), "steps": {"gan": 8, "diffusion_gan": 16},
                        "check_every": {"gan": 2, "diffusion_gan": 4}})
    assert out["settings"]["steps"] == {"gan": 8, "diffusion_gan": 16}
    assert out["settings"]["check_every"] == {"gan": 2, "diffusion_gan": 4} and "checkpoints" not in out["settings"]
    assert out["families"]["gan"] == tiny["families"]["gan"]     # a family's runs do not depend on the others'
    assert all(len(run["on_mode"]) == 4 for run in out["families"]["diffusion_gan"]["per_seed"])


def test_a_family_joins_a_study_measured_before_as_if_measured_with_it(tiny):
    """`measure=`: the study trains only the newcomer, and `merge_seed_families` completes it with the earlier
    study's records: the same dict as measuring every family at once (how a family joins a committed report's
    seed study by `--into REPORT --sections seeds --engines NAME`). Other settings for a kept family: refused."""
    from engines.measure.evaluation import merge_seed_families
    with_flow = {**TINY, "families": ("gan", "vae", "diffusion", "flow")}
    flow_only = seed_study(**with_flow, measure=["flow"])
    assert list(flow_only["families"]) == ["flow"] and flow_only["settings"]["families"] == list(with_flow["families"])
    assert merge_seed_families(tiny, flow_only) == seed_study(**with_flow)
    other = seed_study(**{**with_flow, "lr": {"gan": 5e-3}}, measure=["flow"])
    with pytest.raises(EngineError, match="measured gan under other settings"):
        merge_seed_families(tiny, other)
    with pytest.raises(EngineError, match="has no diffusion_gan"):
        merge_seed_families(tiny, seed_study(**{**with_flow, "families": ("gan", "diffusion_gan")},
                                             measure=["gan"]))
    with pytest.raises(EngineError, match="measure must name families among those studied"):
        seed_study(**TINY, measure=["flow"])


@pytest.mark.parametrize("change, message", [
    ({"steps": {"gan": 8}}, "steps given per family must name exactly the families studied"),
    ({"check_every": {"gan": 2, "vae": 2, "diffusion": 2, "flow": 2}}, "check_every given per family"),
    ({"steps": {"gan": 8, "vae": 8, "diffusion": 9}}, "check_every=2 for diffusion"),
    ({"families": ("gan", "reflow")}, "families must be a non-empty list"),
    ({"families": ()}, "families must be a non-empty list"),
    ({"families": "gan"}, "families must be a non-empty list"),
    ({"families": ("gan", "gan")}, "families must be a non-empty list"),
    ({"seeds": 1}, "seeds must be at least 2"),
    ({"seeds": 2.5}, "seeds must be a whole number"),
    ({"steps": 9}, "steps must be a multiple of check_every"),
    ({"steps": 6}, "at least 4 checkpoints"),
    ({"steps": 0}, "steps must be between 1 and"),
    ({"check_every": 0}, "check_every must be between 1 and"),
    ({"samples": 0}, "samples must be between 1 and"),
    ({"distribution": "spiral"}, "unknown distribution"),
    ({"lr": 0.5}, "learning rate must be a number in"),
    ({"lr": {"reflow": 1e-3}}, "learning rates given for families not studied"),
    ({"drop_threshold": 1.5}, "drop_threshold must be a number in"),
])
def test_bad_arguments_raise_engine_errors_before_training(change, message):
    with pytest.raises(EngineError, match=message):
        seed_study(**{**TINY, **change})


@pytest.mark.slow
def test_diffusion_trained_1500_steps_covers_every_mode_on_every_seed():
    """A sanity check of the measurement on a real run: diffusion on ring8 reaches all 8 modes (~10 s)."""
    out = seed_study(families=("diffusion",), seeds=2, steps=1500, check_every=300, samples=1000)
    family = out["families"]["diffusion"]
    assert family["collapse_rate"] == 0 and family["final_modes_covered_mean"] == 8
    assert family["final_on_mode_mean"] > 0.5
