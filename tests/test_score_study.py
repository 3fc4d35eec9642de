"""The score-matching study behind the Connections tab: a trained toy model's score, its samples, Tweedie."""
import pytest

from engines.errors import EngineError
from engines.toy.score_study import MAX_STUDY_STEPS, score_study


@pytest.fixture(scope="module")
def study():
    return score_study("ring8", steps=1500, seed=0)


@pytest.mark.slow   # the study trains a toy diffusion model 1500 steps
def test_the_learned_score_is_close_to_the_truth_and_sampling_with_it_covers_the_ring(study):
    assert [lv.t for lv in study.levels] == sorted(lv.t for lv in study.levels)
    for level in study.levels:
        assert 0 <= level.error.relative < 0.5 and level.error.se < 0.1 * max(level.error.relative, 0.01)
    # Most noise: the noised density is nearly N(0, I), the easiest score there is.
    assert study.levels[-1].error.relative < study.levels[0].error.relative
    assert study.coverage["Langevin (true score)"].covered == study.n_modes == 8
    assert study.coverage["Langevin (true score)"].on_support > 0.95
    assert study.coverage["Langevin (learned score)"].covered >= 7
    assert study.coverage["DDPM"].covered >= 7


@pytest.mark.slow   # the study trains a toy diffusion model 1500 steps
def test_tweedie_with_the_learned_score_is_the_samplers_predicted_x0(study):
    assert study.tweedie_gap < 1e-4


@pytest.mark.slow   # the study trains a toy diffusion model 1500 steps
def test_the_study_is_seeded(study):
    again = score_study("ring8", steps=1500, seed=0)
    for name, x in study.samples.items():
        assert (x == again.samples[name]).all()


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(EngineError, match="unknown toy 'spiral'"):
        score_study("spiral")
    with pytest.raises(EngineError, match="training steps"):
        score_study("ring8", steps=MAX_STUDY_STEPS + 1)
