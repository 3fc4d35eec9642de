"""How a model learned, in pictures: each scored checkpoint keeps a small grid of the same seed's samples.

`--eval-every` scores a checkpoint on samples from seed 0 (`loop.score_checkpoint`); their first `FRAME_SAMPLES`
go into `timelapse/step_<step>.png` beside the run's logs, a 4 x 4 grid of 28 x 28 images (a few KB). The seed
is the same at every checkpoint, so the frames show the same latents or start noise becoming images as training
goes on: a time-lapse any page can scrub through (`frames`).
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

TIMELAPSE_DIR = "timelapse"
FRAME_SAMPLES, FRAME_COLUMNS, PADDING = 16, 4, 2


def frame_path(out: Path, step: int) -> Path:
    return Path(out) / TIMELAPSE_DIR / f"step_{step:07d}.png"


def save_frame(images: torch.Tensor, out: Path, step: int) -> Path:
    """The first FRAME_SAMPLES images in [0, 1] ([N, 1, H, W]) as one grayscale grid PNG for `step`."""
    images = images[:FRAME_SAMPLES].clamp(0, 1)
    n, _, h, w = images.shape
    rows = -(-n // FRAME_COLUMNS)
    grid = torch.ones(rows * (h + PADDING) + PADDING, FRAME_COLUMNS * (w + PADDING) + PADDING)
    for i, image in enumerate(images):
        top, left = PADDING + (i // FRAME_COLUMNS) * (h + PADDING), PADDING + (i % FRAME_COLUMNS) * (w + PADDING)
        grid[top:top + h, left:left + w] = image[0]
    path = frame_path(out, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((grid * 255).round().byte().numpy(), mode="L").save(path, optimize=True)
    return path


def frames(directory: Path) -> list[tuple[int, Path]]:
    """(step, frame) of a checkpoint folder or run, in training order ([] where it kept none)."""
    folder = Path(directory) / TIMELAPSE_DIR
    found = [(int(p.stem.removeprefix("step_")), p) for p in folder.glob("step_*.png")] if folder.is_dir() else []
    return sorted(found)
