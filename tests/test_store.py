"""Tests for weightsym.store: atomic writes, corrupt-file errors, resumable checkpoints."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from weightsym import store
from weightsym.store import (
    Checkpoint,
    CorruptFileError,
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    load_json,
    load_tensors,
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


# ------------------------------------------------------------------------------------------
# atomicity
# ------------------------------------------------------------------------------------------


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

    monkeypatch.setattr(store.os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        write(path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]  # temp file cleaned up


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
            leftover.unlink()
    else:
        pytest.fail("the writer never finished")
    assert kill_at > 2  # some kill points were really exercised


@posix_only
@pytest.mark.parametrize("existing", [False, True])
def test_sigkill_during_save_step_leaves_old_or_new(tmp_path: Path, existing: bool) -> None:
    config = {"steps": 3}
    old = ({"loss": 1.0}, {"theta": torch.zeros(5, dtype=torch.float64)})
    new = ({"loss": 2.0}, {"theta": torch.ones(5, dtype=torch.float64)})
    outcomes = set()
    for kill_at in range(1, 80):
        directory = tmp_path / f"run{kill_at}"
        ckpt = Checkpoint(directory, config)
        if existing:
            ckpt.save_step(0, *old)

        def action(ckpt: Checkpoint = ckpt) -> None:
            ckpt.save_step(0, *new, overwrite=True)

        killed = run_killed(action, kill_at, HOOKS)
        reopened = Checkpoint(directory, config)  # also cleans up
        if 0 in reopened.completed_steps():
            record, tensors = reopened.load_step(0)
            state = "new" if record == new[0] else "old"
            assert (record, state) in ((new[0], "new"), (old[0], "old"))
            assert torch.equal(tensors["theta"], (new if state == "new" else old)[1]["theta"])
            assert existing or state == "new"
        else:
            assert not existing
            state = "absent"
        outcomes.add(state)
        # after cleanup, exactly the referenced tensor file remains and no temp files
        assert stray_files(directory) == []
        pts = sorted(p.name for p in (directory / "steps").glob("*.pt"))
        assert len(pts) == (0 if state == "absent" else 1)
        if not killed:
            assert state == "new"
            break
    else:
        pytest.fail("save_step never finished")
    assert outcomes == ({"old", "new"} if existing else {"absent", "new"})


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


# ------------------------------------------------------------------------------------------
# Checkpoint
# ------------------------------------------------------------------------------------------


def test_checkpoint_round_trip_and_resume(tmp_path: Path) -> None:
    config = {"steps": 4, "ratio": 1e-4, "pair": (1, 3), "solver": {"tol": 1e-12}}
    ckpt = Checkpoint(tmp_path / "run", config)
    assert ckpt.completed_steps() == [] and not ckpt.is_finalized
    theta = torch.randn(7, dtype=torch.float64)
    ckpt.save_step(2, {"d": 0.5, "loss": 1e-3}, {"theta": theta})
    ckpt.save_step(0, {"d": 1.0, "loss": 0.0})  # no tensors
    assert ckpt.completed_steps() == [0, 2]
    assert 2 in ckpt and 1 not in ckpt and "x" not in ckpt

    # resume in a "new process": same config (tuple vs list, 1e-4 vs same float) is accepted
    again = Checkpoint(tmp_path / "run", {**config, "pair": [1, 3]})
    assert again.config == {"steps": 4, "ratio": 1e-4, "pair": [1, 3], "solver": {"tol": 1e-12}}
    record, tensors = again.load_step(2)
    assert record == {"d": 0.5, "loss": 1e-3}
    assert torch.equal(tensors["theta"], theta) and tensors["theta"].dtype == torch.float64
    assert again.load_step(0) == ({"d": 1.0, "loss": 0.0}, {})
    assert again.load_records() == {0: {"d": 1.0, "loss": 0.0}, 2: {"d": 0.5, "loss": 1e-3}}
    with pytest.raises(KeyError, match="step 1"):
        again.load_step(1)

    again.finalize({"barrier": 0.25, "index": np.int64(3)})
    assert again.is_finalized
    assert Checkpoint(tmp_path / "run").load_summary() == {"barrier": 0.25, "index": 3}
    assert "finalized=True" in repr(again)


def test_checkpoint_metadata_has_version(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path, {"a": 1})
    ckpt.save_step(0, {"x": 1})
    ckpt.finalize({"y": 2})
    version = store.library_version()
    assert isinstance(version, str) and version
    for name in ("config.json", "steps/step_000000.json", "summary.json"):
        raw = json.loads((tmp_path / name).read_text())
        assert raw["meta"]["weightsym_version"] == version
        assert raw["format"] == store.CHECKPOINT_FORMAT


def test_resume_with_different_config_lists_keys(tmp_path: Path) -> None:
    Checkpoint(tmp_path, {"steps": 200, "ratio": 1e-4, "solver": {"tol": 1e-12, "name": "gd"}})
    with pytest.raises(ValueError, match="different config") as info:
        Checkpoint(tmp_path, {"steps": 100, "ratio": 1e-4, "solver": {"tol": 1e-10}, "new": 1})
    message = str(info.value)
    assert "steps: stored 200, new 100" in message
    assert "solver.tol: stored 1e-12, new 1e-10" in message
    assert "solver.name: stored 'gd', missing in the new config" in message
    assert "new: not in the stored config, new 1" in message
    assert "ratio" not in message
    # int and float of equal value are the same setting; bool and int are not
    Checkpoint(tmp_path / "b", {"n": 1})
    Checkpoint(tmp_path / "b", {"n": 1.0})
    with pytest.raises(ValueError, match="n: stored 1, new True"):
        Checkpoint(tmp_path / "b", {"n": True})


def test_checkpoint_open_without_config(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        Checkpoint(tmp_path / "none")
    Checkpoint(tmp_path / "run", {"a": [1, 2]})
    assert Checkpoint(tmp_path / "run").config == {"a": [1, 2]}


def test_checkpoint_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        Checkpoint(tmp_path / "nan", {"lr": float("nan")})
    assert not (tmp_path / "nan" / "config.json").exists()
    ckpt = Checkpoint(tmp_path / "run", {"a": 1})
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="non-negative int"):
            ckpt.save_step(bad, {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-finite"):
        ckpt.save_step(0, {"loss": float("inf")}, {"theta": torch.zeros(1)})
    assert ckpt.completed_steps() == []
    assert list((tmp_path / "run" / "steps").iterdir()) == []
    ckpt.save_step(0, {"loss": 1.0})
    with pytest.raises(ValueError, match="already saved"):
        ckpt.save_step(0, {"loss": 2.0})
    ckpt.save_step(0, {"loss": 2.0}, overwrite=True)
    assert ckpt.load_record(0) == {"loss": 2.0}


def test_overwrite_replaces_tensor_file(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path, {})
    ckpt.save_step(5, {"v": 1}, {"x": torch.zeros(3)})
    ckpt.save_step(5, {"v": 2}, {"x": torch.ones(3)}, overwrite=True)
    assert len(list((tmp_path / "steps").glob("*.pt"))) == 1
    assert torch.equal(ckpt.load_step(5)[1]["x"], torch.ones(3))
    ckpt.save_step(5, {"v": 3}, overwrite=True)  # drop the tensors
    assert list((tmp_path / "steps").glob("*.pt")) == []
    assert ckpt.load_step(5) == ({"v": 3}, {})


def test_checkpoint_cleans_orphans_and_temp_files(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path, {"a": 1})
    ckpt.save_step(0, {"x": 1}, {"t": torch.zeros(2)})
    steps = tmp_path / "steps"
    (steps / "step_000001.0123456789abcdef.pt").write_bytes(b"orphan")
    (steps / ".step_000001.json.abc.tmp").write_bytes(b"half")
    (tmp_path / ".summary.json.xyz.tmp").write_bytes(b"half")
    (steps / "notes.pt").write_bytes(b"user file")  # not ours: kept
    Checkpoint(tmp_path, {"a": 1})
    assert sorted(p.name for p in steps.iterdir()) == sorted(
        ["step_000000.json", _pt_name(steps, 0), "notes.pt"]
    )
    assert stray_files(tmp_path) == []


def _pt_name(steps: Path, i: int) -> str:
    return json.loads((steps / f"step_{i:06d}.json").read_text())["tensors"]["file"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b"",
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # one flipped bit: still loadable by torch
    ],
    ids=["half", "empty", "bitflip"],
)
def test_checkpoint_corrupt_tensor_file(tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    ckpt = Checkpoint(tmp_path, {"a": 1})
    ckpt.save_step(3, {"x": 1}, {"theta": torch.randn(50, dtype=torch.float64)})
    pt = tmp_path / "steps" / _pt_name(tmp_path / "steps", 3)
    pt.write_bytes(damage(pt.read_bytes()))
    with pytest.raises(CorruptFileError, match=rf"corrupt step 3 checkpoint file .*{pt.name}"):
        ckpt.load_step(3)
    assert ckpt.load_record(3) == {"x": 1}  # the record itself is fine
    pt.unlink()
    with pytest.raises(FileNotFoundError, match="step 3 checkpoint file not found"):
        ckpt.load_step(3)


def test_checkpoint_corrupt_record_and_config(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path, {"a": 1})
    ckpt.save_step(0, {"x": 1})
    record = tmp_path / "steps" / "step_000000.json"
    record.write_text(record.read_text()[:20])
    with pytest.raises(CorruptFileError, match=r"corrupt step 0 record file .*step_000000\.json"):
        ckpt.load_step(0)
    record.write_text(json.dumps({"step": 7, "record": {}}))
    with pytest.raises(CorruptFileError, match="unexpected content"):
        ckpt.load_record(0)
    (tmp_path / "config.json").write_text('{"format": ')
    with pytest.raises(CorruptFileError, match=r"checkpoint config file .*config\.json"):
        Checkpoint(tmp_path, {"a": 1})
    (tmp_path / "config.json").write_text('{"format": "other", "config": {}}')
    with pytest.raises(CorruptFileError, match="unknown format"):
        Checkpoint(tmp_path)


def test_summary_missing_and_corrupt(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path, {})
    with pytest.raises(FileNotFoundError, match="summary"):
        ckpt.load_summary()
    with pytest.raises(ValueError, match="non-finite"):
        ckpt.finalize({"barrier": float("nan")})
    assert not ckpt.is_finalized
    (tmp_path / "summary.json").write_bytes(b"\x00\x01")
    with pytest.raises(CorruptFileError, match="summary"):
        ckpt.load_summary()
