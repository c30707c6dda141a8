"""Results folders and resumable per-step checkpoints (docs/theory.md section 11).

The rules, in full in docs/results-folders.md:

* A folder is a weightsym results folder only when it carries the marker file
  ``.weightsym-results``; a non-empty folder without it is refused
  (:func:`weightsym.results_folder.open_results_folder`).
* One writer per folder: a :class:`Checkpoint` opened for writing holds the folder's lock; a
  second writer gets a :class:`FolderInUseError` at once, naming the holder.
* Cleanup removes only weightsym's own temporary files, and tensor files of killed steps that
  no step references and whose content hash matches their name. Nothing else is deleted.

:class:`Checkpoint` is such a folder for step-wise resumable work::

    with Checkpoint("results/run", config={"steps": 200}) as ckpt:
        for i in range(200):
            if i in ckpt:
                continue
            ckpt.save_step(i, {"d": d, "loss": loss}, {"theta": theta})
        ckpt.finalize({"barrier": barrier})

Layout::

    config.json                  {"format", "meta", "config", "sha256"}, written once
    steps/step_000012.json       {"format", "meta", "step", "record", "tensors", "sha256"}
    steps/step_000012.<sha>.pt   torch.save of the step's tensors (name holds a SHA-256 prefix)
    summary.json                 {"format", "meta", "summary", "sha256"}, written by finalize()

Every JSON file carries the SHA-256 of its canonical content (sorted keys, no spaces) and each
step record the SHA-256 of its tensor file; both are verified when read, so a hand-edited or
damaged step is an error naming the step. A step is complete exactly when its JSON file exists;
the tensor file is written first, so a kill between the two leaves the step incomplete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weightsym.io import (
    CorruptFileError,
    PathLike,
    atomic_write_bytes,
    atomic_write_json,
    json_text,
    load_json,
    metadata,
    require_file,
    tensor_bytes,
    tensors_from_bytes,
)
from weightsym.jsonable import to_jsonable
from weightsym.results_folder import (
    FolderInUseError,
    ResultsFolder,
    folder_argument,
    open_results_folder,
)

__all__ = ["Checkpoint", "FolderInUseError", "ResultsFolder", "open_results_folder"]

CHECKPOINT_FORMAT = "weightsym.checkpoint/2"
_STEP_JSON = re.compile(r"^step_(\d{6,})\.json$")
_STEP_PT = re.compile(r"^step_(\d{6,})\.([0-9a-f]{16})\.pt$")
_CHECKSUM = "sha256"


def _digest(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _sealed(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (JSON types only) with the SHA-256 of its canonical form appended."""
    return {**body, _CHECKSUM: _digest(body)}


def _unsealed(raw: dict[str, Any], path: Path, what: str) -> dict[str, Any]:
    """``raw`` without its checksum; :class:`CorruptFileError` if it is missing or wrong."""
    body = {k: v for k, v in raw.items() if k != _CHECKSUM}
    if not isinstance(raw.get(_CHECKSUM), str):
        raise CorruptFileError(path, what, "it has no SHA-256 checksum")
    if _digest(body) != raw[_CHECKSUM]:
        raise CorruptFileError(
            path,
            what,
            "its content does not match its SHA-256 checksum (edited by hand or damaged); "
            "delete the file to have the step computed again",
        )
    return body


def _diff(stored: Any, new: Any, location: str = "") -> list[str]:
    """Human-readable differences between two JSON values, by dotted key path."""
    if isinstance(stored, dict) and isinstance(new, dict):
        lines: list[str] = []
        for key in sorted(set(stored) | set(new)):
            where = f"{location}.{key}" if location else key
            if key not in new:
                lines.append(f"{where}: stored {stored[key]!r}, missing in the new config")
            elif key not in stored:
                lines.append(f"{where}: not in the stored config, new {new[key]!r}")
            else:
                lines.extend(_diff(stored[key], new[key], where))
        return lines
    if stored == new and type(stored) is type(new):
        return []
    if isinstance(stored, int | float) and isinstance(new, int | float):
        if not isinstance(stored, bool) and not isinstance(new, bool) and stored == new:
            return []  # 1 and 1.0 are the same setting
    return [f"{location or '(config)'}: stored {stored!r}, new {new!r}"]


