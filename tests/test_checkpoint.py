"""Tests for weightsym.checkpoint and weightsym.results_folder: resumable checkpoints, the
results-folder marker, the one-writer lock, checksums and what cleanup may delete."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_io import HOOKS, posix_only, run_killed, stray_files

from weightsym import checkpoint
from weightsym.checkpoint import Checkpoint, FolderInUseError, open_results_folder
from weightsym.io import CorruptFileError, ResultsFolderError, atomic_write_bytes, is_temp_name
from weightsym.results_folder import HOLDER_NAME, LOCK_NAME, MARKER_NAME

BOOKKEEPING = {MARKER_NAME, LOCK_NAME, HOLDER_NAME}


def user_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in BOOKKEEPING)


# ------------------------------------------------------------------------------------------
# Checkpoint
# ------------------------------------------------------------------------------------------


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
    version = checkpoint.metadata()["weightsym_version"]
    assert isinstance(version, str) and version
    for name in ("config.json", "steps/step_000000.json", "summary.json"):
        raw = json.loads((tmp_path / name).read_text())
        assert raw["meta"]["weightsym_version"] == version
        assert raw["format"] == checkpoint.CHECKPOINT_FORMAT


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


def test_read_only_checkpoint_takes_no_lock_and_writes_nothing(tmp_path: Path) -> None:
    with Checkpoint(tmp_path / "run", {"a": 1}) as ckpt:
        ckpt.save_step(0, {"x": 1})
    reader = Checkpoint(tmp_path / "run")
    with pytest.raises(ValueError, match="not open for writing"):
        reader.save_step(1, {"x": 2})
    with pytest.raises(ValueError, match="not open for writing"):
        reader.finalize({})
    with pytest.raises(ValueError, match="not open for writing"):
        ckpt.save_step(1, {"x": 2})  # closed
    assert reader.load_record(0) == {"x": 1}


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
    with pytest.raises(TypeError, match="str or path"):
        Checkpoint(3, {"a": 1})  # type: ignore[arg-type]


def test_overwrite_replaces_tensor_file(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path, {})
    ckpt.save_step(5, {"v": 1}, {"x": torch.zeros(3)})
    ckpt.save_step(5, {"v": 2}, {"x": torch.ones(3)}, overwrite=True)
    assert len(list((tmp_path / "steps").glob("*.pt"))) == 1
    assert torch.equal(ckpt.load_step(5)[1]["x"], torch.ones(3))
    ckpt.save_step(5, {"v": 3}, overwrite=True)  # drop the tensors
    assert list((tmp_path / "steps").glob("*.pt")) == []
    assert ckpt.load_step(5) == ({"v": 3}, {})


def _orphan_of_a_killed_step(steps: Path, i: int) -> str:
    """What a save_step killed between its tensor file and its record leaves behind."""
    data = os.urandom(64)
    name = f"step_{i:06d}.{hashlib.sha256(data).hexdigest()[:16]}.pt"
    atomic_write_bytes(steps / name, data)
    return name


def test_checkpoint_cleans_its_orphans_and_temp_files_only(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path, {"a": 1})
    ckpt.save_step(0, {"x": 1}, {"t": torch.zeros(2)})
    steps = tmp_path / "steps"
    _orphan_of_a_killed_step(steps, 1)
    (steps / ".step_000001.json.weightsym-0123456789ab.tmp").write_bytes(b"half")
    (tmp_path / ".summary.json.weightsym-abcdef012345.tmp").write_bytes(b"half")
    foreign = {
        steps / "notes.pt": b"user file",
        steps / "step_000001.pt": b"a stray file it did not write",
        steps / "step_000002.0123456789abcdef.pt": b"named like ours, but not ours",
        steps / ".step_000001.json.abc.tmp": b"an older or another program's temp file",
        tmp_path / ".draft.tmp": b"a user's draft",
    }
    for path, content in foreign.items():
        path.write_bytes(content)
    Checkpoint(tmp_path, {"a": 1})
    assert sorted(p.name for p in steps.iterdir()) == sorted(
        ["step_000000.json", _pt_name(steps, 0)] + [p.name for p in foreign if p.parent == steps]
    )
    assert all(path.read_bytes() == content for path, content in foreign.items())
    assert [name for name in stray_files(tmp_path) if is_temp_name(name)] == []


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
def test_checkpoint_corrupt_tensor_file(tmp_path: Path, damage) -> None:
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


# ------------------------------------------------------------------------------------------
# checksums and key order
# ------------------------------------------------------------------------------------------


def _edit_json(path: Path, edit) -> None:
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw, indent=2))


def test_tampered_step_is_refused_naming_the_step(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path, {"a": 1})
    for i in range(3):
        ckpt.save_step(i, {"loss": 0.5 + i}, {"theta": torch.full((4,), float(i))})
    _edit_json(tmp_path / "steps" / "step_000001.json", lambda r: r["record"].update(loss=123))
    again = Checkpoint(tmp_path, {"a": 1})  # opening works; reading step 1 does not
    with pytest.raises(CorruptFileError, match=r"step 1 record .*SHA-256 checksum"):
        again.load_step(1)
    with pytest.raises(CorruptFileError, match="step 1 record"):
        again.load_records()
    assert again.load_record(2) == {"loss": 2.5}
    # re-sealing a hand edit is not enough: the tensor file's checksum is in the record
    pt = tmp_path / "steps" / _pt_name(tmp_path / "steps", 2)
    atomic_write_bytes(pt, pt.read_bytes()[:-1] + bytes([pt.read_bytes()[-1] ^ 1]))
    with pytest.raises(CorruptFileError, match="step 2 checkpoint"):
        again.load_step(2)


def test_tampered_config_and_summary_are_refused(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path, {"steps": 10})
    ckpt.finalize({"barrier": 0.25})
    _edit_json(tmp_path / "summary.json", lambda r: r["summary"].update(barrier=123))
    with pytest.raises(CorruptFileError, match="checkpoint summary .*checksum"):
        ckpt.load_summary()
    _edit_json(tmp_path / "config.json", lambda r: r["config"].update(steps=5))
    with pytest.raises(CorruptFileError, match="checkpoint config .*checksum"):
        Checkpoint(tmp_path, {"steps": 5})
    _edit_json(tmp_path / "config.json", lambda r: r.pop("sha256"))
    with pytest.raises(CorruptFileError, match="no SHA-256 checksum"):
        Checkpoint(tmp_path)


def test_records_keep_their_key_order(tmp_path: Path) -> None:
    record = {"segment": "descent", "d": 0.5, "loss": 1e-3, "converged": True, "a": 1}
    Checkpoint(tmp_path, {}).save_step(0, record)
    assert list(Checkpoint(tmp_path, {}).load_record(0)) == list(record)


# ------------------------------------------------------------------------------------------
# results folders: marker, refusal, what is never deleted
# ------------------------------------------------------------------------------------------


def test_non_empty_folder_without_marker_is_refused_with_names(tmp_path: Path) -> None:
    names = ["a.txt", "b.csv", "c", "d.json", "e.pt", "f.py", "g.md"]
    for name in names:
        (tmp_path / name).write_text(name)
    for opener in (open_results_folder, lambda p: Checkpoint(p, {"a": 1})):
        with pytest.raises(ResultsFolderError, match="not a weightsym results folder") as info:
            opener(tmp_path)
        message = str(info.value)
        assert "a.txt, b.csv, c, d.json, e.pt and 2 more" in message and "\n" not in message
    assert user_files(tmp_path) == names and not (tmp_path / MARKER_NAME).exists()
    assert all((tmp_path / n).read_text() == n for n in names)


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_path_is_refused(bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ResultsFolderError, match="empty string"):
        open_results_folder(bad)
    with pytest.raises(ResultsFolderError, match="empty string"):
        Checkpoint(bad, {"a": 1})
    assert os.listdir(tmp_path) == []


def test_path_naming_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    with pytest.raises(ResultsFolderError, match="is a file, not a folder"):
        open_results_folder(tmp_path / "out")
    with pytest.raises(ResultsFolderError, match="cannot create results folder"):
        open_results_folder(tmp_path / "out" / "sub")
    assert (tmp_path / "out").read_text() == "a file"


def test_new_and_empty_folders_are_marked_and_reused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "new" / "deep"):
        with open_results_folder(folder) as handle:
            assert handle.path == folder and (folder / MARKER_NAME).is_file()
            assert json.loads((folder / HOLDER_NAME).read_text())["pid"] == os.getpid()
        assert not (folder / HOLDER_NAME).exists()  # removed on release
        (folder / "result.csv").write_text("x\n")
        open_results_folder(folder).close()  # marked: reused although not empty
        assert (folder / "result.csv").read_text() == "x\n"
    (tmp_path / "bad" / MARKER_NAME).parent.mkdir()
    (tmp_path / "bad" / MARKER_NAME).write_text('{"format": "something else"}')
    with pytest.raises(ResultsFolderError, match="not in the format"):
        open_results_folder(tmp_path / "bad")


def test_failed_run_leaves_no_new_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), open_results_folder(tmp_path / "a" / "b" / "c"):
        raise RuntimeError("the run failed before writing anything")
    assert os.listdir(tmp_path) == []
    with pytest.raises(RuntimeError), open_results_folder(tmp_path / "d") as handle:
        (handle.path / "partial.csv").write_text("x")
        raise RuntimeError("failed after writing something: kept")
    assert user_files(tmp_path / "d") == ["partial.csv"]


def test_cleanup_keeps_foreign_files_and_skips_other_writers_folders(tmp_path: Path) -> None:
    top = tmp_path / "out"
    with open_results_folder(top):
        Checkpoint(top / "paths" / "p1", {"a": 1}).close()
        (top / "teachers").mkdir()
    ours = [
        top / ".summary.csv.weightsym-0123456789ab.tmp",
        top / "teachers" / ".H10.pt.weightsym-0123456789ab.tmp",
    ]
    other_writer = top / "paths" / "p1" / ".config.json.weightsym-0123456789ab.tmp"
    foreign = [top / ".draft.tmp", top / "teachers" / "notes.tmp", top / ".x.weightsym-1.tmp"]
    for path in ours + foreign + [other_writer]:
        path.write_bytes(b"x")
    with open_results_folder(top):
        assert not any(p.exists() for p in ours)
        assert all(p.read_bytes() == b"x" for p in foreign)
        assert other_writer.exists()  # p1 has its own marker: its own writer cleans it
    Checkpoint(top / "paths" / "p1", {"a": 1}).close()
    assert not other_writer.exists()


# ------------------------------------------------------------------------------------------
# one writer per folder
# ------------------------------------------------------------------------------------------


def test_lock_is_reentrant_in_one_thread_and_refused_in_another(tmp_path: Path) -> None:
    first = Checkpoint(tmp_path, {"a": 1})
    second = Checkpoint(tmp_path, {"a": 1})  # same thread: the same writer
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            Checkpoint(tmp_path, {"a": 1})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert len(errors) == 1 and isinstance(errors[0], FolderInUseError)
    assert "another thread of this process" in str(errors[0])
    first.close()
    assert (tmp_path / HOLDER_NAME).exists()  # still held by `second`
    second.close()
    assert not (tmp_path / HOLDER_NAME).exists()


WRITER = """
import sys, torch
from weightsym.checkpoint import Checkpoint
from weightsym.io import ResultsFolderError
folder, mode = sys.argv[1], sys.argv[2]
if mode == "gated":  # started early (imports take seconds); opens when told
    sys.stdin.readline()
