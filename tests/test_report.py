"""The measured comparison table: stability summaries, verdicts, tolerances, and reruns that reproduce."""
import copy
import json

import pytest

from engines.checkpoint import CHECKPOINTS
from engines.measure.evaluation import main
from engines.measure.reproduce import compare_reports
from engines.measure.stability import quality_summary, stability
from engines.measure.verdicts import NOT_COMPARED, summarise
from engines.registry import families

SEED = ["vae", "gan", "diffusion"]   # the seed's three families, whose folklore the table checks
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


def fake_report(fd, se=1.0, allconv_fd=None):
    """Quality rows in two feature nets: FD per family (allconv: the same unless given), with one SE for all."""
    def net(v):
        return {"frechet_distance": v, "frechet_distance_se": se, "precision": 0.7, "precision_se": 0.01,
                "recall": 0.6, "recall_se": 0.01, "coverage": 0.5, "coverage_se": 0.01, "density": 1.0,
                "density_se": 0.01, "confident_share": 0.9, "confident_share_se": 0.01, "class_entropy": 0.99,
                "kid": 1.0, "kid_std": 1.0}
    allconv_fd = allconv_fd or fd
    quality = {name: {"sharpness": s, "sharpness_se": 0.01, "nets": {"lenet": net(fd[name]),
                                                                     "allconv": net(allconv_fd[name])}}
               for name, s in zip(fd, (0.6, 0.95, 0.9, 0.6, 0.9))}
    return {"quality": quality, "engines": list(SEED)}


def quality_checks(report):
    row = {r["row"]: r for r in summarise(report)}["Sample quality"]
    return row, [c["verdict"] for c in row["checks"]]


def test_verdicts_say_when_the_numbers_disagree_with_folklore():
    row, verdicts = quality_checks(fake_report({"vae": 30.0, "gan": 9.8, "diffusion": 4.1}))
    assert verdicts[:3] == ["agrees"] * 3          # diffusion < GAN < VAE, far beyond 2 SEs
    assert "[lenet] FD diffusion 4.1 ± 1.0 vs GAN 9.8 ± 1.0" in row["line"]
    row, verdicts = quality_checks(fake_report({"vae": 3.0, "gan": 9.8, "diffusion": 4.1}))
    assert verdicts[:3] == ["agrees", "tie", "disagrees"]   # diffusion 4.1 vs VAE 3.0: within 2 SEs
    assert row["verdict"].startswith("mixed: ") and "1 disagrees" in row["verdict"]
    assert {r["row"]: r for r in summarise(fake_report({"vae": 3.0, "gan": 9.8, "diffusion": 4.1}))}[
        "Likelihood"]["verdict"] == "cannot say"   # not measured: no verdict is invented


def test_a_difference_within_two_standard_errors_is_a_tie_and_a_flip_between_nets_is_said():
    _, verdicts = quality_checks(fake_report({"vae": 30.0, "gan": 9.8, "diffusion": 8.0}, se=1.0))
    assert verdicts[0] == "tie"                     # 8.0 vs 9.8: 1.8 < 2 * sqrt(2)
    _, verdicts = quality_checks(fake_report({"vae": 30.0, "gan": 9.8, "diffusion": 4.1},
                                             allconv_fd={"vae": 30.0, "gan": 4.1, "diffusion": 9.8}))
    assert verdicts[0] == "depends on the feature net"


MEASURED = {"weights": "ema", "ema_decay": 0.995, "samples": 1000, "checkpoints": 15, "check_every": 100,
            "steps": 1500}


def measured_alike(record: dict, **change) -> dict:
    """A 2-D study record that says what it was measured from: the study's EMA setting unless changed."""
    return {**record, "measured": {**MEASURED, **change}}


def test_stability_verdict_rests_on_the_runs_across_seeds_not_on_one_image_run():
    def logged(fds, entropy=0.99):
        rows = [{"step": 100 * (i + 1), "frechet_distance": fd, "class_entropy": entropy} for i, fd in enumerate(fds)]
        return {"losses": {}, "quality": quality_summary(rows)}
    report = {"stability": {"vae": logged([9, 8, 7, 6]), "gan": logged([9, 5, 8, 4, 7]),
                            "diffusion": logged([9, 7, 7.5, 5])}}
    row = {r["row"]: r for r in summarise(report)}["Training stability"]
    assert row["verdict"] == "cannot say" and "one training run per family" in row["line"]
    family = {"collapse_rate": 0.05, "collapse_rate_se": 0.05, "oscillation_rate": 0.1,
              "oscillation_rate_se": 0.07}
    gan = {**family, "collapse_rate": 0.6, "collapse_rate_se": 0.11, "oscillation_rate": 0.15}
    report["seeds"] = {"settings": {"seeds": list(range(20))},
                       "families": {"vae": measured_alike(family), "diffusion": measured_alike(family),
                                    "gan": measured_alike(gan)}}
    row = {r["row"]: r for r in summarise(report)}["Training stability"]
    # 12/20 vs 1/20: Fisher's exact p < 0.001; 3/20 vs 2/20: p = 1, which twenty seeds cannot tell
    assert [c["verdict"] for c in row["checks"]] == ["agrees", "cannot say at 20 seeds"] * 2
    assert row["verdict"] == "mixed: 2 agrees, 2 cannot say at 20 seeds"
    assert "GAN 12/20 (0.60, 95% CI 0.36-0.81) vs VAE 1/20 (0.05, 95% CI 0.00-0.25)" in row["line"]
    assert "detectable at 20 seeds with 80% power: 0.53 against 0.10, a difference of 0.43" in row["line"]
    assert "± 0.00" not in row["line"] and "not a replication" not in row["line"] and row["dataset_independent"]
    row = {r["row"]: r for r in summarise({**report, "dataset": "fashion"})}["Training stability"]
    assert "the same experiment, with the same numbers, as the MNIST report's, not a replication" in row["line"]




