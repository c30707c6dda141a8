"""MNIST teachers (paper Sec. 5): trained to the target accuracy, saved, reused, refused when
the stored configuration differs, and identified by the fingerprint of their digits."""

from __future__ import annotations

import hashlib

import pytest
import torch

from weightsym.data import load_mnist
from weightsym.experiments.mnist.teachers import (
    TeacherConfig,
    data_fingerprint,
    get_teacher,
    load_teacher,
    teacher_file,
)
from weightsym.io import CorruptFileError

LIMIT = 200


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist("embedded", limit=LIMIT)


def test_teacher_trains_to_target_and_is_reused(tmp_path, digits) -> None:
    X, y = digits
    cfg = TeacherConfig(width=3, seed=0, target_accuracy=0.9, data=data_fingerprint(X, y))
    first = get_teacher(cfg, X, y, tmp_path)
    assert first.reached and first.accuracy >= 0.9
    path = teacher_file(tmp_path, 3, 0)
    stored = load_teacher(path)
    assert stored.config == cfg and torch.equal(stored.theta, first.theta)
    assert stored.accuracy == first.accuracy
    mtime = path.stat().st_mtime_ns
    again = get_teacher(cfg, X, y, tmp_path)
    assert torch.equal(again.theta, first.theta) and path.stat().st_mtime_ns == mtime
    other = TeacherConfig(width=3, seed=0, target_accuracy=0.95, data=cfg.data)
    with pytest.raises(ValueError, match="different configuration"):
        get_teacher(other, X, y, tmp_path)


def test_data_fingerprint_is_the_sha256_prefix_of_digits_and_labels(digits) -> None:
    """The digest stored in every teacher file: SHA-256 over the bytes of X then y, 16 hex
    digits (a changed digest would make every stored teacher look foreign)."""
    X, y = digits
    h = hashlib.sha256()
    h.update(X.contiguous().numpy().tobytes())
    h.update(y.contiguous().numpy().tobytes())
    assert data_fingerprint(X, y) == h.hexdigest()[:16]
    assert data_fingerprint(X[:-1], y[:-1]) != data_fingerprint(X, y)


def test_teacher_config_validation() -> None:
    with pytest.raises(ValueError, match="H must be an int >= 2"):
        TeacherConfig(width=1, seed=0).validate()
    with pytest.raises(ValueError, match="target_accuracy"):
        TeacherConfig(width=3, seed=0, target_accuracy=0.0).validate()
    with pytest.raises(ValueError, match="max_iter"):
        TeacherConfig(width=3, seed=0, max_iter=0).validate()
    with pytest.raises(ValueError, match="unknown activation"):
        TeacherConfig(width=3, seed=0, activation="nope").validate()


def test_load_teacher_refuses_other_files(tmp_path) -> None:
    bad = tmp_path / "H3-seed0.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(CorruptFileError, match="MNIST teacher"):
        load_teacher(bad)
    torch.save({"format": "something else"}, bad)
    with pytest.raises(CorruptFileError, match="expected format"):
        load_teacher(bad)
    with pytest.raises(FileNotFoundError):
        load_teacher(tmp_path / "missing.pt")
