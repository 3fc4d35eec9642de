"""The speed race: which entries it measures, that a rerun keeps what it measured, and its chart."""
import json

import pytest
from PIL import Image

import engines.measure.speed_race as speed_race
from app import plots
from engines import load_engine
from engines.measure.speed_race import entries, ms_per_evaluation, steps_for, with_times


def test_each_line_runs_at_the_largest_step_count_within_each_evaluation_budget():
    flow, diffusion = load_engine("flow"), load_engine("diffusion")
    assert [steps_for(flow, {"sampler": "heun"}, t) for t in (1, 2, 4, 8)] == [1, 1, 2, 4]   # 1, 1, 3, 7 NFE
    assert [steps_for(flow, {"sampler": "euler"}, t) for t in (1, 2, 4)] == [1, 2, 4]
    assert steps_for(diffusion, {"sampler": "ddim", "spacing": "trailing"}, 5) == 5
    race = entries("mnist", (1, 2, 4))
    lines = {(e["engine"], e["line"]) for e in race if e["line"]}
    assert lines == {("diffusion", "ddim"), ("diffusion", "diffusers:DPMSolverMultistepScheduler"),
                     ("flow", "euler"), ("flow", "heun")}
    points = [e["engine"] for e in race if not e["line"]]
    assert points == ["vae", "gan", "latent_diffusion", "diffusion_gan"]       # registry order, one point each
    assert [e["options"]["steps"] for e in race if e["line"] == "heun"] == [1, 2]


def test_times_are_evaluations_times_the_reports_cost_of_one_evaluation():
    report = {"speed": {"rows": [{"engine": "flow", "nfe": 100, "ms_per_sample": 400.0},
                                 {"engine": "diffusion", "nfe": 10, "ms_per_sample": 41.0},
                                 {"engine": "diffusion", "nfe": 100, "ms_per_sample": 430.0},
                                 {"engine": "diffusion", "nfe": 1000, "ms_per_sample": 1.0, "extrapolated": True}]}}
    assert ms_per_evaluation(report) == {"flow": 4.0, "diffusion": 4.1}    # the fastest measured, not extrapolated
    rows = with_times({"rows": [{"engine": "flow", "nfe": 7}, {"engine": "gan", "nfe": 1}]}, report)
    assert rows[0]["ms_per_sample"] == 28.0 and rows[1]["ms_per_sample"] is None


@pytest.mark.slow
def test_the_race_measures_every_entry_keeps_them_on_a_rerun_and_draws_them(tmp_path, monkeypatch):
    monkeypatch.setattr(speed_race, "out_path", lambda dataset: tmp_path / "speed_race.json")
    race = speed_race.run("mnist", 20, 0, (1, 2), "test", log=lambda line: None)
    assert len(race["rows"]) == len(entries("mnist", (1, 2)))
    assert all(set(r["frechet_by_net"]) == {"lenet", "allconv"} and r["weights"] for r in race["rows"])
    assert json.loads((tmp_path / "speed_race.json").read_text()) == race
    assert {r["nfe"] for r in race["rows"] if r["line"]} == {1, 2}
    monkeypatch.setattr(speed_race, "measure", lambda *a: pytest.fail("a kept entry was measured again"))
    assert speed_race.run("mnist", 20, 0, (1, 2), "test", log=lambda line: None)["rows"] == race["rows"]
    report = json.loads((speed_race.checkpoints_dir("mnist") / "report.json").read_text())
    figure = tmp_path / "race.png"
    plots.speed_race(with_times(race, report)).savefig(figure)
    assert Image.open(figure).size[0] >= 800