def race_entry(engine, nfe, fd, line="ddim", se=0.1):
    return {"engine": engine, "line": line, "nfe": nfe, "options": {"steps": nfe},
            "frechet_by_net": {net: {"frechet_distance": fd, "frechet_distance_se": se}
                               for net in ("lenet", "allconv")}}


# DDIM-2 clearly worse than the diffusion GAN's FD 6.0, DDIM-10 better; DDIM-4 within the noise of it
RACE = ({"n": 500, "nfe_targets": [2, 4, 10], "rows": [
    race_entry("diffusion", 2, 50.0), race_entry("diffusion", 4, 6.1), race_entry("diffusion", 10, 5.0),
    race_entry("diffusion_gan", 4, 6.0, line=None)]}, "")


def test_the_hybrids_row_checks_each_hybrid_against_its_parents():
    fd = {"vae": 30.0, "gan": 9.8, "diffusion": 4.1, "latent_diffusion": 12.0, "diffusion_gan": 6.0}
    report = fake_report(fd)
    report["quality"]["diffusion_gan"]["sharpness"] = 0.955       # GAN 0.95 ± 0.01 each: within 10%, by TOST
    report["speed"] = {"batch": 8, "rows": [
        {"engine": "diffusion", "sampler": "ddim", "steps": 10, "nfe": 10, "ms_per_sample": 40.0},
        {"engine": "diffusion", "sampler": "ddpm", "steps": 1000, "nfe": 1000, "ms_per_sample": 900.0,
         "extrapolated": True}, {"engine": "diffusion_gan", "nfe": 4, "ms_per_sample": 0.3}]}
    row = {r["row"]: r for r in summarise(report, RACE)}["Hybrids"]
    verdicts = {c["claim"]: c["verdict"] for c in row["checks"][:2]}
    assert verdicts["diffusion GAN as sharp as the GAN"] == "agrees"
    # FD 5.0 <= the hybrid's 6.0 at 10 NFE: at most 10 x 4 / 0.3 = 133x; at 2 NFE clearly worse, at 4 a tie (not
    # counted as failing): at least 3 x 4 / 0.3 = 40x; 4 ms per evaluation from the speed section's DDIM-10
    assert verdicts["diffusion GAN far faster than diffusion"] == "agrees"
    assert "between 40.0x and 133.3x" in row["checks"][1]["detail"] and "900" not in row["line"]
    # latent diffusion FD 12 < VAE 30: agrees; precision and recall equal (0.7, 0.6): ties
    assert [c["verdict"] for c in row["checks"][2:]] == ["agrees", "tie", "tie"]
    assert row["verdict"] == "mixed: 3 agrees, 2 tie" and set(row["cells"]) == {"latent_diffusion", "diffusion_gan"}
    report["quality"]["diffusion_gan"]["sharpness"] = 0.6          # blurrier than the GAN, significantly
    report["speed"]["rows"][2]["ms_per_sample"] = 30.0             # at most 40 / 30: not an order of magnitude
    row = {r["row"]: r for r in summarise(report, RACE)}["Hybrids"]
    assert [c["verdict"] for c in row["checks"][:2]] == ["disagrees", "disagrees"]
    report["speed"]["rows"][2]["ms_per_sample"] = 2.0              # between 2x and 20x: the bounds cannot say
    report["quality"]["diffusion_gan"].update(sharpness=0.9, sharpness_se=0.1)   # 0.9 ± 0.1 vs 0.95: neither
    row = {r["row"]: r for r in summarise(report, RACE)}["Hybrids"]
    assert [c["verdict"] for c in row["checks"][:2]] == ["cannot say", "cannot say"]
    # No raced solver reaches it: a lower bound only. DDIM-4 clearly worse too now: every raced NFE (up to 10) is
    # worse beyond 2 SE, so matched quality costs at least 11 x 4 / 2 = 22x: agrees; at 30 ms, 11 x 4 / 30: cannot say
    unreached = ({**RACE[0], "rows": [race_entry("diffusion", 2, 50.0), race_entry("diffusion", 4, 9.0),
                                      race_entry("diffusion", 10, 8.0), RACE[0]["rows"][3]]}, "")
    check_ = {r["row"]: r for r in summarise(report, unreached)}["Hybrids"]["checks"][1]
    assert check_["verdict"] == "agrees" and "at least 11 evaluations, 44.0 ms/sample" in check_["detail"]
    assert "at least 22.0x" in check_["detail"] and "a lower bound only" in check_["detail"]
    report["speed"]["rows"][2]["ms_per_sample"] = 30.0
    check_ = {r["row"]: r for r in summarise(report, unreached)}["Hybrids"]["checks"][1]
    assert check_["verdict"] == "cannot say" and "at least 1.5x" in check_["detail"]
    unreached[0]["rows"][1] = race_entry("diffusion", 4, 6.1)    # DDIM-4 within the noise: bound at 2 NFE
    assert "at least 3 evaluations" in {r["row"]: r for r in summarise(report, unreached)}["Hybrids"]["checks"][1][
        "detail"]
    unreached[0]["rows"][0] = race_entry("diffusion", 2, 6.1)    # not one clearly worse: no bound at all
    assert {r["row"]: r for r in summarise(report, unreached)}["Hybrids"]["checks"][1]["verdict"] == \
        "cannot say: no quality-matched measurement"
    row = {r["row"]: r for r in summarise(report, (None, "no speed race"))}["Hybrids"]
    assert row["checks"][1]["verdict"] == "cannot say: no quality-matched measurement"
    assert "Hybrids" not in {r["row"] for r in summarise(fake_report({"vae": 3.0, "gan": 9.8, "diffusion": 4.1}))}


