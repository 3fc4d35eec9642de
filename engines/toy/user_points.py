"""A visitor's own points: a CSV of x, y pairs or strokes drawn on a canvas -> an [n, 2] array.

`distributions.from_points` then turns them into a density (centred, scaled, one Gaussian kernel per point).
Caps keep one visitor's upload from costing everyone else time: MAX_CSV_BYTES, and the point count that
`from_points` accepts (MIN_USER_POINTS .. MAX_USER_POINTS).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from engines.errors import EngineError
from engines.toy.distributions import MAX_USER_POINTS, MIN_USER_POINTS

MAX_CSV_BYTES = 1_000_000
MAX_SKETCH_POINTS = 1500   # drawn pixels are thinned to this many, evenly along the raster order
INK_THRESHOLD = 128        # a pixel is ink when its alpha and darkness both pass this


def read_csv_points(path: str | Path) -> np.ndarray:
    """Two numeric columns, x and y, one point per row; an optional header row of names is skipped."""
    path = Path(path)
    if path.stat().st_size > MAX_CSV_BYTES:
        raise EngineError(f"the CSV is larger than {MAX_CSV_BYTES // 1000} kB: give at most {MAX_USER_POINTS} points")
    try:
        text = path.read_text(encoding="utf-8-sig")
        rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise EngineError("the file is not a text CSV: give two columns, x and y") from None
    if rows and not _numeric(rows[0]):
        rows = rows[1:]   # a header such as "x,y"
    if not rows:
        raise EngineError("the CSV has no points: give two columns, x and y, one point per row")
    for number, row in enumerate(rows, start=1):
        if len(row) != 2:
            raise EngineError(f"every row needs exactly two columns, x and y; row {number} has {len(row)}")
        if not _numeric(row):
            raise EngineError(f"row {number} is not two numbers: {','.join(row)[:40]!r}")
    points = np.array([[float(a), float(b)] for a, b in rows])
    _check_count(len(points))
    return points


def _numeric(row: list[str]) -> bool:
    try:
        return all(np.isfinite(float(cell)) for cell in row)
    except ValueError:
        return False


def sketch_points(image: np.ndarray) -> np.ndarray:
    """The inked pixels of a canvas (H x W x 3 or 4, uint8) as points, y pointing up."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise EngineError("the sketch must be a colour image")
    darkness = 255 - image[..., :3].astype(np.float64).mean(axis=2)
    ink = darkness >= INK_THRESHOLD
    if image.shape[2] == 4:
        ink &= image[..., 3] >= INK_THRESHOLD
    rows, cols = np.nonzero(ink)
    if len(rows) == 0:
        raise EngineError("the canvas is empty: draw some points (or upload a CSV of x, y pairs)")
    points = np.stack([cols, image.shape[0] - 1 - rows], axis=1).astype(np.float64)
    if len(points) > MAX_SKETCH_POINTS:
        points = points[np.linspace(0, len(points) - 1, MAX_SKETCH_POINTS).round().astype(int)]
    _check_count(len(points))
    return points


def _check_count(n: int) -> None:
    if not MIN_USER_POINTS <= n <= MAX_USER_POINTS:
        raise EngineError(f"give between {MIN_USER_POINTS} and {MAX_USER_POINTS} points, got {n}")