class Checkpoint:
    """A results folder holding one resumable computation: config, one record per step, summary.

    Args:
        directory: folder of the run; created (with parents) if missing. It must be new, empty
            or already a weightsym results folder (see :func:`open_results_folder`).
        config: the run's settings (JSON-able; NaN/inf not allowed). Written to ``config.json``
            the first time; when the folder already has one, the stored config must equal this
            one (after JSON normalisation: tuples are lists, ``1 == 1.0``). ``None`` opens an
            existing checkpoint read-only, whatever its config (e.g. for plotting): no lock is
            taken and nothing is written or removed.

    Opening for writing takes the folder's lock (held until :meth:`close`, the end of a
    ``with`` block, or the object's collection) and removes the temporary files of killed
    writers and the tensor files of killed steps (see the module docstring).

    Raises:
        ValueError: ``config`` differs from the stored one (every differing key is listed), or
            is not JSON-able.
        TypeError: ``config`` is not a dict.
        FileNotFoundError: ``config`` is None and the folder holds no checkpoint.
        CorruptFileError: ``config.json`` is damaged, edited or of an unknown format.
        ResultsFolderError: the folder is not ours, is in use (:class:`FolderInUseError`) or
            cannot be written.
    """

    def __init__(self, directory: PathLike, config: Mapping[str, Any] | None = None) -> None:
        self.directory = folder_argument(directory, "checkpoint folder")
        self.steps_dir = self.directory / "steps"
        self.config_path = self.directory / "config.json"
        self.summary_path = self.directory / "summary.json"
        self._folder: ResultsFolder | None = None
        if config is None:
            if not self.config_path.exists():
                raise FileNotFoundError(
                    f"no checkpoint in {str(self.directory)!r}: config.json is missing"
                )
            self.config: dict[str, Any] = self._read_config()
            return
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        new = json.loads(json_text(config))  # fails on NaN/inf before anything is written
        self._folder = open_results_folder(self.directory)
        try:
            self.config = self._open_config(new)
            self.steps_dir.mkdir(exist_ok=True)
            self._remove_killed_steps()
        except BaseException:
            self._folder.close(failed=True)
            raise

    # -- internals ---------------------------------------------------------------------------

    def _open_config(self, new: dict[str, Any]) -> dict[str, Any]:
        if not self.config_path.exists():
            body = {"format": CHECKPOINT_FORMAT, "meta": metadata(), "config": new}
            atomic_write_json(self.config_path, _sealed(body))
            return new
        stored = self._read_config()
        differences = _diff(stored, new)
        if differences:
            raise ValueError(
                f"the checkpoint in {str(self.directory)!r} was made with a different "
                "config; differing keys:\n  "
                + "\n  ".join(differences)
                + "\nUse a new directory, or delete this one to start over."
            )
        return stored

    def _read_config(self) -> dict[str, Any]:
        what = "checkpoint config"
        raw = load_json(self.config_path, what)
        if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict):
            raise CorruptFileError(self.config_path, what, "expected an object with a 'config'")
        if raw.get("format") != CHECKPOINT_FORMAT:
            raise CorruptFileError(
                self.config_path,
                what,
                f"unknown format {raw.get('format')!r} (expected {CHECKPOINT_FORMAT!r})",
            )
        return _unsealed(raw, self.config_path, what)["config"]

    def _remove_killed_steps(self) -> None:
        """Delete tensor files that no step references and that a killed :meth:`save_step`
        wrote: the name's hash prefix must match the content's SHA-256 (a user's file does
        not, and is kept)."""
        referenced: set[str] = set()
        for path in self.steps_dir.glob("step_*.json"):
            with contextlib.suppress(Exception):  # damaged records are reported by load_step
                referenced.add(str(json.loads(path.read_text("utf-8"))["tensors"]["file"]))
        for path in self.steps_dir.glob("step_*.pt"):
            match = _STEP_PT.match(path.name)
            if not match or path.name in referenced or not path.is_file() or path.is_symlink():
                continue
            with contextlib.suppress(OSError):
                if hashlib.sha256(path.read_bytes()).hexdigest()[:16] == match.group(2):
                    path.unlink()

    def _writable(self) -> None:
        if self._folder is None or self._folder.closed:
            raise ValueError(
                f"the checkpoint in {str(self.directory)!r} is not open for writing (opened "
                "without a config, or closed); open it with its config to write"
            )

    @staticmethod
    def _check_index(i: Any) -> int:
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or i < 0:
            raise ValueError(f"step index must be a non-negative int, got {i!r}")
        return int(i)

    def _record_path(self, i: int) -> Path:
        return self.steps_dir / f"step_{i:06d}.json"

    # -- public ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the folder's lock (the checkpoint can still be read)."""
        if self._folder is not None:
            self._folder.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def completed_steps(self) -> list[int]:
        """Sorted indices of the steps whose record has been saved."""
        found = []
        for path in self.steps_dir.glob("step_*.json"):
            match = _STEP_JSON.match(path.name)
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def __contains__(self, i: object) -> bool:
        try:
            return self._record_path(self._check_index(i)).exists()
        except ValueError:
            return False

    def save_step(
        self,
        i: int,
        record: Mapping[str, Any],
        tensors: Mapping[str, torch.Tensor | np.ndarray] | None = None,
        *,
        overwrite: bool = False,
    ) -> None:
        """Save step ``i``: a JSON-able ``record`` (NaN/inf not allowed) and optional tensors.

        The record keeps its key order (a table built from resumed records has the columns of
        a fresh one). The tensor file is written first under a content-addressed name, then
        the record that points to it (both atomically), then a replaced tensor file is deleted:
        a kill at any point leaves step ``i`` either as it was before or fully saved.

        Raises:
            ValueError: step ``i`` exists and ``overwrite`` is False; a bad index or record;
                the checkpoint is read-only.
            ResultsFolderError: the operating system refused a write (nothing changed).
        """
        self._writable()
        i = self._check_index(i)
        if not isinstance(record, Mapping):
            raise TypeError(f"record must be a dict, got {type(record).__name__}")
        record_path = self._record_path(i)
        if record_path.exists() and not overwrite:
            raise ValueError(
                f"step {i} is already saved in {str(self.directory)!r}; pass overwrite=True "
                "to replace it"
            )
        record_json = to_jsonable(record)  # fail before writing anything
        data = None if tensors is None else tensor_bytes(tensors)
        old_file = None
        if record_path.exists():
            with contextlib.suppress(Exception):
                old_file = load_json(record_path)["tensors"]["file"]
        tensor_info = None
        if data is not None:
            digest = hashlib.sha256(data).hexdigest()
            name = f"step_{i:06d}.{digest[:16]}.pt"
            atomic_write_bytes(self.steps_dir / name, data)
            tensor_info = {"file": name, "sha256": digest, "keys": sorted(tensors or {})}
        body = {
            "format": CHECKPOINT_FORMAT,
            "meta": metadata(),
            "step": i,
            "record": record_json,
            "tensors": tensor_info,
        }
        atomic_write_json(record_path, _sealed(body), sort_keys=False)
        if isinstance(old_file, str) and _STEP_PT.match(old_file):
            if tensor_info is None or old_file != tensor_info["file"]:
                with contextlib.suppress(OSError):
                    (self.steps_dir / old_file).unlink()

    def _load_raw_step(self, i: int) -> tuple[Path, dict[str, Any]]:
        i = self._check_index(i)
        path = self._record_path(i)
        what = f"step {i} record"
        if not path.exists():
            raise KeyError(f"step {i} has not been saved in {str(self.directory)!r}")
        raw = load_json(path, what)
        if (
            not isinstance(raw, dict)
            or raw.get("step") != i
            or not isinstance(raw.get("record"), dict)
            or not (raw.get("tensors") is None or isinstance(raw.get("tensors"), dict))
        ):
            raise CorruptFileError(path, what, "unexpected content")
        return path, _unsealed(raw, path, what)

    def load_record(self, i: int) -> dict[str, Any]:
        """The JSON record of step ``i`` (checksum verified, tensors not read)."""
        return self._load_raw_step(i)[1]["record"]

    def load_step(self, i: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``(record, tensors)`` of step ``i``; tensors is ``{}`` when none were saved.

        Raises:
            KeyError: step ``i`` was never saved.
            FileNotFoundError: its tensor file is missing.
            CorruptFileError: the record or its tensor file is damaged or edited (both
                SHA-256 checksums are verified); the message names the step.
        """
        path, raw = self._load_raw_step(i)
        info = raw["tensors"]
        if info is None:
            return raw["record"], {}
        what = f"step {i} checkpoint"
        name, digest = info.get("file"), info.get("sha256")
        if not isinstance(name, str) or not _STEP_PT.match(name) or not isinstance(digest, str):
            raise CorruptFileError(path, f"step {i} record", "bad 'tensors' entry")
        tensor_path = self.steps_dir / name
        require_file(tensor_path, what)
        data = tensor_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise CorruptFileError(
                tensor_path,
                what,
                "its SHA-256 does not match the one in the step record (truncated or overwritten)",
            )
        return raw["record"], tensors_from_bytes(data, tensor_path, what)

    def load_records(self) -> dict[int, dict[str, Any]]:
        """Records of all completed steps, by index (tensors not read)."""
        return {i: self.load_record(i) for i in self.completed_steps()}

    def finalize(self, summary: Mapping[str, Any]) -> Path:
        """Write ``summary.json`` (JSON-able, NaN/inf not allowed); marks the run as finished."""
        self._writable()
        if not isinstance(summary, Mapping):
            raise TypeError(f"summary must be a dict, got {type(summary).__name__}")
        body = {"format": CHECKPOINT_FORMAT, "meta": metadata(), "summary": to_jsonable(summary)}
        return atomic_write_json(self.summary_path, _sealed(body))

    @property
    def is_finalized(self) -> bool:
        """Whether :meth:`finalize` has written ``summary.json``."""
        return self.summary_path.exists()

    def load_summary(self) -> dict[str, Any]:
        """The summary written by :meth:`finalize` (checksum verified; FileNotFoundError if
        not finalized, CorruptFileError if damaged or edited)."""
        what = "checkpoint summary"
        raw = load_json(self.summary_path, what)
        if not isinstance(raw, dict) or not isinstance(raw.get("summary"), dict):
            raise CorruptFileError(self.summary_path, what, "unexpected content")
        return _unsealed(raw, self.summary_path, what)["summary"]

    def __repr__(self) -> str:
        return (
            f"Checkpoint({str(self.directory)!r}, steps={len(self.completed_steps())}, "
            f"finalized={self.is_finalized})"
        )