def test_a_registered_family_is_reported_without_code_that_names_it(monkeypatch):
    """A family is one record: register a throwaway one and the verdict table, report.md and the evaluation's
    choice of families read it from the registry; the seed's claims, which name the families they compare, are
    checked as before and none is invented for it."""
    from dataclasses import replace

    from engines import registry
    from engines.measure.evaluation import parse_args, selected
    from engines.measure.report_markdown import likelihood_lines, speed_lines, summary_lines
    monkeypatch.setattr(registry, "FAMILIES", dict(registry.FAMILIES))
    registry.register_family(replace(registry.family("gan"), name="toy_gan", title="toy GAN",
                                     no_likelihood="none: a test", objective="a test's game", quality_bar=None))
    report = fake_report({"vae": 30.0, "gan": 9.8, "diffusion": 4.1, "toy_gan": 20.0})
    report.update(engines=[*SEED, "toy_gan"], seed=0, run_time_s=1.0, hardware="cpu",
                  likelihood={"unit": "bits/dim", "n": 3, "toy_gan": {"bpd": None, "note": "none: a test"}},
                  speed={"batch": 8, "note": "n", "rows": [{"engine": "toy_gan", "nfe": 1, "ms_per_sample": 2.0}]})
    rows = {r["row"]: r for r in summarise(report)}
    assert rows["Sample quality"]["cells"]["toy_gan"].startswith("[lenet] FD 20.0 ± 1.0")
    assert rows["Objective"]["cells"]["toy_gan"] == "a test's game" and "toy_gan" in rows["Speed"]["cells"]
    assert [c["verdict"] for c in rows["Sample quality"]["checks"][:3]] == ["agrees"] * 3   # the seed's claims only
    assert "Hybrids" not in rows
    report["summary"] = summarise(report)
    assert "| claim | folklore | VAE | GAN | diffusion | toy GAN | verdict |" in summary_lines(report)
    assert "- GAN: none: a test." in likelihood_lines(report)                  # the GAN's engine words it
    assert any(line.startswith("| toy GAN | - | - | 1 | 2.00 |") for line in speed_lines(report))
    assert "toy_gan" in parse_args([]).engines and [f.name for f in selected(["toy_gan", "vae"])] == ["vae", "toy_gan"]


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


def test_the_hybrids_row_judges_as_stable_as_diffusion_on_the_seed_study():
    report = fake_report({"vae": 30.0, "gan": 9.8, "diffusion": 4.1, "diffusion_gan": 6.0})
    calm = {"collapse_rate": 0.0, "collapse_rate_se": 0.0, "oscillation_rate": 0.05, "oscillation_rate_se": 0.05}
    report["seeds"] = {"settings": {"seeds": list(range(20)), "steps": {"diffusion": 1500, "diffusion_gan": 3000}},
                       "families": {"diffusion": measured_alike(calm),
                                    "diffusion_gan": measured_alike({**calm, "oscillation_rate": 0.0,
                                                                     "oscillation_rate_se": 0.0},
                                                                    steps=3000, check_every=200)}}
    def stability_checks():
        row = {r["row"]: r for r in summarise(report)}["Hybrids"]
        return [c for c in row["checks"] if c["claim"] == "diffusion GAN as stable as diffusion"], row
    checks, row = stability_checks()
    # 0/20 vs 0/20: the 90% Newcombe interval, +-0.12, lies inside the margin +-0.15 (TOST): agrees;
    # 0/20 vs 1/20: the interval reaches -0.2 and Fisher's test finds nothing: twenty seeds cannot say
    assert [c["verdict"] for c in checks] == ["agrees", "cannot say at 20 seeds"]
    assert "(3000 vs 1500 steps)" in checks[0]["detail"] and "across seeds" in row["line"]
    assert "equivalence margin ±0.15" in checks[0]["detail"]
    report["seeds"]["families"]["diffusion_gan"]["collapse_rate"] = 0.5    # 10 of 20 collapse: Fisher p < 0.001
    assert [c["verdict"] for c in stability_checks()[0]][0] == "disagrees"
    report["seeds"]["families"]["diffusion_gan"]["collapse_rate"] = 0.1    # 2 of 20 vs 0: neither
    assert [c["verdict"] for c in stability_checks()[0]][0] == "cannot say at 20 seeds"
    report["seeds"]["families"]["diffusion"]["oscillation_rate"] = 0.6     # the hybrid far calmer: as stable
    assert [c["verdict"] for c in stability_checks()[0]][1] == "agrees"
    del report["seeds"]["families"]["diffusion_gan"]                        # not studied: no check, no claim
    assert stability_checks()[0] == []


def seeds_report(records: dict) -> dict:
    return {"seeds": {"settings": {"seeds": list(range(20)), "samples": 1000, "steps": 1500, "check_every": 100},
                      "families": records}}


