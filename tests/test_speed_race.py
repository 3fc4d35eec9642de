"""The speed race: which entries it measures, that a rerun keeps what it measured, and its chart."""
import json

import pytest
from PIL import Image

import engines.measure.speed_race as speed_race
from app import plots
from engines import load_engine
from engines.measure.race_targets import targets
from engines.measure.speed_race import entries, fewest_reaching, ms_per_evaluation, steps_for, with_times


def test_each_line_runs_at_the_largest_step_count_within_each_evaluation_budget():
    flow, diffusion = load_engine("flow"), load_engine("diffusion")
    assert [steps_for(flow, {"sampler": "heun"}, t) for t in (1, 2, 4, 8)] == [1, 1, 2, 4]   # 1, 1, 3, 7 NFE
    assert [steps_for(flow, {"sampler": "euler"}, t) for t in (1, 2, 4)] == [1, 2, 4]
    assert steps_for(diffusion, {"sampler": "ddim", "spacing": "trailing"}, 5) == 5
    race = entries("mnist", (1, 2, 4))
    lines = {(e["engine"], e["line"]) for e in race if e["line"]}
    assert lines == {("diffusion", "ddim"), ("diffusion", "diffusers:DPMSolverMultistepScheduler"),
                     ("flow", "euler"), ("flow", "heun"), ("reflow", "euler")}
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
    assert speed_race.race_for({"dataset": "mnist"}) == (race, "")        # measured on the weights that ship
    race["rows"][0]["weights"] = "0" * 16
    (tmp_path / "speed_race.json").write_text(json.dumps(race))
    assert speed_race.race_for({"dataset": "mnist"})[0] is None


def row(engine, nfe, fd, se, line="euler"):
    return {"engine": engine, "line": line, "nfe": nfe, "options": {"steps": nfe},
            "frechet_by_net": {net: {"frechet_distance": fd, "frechet_distance_se": se}
                               for net in ("lenet", "allconv")}}


def test_matched_quality_counts_a_tie_as_neither_reaching_nor_failing():
    race = {"rows": [row("gan", 1, 10.0, 1.0, line=None), row("diffusion", 2, 30.0, 1.0, "ddim"),
                     row("diffusion", 4, 11.0, 1.0, "ddim"), row("diffusion", 8, 9.0, 1.0, "ddim"),
                     row("diffusion", 4, 20.0, 1.0, "dpm")]}
    best, none_below = fewest_reaching(race, "diffusion", "gan")
    assert (best["nfe"], none_below) == (8, 2)     # DDIM-4 is 1 above the GAN's 10 within 2 SE (2.8): a tie
    assert fewest_reaching(race, "diffusion", "vae") == (None, 0)   # no such point


def test_the_targets_say_met_not_met_or_not_measured_with_the_numbers():
    race = {"rows": [row("flow", 10, 12.0, 1.0), row("flow", 9, 14.0, 1.0, "heun"),
                     row("diffusion", 10, 10.0, 1.0, "ddim"), row("diffusion", 10, 11.0, 1.0, "dpm"),
                     row("diffusion", 8, 1.0, 1.0, "dpm")]}
    straightness = {"diffusion": {"per_pixel": 0.08, "per_pixel_se": 0.001},
                    "flow": {"per_pixel": 0.07, "per_pixel_se": 0.001},
                    "flow_minus_diffusion": {"mean": -0.01, "se": 0.001}}
    first, second, third, fourth = targets(race, {"straightness": straightness})
    # flow's best at <= 10 NFE (Euler-10, 12) vs diffusion's best at 10 (DDIM, 10): +2 within 2 SE (2.83): met
    assert first["verdict"] == "met" and "euler-10 (10 NFE) 12.00" in first["detail"]
    race["rows"][0]["frechet_by_net"]["allconv"]["frechet_distance"] = 13.0   # +3 in one net: not met
    assert targets(race, {})[0]["verdict"] == "not met"
    assert second["verdict"] == "not measured" and "reflow" in second["detail"]
    assert third["verdict"] == "not measured" and "-0.0100 ± 0.0010 (path by path)" in third["detail"]
    race["rows"] += [row("reflow", 2, 5.0, 1.0)]
    straightness.update(reflow={"per_pixel": 0.069, "per_pixel_se": 0.001})   # 0.001 ± 0.0014 below flow: a tie
    _, second, third, _ = targets(race, {"straightness": straightness})
    assert second["verdict"] == "met" and third["verdict"] == "not met"
    assert targets(None, {})[0]["verdict"] == "not measured"
    assert fourth["verdict"] == "not measured" and "no diffusion GAN entry" in fourth["detail"]


def test_the_diffusion_gan_is_on_the_frontier_only_below_every_diffusion_sampler_as_fast_in_every_net():
    race = {"rows": [row("diffusion_gan", 4, 20.0, 1.0, line=None), row("diffusion", 4, 30.0, 1.0, "ddim"),
                     row("diffusion", 2, 50.0, 1.0, "dpm"), row("diffusion", 8, 5.0, 1.0, "dpm"),
                     row("reflow", 2, 5.0, 1.0)]}   # faster diffusion samplers only; reflow is not one
    fourth = targets(race, {})[3]
    assert fourth["verdict"] == "met" and "below all 2 diffusion entries as fast" in fourth["detail"]
    race["rows"][2]["frechet_by_net"]["allconv"]["frechet_distance"] = 22.0   # 2 below it within 2 SE (2.83)
    fourth = targets(race, {})[3]
    assert fourth["verdict"] == "not met" and "[lenet] diffusion GAN (4 NFE) 20.00 ± 1.00 is below all" in \
        fourth["detail"]
    assert "does not beat diffusion dpm-2 (2 NFE) 22.00 ± 1.00 (difference -2.00, 2 SE 2.83: a tie)" in \
        fourth["detail"]
