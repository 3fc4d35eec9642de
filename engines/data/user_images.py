"""A visitor's image (an upload of any size and mode, or a sketch) -> one digit as the models saw digits.

MNIST digits are white on black, their ink's bounding box scaled to 20x20 pixels and centred by centre of
mass in a 28x28 frame (LeCun et al.'s preprocessing). We do the same, and say what we did: every conversion
is listed in the notes returned beside the digit, so the page can tell the visitor.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from engines.errors import EngineError

MAX_PIXELS = 40_000_000  # larger uploads are refused before decoding (Pillow's bomb check is at 89M)
SIZE, BOX = 28, 20
INK = 0.2  # a pixel is ink above this (after inversion to white-on-black)


def open_image(source) -> Image.Image:
    """A path, bytes-like file or PIL image -> PIL image; anything else is a clear error."""
    if isinstance(source, Image.Image):
        return source
    unreadable = "could not read the upload as an image ({}): upload a PNG or JPEG of one digit"
    try:
        image = Image.open(source)  # reads the header only
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise EngineError(unreadable.format(type(e).__name__)) from None
    if image.width * image.height > MAX_PIXELS:
        raise EngineError(f"the image is {image.width}x{image.height} pixels: the limit is "
                          f"{MAX_PIXELS // 1_000_000} megapixels")
    try:
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise EngineError(unreadable.format(type(e).__name__)) from None
    return image


def to_gray(image: Image.Image, notes: list[str]) -> np.ndarray:
    """Any Pillow mode -> float array in [0, 1]. Transparent pixels become the background: the opposite of
    the ink's colour, so a black or a white pen on a transparent canvas both survive."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = values.min(), values.max()
        notes.append(f"rescaled {image.mode} pixel values {low:g}..{high:g} to 0..1")
        return (values - low) / (high - low) if high > low else np.zeros_like(values)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255
        alpha = rgba[..., 3]
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
        opaque = alpha > 0.5
        ink_is_dark = opaque.any() and gray[opaque].mean() < 0.5
        background = 1.0 if ink_is_dark else 0.0
        if (alpha < 1).any():
            notes.append(f"flattened transparency onto {'white' if ink_is_dark else 'black'}")
        return gray * alpha + background * (1 - alpha)
    if image.mode != "L":
        notes.append(f"converted {image.mode} to grayscale")
    return np.asarray(image.convert("L"), dtype=np.float64) / 255


def is_blank(image: Image.Image) -> bool:
    """One flat colour once transparency is flattened: an untouched canvas, nothing drawn."""
    gray = to_gray(image, [])
    return gray.max() - gray.min() < 0.1


def prepare_digit(source) -> tuple[torch.Tensor, list[str]]:
    """-> (digit [1, 28, 28] in [0, 1], white on black, MNIST-centred; notes on what was converted)."""
    image = open_image(source)
    if image.width == 0 or image.height == 0:
        raise EngineError("the image is empty (0 pixels): upload or draw a digit")
    notes = [f"read a {image.width}x{image.height} {image.mode} image"]
    image = ImageOps.exif_transpose(image)
    gray = to_gray(image, notes)
    if gray.max() - gray.min() < 0.1:  # as is_blank
        raise EngineError("the image is blank (one flat colour): draw or upload a digit")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:
        gray = 1 - gray
        notes.append("inverted it: the models know white digits on black")
    gray = (gray - gray.min()) / (gray.max() - gray.min())
    rows, cols = np.nonzero(gray > INK)
    box = gray[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = BOX / max(box.shape)
    height, width = max(1, round(box.shape[0] * scale)), max(1, round(box.shape[1] * scale))
    resized = np.asarray(Image.fromarray((box * 255).astype(np.uint8)).resize((width, height), Image.LANCZOS),
                         dtype=np.float64) / 255
    notes.append(f"cropped the ink ({box.shape[1]}x{box.shape[0]} px) and resized it to {width}x{height} "
                 f"inside {SIZE}x{SIZE}, centred by centre of mass as MNIST is")
    canvas = np.zeros((SIZE, SIZE))
    total = resized.sum()
    cy = (resized.sum(1) * np.arange(height)).sum() / total
    cx = (resized.sum(0) * np.arange(width)).sum() / total
    top = int(np.clip(round(SIZE / 2 - cy), 0, SIZE - height))
    left = int(np.clip(round(SIZE / 2 - cx), 0, SIZE - width))
    canvas[top:top + height, left:left + width] = resized
    return torch.from_numpy(canvas).float().clamp(0, 1)[None], notes