def test_families_measured_unlike_are_not_compared():
    """Like for like (issue 26): two families of the 2-D study are compared only when their records were measured
    from the same kind of weights, on as many samples, at as many checkpoints; otherwise the check is refused and
    says how they differ, and the row's verdict shows it."""
    calm = {"collapse_rate": 0.0, "collapse_rate_se": 0.0, "oscillation_rate": 0.05, "oscillation_rate_se": 0.05,
            "short_rate": 0.0, "short_rate_se": 0.0}
    gan = {**calm, "collapse_rate": 0.6, "collapse_rate_se": 0.11}

    def stability(records):
        row = {r["row"]: r for r in summarise(seeds_report(records))}["Training stability"]
        return [c["verdict"] for c in row["checks"]], row
    alike = {"gan": measured_alike(gan), "vae": measured_alike(calm), "diffusion": measured_alike(calm)}
    verdicts, row = stability(alike)
    assert NOT_COMPARED not in verdicts and verdicts[0] == "agrees"
    for change, said in (({"weights": "raw"}, "weights raw vs ema"), ({"samples": 500}, "samples 500 vs 1000"),
                         ({"checkpoints": 10}, "checkpoints 10 vs 15")):
        verdicts, row = stability({**alike, "gan": measured_alike(gan, **change)})
        assert verdicts == [NOT_COMPARED] * 4, change           # the GAN against both others, both rates
        assert f"({said}): {NOT_COMPARED}" in row["line"] and row["verdict"] == NOT_COMPARED
        verdicts, _ = stability({**alike, "diffusion": measured_alike(calm, **change)})
        assert verdicts == ["agrees", "cannot say at 20 seeds", NOT_COMPARED, NOT_COMPARED]   # GAN vs VAE still
    # the steps may differ (a hybrid trains longer, at as many checkpoints): not a difference in the measurement
    verdicts, _ = stability({**alike, "gan": measured_alike(gan, steps=3000, check_every=200)})
    assert NOT_COMPARED not in verdicts
    # a study made before records said what they were measured from is what its code did: diffusion from its EMA,
    # the others from their raw weights, so the GAN against diffusion is refused, the GAN against the VAE is not
    verdicts, row = stability({"gan": gan, "vae": calm, "diffusion": calm})
    assert verdicts == ["agrees", "cannot say at 20 seeds", NOT_COMPARED, NOT_COMPARED]
    assert "weights raw vs ema" in row["line"] and "no raw-weight sensitivity in this study" in row["line"]
    # and the hybrids' "as stable as diffusion" likewise
    report = {**fake_report({"vae": 30.0, "gan": 9.8, "diffusion": 4.1, "diffusion_gan": 6.0}),
              **seeds_report({"diffusion": measured_alike(calm), "diffusion_gan": measured_alike(calm, weights="raw")})}
    row = {r["row"]: r for r in summarise(report, RACE)}["Hybrids"]
    assert [c["verdict"] for c in row["checks"] if "compares" in c] == [NOT_COMPARED] * 2


def test_the_raw_weights_verdicts_are_shown_beside_the_emas_and_never_change_one_silently():
    calm = {"collapse_rate": 0.0, "collapse_rate_se": 0.0, "oscillation_rate": 0.05, "oscillation_rate_se": 0.05}

    def record(ema: dict, raw_rates: dict) -> dict:
        sensitivity = {**calm, **raw_rates, "measured": {k: v for k, v in {**MEASURED, "weights": "raw"}.items()
                                                         if k != "ema_decay"}}
        return {**measured_alike({**calm, **ema}), "sensitivity": sensitivity}
    # the referee's case: from the raw weights diffusion oscillates in 18/20 seeds, the GAN in 6; from the EMA 1 vs 3
    records = {"gan": record({"oscillation_rate": 0.15}, {"oscillation_rate": 0.3}),
               "vae": record({}, {}), "diffusion": record({}, {"oscillation_rate": 0.9})}
    row = {r["row"]: r for r in summarise(seeds_report(records))}["Training stability"]
    oscillation = [c for c in row["checks"] if c["compares"] == ["gan", "diffusion", "oscillation_rate"]][0]
    assert oscillation["verdict"] == "cannot say at 20 seeds"            # 3/20 vs 1/20, the EMA's: the verdict
    assert oscillation["sensitivity"]["weights"] == "raw" and oscillation["sensitivity"]["verdict"] == "disagrees"
    assert "6/20" in oscillation["sensitivity"]["detail"] and "18/20" in oscillation["sensitivity"]["detail"]
    assert row["verdict"] == "cannot say at 20 seeds"                    # the raw weights' verdict is not in it
    assert ("from the raw weights instead of the EMA (sensitivity): 1 of 4 verdicts change: GANs oscillate more "
            "often (GAN vs diffusion, oscillation rate): cannot say at 20 seeds -> disagrees") in row["line"]
    assert row["sensitivity"] in row["line"]
    records["diffusion"] = record({}, {})
    row = {r["row"]: r for r in summarise(seeds_report(records))}["Training stability"]
    assert "from the raw weights instead of the EMA (sensitivity): no verdict changes (4 checks)" in row["line"]
    # report.md shows both kinds of weights per family, what each was measured from, and the sensitivity line
    from engines.measure.report_markdown import seeds_lines
    for r in records.values():
        r.update(short_rate=0.0, short_rate_se=0.0, final_modes_covered_mean=8.0, final_modes_covered_std=0.0,
                 final_on_mode_mean=0.8, final_on_mode_std=0.01)
        r["sensitivity"].update({k: r[k] for k in ("short_rate", "final_modes_covered_mean", "final_modes_covered_std",
                                                   "final_on_mode_mean", "final_on_mode_std")})
    report = seeds_report(records)
    report["seeds"]["settings"].update(distribution_title="Ring of 8 Gaussians", lr={"gan": 1e-3})
    report["seeds"]["definitions"] = {"weights": "EMA for all"}
    report["summary"] = summarise(report)
    text = "\n".join(seeds_lines(report))
    assert "| GAN | EMA | 0/20" in text and "| GAN (sensitivity) | raw | 0/20" in text
    assert "- GAN: EMA weights (decay 0.995), 1000 samples at 15 checkpoints (every 100 of 1500 steps); " \
           "sensitivity: raw weights, 1000 samples at 15 checkpoints" in text
    assert "- Training stability: from the raw weights instead of the EMA (sensitivity): no verdict changes" in text


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_committed_reports_compare_only_families_measured_alike(dataset):
    """Every pair of 2-D study families that a verdict compares (the stability claims, the hybrids' "as stable
    as") was measured alike in the committed report: the same weights (EMA), samples and checkpoints, with the
    raw weights beside as the sensitivity check. Fails on a report made before issue 26 (diffusion from its
    EMA, the rest from raw weights): re-measure its seeds section (`--into REPORT --sections seeds`)."""
    from engines.checkpoint import checkpoints_dir
    from engines.measure.verdicts import HYBRID_CLAIMS, STABILITY_CLAIMS, seed_records, unlike
    seeds = json.loads((checkpoints_dir(dataset) / "report.json").read_text())["seeds"]
    primary, raw = seed_records(seeds), seed_records(seeds, sensitivity=True)
    pairs = [(STABILITY_CLAIMS["family"], other) for other in STABILITY_CLAIMS["than"]]
    pairs += [(hybrid, parent) for _, how, hybrid, parent in HYBRID_CLAIMS if how == "as_stable_as"]
    pairs = [(a, b) for a, b in pairs if a in primary and b in primary]
    assert pairs
    for a, b in pairs:
        assert unlike(primary[a]["measured"], primary[b]["measured"]) == [], (dataset, a, b)
        assert primary[a]["measured"]["weights"] == "ema", (dataset, a)
        assert a in raw and b in raw and unlike(raw[a]["measured"], raw[b]["measured"]) == [], (dataset, a, b)
    for row in json.loads((checkpoints_dir(dataset) / "report.json").read_text())["summary"]:
        assert all(c["verdict"] != NOT_COMPARED for c in row["checks"]), row["row"]


