"""The words the page adds to its pictures: the comparison check by check (plain_words), "what to look at" (guide)
and what the feature net sees in a grid (recognition). Every number in them comes from a report or a measurement."""
import json

import pytest

from engines.checkpoint import checkpoints_dir
from engines.measure import guide
from engines.measure.plain_words import MEANINGS, check_sentence, meaning, row_in_words, summary_in_words
from engines.measure.recognition import Recognition, recognise
from engines.measure.uncertainty import AGREES, TIE

REPORTS = {name: json.loads((checkpoints_dir(name) / "report.json").read_text()) for name in ("mnist", "fashion")}


@pytest.mark.parametrize("dataset", list(REPORTS))
def test_every_check_of_every_row_becomes_one_sentence_with_its_numbers(dataset):
    report = REPORTS[dataset]
    text = summary_in_words(report)
    for row in report["summary"]:
        lines = row_in_words(row)
        assert lines[0] == f"**{row['row']}** (folklore: {row['folklore']}): {row['verdict']}."
        assert len(lines) == 1 + max(1, len(row["checks"]))
        for check, line in zip(row["checks"], lines[1:]):
            assert line == f"- {check_sentence(check)}" and meaning(check["verdict"]) in line
            # the check's measured numbers are all there, in the same order
            numbers = [token for token in check["detail"].replace("±", " ").split() if token[:1].isdigit()]
            said = line.split("Measured:", 1)[1]
            positions = [said.find(n) for n in numbers]
            assert all(p >= 0 for p in positions), (numbers, said)
        assert "\n".join(lines) in text
    assert " vs " not in text and "[lenet]" not in text


def test_verdicts_read_as_plain_words():
    assert meaning(AGREES) == MEANINGS[AGREES] == "as the folklore says"
    assert meaning(TIE).startswith("a tie")
    assert meaning("cannot say at 20 seeds") == "the measurements cannot tell (at 20 seeds)"
    assert meaning("cannot say: no quality-matched measurement") == \
        "the measurements cannot tell (no quality-matched measurement)"
    assert meaning("cannot say") == "the measurements cannot tell"
    sentence = check_sentence({"claim": "diffusion best", "verdict": "agrees",
                               "detail": "[lenet] FD diffusion 33.8 ± 7.0 vs GAN 89.5 ± 10.6"})
    assert sentence == ("*Diffusion best*: as the folklore says. Measured: in the lenet net, Frechet distance "
                        "diffusion 33.8 ± 7.0 against GAN 89.5 ± 10.6.")


def test_sharpness_words_follow_the_reports_tie_rule():
    assert guide.sharpness_words(0.97, 0.01) == "3% blurrier than real images"
    assert guide.sharpness_words(0.99, 0.01) == "as sharp as real images"      # within 2 SE of 1
    assert guide.sharpness_words(1.10, 0.01).startswith("10% more fine detail")


@pytest.mark.parametrize("dataset", list(REPORTS))
def test_the_landing_guide_says_each_familys_measured_numbers(dataset):
    report = REPORTS[dataset]
    text = guide.side_by_side(report)
    families = [name for name in report["quality"] if name != guide.REAL]
    assert text.count("\n- **") == len(families)
    for name in families:
        row = report["quality"][name]
        cells = row["nets"]["lenet"]
        sentence = guide.family_sentence(report, name)
        assert sentence in text
        assert f"sharpness {row['sharpness']:.2f} ± {row['sharpness_se']:.2f}" in sentence
        assert f"{cells['confident_share']:.0%} ± {cells['confident_share_se']:.0%} recognisable" in sentence
    assert "In these grids" not in text and guide.side_by_side(None).startswith("**What to look at.**")


def test_recognition_labels_round_down_and_count_only_the_recognised():
    seen = Recognition([1, 1, 7, 3], [0.995, 0.8986, 0.93, 0.2], tuple(str(d) for d in range(10)))
    assert seen.recognisable == [True, False, True, False]
    assert [seen.label(i) for i in range(4)] == ["1 0.99", "1 0.89", "7 0.93", "3 0.20"]   # 0.8986 never "0.90"
    assert seen.histogram() == [("1", 1), ("7", 1)]
    assert seen.summary() == "2 of 4 recognisable (confidence >= 0.9 in the lenet net): 1 x1, 7 x1"


def test_real_test_images_are_recognised_as_their_own_class():
    from engines.data.datasets import load_lab_split
    digits = load_lab_split("mnist", "test")
    seen = recognise(digits.images[::100], "mnist")
    assert seen.classes == digits.labels[::100].tolist() and all(seen.recognisable)


def test_the_truncation_guide_reports_both_grids():
    at = Recognition([8, 8], [0.95, 0.5], tuple(str(d) for d in range(10)))
    without = Recognition([2, 6], [0.99, 0.97], tuple(str(d) for d in range(10)))
    text = guide.truncation(at, without, 0.5)
    assert f"here {at.summary()}; the same seed without truncation: {without.summary()}." in text
