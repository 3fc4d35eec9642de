"""Quality against training compute: FLOPs counted phase by phase, a parent's training added where a model is
built on it, old and new score logs read, and the equal-compute reading's known answers."""
import json

import pytest

from engines.measure.compute_curve import curve, curves, equal_compute, flops_at


def test_flops_are_counted_phase_by_phase():
    compute = {"flops_by_phase": {"0": 2.0, "300": 5.0}}      # the diffusion GAN's: a cheaper first phase
    assert flops_at(compute, 0) == 0 and flops_at(compute, 200) == 400
    assert flops_at(compute, 300) == 600 and flops_at(compute, 1250) == 600 + 5 * 950


def test_a_checkpoint_curve_reads_old_and_new_scores_and_starts_after_its_parent(tmp_path):
    (tmp_path / "training_info.json").write_text(json.dumps({"compute": {"flops_by_phase": {"0": 10.0},
                                                                         "flops": 30.0}}))
    rows = [{"step": 1, "frechet_distance": 900.0},                              # an older run: the lab net only
            {"step": 3, "frechet_distance": 50.0, "frechet_by_net": {
                "lenet": {"frechet_distance": 50.0, "frechet_distance_se": 5.0},
                "allconv": {"frechet_distance": 1.0, "frechet_distance_se": 0.1}}}]
    (tmp_path / "quality_log.jsonl").write_text("\n".join(map(json.dumps, rows)))
    points = curve(tmp_path, offset=1000.0)
    assert [p["flops"] for p in points] == [1010.0, 1030.0]
    assert points[0]["nets"] == {"lenet": {"frechet_distance": 900.0, "frechet_distance_se": None}}
    assert points[1]["nets"]["allconv"]["frechet_distance_se"] == 0.1
    (tmp_path / "training_info.json").write_text("{}")
    assert curve(tmp_path) == []                                                 # no compute record: no curve


def point(flops, lenet, allconv, se=1.0):
    return {"step": 0, "flops": flops, "nets": {"lenet": {"frechet_distance": lenet, "frechet_distance_se": se},
                                                "allconv": {"frechet_distance": allconv, "frechet_distance_se": se}}}


def test_equal_compute_reads_each_family_at_the_budget_all_reached():
    by_family = {"a": {"points": [point(10, 50, 5), point(100, 20, 2)]},
                 "b": {"points": [point(5, 90, 9), point(40, 30, 4)]}}
    reading = equal_compute(by_family)
    assert reading["budget"] == 40                          # b's last: a is read at its last point by then
    assert reading["at"]["a"]["flops"] == 10 and reading["at"]["b"]["flops"] == 40
    assert reading["verdicts"]["lenet"] == "b"              # 30 ± 1 against 50 ± 1
    assert reading["verdicts"]["allconv"] == "b, tied within 2 SE with a"   # 4 ± 1 against 5 ± 1: 1 < 2.83
    by_family["a"]["points"][0]["nets"]["lenet"]["frechet_distance_se"] = None   # scored without an SE
    assert equal_compute(by_family)["verdicts"] == {
        "every net": "cannot say: no checkpoint scored with SEs in both nets by then for a"}


def test_a_model_whose_parent_alone_exceeds_the_budget_is_set_aside_not_missing():
    by_family = {"a": {"points": [point(10, 50, 5), point(40, 20, 2)], "parent_flops": 0.0},
                 "b": {"points": [point(20, 90, 9), point(60, 30, 4)], "parent_flops": 0.0},
                 "after_b": {"points": [point(70, 10, 1)], "parent_flops": 60.0},    # built on b: starts at 60
                 "late": {"points": [point(50, 10, 1), point(80, 9, 1)], "parent_flops": 0.0}}   # scored too late
    reading = equal_compute(by_family)
    assert reading["budget"] == 40 and reading["beyond"] == ["after_b"] and "after_b" not in reading["at"]
    assert reading["verdicts"] == {"every net": "cannot say: no checkpoint scored with SEs in both nets by then "
                                                "for late"}   # from scratch, first scored past the budget: missing
    del by_family["late"]
    assert equal_compute(by_family)["verdicts"]["lenet"] == "a"   # 20 ± 1 against b's 90 ± 1 at 20


def test_a_class_conditional_family_is_not_read_against_the_others():
    # Told each sample's class, it does another task: its low distance must not set the budget or win the reading.
    by_family = {"vae": {"points": [point(10, 50, 5), point(40, 20, 2)]},
                 "gan": {"points": [point(20, 90, 9), point(60, 30, 4)]},
                 "conditional_vae": {"points": [point(5, 1, 0.1), point(30, 1, 0.1)]}}
    reading = equal_compute(by_family)
    assert reading["budget"] == 40 and set(reading["at"]) == {"vae", "gan"}
    assert reading["verdicts"]["lenet"] == "VAE"


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_the_committed_report_has_the_chart_and_the_reading(dataset):
    from engines.checkpoint import checkpoints_dir
    root = checkpoints_dir(dataset)
    text = (root / "report.md").read_text()
    assert "## Quality against training compute" in text and (root / "report_compute.png").is_file()
    assert set(curves(dataset)) >= {"vae", "gan", "diffusion", "flow"}


def test_time_lapse_frames_sit_on_the_same_compute_axis_as_the_scores(tmp_path, monkeypatch):
    import torch

    import engines.measure.compute_curve as compute_curve
    from engines.training.timelapse import save_frame
    for name, per_step, total in (("flow", 10.0, 1000.0), ("reflow", 1.0, 5.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "training_info.json").write_text(json.dumps(
            {"compute": {"flops_by_phase": {"0": per_step}, "flops": total}}))
    for step in (2, 5):
        save_frame(torch.rand(16, 1, 28, 28), tmp_path / "reflow", step)
    monkeypatch.setattr(compute_curve, "checkpoints_dir", lambda dataset: tmp_path)
    monkeypatch.setattr(compute_curve, "available_engines", lambda root: ["flow", "reflow"])
    by_family = compute_curve.frames_by_compute("mnist")
    assert list(by_family) == ["reflow"]                                   # the flow kept no frames
    assert [(flops, step) for flops, step, _ in by_family["reflow"]] == [(1002.0, 2), (1005.0, 5)]   # after the flow
    assert compute_curve.frames_at(by_family, 1003.0)["reflow"][1] == 2
    assert compute_curve.frames_at(by_family, 999.0) == {"reflow": None}
