"""Each family's fidelity-diversity knob: the VAE's temperature scales the same draws, the sweep measures every
value like a report row from the same seed, its verdict reads the folklore's trade in both nets, and a sweep of
other weights is not shown."""
import json
from dataclasses import replace

import pytest
import torch

from engines import EngineError, load_engine
from engines.family import Knob
from engines.measure import knobs
from engines.registry import family


def test_temperature_scales_the_same_prior_draws_and_is_checked():
    vae = load_engine("vae")
    assert torch.allclose(vae.latents(4, seed=2, temperature=0.5), 0.5 * vae.latents(4, seed=2))
    assert torch.equal(vae.sample(3, seed=1), vae.sample(3, seed=1, temperature=1.0))
    for bad in (0, -1, 11, "hot", True):
        with pytest.raises(EngineError, match="temperature must be a number in"):
            vae.sample(2, seed=0, temperature=bad)


def test_each_knob_is_a_sampling_option_of_its_engine_and_its_labels_name_it():
    for name in ("vae", "gan"):
        knob = family(name).knob
        assert knob.neutral in knob.values
        engine = load_engine(name)
        for value in knob.values:
            engine.sample(1, seed=0, **({} if value is None else {knob.option: value}))
    assert Knob("truncation", "psi", (None, 0.5), None, "").label(None) == "psi = none"
    assert family("vae").knob.label(0.8) == "tau = 0.8"


def cell(precision, recall, se=0.01):
    return {"precision": precision, "precision_se": se, "recall": recall, "recall_se": se}


def measured(*rows_by_value, neutral=1.0):
    """A sweep record of values -> {net: (precision, recall)}."""
    return {"neutral": neutral, "symbol": "tau", "rows": [
        {"value": v, "label": f"tau = {v}", "nets": {net: cell(*pr) for net, pr in nets.items()}}
        for v, nets in rows_by_value]}


@pytest.mark.parametrize("typical, expected", [
    ({"lenet": (0.90, 0.40), "allconv": (0.85, 0.50)}, "agrees"),                        # the trade, both nets
    ({"lenet": (0.90, 0.40), "allconv": (0.70, 0.50)}, "depends on the feature net"),    # allconv: both fall
    ({"lenet": (0.80, 0.70), "allconv": (0.75, 0.80)}, "tie"),
    ({"lenet": (0.81, 0.10), "allconv": (0.75, 0.10)}, "disagrees"),                     # diversity lost for nothing
])
def test_the_verdict_reads_precision_up_and_recall_down_beyond_2_se_in_every_net(typical, expected):
    neutral = {"lenet": (0.80, 0.70), "allconv": (0.75, 0.80)}
    sweep = measured((1.2, neutral), (1.0, neutral), (0.4, typical))
    verdict = knobs.verdict(family("vae"), sweep, 1000)
    assert verdict["verdict"] == expected
    assert verdict["detail"].startswith("VAE, tau = 1 -> tau = 0.4: [lenet] precision 0.80 -> ")


@pytest.mark.parametrize("typical_asked, expected", [
    (0.99, "agrees"),      # precision a tie, the class asked up beyond 2 SE (0.90 -> 0.99, SE ~0.01): fidelity up
    (0.91, "disagrees"),   # both a tie: diversity lost for nothing
    (0.80, "disagrees"),   # the class asked down: fidelity did not rise
])
def test_a_conditional_models_fidelity_is_also_being_the_class_asked(typical_asked, expected):
    neutral = {"lenet": (0.80, 0.70), "allconv": (0.75, 0.80)}
    typical = {"lenet": (0.81, 0.40), "allconv": (0.76, 0.50)}   # precision ties, recall falls
    sweep = measured((1.0, neutral), (3.0, typical))
    sweep["rows"][0]["asked_class_share"] = {"lenet": 0.90, "allconv": 0.90}
    sweep["rows"][1]["asked_class_share"] = {"lenet": typical_asked, "allconv": typical_asked}
    verdict = knobs.verdict(family("conditional_diffusion"), sweep, 1000)
    assert verdict["verdict"] == expected
    assert f"class asked 0.90 -> {typical_asked:.2f}" in verdict["detail"] and "precision 0.80 -> 0.81 (a tie)" in \
        verdict["detail"]


