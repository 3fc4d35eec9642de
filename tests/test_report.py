"""The measured comparison table: stability summaries, verdicts, tolerances, and reruns that reproduce."""
import copy
import json

import pytest

from engines.checkpoint import CHECKPOINTS
from engines.measure.evaluation import main
from engines.measure.reproduce import compare_reports
from engines.measure.verdicts import FAMILIES, summarise
from engines.measure.stability import quality_summary, stability

CHEAP = ["--threads", "1", "--n", "30", "--diffusion-steps", "5", "--likelihood-n", "3", "--vlb-strata", "6",
         "--ode-steps", "3", "--iwae-k", "4", "--latent-pairs", "2", "--latent-steps", "4",
         "--latent-ddim-steps", "3", "--recon-n", "4", "--inversion-steps", "3", "--speed-steps", "2",
         "--speed-batch", "8"]
SECTIONS = ("quality", "likelihood", "latent", "stability", "speed", "summary", "tolerances")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_stability_of_known_logs(tmp_path):
    write_jsonl(tmp_path / "train_log.jsonl", [{"step": s, "time_s": s, "loss": 2.0} for s in range(1, 201)])
    fds = [10.0, 8.0, 12.0, 6.0, 9.0, 6.0]
    write_jsonl(tmp_path / "quality_log.jsonl", [{"step": 100 * (i + 1), "n": 50, "confident_share": 0.9,
                                                   "class_entropy": 0.99 - 0.1 * (i == 2), "frechet_distance": fd}
                                                  for i, fd in enumerate(fds)])
    s = stability(tmp_path)
    loss = s["losses"]["loss"]
    assert loss["last_quarter_cv"] == 0.0 and loss["last_quarter_roughness"] == 0.0 and loss["end"] == 2.0
    assert len(loss["curve"]["step"]) <= 61 and loss["curve"]["step"][-1] == 200
    q = s["quality"]
    # worse by more than 10%: 8 -> 12 and 6 -> 9; best 6 first reached at step 400; final 6
    assert q["times_worse"] == 2 and q["transitions"] == 5
    assert q["best_step"] == 400 and q["final_over_best"] == 1.0
    assert abs(q["min_class_entropy"] - 0.89) < 1e-9 and q["checkpoints"][2]["class_entropy"] == q["min_class_entropy"]


def test_quality_summary_of_a_steady_improvement_never_gets_worse():
    q = quality_summary([{"step": i, "frechet_distance": 100.0 / i} for i in range(1, 9)])
    assert q["times_worse"] == 0 and q["final_over_best"] == 1.0 and q["best_step"] == 8


def fake_report(fd):
    quality = {name: {"frechet_distance": v, "precision": 0.7, "recall": 0.6, "sharpness": s,
                      "class_entropy": 0.99, "kid": 1.0, "kid_std": 1.0}
               for (name, v), s in zip(fd.items(), (0.6, 0.95, 0.9))}
    return {"quality": quality, "engines": list(FAMILIES)}


def test_verdicts_say_when_the_numbers_disagree_with_folklore():
    agrees = {r["row"]: r for r in summarise(fake_report({"vae": 30.0, "gan": 9.8, "diffusion": 4.1}))}
    assert agrees["Sample quality"]["verdict"] == "agrees"
    assert agrees["Sample quality"]["line"].startswith("Sample quality: diffusion FD 4.1 < GAN FD 9.8 < VAE FD 30.0")
    disagrees = {r["row"]: r for r in summarise(fake_report({"vae": 3.0, "gan": 9.8, "diffusion": 4.1}))}
    assert disagrees["Sample quality"]["verdict"] == "disagrees"
    assert disagrees["Likelihood"]["verdict"] == "cannot say"  # not measured: no verdict is invented


def test_stability_verdict_reads_the_checkpoint_quality_logs():
    def logged(fds, entropy=0.99):
        rows = [{"step": 100 * (i + 1), "frechet_distance": fd, "class_entropy": entropy} for i, fd in enumerate(fds)]
        return {"losses": {}, "quality": quality_summary(rows)}
    report = {"stability": {"vae": logged([9, 8, 7, 6]), "gan": logged([9, 5, 8, 4, 7]),
                            "diffusion": logged([9, 7, 7.5, 5])}}
    row = {r["row"]: r for r in summarise(report)}["Training stability"]
    assert row["verdict"] == "agrees" and "GAN 50%" in row["line"] and "no mode collapse" in row["line"]
    report["stability"]["gan"] = logged([9, 8, 7, 6], entropy=0.5)
    report["stability"]["vae"] = logged([9, 5, 8, 4])
    row = {r["row"]: r for r in summarise(report)}["Training stability"]
    assert row["verdict"] == "disagrees" and "mode collapse seen" in row["line"]


