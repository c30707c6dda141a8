"""Tests for weightsym.io: atomic writes, corrupt-file errors, umask, OS errors."""

from __future__ import annotations

import csv
import errno
import math
import os
import signal
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from weightsym import io
from weightsym.io import (
    CorruptFileError,
    ResultsFolderError,
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    is_temp_name,
    load_json,
    load_tensors,
    read_csv,
)

posix_only = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(os, "fork"), reason="needs fork and SIGKILL"
)


def stray_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".*.tmp"))


# ------------------------------------------------------------------------------------------
# round trips
# ------------------------------------------------------------------------------------------


def test_bytes_and_text_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "a.bin"
    assert atomic_write_bytes(path, b"\x00\x01abc") == path
    assert path.read_bytes() == b"\x00\x01abc"
    atomic_write_text(tmp_path / "t.txt", "héllo\n")
    assert (tmp_path / "t.txt").read_text("utf-8") == "héllo\n"
    assert stray_files(tmp_path) == []
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]


def test_json_sorted_indented_and_converted(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    obj = {
        "b": (1, 2),
        "a": np.float64(0.5),
        "c": torch.tensor([1.0, 2.0], dtype=torch.float64),
        "d": {3: np.int64(7), "p": Path("/tmp/q")},
        "e": np.bool_(True),
    }
    atomic_write_json(path, obj)
    text = path.read_text()
    assert text.endswith("\n")
    assert text.index('"a"') < text.index('"b"') < text.index('"c"')
    assert '\n  "a": 0.5' in text  # indent 2
    assert load_json(path) == {
        "a": 0.5,
        "b": [1, 2],
        "c": [1.0, 2.0],
        "d": {"3": 7, "p": "/tmp/q"},
        "e": True,
    }


def test_json_unsorted_keeps_key_order(tmp_path: Path) -> None:
    path = tmp_path / "row.json"
    atomic_write_json(path, {"z": 1, "a": {"y": 2, "b": 3}, "m": 4}, sort_keys=False)
    back = load_json(path)
    assert list(back) == ["z", "a", "m"] and list(back["a"]) == ["y", "b"]


def test_json_float_round_trip_is_exact(tmp_path: Path) -> None:
    values = [0.1, 1e-300, 1 / 3, -2.5e17, math.pi]
    atomic_write_json(tmp_path / "f.json", {"v": values})
    assert load_json(tmp_path / "f.json")["v"] == values


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_json_nonfinite_raises_naming_location(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "x.json"
    atomic_write_json(path, {"old": 1})
    with pytest.raises(ValueError, match=r"obj\['losses'\]\[1\]"):
        atomic_write_json(path, {"losses": [0.0, bad]})
    assert load_json(path) == {"old": 1}  # nothing written
    with pytest.raises(ValueError, match="non-finite"):
        atomic_write_json(path, {"t": torch.tensor([bad])})


def test_json_nonfinite_conversion_options(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    atomic_write_json(path, [float("nan"), float("inf")], nonfinite="null")
    assert load_json(path) == [None, None]
    atomic_write_json(path, [float("nan"), -float("inf")], nonfinite="string")
    assert load_json(path) == ["NaN", "-Infinity"]
    with pytest.raises(ValueError, match="nonfinite must be"):
        atomic_write_json(path, [1.0], nonfinite="zero")


def test_json_rejects_unserialisable(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="object"):
        atomic_write_json(tmp_path / "x.json", {"x": object()})
    with pytest.raises(TypeError, match="keys must be str"):
        atomic_write_json(tmp_path / "x.json", {(1, 2): 3})
    with pytest.raises(ValueError, match="duplicate key"):
        atomic_write_json(tmp_path / "x.json", {1: "a", "1": "b"})
    assert not (tmp_path / "x.json").exists()


def test_tensors_round_trip(tmp_path: Path) -> None:
    theta = torch.randn(1000, dtype=torch.float64)
    view = theta[10:13]  # a view of a large storage
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / "t.pt"
    atomic_save_tensors(path, {"theta": theta, "view": view, "arr": arr, "i": torch.arange(3)})
    out = load_tensors(path)
    assert set(out) == {"theta", "view", "arr", "i"}
    assert out["theta"].dtype == torch.float64 and torch.equal(out["theta"], theta)
    assert torch.equal(out["view"], view)
    assert out["view"].untyped_storage().nbytes() == 3 * 8  # saved compactly
    assert out["arr"].dtype == torch.float32 and np.array_equal(out["arr"].numpy(), arr)
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        atomic_save_tensors(path, {"x": [1, 2]})
    with pytest.raises(TypeError, match="names must be str"):
        atomic_save_tensors(path, {1: torch.zeros(1)})


def test_csv_round_trip(tmp_path: Path) -> None:
    rows = [
        {"d": 1.0, "loss": 0.1, "step": 0},
        {"d": 0.5, "loss": torch.tensor(0.2, dtype=torch.float64), "step": 1, "note": "x,y"},
    ]
    path = atomic_write_csv(tmp_path / "r.csv", rows)
    with path.open() as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == ["d", "loss", "step", "note"]
    assert float(read[1]["loss"]) == 0.2 and read[1]["note"] == "x,y" and read[0]["note"] == ""
    atomic_write_csv(tmp_path / "s.csv", rows, columns=["step", "loss", "d", "note"])
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "step,loss,d,note"
    with pytest.raises(ValueError, match="not in columns"):
        atomic_write_csv(tmp_path / "u.csv", rows, columns=["step"])
    with pytest.raises(ValueError, match="scalars"):
        atomic_write_csv(tmp_path / "u.csv", [{"a": np.zeros(2)}])


def test_read_csv_parses_what_write_csv_wrote(tmp_path: Path) -> None:
    rows = [{"a": 1, "b": 1 / 3, "c": True, "d": "x,y"}, {"a": -2, "b": 1e-300, "c": False}]
    back = read_csv(atomic_write_csv(tmp_path / "t.csv", rows))
    assert back == [rows[0], {**rows[1], "d": ""}]  # floats exact (written with repr)
    with pytest.raises(FileNotFoundError, match="CSV table file not found"):
        read_csv(tmp_path / "none.csv")


# ------------------------------------------------------------------------------------------
# temporary names and file modes
# ------------------------------------------------------------------------------------------


def test_temp_names_are_ours_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = os.replace

    def spy(src: os.PathLike, dst: os.PathLike) -> None:
        seen.append(Path(src).name)
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_text(tmp_path / "summary.json", "{}")
    atomic_write_bytes(tmp_path / ("x" * 250), b"long name")  # the temp name stays < 256
    assert len(seen) == 2 and all(is_temp_name(name) for name in seen)
    assert seen[0].startswith(".summary.json.weightsym-") and len(seen[1]) < 256
    for foreign in (".draft.tmp", ".summary.json.abc.tmp", "a.weightsym-0123456789ab.tmp"):
        assert not is_temp_name(foreign)


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_get_the_users_umask(tmp_path: Path, umask: Callable[[int], None], mask: int) -> None:
    umask(mask)
    paths = [
        atomic_write_bytes(tmp_path / "a.bin", b"1"),
        atomic_write_json(tmp_path / "b.json", {"x": 1}),
        atomic_write_csv(tmp_path / "c.csv", [{"x": 1}]),
        atomic_save_tensors(tmp_path / "d.pt", {"x": torch.zeros(1)}),
    ]
    atomic_write_bytes(tmp_path / "a.bin", b"2")  # replacing keeps the umask mode too
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path.name


# ------------------------------------------------------------------------------------------
# operating-system errors
# ------------------------------------------------------------------------------------------


def test_results_folder_error_is_os_and_value_error() -> None:
    assert issubclass(ResultsFolderError, OSError) and issubclass(ResultsFolderError, ValueError)


@pytest.mark.parametrize("fail_at", [1, 2])
def test_disk_full_keeps_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"old": list(range(100))})
    before = path.read_bytes()
    calls = [0]
    real = os.write

    def full_disk(fd: int, data: bytes) -> int:  # accepts part of the data, then ENOSPC
        calls[0] += 1
        if calls[0] >= fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, bytes(data)[:10])

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(ResultsFolderError, match=r"summary\.json.*\[ENOSPC\].*unchanged") as info:
        atomic_write_json(path, {"new": list(range(1000))})
    assert info.value.errno == errno.ENOSPC and "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["summary.json"]  # the temporary file is gone
    monkeypatch.undo()
    atomic_write_json(path, {"new": 1})  # space again: the same call succeeds
    assert load_json(path) == {"new": 1}


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="POSIX permissions; root ignores them"
)
def test_read_only_folder_is_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    atomic_write_text(folder / "keep.txt", "old")
    folder.chmod(0o555)
    try:
        with pytest.raises(ResultsFolderError, match=r"keep\.txt.*Permission denied \[EACCES\]"):
            atomic_write_text(folder / "keep.txt", "new")
    finally:
        folder.chmod(0o755)
    assert (folder / "keep.txt").read_text() == "old"
    assert os.listdir(folder) == ["keep.txt"]