def test_into_re_measures_one_section_and_keeps_the_rest_and_the_command(tmp_path, monkeypatch, capsys):
    """`--into REPORT --sections seeds` measures the seeds section with the report's own recorded settings and
    merges it in: the other sections and the recorded command (what --check reruns) stay as they were."""
    import engines.measure.evaluation as evaluation
    report = copy.deepcopy(REPORT)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    calls = []

    def fake_evaluate(names, n, seed, diffusion_options, sections, settings, dataset):
        calls.append((names, n, seed, sections, settings["seed_runs"], dataset, evaluation.torch.get_num_threads()))
        return {"seeds": {"made": "fresh"}, "section_seconds": {"seeds": 12.5}, "hardware": "test machine",
                "feature_nets": {"lenet": "as loaded now"}}
    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    monkeypatch.setattr(evaluation, "summarise", lambda r: [{"row": "x", "line": "summarised"}])
    monkeypatch.setattr(evaluation, "write_markdown", lambda r, p, others: p.write_text("md"))
    threads = evaluation.torch.get_num_threads()
    try:
        assert main(["--into", str(path), "--sections", "seeds"]) == 0
    finally:
        evaluation.torch.set_num_threads(threads)
    recorded = evaluation.parse_args(report["command"].split()[3:])
    assert calls == [(recorded.engines, recorded.n, recorded.seed, ["seeds"], recorded.seed_runs, recorded.dataset,
                      recorded.threads or threads)]
    merged = json.loads(path.read_text())
    assert merged["seeds"] == {"made": "fresh"} and merged["command"] == report["command"]
    assert merged["feature_nets"] == {"lenet": "as loaded now"}   # the nets (and gates) the new section used
    assert all(merged[k] == report[k] for k in ("quality", "likelihood", "latent", "stability", "speed"))
    assert merged["section_seconds"]["seeds"] == 12.5 and merged["summary"] == [{"row": "x", "line": "summarised"}]
    assert merged["settings"]["remeasured"]["seeds"] == {
        "command": f"python -m engines.evaluate --into {path} --sections seeds", "hardware": "test machine"}
    kept = lambda settings: {k: v for k, v in settings.items() if k != "remeasured"}   # noqa: E731
    assert kept(merged["settings"]) == kept(report["settings"])
    assert (tmp_path / "report.md").read_text() == "md"
    # any other option would measure otherwise than the recorded command: refused before measuring anything
    assert main(["--into", str(path), "--sections", "seeds", "--seed-runs", "3"]) == 2
    assert "pass only --sections" in capsys.readouterr().err
    assert main(["--into", str(path)]) == 2 and "--into needs --sections" in capsys.readouterr().err
    assert len(calls) == 1


def test_into_with_engines_adds_a_family_to_a_report_and_keeps_the_others_numbers(tmp_path, monkeypatch):
    """`--into REPORT --sections quality speed --engines NAME`: only that family is measured; its entries join
    each section in registry order (its speed rows among the others'), every other family's numbers stay, and the
    report's engine list gains it. (Here the latent diffusion model joins a copy of the report without it.)"""
    import engines.measure.evaluation as evaluation
    NEW = "latent_diffusion"
    report = copy.deepcopy(REPORT)
    report["engines"] = [e for e in report["engines"] if e != NEW]
    report["quality"].pop(NEW, None)
    report["speed"]["rows"] = [r for r in report["speed"]["rows"] if r["engine"] != NEW]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    calls = []

    def fake_evaluate(names, n, seed, diffusion_options, sections, settings, dataset):
        calls.append((names, sections))
        return {"quality": {"real (train)": "again", NEW: "fresh"},
                "speed": {"batch": 64, "note": "new", "rows": [{"engine": NEW, "nfe": 20, "ms_per_sample": 1.0}]},
                "section_seconds": {"quality": 1.0, "speed": 2.0}, "hardware": "test machine",
                "feature_nets": report["feature_nets"]}
    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    monkeypatch.setattr(evaluation, "summarise", lambda r: [{"row": "x", "line": "summarised"}])
    monkeypatch.setattr(evaluation, "write_markdown", lambda r, p, others: p.write_text("md"))
    threads = evaluation.torch.get_num_threads()
    try:
        assert main(["--into", str(path), "--sections", "quality", "speed", "--engines", NEW]) == 0
    finally:
        evaluation.torch.set_num_threads(threads)
    assert calls == [([NEW], ["quality", "speed"])]
    merged = json.loads(path.read_text())
    order = [f.name for f in families()]
    assert merged["engines"] == [name for name in order if name in [*report["engines"], NEW]]
    assert list(merged["quality"]) == ["real (train)", *merged["engines"]] and merged["quality"][NEW] == "fresh"
    assert all(merged["quality"][k] == v for k, v in report["quality"].items())      # the real rows too: kept
    engines_of_rows = [r["engine"] for r in merged["speed"]["rows"]]
    assert engines_of_rows == sorted(engines_of_rows, key=order.index) and NEW in engines_of_rows
    assert [r for r in merged["speed"]["rows"] if r["engine"] != NEW] == report["speed"]["rows"]
    assert merged["section_seconds"] == report["section_seconds"] and merged["command"] == report["command"]
    assert f"quality ({NEW})" in merged["settings"]["remeasured"]
    assert main(["--into", str(path), "--sections", "seeds", "--engines", NEW]) == 2   # no 2-D version
    # a report whose command names its families (Fashion-MNIST's): the newcomer joins that list, so --check
    # reruns it too
    report.update(command="python -m engines.evaluate --dataset fashion --engines vae gan diffusion --threads 1",
                  engines=["vae", "gan", "diffusion"])
    path.write_text(json.dumps(report))
    try:
        assert main(["--into", str(path), "--sections", "quality", "--engines", NEW]) == 0
    finally:
        evaluation.torch.set_num_threads(threads)
    assert json.loads(path.read_text())["command"] == ("python -m engines.evaluate --dataset fashion --engines vae "
                                                      f"gan diffusion {NEW} --threads 1")


