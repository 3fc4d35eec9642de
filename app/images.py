"""Tensors in [0, 1] -> PIL images for the UI (nearest-neighbour upscaling keeps the pixels honest)."""
from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

SCALE = 3
SERVED = Path(tempfile.gettempdir()) / "generative-lab-pictures"
# Pictures served are kept an hour (Gradio copies each into its own cache, pruned as long: app.ui), and the folder
# is swept at most every ten minutes: a Space that runs for weeks must not fill its disk.
SERVED_MAX_AGE_S, SWEEP_EVERY_S = 3600, 600
_last_sweep = [0.0]


def to_pil(grid: torch.Tensor, scale: int = SCALE) -> Image.Image:
    """[C, H, W] in [0, 1] -> an upscaled grayscale image."""
    array = (grid[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    image = Image.fromarray(array, mode="L")
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def make_grid(images: torch.Tensor, columns: int | None = None, padding: int = 2) -> torch.Tensor:
    """[N, C, H, W] -> [C, rows*(H+p)+p, cols*(W+p)+p] with a dark grey border between images."""
    n, c, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = torch.full((c, rows * (h + padding) + padding, columns * (w + padding) + padding), 0.25)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = image
    return grid


def grid_image(images: torch.Tensor, columns: int | None = None) -> Image.Image:
    return to_pil(make_grid(images, columns))


UNRECOGNISED = (230, 60, 40)    # the outline of a sample the feature net does not recognise
LABEL_COLOUR = (255, 210, 0)


def labelled_grid(images: torch.Tensor, labels: list[str], recognised: list[bool],
                  columns: int | None = None) -> Image.Image:
    """`grid_image` with each sample's label written in its top-left corner, and a red frame round each sample
    that is not recognised (what the lab's feature net sees: engines.measure.recognition)."""
    from PIL import ImageDraw
    n, _, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    picture = grid_image(images, columns).convert("RGB")
    draw, padding = ImageDraw.Draw(picture), 2
    for i, (label, ok) in enumerate(zip(labels, recognised)):
        row, col = divmod(i, columns)
        left, top = (padding + col * (w + padding)) * SCALE, (padding + row * (h + padding)) * SCALE
        if not ok:
            draw.rectangle([left, top, left + w * SCALE - 1, top + h * SCALE - 1], outline=UNRECOGNISED, width=2)
        draw.text((left + 3, top + 1), label, fill=LABEL_COLOUR if ok else UNRECOGNISED)
    return picture


GIF_MIN_HEIGHT = 192   # px: a single digit in an animation should be easy to see, not a 90 px stamp


def save_gif(frames: list[Image.Image], duration_ms: int = 120, final_hold_ms: int = 1200) -> str:
    """Frames -> an animated GIF file (looping; the last frame held longer), returned as a path. Small frames are
    enlarged by a whole factor (nearest neighbour: the pixels stay honest) to at least GIF_MIN_HEIGHT."""
    factor = max(1, -(-GIF_MIN_HEIGHT // frames[0].height))
    frames = [f.resize((f.width * factor, f.height * factor), Image.NEAREST) for f in frames]
    buffer = io.BytesIO()
    durations = [duration_ms] * (len(frames) - 1) + [final_hold_ms]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return served_file(buffer.getvalue(), ".gif")


def side_by_side_frame(*images: Image.Image, gap: int = 8) -> Image.Image:
    """Images next to each other (x_t | predicted x0) for one animation frame."""
    frame = Image.new("L", (sum(i.width for i in images) + gap * (len(images) - 1), max(i.height for i in images)),
                      64)
    left = 0
    for image in images:
        frame.paste(image, (left, 0))
        left += image.width + gap
    return frame


CAPTION_PX = 15   # caption text height: readable at the page's width without zooming


def captioned_frames(frames: list[tuple[Image.Image, list[str]]], columns: int = 4, scale: int = 2) -> Image.Image:
    """Frames in rows of `columns`, each scaled up (nearest neighbour) with its caption lines written under it in
    the picture itself: one picture that shows every frame whole, its caption beside it."""
    font = ImageFont.load_default(size=CAPTION_PX)
    text_width = max(font.getlength(line) for _, caption in frames for line in caption)
    lines = max(len(caption) for _, caption in frames)
    cell_w = max(max(f.width for f, _ in frames) * scale, math.ceil(text_width))
    cell_h, gap = max(f.height for f, _ in frames) * scale + lines * (CAPTION_PX + 4) + 6, 12
    rows = math.ceil(len(frames) / columns)
    shown = min(columns, len(frames))
    sheet = Image.new("L", (shown * cell_w + (shown - 1) * gap, rows * cell_h + (rows - 1) * gap), 255)
    draw = ImageDraw.Draw(sheet)
    for i, (frame, caption) in enumerate(frames):
        left, top = (i % columns) * (cell_w + gap), (i // columns) * (cell_h + gap)
        sheet.paste(frame.convert("L").resize((frame.width * scale, frame.height * scale), Image.NEAREST),
                    (left, top))
        for k, line in enumerate(caption):
            draw.text((left, top + frame.height * scale + 4 + k * (CAPTION_PX + 4)), line, fill=0, font=font)
    return sheet


_PNG_OF: dict[int, tuple[weakref.ref, Path]] = {}   # id(picture) -> (the picture, weakly; its file)


def png_file(image: Image.Image) -> str:
    """The picture as a PNG file named by its content, written once and atomically. Gradio writes a returned PIL
    image to a file named by its content too, but in place: two visitors shown the same picture at once (the
    same first visit, the same seed) had one of them read a half-written file and get no picture. A picture served
    again (a kept result: a first visit, a shared grid) is not encoded again while its file is there."""
    known = _PNG_OF.get(id(image))
    if known is not None and known[0]() is image:
        try:
            os.utime(known[1])   # served again: it stays another SERVED_MAX_AGE_S
            return str(known[1])
        except FileNotFoundError:   # swept: write it again
            pass
    buffer = io.BytesIO()
    image.save(buffer, format="png")
    path = served_file(buffer.getvalue(), ".png")
    key = id(image)
    _PNG_OF[key] = (weakref.ref(image, lambda _, key=key: _PNG_OF.pop(key, None)), Path(path))
    return path


def served_file(data: bytes, suffix: str) -> str:
    """`data` as a file of SERVED named by its content (written once, atomically), old files swept first."""
    sweep_served()
    path = SERVED / f"{hashlib.sha256(data).hexdigest()[:32]}{suffix}"
    if not path.exists():
        SERVED.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{threading.get_ident()}.part")
        partial.write_bytes(data)
        partial.replace(path)   # atomic: whoever opens it reads the whole picture
    else:
        path.touch()            # served again: it stays another SERVED_MAX_AGE_S
    return str(path)


def pixel_bytes(value) -> int:
    """The bytes of pixels the PIL pictures in `value` (nested tuples and lists) hold: what keeping it costs."""
    if isinstance(value, Image.Image):
        return value.width * value.height * len(value.getbands())
    return sum(pixel_bytes(item) for item in value) if isinstance(value, (tuple, list)) else 0


PINNED: set[Path] = set()   # files a result kept for the process's life refers to (first visits): never swept


def pinned(make: Callable[..., object]) -> Callable[..., object]:
    """`make`, whose results (kept for the process's life, e.g. under lru_cache) keep the SERVED files they name: a
    first visit computed at start still shows its animation days later."""
    def files_in(value) -> Iterator[Path]:
        if isinstance(value, (tuple, list)):
            for item in value:
                yield from files_in(item)
        elif isinstance(value, str) and Path(value).parent == SERVED:
            yield Path(value)

    @functools.wraps(make)
    def pinning(*args, **kwargs):
        result = make(*args, **kwargs)
        PINNED.update(files_in(result))
        return result
    return pinning


def sweep_served(now: float | None = None) -> int:
    """Delete SERVED's files older than SERVED_MAX_AGE_S (those PINNED stay), at most every SWEEP_EVERY_S; how many
    went."""
    now = time.time() if now is None else now
    if now - _last_sweep[0] < SWEEP_EVERY_S or not SERVED.is_dir():
        return 0
    _last_sweep[0] = now
    removed = 0
    for path in SERVED.iterdir():
        try:
            if now - path.stat().st_mtime > SERVED_MAX_AGE_S and path not in PINNED:
                path.unlink()
                removed += 1
        except FileNotFoundError:   # another thread swept or replaced it
            pass
    return removed
