"""Converged or stopped at budget, read from a run's own scored checkpoints (both nets, 2 SE)."""
import json

from engines.checkpoint import CHECKPOINTS
from engines.measure.convergence import AT_BUDGET, CONVERGED, convergence, convergence_line


def row(step, lenet, allconv, se=(10.0, 0.2)):
    return {"step": step, "frechet_by_net": {"lenet": {"frechet_distance": lenet, "frechet_distance_se": se[0]},
                                             "allconv": {"frechet_distance": allconv, "frechet_distance_se": se[1]}}}


def test_the_last_three_scores_must_tie_in_every_net():
    flat = [row(100, 300, 5), row(200, 80, 1.0), row(300, 82, 1.1), row(400, 79, 0.9)]
    assert convergence(flat)["status"] == CONVERGED and convergence(flat)["steps"] == [200, 300, 400]
    assert "slow descent" not in convergence(flat)["detail"]
    falling = [row(200, 120, 2.0), row(300, 100, 1.5), row(400, 80, 1.0)]   # 40 apart: beyond 2 SE (28.3)
    result = convergence(falling)
    assert result["status"] == AT_BUDGET and "in lenet, step 200 to step 400" in result["detail"]
    one_net = [row(200, 80, 2.0), row(300, 82, 1.5), row(400, 79, 0.5)]    # allconv falls 1.5 against 2 SE 0.57
    assert convergence(one_net)["status"] == AT_BUDGET
    slow = [row(200, 90, 1.2), row(300, 85, 1.1), row(400, 80, 1.0)]
    assert convergence(slow)["status"] == CONVERGED and "slow descent inside the noise" in convergence(slow)["detail"]


def test_a_log_without_standard_errors_in_both_nets_is_not_shown_converged():
    # The rule: converged when the scores show it, otherwise stopped at budget.
    old = [{"step": s, "frechet_distance": 50.0} for s in (100, 200, 300, 400)]
    result = convergence(old)
    assert result["status"] == AT_BUDGET and not result["shown"] and "0 of 4 in all" in result["detail"]
    assert result["detail"].startswith("not shown converged")
    two = convergence([row(100, 80, 1.0), row(200, 80, 1.0)])
    assert two["status"] == AT_BUDGET and not two["shown"]
    assert convergence([row(100, 80, 1.0), row(200, 80, 1.0), row(300, 80, 1.0)])["shown"]


def test_early_checkpoints_scored_later_do_not_stand_for_the_last_ones():
    # engines.replay scores a run's beginning with SEs; its end, scored without, still shows nothing.
    replayed = [row(250, 900, 60), row(500, 400, 20), row(750, 300, 10)]
    old_end = [{"step": s, "frechet_distance": 50.0} for s in (1000, 1500, 2000)]
    result = convergence(old_end + replayed)   # as merged: in step order, whatever the file's order
    assert result["status"] == AT_BUDGET and not result["shown"]
    assert "0 of the last 3; 3 of 6 in all" in result["detail"]


def test_the_shipped_cards_say_what_their_logs_say():
    log = [json.loads(line) for line in (CHECKPOINTS / "reflow" / "quality_log.jsonl").read_text().splitlines()]
    line = convergence_line(log)
    assert line in (CHECKPOINTS / "reflow" / "README.md").read_text()
    assert line.startswith(f"Training: {convergence(log)['status']}: ")


def test_a_card_short_of_its_bar_says_whether_the_run_settled_there():
    # The alternative to meeting a bar: converge short of it, and the card says the family settles there.
    from engines.measure.model_card import bar_outcome_lines
    report = {"dataset": "mnist", "feature_nets": {"lenet": {"confident_share_on_test": 0.9},
                                                   "allconv": {"confident_share_on_test": 0.9}},
              "quality": {"gan": {"nets": {"lenet": {"confident_share": 0.81, "confident_share_se": 0.01},
                                           "allconv": {"confident_share": 0.5, "confident_share_se": 0.01}}}}}
    flat = [row(200, 80, 1.0), row(300, 82, 1.1), row(400, 79, 0.9)]
    falling = [row(200, 120, 2.0), row(300, 100, 1.5), row(400, 80, 1.0)]
    settled, = [line for line in bar_outcome_lines("gan", report, flat) if line]
    assert settled.startswith("Short of the bar in `allconv`, and converged") and "settles short of it" in settled
    slow = [row(200, 90, 1.2), row(300, 85, 1.1), row(400, 80, 1.0)]   # ties, each below the one before
    descending, = [line for line in bar_outcome_lines("gan", report, slow) if line]
    assert "converged by the rule" in descending and "may not have settled" in descending
    budget, = [line for line in bar_outcome_lines("gan", report, falling) if line]
    assert "stopped at budget" in budget and "more training may close the gap" in budget
    report["quality"]["gan"]["nets"]["allconv"]["confident_share"] = 0.71   # 78.9% of real against 80%: 1.2 SE short
    assert "`allconv` (within noise)" in bar_outcome_lines("gan", report, flat)[0]
    report["quality"]["gan"]["nets"]["allconv"]["confident_share"] = 0.9
    assert bar_outcome_lines("gan", report, flat) == []