def test_into_with_engines_keeps_the_per_digit_differences_of_the_families_it_measured_again():
    """A family joining the likelihood section with those it is paired with: their differences join too, and a
    difference between two families not measured again stays as it was."""
    from engines.measure.evaluation import merge_engines
    kept = {"unit": "bits/dim", "n": 300, "vae": "old vae", "diffusion": "old diffusion",
            "diffusion_minus_vae_bpd": "old pair"}
    fresh = {"unit": "bits/dim", "n": 300, "vae": "vae", "diffusion": "diffusion", "flow": "flow",
             "diffusion_minus_vae_bpd": "pair", "flow_minus_vae_bpd": "flow - vae",
             "flow_minus_diffusion_bpd": "flow - diffusion"}
    merged = merge_engines(kept, fresh, ["vae", "diffusion", "flow"])
    assert merged == {**fresh, "unit": "bits/dim"} and list(merged)[:5] == ["unit", "n", "vae", "diffusion", "flow"]
    alone = merge_engines(kept, {"unit": "bits/dim", "n": 300, "flow": "flow"}, ["flow"])
    assert alone == {**kept, "flow": "flow"}      # no per-digit values of the others: their difference stays


def test_the_summary_speaks_of_the_datasets_images():
    report = fake_report({"vae": 30.0, "gan": 9.8, "diffusion": 4.1, "latent_diffusion": 12.0})
    assert "digits" in json.dumps(summarise(report))
    fashion = json.dumps(summarise({**report, "dataset": "fashion"}))
    assert "digit" not in fashion and "better images than the VAE" in fashion


def test_check_of_any_report_never_writes_over_a_committed_report(tmp_path, monkeypatch, capsys):
    # `--check checkpoints/fashion/report.json` (as Fashion's report.md says) once wrote its rerun over the
    # committed MNIST report: the rerun's --out came from the default --dataset. It goes to a temporary folder.
    import engines.measure.evaluation as evaluation
    from engines.checkpoint import checkpoints_dir
    committed = {d: (checkpoints_dir(d) / "report.json").read_bytes() for d in ("mnist", "fashion")}
    outs = []

    def fake_run(argv):
        outs.append(argv[argv.index("--out") + 1])
        return json.loads((checkpoints_dir("fashion") / "report.json").read_text())
    monkeypatch.setattr(evaluation, "run", fake_run)
    for argv in (["--check", str(checkpoints_dir("fashion") / "report.json")],
                 ["--check", str(checkpoints_dir("fashion") / "report.json"), "--dataset", "fashion"]):
        assert main(argv) == 0
        assert "reproduced" in capsys.readouterr().out
    assert all("evaluate-check-" in out for out in outs), outs
    assert committed == {d: (checkpoints_dir(d) / "report.json").read_bytes() for d in ("mnist", "fashion")}
    assert main(["--check", str(checkpoints_dir("fashion") / "report.json"), "--out", str(tmp_path / "r.json")]) == 0
    assert outs[-1] == str(tmp_path / "r.json")


def test_bad_settings_are_refused(capsys):
    assert main(["--likelihood-n", "0", "--out", "/nonexistent/report.json"]) == 2
    assert "likelihood-n" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.long
def test_a_cheap_evaluation_reproduces_within_tolerance(cheap_report, tmp_path, capsys):
    first = cheap_report      # the cheap evaluation, run once per test run (tests/conftest.py)
    report = json.loads(first.read_text())
    assert all(k in report for k in SECTIONS) and first.with_suffix(".md").is_file()
    assert [r["row"] for r in report["summary"]] == ["Objective", "Training stability", "Sample quality",
                                                      "Likelihood", "Latent space", "Speed",
                                                      "Fidelity against diversity", "Hybrids", "Ask for a class"]
    # --check reruns the recorded command and compares every number within the report's tolerances
    assert main(["--check", str(first), "--out", str(tmp_path / "b" / "report.json")]) == 0
    assert "reproduced" in capsys.readouterr().out


REPORT = json.loads((CHECKPOINTS / "report.json").read_text())


NET_KEYS = ("confident_share", "class_histogram", "class_entropy", "frechet_distance", "kid", "precision", "recall",
            "density", "coverage")
COMPARED = ("confident_share", "frechet_distance", "precision", "recall", "density", "coverage")


def test_committed_report_has_what_the_model_cards_and_app_read():
    for key in ("quality", "feature_nets", "n", "seed", "run_time_s", "hardware", "command"):
        assert key in REPORT
    assert set(REPORT["feature_nets"]) == {"lenet", "allconv"}
    for name in ("real (train)", *REPORT["engines"]):
        for net in REPORT["feature_nets"]:
            row = REPORT["quality"][name]["nets"][net]
            assert set(NET_KEYS) <= set(row), (name, net)