@pytest.mark.slow   # samples and scores
def test_the_sweep_scores_each_value_from_the_same_seed_and_keeps_rows_on_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(knobs, "out_path", lambda dataset: tmp_path / "knobs.json")
    small = Knob("temperature", "tau", (1.0, 0.5), 1.0, "colder is more typical")
    monkeypatch.setattr(knobs, "knobbed", lambda dataset: [replace(family("vae"), knob=small)])
    monkeypatch.setattr(knobs, "family_of", lambda name: replace(family(name), knob=small))
    sweep = knobs.run("mnist", 60, 0, "test", log=lambda line: None)
    rows = sweep["families"]["vae"]["rows"]
    assert [r["value"] for r in rows] == [1.0, 0.5] and set(rows[0]["nets"]) == {"lenet", "allconv"}
    assert all(r["nets"]["lenet"]["precision_se"] > 0 for r in rows)
    again = knobs.run("mnist", 60, 0, "test", log=lambda line: pytest.fail("re-measured a kept row"))
    assert again["families"] == sweep["families"] and knobs.sweep_for("mnist")["families"] == sweep["families"]
    committed = (tmp_path / "knobs.json").read_text()
    assert knobs.check("mnist", log=lambda line: None) == []        # --check: re-measured, the same rows
    tampered = json.loads(committed)
    tampered["families"]["vae"]["rows"][1]["nets"]["allconv"]["recall"] += 0.2
    (tmp_path / "knobs.json").write_text(json.dumps(tampered))
    assert knobs.check("mnist", ["vae"], log=lambda line: None) == [
        f"vae tau = 0.5: recall (allconv) {rows[1]['nets']['allconv']['recall'] + 0.2:.4g} committed, "
        f"{rows[1]['nets']['allconv']['recall']:.4g} now (tolerance "
        f"{0.5 * rows[1]['nets']['allconv']['recall_se']:.2g})"]
    assert json.loads((tmp_path / "knobs.json").read_text()) == tampered   # a check writes nothing
    (tmp_path / "knobs.json").write_text(committed)
    stopped = json.loads((tmp_path / "knobs.json").read_text())   # a sweep stopped after its first value
    del stopped["families"]["vae"]["rows"][1:]
    (tmp_path / "knobs.json").write_text(json.dumps(stopped))
    assert knobs.sweep_for("mnist") is None                 # a sweep stopped part-way is not shown
    measured_now = []
    resumed = knobs.run("mnist", 60, 0, "test", log=measured_now.append)
    assert [line.split(":")[0] for line in measured_now] == ["knob vae tau = 0.5"]   # only the missing value
    assert resumed["families"]["vae"]["rows"] == rows    # the same seed: the same row as the whole sweep's
    stale = json.loads((tmp_path / "knobs.json").read_text())
    stale["families"]["vae"]["weights"] = "0" * 16
    (tmp_path / "knobs.json").write_text(json.dumps(stale))
    assert knobs.sweep_for("mnist") is None                 # measured on other weights: not shown


def test_a_conditional_familys_sweep_also_scores_the_class_asked(tmp_path, monkeypatch):
    """Issue 29: for a conditional model the sweep's fidelity includes the share each net reads as the class
    asked (here the staged conditional VAE, tiny and untrained: near chance, but measured)."""
    import torch

    from engines.models.conditional_vae import FAMILY, ConditionalVAE, ConditionalVAEConfig, ConditionalVAEEngine
    torch.manual_seed(0)
    ConditionalVAE(ConditionalVAEConfig(channels=8, hidden_dim=32, latent_dim=4)).save_pretrained(tmp_path / "cvae")
    tiny = ConditionalVAEEngine.load(tmp_path / "cvae")
    monkeypatch.setattr(knobs, "out_path", lambda dataset: tmp_path / "knobs.json")
    monkeypatch.setattr(knobs, "knobbed", lambda dataset: [replace(FAMILY, knob=Knob("temperature", "tau", (1.0,),
                                                                                       1.0, "colder"))])
    monkeypatch.setattr(knobs, "load_engine", lambda name, dataset: tiny)
    monkeypatch.setattr(knobs, "weights_hash", lambda directory: "tiny")
    row, = knobs.run("mnist", 40, 0, "test", log=lambda line: None)["families"][FAMILY.name]["rows"]
    assert set(row["asked_class_share"]) == {"lenet", "allconv"}
    assert all(0 <= share <= 1 for share in row["asked_class_share"].values())


def test_told_no_class_the_guided_model_is_scored_against_the_model_it_started_from():
    """Issue 29's "one network serves both": the sweep's w = 0 row against the diffusion model's report row, per
    net; "worse" only beyond 2 SE of the difference."""
    def nets(lenet, allconv):
        return {"lenet": {"frechet_distance": lenet, "frechet_distance_se": 5.0},
                "allconv": {"frechet_distance": allconv, "frechet_distance_se": 0.1}}
    report = {"n": 1000, "quality": {"diffusion": {"nets": nets(34.0, 0.3)}}}
    sweep = {"n": 1000, "families": {"conditional_diffusion": {"rows": [
        {"value": 0.0, "label": "w = 0", "nets": nets(40.0, 0.9)},     # lenet: 6 < 2 x 7.1, a tie; allconv: worse
        {"value": 1.0, "label": "w = 1", "nets": nets(20.0, 0.2)}]}}}
    checks = {c["net"]: c for c in knobs.serves_both(report, sweep)}
    assert checks["lenet"]["verdict"] == "no worse" and checks["allconv"]["verdict"] == "worse"
    assert checks["lenet"]["ours"] == 40.0 and checks["lenet"]["parent_fd"] == 34.0
    text = knobs.serves_both_text(report, sweep)
    assert text.startswith("Told no class (w = 0), the conditional diffusion's Frechet distance against the "
                           "diffusion model") and "worse beyond 2 SE in allconv" in text
    assert knobs.serves_both({**report, "n": 500}, sweep) == []      # measured on other sample counts: not compared