def test_compare_reports_applies_the_tolerances():
    report = {"quality": {"gan": {"frechet_distance": 100.0, "precision": 0.5, "seconds_per_sample": 0.1}},
              "likelihood": {"diffusion": {"ode_bpd": 2.0}}, "run_time_s": 10.0, "n": 1000}
    rerun = copy.deepcopy(report)
    rerun["quality"]["gan"].update(frechet_distance=102.0, seconds_per_sample=9.0)  # 2% off; timing ignored
    rerun["run_time_s"] = 99.0
    assert compare_reports(report, rerun) == []
    rerun["quality"]["gan"]["frechet_distance"] = 110.0
    rerun["likelihood"]["diffusion"]["ode_bpd"] = 2.1
    rerun["n"] = 999
    problems = compare_reports(report, rerun)
    assert len(problems) == 3 and any("ode_bpd" in p for p in problems)


def test_bad_settings_are_refused(capsys):
    assert main(["--likelihood-n", "0", "--out", "/nonexistent/report.json"]) == 2
    assert "likelihood-n" in capsys.readouterr().err


@pytest.mark.slow
def test_a_cheap_evaluation_reproduces_within_tolerance(tmp_path, capsys):
    first = tmp_path / "a" / "report.json"
    assert main(CHEAP + ["--out", str(first)]) == 0
    report = json.loads(first.read_text())
    assert all(k in report for k in SECTIONS) and (tmp_path / "a" / "report.md").is_file()
    assert [r["row"] for r in report["summary"]] == ["Objective", "Training stability", "Sample quality",
                                                      "Likelihood", "Latent space", "Speed"]
    # --check reruns the recorded command and compares every number within the report's tolerances
    assert main(["--check", str(first), "--out", str(tmp_path / "b" / "report.json")]) == 0
    assert "reproduced" in capsys.readouterr().out


REPORT = json.loads((CHECKPOINTS / "report.json").read_text())


def test_committed_report_has_what_the_model_cards_and_app_read():
    for key in ("quality", "classifier", "n", "seed", "run_time_s", "hardware", "command"):
        assert key in REPORT
    for name in ("real (train)", *FAMILIES):
        row = REPORT["quality"][name]
        for key in ("confident_share", "mean_confidence", "class_histogram", "class_entropy", "frechet_distance",
                    "kid"):
            assert key in row


def test_committed_report_has_every_measured_section():
    for key in SECTIONS:
        assert key in REPORT, key
    for name in FAMILIES:
        assert {"precision", "recall", "sharpness"} <= set(REPORT["quality"][name])
        assert name in REPORT["likelihood"] and name in REPORT["latent"] and name in REPORT["stability"]
    assert REPORT["likelihood"]["gan"]["bpd"] is None
    assert REPORT["likelihood"]["vae"]["iwae_k"] >= 64
    assert len(REPORT["summary"]) == 6 and all(r["verdict"] for r in REPORT["summary"])


def test_model_cards_show_bits_per_dim_and_precision_recall_where_measured():
    from engines.measure.model_card import card
    info = json.loads((CHECKPOINTS / "vae" / "training_info.json").read_text())
    without_likelihood = {k: v for k, v in REPORT.items() if k != "likelihood"}   # as older reports were
    assert "Likelihood:" not in card("vae", info, without_likelihood)
    assert f"IWAE (k = {REPORT['likelihood']['vae']['iwae_k']})" in card("vae", info, REPORT)
    report = copy.deepcopy(REPORT)
    report["quality"]["vae"].update(precision=0.81, recall=0.55, sharpness=0.6)
    report["likelihood"] = {"vae": {"elbo_bpd": 1.52, "iwae_bpd": 1.5, "iwae_k": 64, "n": 1000}}
    text = card("vae", info, report)
    assert "IWAE (k = 64) 1.500 bits/dim" in text and "| 0.81 | 0.55 | 0.6 |" in text


def test_report_md_and_model_cards_are_what_the_code_makes_of_the_committed_json(tmp_path):
    """No number is typed by hand: report.md, its verdicts and every model card are regenerated from the
    committed JSON and must match the committed files byte for byte (`python -m engines.model_card` and
    `python -m engines.evaluate` write them)."""
    from engines.measure.model_card import card
    from engines.measure.report_markdown import write_markdown
    assert summarise(REPORT) == REPORT["summary"], "verdicts in report.json are stale: rerun engines.evaluate"
    write_markdown(REPORT, tmp_path / "report.md")
    assert (tmp_path / "report.md").read_text() == (CHECKPOINTS / "report.md").read_text()
    for name in ("vae", "gan", "diffusion", "classifier"):
        info = json.loads((CHECKPOINTS / name / "training_info.json").read_text())
        assert card(name, info, REPORT) == (CHECKPOINTS / name / "README.md").read_text(), \
            f"checkpoints/mnist/{name}/README.md is stale: run python -m engines.model_card"