def test_committed_report_has_every_measured_section_with_error_bars():
    for key in SECTIONS + ("seeds",):
        assert key in REPORT, key
    for family in (f for f in families() if f.name in REPORT["engines"]):
        name = family.name
        row = REPORT["quality"][name]
        assert "sharpness_se" in row
        for net in REPORT["feature_nets"]:
            assert all(row["nets"][net][f"{key}_se"] > 0 for key in COMPARED), (name, net)
        assert name in REPORT["likelihood"] and name in REPORT["stability"]
        if family.latent:
            assert REPORT["latent"][name]["slerp"]["step_cv_se"] > 0
    for name in SEED:   # the 2-D study trains the seed's three (and the toy diffusion GAN)
        assert REPORT["seeds"]["families"][name]["collapse_rate_se"] >= 0
    lk = REPORT["likelihood"]
    assert lk["gan"]["bpd"] is None and lk["vae"]["iwae_k"] >= 64
    assert lk["vae"]["n"] == lk["diffusion"]["n"] == lk["n"]     # every likelihood cell on the same digits
    assert lk["diffusion"]["ode_bpd"] >= lk["diffusion"]["ode_floor_bpd"]   # a bound no lower than its floor
    assert lk["vae"]["iwae_bpd_se"] > 0 and lk["diffusion"]["vlb_bpd_se"] > 0 and lk["diffusion"]["ode_bpd_se"] > 0
    assert [r["row"] for r in REPORT["summary"]] == ["Objective", "Training stability", "Sample quality", "Likelihood",
                                                     "Latent space", "Speed", "Fidelity against diversity",
                                                     "Hybrids", "Ask for a class"]
    assert {"latent_diffusion", "diffusion_gan"} <= set(REPORT["quality"])
    words = ("agrees", "disagrees", "tie (within 2 standard errors)", "mixed: ", "not measured", "cannot say")
    assert all(r["verdict"].startswith(words) for r in REPORT["summary"]), [r["verdict"] for r in REPORT["summary"]]


def test_model_cards_show_bits_per_dim_error_bars_and_both_nets_bars():
    from engines.measure.model_card import card
    info = json.loads((CHECKPOINTS / "vae" / "training_info.json").read_text())
    without_likelihood = {k: v for k, v in REPORT.items() if k != "likelihood"}   # as older reports were
    assert "Likelihood:" not in card("vae", info, without_likelihood)
    assert f"IWAE (k = {REPORT['likelihood']['vae']['iwae_k']})" in card("vae", info, REPORT)
    report = copy.deepcopy(REPORT)
    report["quality"]["vae"]["nets"]["allconv"].update(precision=0.81, precision_se=0.02, confident_share=0.5,
                                                      confident_share_se=0.02)
    report["quality"]["vae"]["nets"]["lenet"].update(confident_share=0.63, confident_share_se=0.02)
    report["feature_nets"]["allconv"]["confident_share_on_test"] = 1.0
    report["feature_nets"]["lenet"]["confident_share_on_test"] = 1.0
    report["likelihood"]["vae"].update(iwae_bpd=1.5, iwae_bpd_se=0.02)
    text = card("vae", info, report)
    assert "| vae | allconv |" in text and "| 0.81 ± 0.02 |" in text
    assert "`allconv`: 50.0% recognisable, 50.0 ± 2.0% of the real test digits' 100.0%: does not meet the bar of " \
        "65% (short by 15.0 points)" in text
    # 2 points short with a standard error of 2 points: within noise, and the card says so
    assert "`lenet`: 63.0% recognisable, 63.0 ± 2.0% of the real test digits' 100.0%: does not meet the bar of " \
        "65% (short by 2.0 points, within 2 standard errors: at this n the shortfall is not told from noise)" in text
    assert f"IWAE (k = {report['likelihood']['vae']['iwae_k']}) 1.500 ± 0.020 bits/dim" in text


def test_report_md_and_model_cards_are_what_the_code_makes_of_the_committed_json(tmp_path):
    """No number is typed by hand: report.md, its verdicts and every model card are regenerated from the
    committed JSON and must match the committed files byte for byte (`python -m engines.model_card` and
    `python -m engines.evaluate` write them)."""
    from engines.measure.model_card import card, card_names
    from engines.measure.report_markdown import write_markdown
    assert summarise(REPORT) == REPORT["summary"], "verdicts in report.json are stale: rerun engines.evaluate"
    write_markdown(REPORT, tmp_path / "report.md")
    assert (tmp_path / "report.md").read_text() == (CHECKPOINTS / "report.md").read_text()
    for name in card_names():
        info = json.loads((CHECKPOINTS / name / "training_info.json").read_text())
        assert card(name, info, REPORT) == (CHECKPOINTS / name / "README.md").read_text(), \
            f"checkpoints/mnist/{name}/README.md is stale: run python -m engines.model_card"


def test_the_fashion_report_and_cards_are_what_the_code_makes_of_their_json(tmp_path):
    """The same for Fashion-MNIST: its report.md (its verdicts set beside the committed MNIST report's) and every
    card under checkpoints/fashion/, regenerated byte for byte (`python -m engines.model_card --dataset fashion`)."""
    from engines.checkpoint import checkpoints_dir
    from engines.measure.model_card import card, card_names
    from engines.measure.report_markdown import write_markdown
    root = checkpoints_dir("fashion")
    report = json.loads((root / "report.json").read_text())
    assert report["dataset"] == "fashion" and summarise(report) == report["summary"]
    write_markdown(report, tmp_path / "report.md", {"mnist": REPORT})
    text = (tmp_path / "report.md").read_text()
    assert text == (root / "report.md").read_text()
    assert "## Against MNIST" in text and "--check checkpoints/fashion/report.json" in text
    shipped = [name for name in card_names() if (root / name / "training_info.json").is_file()]
    assert shipped == ["vae", "gan", "diffusion", "flow", "reflow", "latent_diffusion", "diffusion_gan",
                       "conditional_vae", "conditional_gan", "conditional_diffusion", "classifier",
                       "classifier_allconv"]
    for name in shipped:
        info = json.loads((root / name / "training_info.json").read_text())
        assert info["dataset"] == "fashion"
        made = card(name, info, report)
        assert made == (root / name / "README.md").read_text(), \
            f"checkpoints/fashion/{name}/README.md is stale: run python -m engines.model_card --dataset fashion"
        assert made.startswith(f"# {name} (fashion)") and "mlxtend" not in made


