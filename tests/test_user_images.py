"""Visitors' images of any size and mode become MNIST-like digits, or a clear refusal."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from engines import EngineError
from engines.data.datasets import load_mnist5k
from engines.data.user_images import prepare_digit
from engines.models.classifier import classify, load_classifier


def png_bytes(image: Image.Image) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


def as_visitor_photo(digit: torch.Tensor, scale: int = 12, mode: str = "RGB") -> Image.Image:
    """A test digit as a visitor might upload it: big, dark ink on a light page, off-centre."""
    ink = (digit[0].numpy() * 255).astype(np.uint8)
    page = Image.fromarray(255 - ink).resize((28 * scale, 28 * scale), Image.BICUBIC)
    canvas = Image.new("L", (28 * scale + 150, 28 * scale + 40), 255)
    canvas.paste(page, (120, 10))
    return canvas.convert(mode)


def test_uploaded_test_digits_are_still_recognised_after_conversion():
    test = load_mnist5k("test")
    classifier = load_classifier()
    picks = [int(torch.nonzero(test.labels == c)[0]) for c in range(10)]
    converted = []
    for i in picks:
        digit, notes = prepare_digit(png_bytes(as_visitor_photo(test.images[i])))
        assert digit.shape == (1, 28, 28) and digit.dtype == torch.float32
        assert 0 <= digit.min() and digit.max() <= 1
        assert any("inverted" in n for n in notes) and any("converted RGB to grayscale" in n for n in notes)
        converted.append(digit)
    predicted, _, _ = classify(classifier, torch.stack(converted))
    assert (predicted == test.labels[picks]).sum() >= 9


def test_transparent_sketch_with_a_black_or_white_pen():
    for pen in (0, 255):
        sketch = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
        pixels = np.zeros((400, 400, 4), dtype=np.uint8)
        pixels[80:320, 190:215] = (pen, pen, pen, 255)  # a vertical stroke: a "1"
        sketch = Image.fromarray(pixels, "RGBA")
        digit, notes = prepare_digit(sketch)
        assert digit[0, 14, 14] > 0.8 and digit[0, 2, 2] == 0  # white ink in the middle, black border
        assert any("transparency" in n for n in notes)


def test_sixteen_bit_and_palette_and_one_bit_images():
    values = np.zeros((56, 56), dtype=np.uint16)
    values[10:46, 25:31] = 60000
    digit, notes = prepare_digit(Image.fromarray(values, "I;16"))
    assert digit.max() > 0.9 and any("rescaled I;16" in n for n in notes)
    for mode in ("P", "1", "CMYK"):
        image = Image.fromarray((values > 0).astype(np.uint8) * 255, "L").convert(mode)
        digit, _ = prepare_digit(png_bytes(image) if mode != "CMYK" else image)
        assert digit.max() > 0.9 and digit[0, 0, 0] == 0


@pytest.mark.parametrize("source,message", [
    (Image.new("L", (50, 50), 255), "blank"),
    (Image.new("RGB", (10, 10), (30, 30, 30)), "blank"),
    (io.BytesIO(b"this is not an image"), "could not read the upload as an image"),
    (io.BytesIO(b""), "could not read the upload as an image"),
])
def test_blank_or_unreadable_uploads_are_refused_clearly(source, message):
    with pytest.raises(EngineError, match=message):
        prepare_digit(source)


def test_huge_uploads_are_refused_before_decoding():
    huge = png_bytes(Image.new("1", (8000, 6000), 0))
    with pytest.raises(EngineError, match="8000x6000 pixels: the limit is 40 megapixels"):
        prepare_digit(huge)
