"""Guidance on the labelled toy: the toy model's guided sampler is the image model's mix, the loss drops labels
as Ho & Salimans do, the numbers the lesson reads have known answers, and the committed study is what its code
measures."""
import pytest
import torch

from engines import EngineError
from engines.engine import class_labels, make_generator
from engines.toy.distributions import make_distribution
from engines.toy.guidance import ToyConditionalDiffusion, ToyConditionalDiffusionConfig, guidance_numbers, mode_centres
from engines.toy.training import make_trainer

RING = make_distribution("ring8")


def as_if_trained(seed: int = 0) -> ToyConditionalDiffusion:
    torch.manual_seed(seed)
    model = ToyConditionalDiffusion(ToyConditionalDiffusionConfig(num_train_timesteps=20))
    torch.nn.init.normal_(model.class_embedding.weight)   # each class moves the prediction
    return model.eval()


def test_w_0_ignores_the_class_and_other_scales_follow_it():
    model = as_if_trained()
    zero = lambda labels: model.sample(16, make_generator(1), guidance=0.0, labels=labels, steps=5)  # noqa: E731
    assert torch.equal(zero(3), zero(5))
    threes = model.sample(16, make_generator(1), guidance=3.0, labels=3, steps=5)
    assert not torch.allclose(threes, model.sample(16, make_generator(1), guidance=3.0, labels=5, steps=5))
    assert torch.equal(model.sample(16, make_generator(1), steps=5),                     # default: classes in turn
                       model.sample(16, make_generator(1), labels=class_labels(16, None, 8), steps=5))
    for bad in (-1, 25, "high"):
        with pytest.raises(EngineError, match="guidance must be a number from 0"):
            model.sample(4, make_generator(0), guidance=bad)


def test_the_loss_trains_the_null_class_on_dropped_labels_and_points_off_every_mode():
    model = ToyConditionalDiffusion()
    x0 = RING.sample(64, seed=0)
    for labels, null_used in ((RING.mode_index(x0), True), (torch.full((64,), -1), True)):
        model.zero_grad()
        model.loss(x0, torch.Generator().manual_seed(0), labels=labels).backward()
        assert (model.class_embedding.weight.grad[model.null_label].abs().sum() > 0) == null_used
    trainer = make_trainer("conditional_diffusion", RING, seed=0)
    assert trainer.model.classes == RING.n_modes == 8


def test_guidance_numbers_known_answers():
    centres = mode_centres(RING)
    labels = torch.arange(8).repeat(50)
    at_centres = guidance_numbers(centres[labels], labels, RING)
    assert at_centres["asked"] == 1.0 and at_centres["outward"] == pytest.approx(0.0, abs=1e-5)
    assert at_centres["spread"] == pytest.approx(0.0, abs=1e-5)
    outward = centres / centres.norm(dim=1, keepdim=True)   # the ring is centred on 0: radial = away from the rest
    pushed = guidance_numbers(centres[labels] + 2 * RING.noise_std * outward[labels], labels, RING)
    assert pushed["outward"] == pytest.approx(2.0, abs=1e-4)
    points = RING.sample(8000, seed=3)
    mode = RING.mode_index(points)
    assert (mode >= 0).float().mean() > 0.98   # within 3 noise std of a centre but for exp(-4.5) = 1.1% (2-D Gaussian)
    points, mode = points[mode >= 0], mode[mode >= 0]
    truth = guidance_numbers(points, mode, RING)
    assert truth["asked"] == 1.0 and truth["spread"] == pytest.approx(1.0, abs=0.05)   # the data: spread 1
    assert truth["outward"] == pytest.approx(0.0, abs=0.05)
    wrong = guidance_numbers(points, (mode + 1) % 8, RING)
    assert wrong["asked"] == 0.0 and wrong["on_mode"] == 1.0

@pytest.mark.slow
def test_the_committed_guidance_study_is_what_its_code_measures():
    """docs/guidance.json's seed 0, re-measured (one thread, as the study ran): the same numbers."""
    from engines.toy.guidance_study import one_seed, read_study
    study = read_study()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        again = one_seed(0, study["settings"])
    finally:
        torch.set_num_threads(threads)
    assert again == study["runs"]["0"]