def test_the_verdicts_side_by_side_mark_the_claims_that_change():
    from engines.measure.report_markdown import dataset_verdicts_markdown
    a = {"summary": [{"row": "Speed", "verdict": "agrees"}, {"row": "Likelihood", "verdict": "tie (within 2 SE)"}]}
    b = {"summary": [{"row": "Speed", "verdict": "agrees"}, {"row": "Likelihood", "verdict": "disagrees"},
                     {"row": "Hybrids", "verdict": "agrees"}]}
    lines = dataset_verdicts_markdown({"mnist": a, "fashion": b}, {"mnist": "M", "fashion": "F"}).splitlines()
    assert lines[2] == "| claim | M | F | between datasets |"
    assert lines[4:] == ["| Speed | agrees | agrees |  |",
                         "| Likelihood | tie (within 2 SE) | disagrees | **changes** |",
                         "| Hybrids | not measured | agrees |  |"]
    assert dataset_verdicts_markdown({"mnist": a}, {}) == ""
    # the 2-D seed study is one experiment whatever the dataset: the same verdict twice is no replication; and a
    # dataset that cannot say neither agrees nor changes
    study = {"row": "Training stability", "verdict": "cannot say at 20 seeds", "dataset_independent": True}
    a["summary"] += [study, {"row": "Sample quality", "verdict": "agrees"}]
    b["summary"] += [study, {"row": "Sample quality", "verdict": "cannot say: no quality-matched measurement"}]
    lines = dataset_verdicts_markdown({"mnist": a, "fashion": b}, {"mnist": "M", "fashion": "F"}).splitlines()
    assert lines[6:8] == ["| Training stability | cannot say at 20 seeds | cannot say at 20 seeds | not compared: the "
                         "same 2-D study on both, not a replication |",
                         "| Sample quality | agrees | cannot say: no quality-matched measurement | not compared: one "
                         "dataset cannot say |"]


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_summarise_rewrites_a_committed_report_byte_for_byte(dataset, tmp_path):
    """`python -m engines.evaluate --summarise REPORT` recomputes the summary and report.md from the numbers of
    report.json alone: on the committed reports it gives the committed files back, byte for byte."""
    from engines.checkpoint import checkpoints_dir
    root = checkpoints_dir(dataset)
    copy_ = tmp_path / "report.json"
    copy_.write_bytes((root / "report.json").read_bytes())
    assert main(["--summarise", str(copy_)]) == 0
    assert copy_.read_bytes() == (root / "report.json").read_bytes(), "rerun --summarise on the committed report"
    assert copy_.with_suffix(".md").read_bytes() == (root / "report.md").read_bytes()


def test_no_rate_is_given_as_zero_plus_minus_zero_and_no_verdict_uses_an_extrapolated_sampler():
    from engines.checkpoint import checkpoints_dir
    for dataset in ("mnist", "fashion"):
        root = checkpoints_dir(dataset)
        texts = [(root / "report.md").read_text(), *(p.read_text() for p in root.glob("*/README.md"))]
        assert not any("0.00 ± 0.00" in text for text in texts), dataset
        report = json.loads((root / "report.json").read_text())
        for row in report["summary"]:
            assert all("extrapolated" not in c["detail"] for c in row["checks"]), row["row"]


def test_every_screenshot_the_readme_shows_exists():
    import re
    readme = (CHECKPOINTS.parent.parent / "README.md").read_text()
    shots = re.findall(r"\]\((docs/screenshots/[^)]+)\)", readme)
    assert len(shots) >= 8
    for shot in shots:
        assert (CHECKPOINTS.parent.parent / shot).is_file(), shot


def test_the_diffusion_gans_shortfall_is_read_from_its_own_logs(tmp_path):
    """The card's "Why" line: D's mean loss over the second half of the adversarial rows (warm-up rows, without
    g_loss, excluded), its real-fake gap, and the first and last scored checkpoints."""
    from engines.measure.model_card import adversarial_shortfall
    rows = [{"step": 1, "d_loss": 0.5, "d_real": 0.9, "d_fake": 0.1}]                    # warm-up: ignored
    rows += [{"step": s, "d_loss": loss, "g_loss": 0.7, "d_real": 0.6, "d_fake": 0.5}
             for s, loss in ((2, 9.0), (3, 1.2), (4, 1.4))]
    (tmp_path / "train_log.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    scored = [{"step": 2, "n": 50, "frechet_distance": 500.0}, {"step": 4, "n": 50, "frechet_distance": 300.0}]
    (tmp_path / "quality_log.jsonl").write_text("\n".join(json.dumps(r) for r in scored))
    line = adversarial_shortfall(tmp_path)
    assert "averaged 1.300" in line and "gap" not in line and "+0.100" in line
    assert "500 at step 2 to 300 at step 4" in line and "50 samples" in line and "had 4 steps" in line


def test_a_conditional_cards_class_accuracy_is_read_against_its_bar_with_its_error():
    """Above or below the bar only beyond 2 SE; the weakest class by its name."""
    import copy as _copy

    from engines.measure.model_card import asked_lines
    report = _copy.deepcopy(REPORT)
    relative = report["quality"]["conditional_vae"]["conditional"]["relative"]
    relative["lenet"].update(accuracy=0.88, accuracy_se=0.02)
    relative["allconv"].update(accuracy=0.80, accuracy_se=0.02)
    text = "\n".join(asked_lines("conditional_vae", report))
    assert "0.88 ± 0.02 of the real test images'" in text and "a tie with the bar of 90% (within 2 SE)" in text
    assert "below the bar of 90% beyond 2 SE" in text
    k = min(range(10), key=lambda c: relative["lenet"]["per_class"][c])
    assert f"(weakest: {k}, " in text
