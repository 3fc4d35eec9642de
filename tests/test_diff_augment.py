"""DiffAugment (Zhao et al. 2020) as the GAN trainer uses it: the right geometry, the background as fill,
gradients through it, seeded draws, and a clear error for an unknown policy."""
import pytest
import torch

from engines.errors import EngineError
from engines.training.diff_augment import BACKGROUND, check_policy, cutout, diff_augment, translation


def one_bright_pixel(n=64, size=28, row=14, col=14):
    images = torch.full((n, 1, size, size), BACKGROUND)
    images[:, :, row, col] = 1.0
    return images


def test_translation_moves_each_image_by_at_most_an_eighth_of_its_side_with_background_fill():
    shifted = translation(one_bright_pixel(), torch.Generator().manual_seed(0))
    positions = [(image[0] == 1).nonzero()[0].tolist() for image in shifted]
    offsets = {(r - 14, c - 14) for r, c in positions}
    assert all(max(abs(dr), abs(dc)) <= 4 for dr, dc in offsets)        # 28 * 1/8 = 3.5 -> 4 pixels
    assert len(offsets) > 20                                           # images move independently
    assert ((shifted == 1).sum(dim=(1, 2, 3)) == 1).all()              # the digit moves, nothing is copied
    assert ((shifted == BACKGROUND) | (shifted == 1)).all()            # the frame is filled with background
    corner = translation(one_bright_pixel(n=200, row=0, col=0), torch.Generator().manual_seed(1))
    assert ((corner == 1).sum(dim=(1, 2, 3)) <= 1).all()               # moved out of frame: gone, not wrapped


def test_cutout_blanks_one_half_side_square_with_the_background():
    images = torch.ones(32, 1, 28, 28)
    hidden = cutout(images, torch.Generator().manual_seed(0)) == BACKGROUND
    for mask in hidden[:, 0]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask.sum() == len(rows) * len(cols)                     # one axis-aligned rectangle
        assert len(rows) <= 14 and len(cols) <= 14                     # half the side, clipped at the border
    assert hidden.sum(dim=(1, 2, 3)).float().mean() > 100              # most squares lie mostly inside


def test_augmentation_is_differentiable_seeded_and_optional():
    images = torch.rand(8, 1, 28, 28).mul(2).sub(1).requires_grad_()
    first = diff_augment(images, "translation,cutout", torch.Generator().manual_seed(5))
    again = diff_augment(images, "translation,cutout", torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    first.sum().backward()
    assert images.grad.abs().sum() > 0                                 # G learns through D's augmentation
    assert diff_augment(images, "", torch.Generator()) is images       # no policy: the images themselves


def test_an_unknown_policy_is_named_with_the_known_ones():
    assert check_policy(" translation , cutout ") == ["translation", "cutout"]
    with pytest.raises(EngineError, match="unknown DiffAugment policy colour: choose from translation, cutout"):
        check_policy("translation,colour")