try:
    ckpt = Checkpoint(folder, {"steps": 6})
except ResultsFolderError as exc:
    print("ERROR", exc, flush=True)
    sys.exit(2)
print("OPEN", flush=True)
for i in range(6):
    if i in ckpt:
        continue
    ckpt.save_step(i, {"loss": float(i)}, {"theta": torch.full((3,), float(i))})
    if mode == "wait" and i == 2:
        sys.stdin.readline()
ckpt.finalize({"steps": 6})
print("DONE", flush=True)
"""


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != HOLDER_NAME
    }


def test_two_processes_one_folder_second_gets_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-c", WRITER, str(folder)]
    first, second = (
        subprocess.Popen(
            [*cmd, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        for mode in ("wait", "gated")
    )
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "OPEN"
        while len(list((folder / "steps").glob("*.json"))) < 3:
            assert first.poll() is None
            time.sleep(0.02)
        before = _snapshot(folder)
        message = second.communicate("\n", timeout=120)[0].strip()
        assert second.returncode == 2
        assert message.startswith("ERROR") and "\n" not in message
        assert f"results folder {str(folder)!r} is in use by pid {first.pid} on host " in message
        assert _snapshot(folder) == before  # the refused writer changed nothing
        assert first.communicate("\n", timeout=120)[0].split() == ["DONE"]
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert first.returncode == 0
    with Checkpoint(folder, {"steps": 6}) as ckpt:  # the lock is free again
        assert ckpt.completed_steps() == list(range(6)) and ckpt.load_summary() == {"steps": 6}
        for i in range(6):
            record, tensors = ckpt.load_step(i)
            assert record == {"loss": float(i)}
            assert torch.equal(tensors["theta"], torch.full((3,), float(i)))
    assert len(list((folder / "steps").glob("*.pt"))) == 6


# ------------------------------------------------------------------------------------------
# operating-system errors
# ------------------------------------------------------------------------------------------


def test_disk_full_during_save_step_keeps_steps_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(ckpt: Checkpoint) -> None:
        for i in range(5):
            if i not in ckpt:
                ckpt.save_step(i, {"loss": i / 3}, {"theta": torch.arange(4.0) * i})

    reference = Checkpoint(tmp_path / "ref", {"n": 5})
    run(reference)
    ckpt = Checkpoint(tmp_path / "run", {"n": 5})
    for i in range(3):
        ckpt.save_step(i, {"loss": i / 3}, {"theta": torch.arange(4.0) * i})
    before = _snapshot(tmp_path / "run")

    def full_disk(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(ResultsFolderError, match=r"step_000003.*No space left.*\[ENOSPC\]"):
        run(ckpt)
    with pytest.raises(ResultsFolderError, match="ENOSPC"):
        ckpt.finalize({"done": True})
    monkeypatch.undo()
    assert _snapshot(tmp_path / "run") == before  # nothing changed, no temp file left
    ckpt.close()
    resumed = Checkpoint(tmp_path / "run", {"n": 5})
    run(resumed)
    for i in range(5):
        got, want = resumed.load_step(i), reference.load_step(i)
        assert got[0] == want[0] and torch.equal(got[1]["theta"], want[1]["theta"])


# ------------------------------------------------------------------------------------------
# a whole path: resume after a full disk, and a resumed steps.csv equals a fresh one
# ------------------------------------------------------------------------------------------


def _path_problem():
    from weightsym import MLP, Loss

    net = MLP([2, 3, 1], "tanh")
    theta = net.init(seed=0)
    X = torch.randn(30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return Loss(net, X, net.forward(theta, X), kind="mse"), theta


def _run_path(folder: Path) -> None:
    from weightsym import find_path

    loss, theta = _path_problem()
    find_path(loss, theta, 1, (0, 1), steps=4, out=folder)


def _csv_without_wall_time(path: Path) -> list[list[str]]:
    rows = [line.split(",") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name != "wall_time"]
    return [[row[i] for i in keep] for row in rows]


def test_resumed_steps_csv_is_byte_identical(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    _run_path(folder)
    fresh = (folder / "steps.csv").read_bytes()
    fresh_thetas = torch.load(folder / "thetas.pt", weights_only=True)
    for name in ("steps.csv", "thetas.pt", "summary.json"):
        (folder / name).unlink()
    _run_path(folder)  # every step resumed from its checkpoint
    assert (folder / "steps.csv").read_bytes() == fresh
    thetas = torch.load(folder / "thetas.pt", weights_only=True)
    assert all(torch.equal(thetas[k], fresh_thetas[k]) for k in fresh_thetas)
    for record in sorted((folder / "steps").glob("step_00000[34].json")):
        record.unlink()  # two steps computed again: same columns, same values but wall time
    _run_path(folder)
    again = folder / "steps.csv"
    assert again.read_bytes().splitlines()[0] == fresh.splitlines()[0]
    assert _csv_without_wall_time(again) == _csv_without_wall_time(tmp_path / "run" / "steps.csv")


def test_disk_full_during_a_path_keeps_steps_and_resumes_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_path(tmp_path / "reference")
    folder = tmp_path / "run"
    calls = [0]
    real = os.write

    def fills_up(fd: int, data: bytes) -> int:
        calls[0] += 1
        if calls[0] >= 9:  # marker, holder, config, two steps, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", fills_up)
    with pytest.raises(ResultsFolderError, match=r"No space left on device \[ENOSPC\]"):
        _run_path(folder)
    monkeypatch.undo()
    done = Checkpoint(folder)
    assert done.completed_steps() == [0, 1] and not done.is_finalized
    assert all(done.load_step(i) for i in (0, 1))  # intact, checksums verified
    assert not [p for p in folder.rglob("*") if is_temp_name(p.name)]
    _run_path(folder)
    reference = tmp_path / "reference"
    assert _csv_without_wall_time(folder / "steps.csv") == _csv_without_wall_time(
        reference / "steps.csv"
    )
    got = torch.load(folder / "thetas.pt", weights_only=True)
    want = torch.load(reference / "thetas.pt", weights_only=True)
    assert all(torch.equal(got[k], want[k]) for k in want)  # bitwise
