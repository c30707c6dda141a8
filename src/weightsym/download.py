"""The full MNIST IDX files, downloaded once into a cache and checked against SHA-256.

docs/theory.md section 8. Each file is fetched from the first mirror that answers within the
timeout with the right bytes; the checksum is checked in memory before anything is written.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from weightsym.data import DataError, mnist_files
from weightsym.io import atomic_write_bytes

DOWNLOAD_TIMEOUT = 20.0
"""Seconds allowed for the connection and for each read of a download."""

MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: Base URLs tried in order (torchvision's and TensorFlow's mirrors, then the original site).
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)


def default_cache_dir() -> Path:
    """``$WEIGHTSYM_CACHE/mnist`` if the variable is set, else ``~/.cache/weightsym/mnist``."""
    root = os.environ.get("WEIGHTSYM_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "weightsym"
    return base / "mnist"


def _fetch(url: str, timeout: float) -> bytes:
    """Download ``url`` and return its bytes (replaced by a fake in tests; no network there)."""
    request = urllib.request.Request(url, headers={"User-Agent": "weightsym"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_mnist(
    cache_dir: str | os.PathLike | None = None,
    *,
    splits: Sequence[str] = ("train", "test"),
    mirrors: Sequence[str] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
    progress: bool = True,
) -> Path:
    """Make sure the gzipped MNIST IDX files of ``splits`` are in ``cache_dir``; return it.

    A file already there with the right SHA-256 is kept (no network needed). Otherwise it is
    fetched from each of ``mirrors`` (default :data:`MNIST_MIRRORS`) in turn, its SHA-256
    checked against :data:`MNIST_SHA256` in memory, and only then written atomically
    (:func:`weightsym.io.atomic_write_bytes`); bytes with the wrong checksum are never written.
    Raises :class:`DataError` if no mirror yields the right bytes (listing each mirror's
    failure). ``timeout`` bounds the connection and every read (seconds), so a silent network
    fails after about ``timeout`` per mirror; ``progress`` names each file as it is fetched.
    """
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    mirrors = tuple(MNIST_MIRRORS if mirrors is None else mirrors)
    if not mirrors:
        raise DataError("no MNIST mirrors given")
    names = [name for split in splits for name in mnist_files(split).values()]
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        target, expected = directory / name, MNIST_SHA256[name]
        if target.is_file() and _sha256_file(target) == expected:
            continue
        failures = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + name
            if progress:
                tqdm.write(f"downloading {url} (timeout {timeout:g} s)")
            try:
                data = _fetch(url, timeout)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                failures.append(f"{url}: {exc}")
                continue
            found = hashlib.sha256(data).hexdigest()
            if found != expected:
                failures.append(f"{url}: SHA-256 {found} != expected {expected}")
                continue
            atomic_write_bytes(target, data)
            break
        else:
            raise DataError(
                f"could not download a valid {name!r} into {str(directory)!r}:\n  "
                + "\n  ".join(failures)
            )
    return directory