def test_read_only_file_system_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    atomic_write_text(tmp_path / "keep.txt", "old")
    real = os.open

    def read_only(path: os.PathLike, flags: int, *args: object) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(ResultsFolderError, match=r"keep\.txt.*Read-only file system \[EROFS\]"):
        atomic_write_text(tmp_path / "keep.txt", "new")
    monkeypatch.undo()
    assert (tmp_path / "keep.txt").read_text() == "old" and os.listdir(tmp_path) == ["keep.txt"]


def test_file_where_a_folder_is_expected(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    with pytest.raises(ResultsFolderError, match=r"out/steps\.csv.*\[(EEXIST|ENOTDIR)\]"):
        atomic_write_text(tmp_path / "out" / "steps.csv", "x")
    assert (tmp_path / "out").read_text() == "a file"


@pytest.mark.parametrize(
    "write",
    [
        lambda p: atomic_write_bytes(p, b"new"),
        lambda p: atomic_write_text(p, "new"),
        lambda p: atomic_write_json(p, {"new": 1}),
        lambda p: atomic_save_tensors(p, {"x": torch.zeros(2)}),
        lambda p: atomic_write_csv(p, [{"new": 1}]),
    ],
)
def test_failed_replace_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[Path], object]
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")

    def boom(src: object, dst: object) -> None:
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(io.os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        write(path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]  # temp file cleaned up


# ------------------------------------------------------------------------------------------
# atomicity under SIGKILL
# ------------------------------------------------------------------------------------------


def run_killed(action: Callable[[], None], kill_at: int, hooks: tuple[str, ...]) -> bool:
    """Run ``action`` in a forked child that SIGKILLs itself just before the ``kill_at``-th call
    (1-based) to any of the ``os`` functions named in ``hooks``. Returns True if it was killed,
    False if it finished first."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            calls = [0]

            def wrap(original: Callable[..., object]) -> Callable[..., object]:
                def hooked(*args: object, **kwargs: object) -> object:
                    calls[0] += 1
                    if calls[0] == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return original(*args, **kwargs)

                return hooked

            for name in hooks:
                setattr(os, name, wrap(getattr(os, name)))
            action()
        except BaseException:
            os._exit(3)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "child failed"
    return False


HOOKS = ("replace", "fsync", "unlink", "fdopen", "open", "mkdir")


@posix_only
def test_sigkill_during_atomic_write_leaves_old_or_new(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    old, new = {"v": "old" * 1000}, {"v": "new" * 1000}
    for kill_at in range(1, 50):
        atomic_write_json(path, old)
        killed = run_killed(lambda: atomic_write_json(path, new), kill_at, HOOKS)
        content = load_json(path)
        assert content in (old, new)
        if not killed:
            assert content == new
            break
        for leftover in tmp_path.glob(".*.tmp"):
            assert is_temp_name(leftover.name)  # a killed writer leaves only our own names
            leftover.unlink()
    else:
        pytest.fail("the writer never finished")
    assert kill_at > 2  # some kill points were really exercised


# ------------------------------------------------------------------------------------------
# corrupt and missing files
# ------------------------------------------------------------------------------------------


def test_missing_files_raise_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint file not found.*nope.pt"):
        load_tensors(tmp_path / "nope.pt", what="checkpoint")
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_json(tmp_path / "nope.json", what="config")


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b[:10],
        lambda b: b"",
        lambda b: b"garbage" * 50,
        lambda b: os.urandom(len(b)),
    ],
    ids=["half", "header", "empty", "garbage", "random"],
)
def test_corrupt_tensor_file(tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    path = tmp_path / "ck.pt"
    atomic_save_tensors(path, {"theta": torch.randn(100, dtype=torch.float64)})
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptFileError, match=r"corrupt checkpoint file .*ck\.pt") as info:
        load_tensors(path, what="checkpoint")
    assert isinstance(info.value, ValueError)
    assert info.value.path == path and info.value.what == "checkpoint"


def test_tensor_file_with_wrong_content(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CorruptFileError, match="dict of name -> tensor"):
        load_tensors(path)
    with pytest.raises(CorruptFileError, match="directory"):
        load_tensors(tmp_path)


@pytest.mark.parametrize(
    "content", [b"", b"  \n", b'{"a": 1', b"\xff\xfe\x00", b"{'a': 1}", b"NaN-ish garbage"]
)
def test_corrupt_json(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "summary.json"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match=r"corrupt summary file .*summary\.json"):
        load_json(path, what="summary")


def test_metadata_names_the_installed_version() -> None:
    from importlib.metadata import version

    meta = io.metadata()
    assert meta["weightsym_version"] == io.library_version() == version("weightsym")
    assert meta["torch_version"] == torch.__version__
