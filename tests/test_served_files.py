"""What the app serves from disk: each picture a content-named file written whole, and nothing kept for ever (a
Space runs for weeks): app.images sweeps its folder, and Gradio's own cache is pruned as long."""
import os
import time

from PIL import Image

from app import images
from app.ui import build_demo


def test_a_picture_is_one_file_named_by_its_content_and_old_ones_are_swept(monkeypatch, tmp_path):
    monkeypatch.setattr(images, "SERVED", tmp_path)
    monkeypatch.setattr(images, "_last_sweep", [0.0])
    first = images.png_file(Image.new("L", (8, 8), 0))
    assert images.png_file(Image.new("L", (8, 8), 0)) == first            # the same picture: the same file
    gif = images.save_gif([Image.new("L", (8, 8), v) for v in (0, 255)])
    assert gif.endswith(".gif") and Image.open(gif).n_frames == 2
    hour_and_a_bit = time.time() - images.SERVED_MAX_AGE_S - 60
    os.utime(first, (hour_and_a_bit, hour_and_a_bit))
    later = time.time() + images.SWEEP_EVERY_S + 1
    assert images.sweep_served(later) == 1 and sorted(p.name for p in tmp_path.iterdir()) == [os.path.basename(gif)]
    assert images.sweep_served(later + 1) == 0                             # at most one sweep every SWEEP_EVERY_S
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".part"]     # written whole, then renamed


def test_gradios_cache_of_served_files_is_pruned_as_long():
    assert build_demo().delete_cache == (images.SWEEP_EVERY_S, images.SERVED_MAX_AGE_S)
