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


def test_a_file_named_by_a_result_kept_for_the_processs_life_is_not_swept(monkeypatch, tmp_path):
    """A first visit is computed once (lru_cache) and shown for days: the animation it names must outlive the sweep
    (else, an hour after start, every visitor's first visit of that tab would name a deleted file)."""
    monkeypatch.setattr(images, "SERVED", tmp_path)
    monkeypatch.setattr(images, "_last_sweep", [0.0])
    monkeypatch.setattr(images, "PINNED", set())
    kept = images.pinned(lambda: ("a caption", [images.save_gif([Image.new("L", (8, 8), v) for v in (0, 255)])]))()
    passing = images.save_gif([Image.new("L", (8, 8), v) for v in (9, 99)])
    hour_and_a_bit = time.time() - images.SERVED_MAX_AGE_S - 60
    for path in (kept[1][0], passing):
        os.utime(path, (hour_and_a_bit, hour_and_a_bit))
    assert images.sweep_served(time.time() + images.SWEEP_EVERY_S + 1) == 1
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(kept[1][0])]


def test_a_kept_picture_served_again_is_not_encoded_again_until_its_file_is_swept(monkeypatch, tmp_path):
    monkeypatch.setattr(images, "SERVED", tmp_path)
    picture, encoded = Image.new("L", (8, 8), 7), []
    save = picture.save
    picture.save = lambda *a, **k: encoded.append(1) or save(*a, **k)
    path = images.png_file(picture)
    assert images.png_file(picture) == path and encoded == [1]      # a shared grid, a first visit: one encoding
    os.remove(path)                                                  # swept meanwhile
    assert images.png_file(picture) == path and os.path.exists(path) and encoded == [1, 1]
    assert Image.open(path).getpixel((0, 0)) == 7


def test_app_py_holds_glibcs_malloc_to_few_arenas_before_its_threads_start():
    """Twenty-odd request threads each with an arena of its own kept the pictures they freed: the server's memory
    grew several times as much under scripts/classroom_load.py. app.py limits the arenas before it serves."""
    import platform

    from app import serving
    assert serving.limit_malloc_arenas() == (platform.libc_ver()[0] == "glibc")
    script = (images.Path(__file__).parent.parent / "app.py").read_text()
    main = script[script.index("def main()"):]
    assert main.index("serving.limit_malloc_arenas()") < main.index("serving.warm_up()") < main.index("launch(")
