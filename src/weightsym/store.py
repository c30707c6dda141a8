"""Results and checkpoints: atomic writes, clear errors on corrupt files, resumable steps.

Every writer here goes through :func:`atomic_write_bytes`: the data are written to a temporary
file in the target's own directory, flushed and ``fsync``-ed, and then moved over the target with
:func:`os.replace` (atomic on POSIX and on Windows for files on one volume), after which the
directory itself is ``fsync``-ed where the platform allows it. A process killed at any instant
therefore leaves the target either with its old content or with its new content, never a mix;
at worst a stray ``.<name>.*.tmp`` file is left behind, which :class:`Checkpoint` removes when it
opens a directory.

Readers (:func:`load_json`, :func:`load_tensors`) raise :class:`FileNotFoundError` for a missing
file and :class:`CorruptFileError` (a :class:`ValueError`) naming the file and what it was meant
to be for anything unreadable, truncated or malformed.

:class:`Checkpoint` is a directory for step-wise resumable work (one record per step of a
permutation path, one folder per path in an MNIST sweep)::

    ckpt = Checkpoint("results/toy-pair-0-1", config={"steps": 200, "ratio": 1e-4})
    for i in range(200):
        if i in ckpt:
            continue
        ...
        ckpt.save_step(i, {"d": d, "loss": loss}, {"theta": theta})
    ckpt.finalize({"barrier": barrier})

Layout of a checkpoint directory::

    config.json                  {"format", "meta", "config"}, written once
    steps/step_000012.json       {"format", "meta", "step", "record", "tensors"}
    steps/step_000012.<sha>.pt   torch.save of the step's tensors (name holds a SHA-256 prefix)
    summary.json                 {"format", "meta", "summary"}, written by finalize()

A step is complete exactly when its JSON file exists; the JSON names the tensor file and its
SHA-256, and is written after the tensor file, so a kill between the two leaves an unreferenced
tensor file (removed on the next open) and the step still incomplete (or still at its old
content when it was being overwritten).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CorruptFileError",
    "Checkpoint",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_csv",
    "atomic_save_tensors",
    "load_json",
    "load_tensors",
    "to_jsonable",
    "library_version",
    "metadata",
]

PathLike = str | os.PathLike

CHECKPOINT_FORMAT = "weightsym.checkpoint/1"
_STEP_JSON = re.compile(r"^step_(\d{6,})\.json$")
_STEP_PT = re.compile(r"^step_(\d{6,})\.([0-9a-f]{16})\.pt$")


class CorruptFileError(ValueError):
    """A file exists but cannot be read as what it should be (truncated, garbage, wrong shape)."""

    def __init__(self, path: PathLike, what: str, reason: str) -> None:
        self.path = Path(path)
        self.what = what
        self.reason = reason
        super().__init__(f"corrupt {what} file {str(self.path)!r}: {reason}")


# --------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------


def library_version() -> str:
    """``weightsym.__version__`` if importable, else the installed distribution's, else
    ``"unknown"``. Looked up at call time so that importing this module never imports the
    package's ``__init__`` recursively."""
    try:
        import weightsym

        version = getattr(weightsym, "__version__", None)
        if isinstance(version, str) and version:
            return version
    except Exception:  # pragma: no cover - the package is importable in every supported setup
        pass
    try:
        from importlib.metadata import version as _dist_version

        return _dist_version("weightsym")
    except Exception:
        return "unknown"


def metadata() -> dict[str, str]:
    """Provenance stored in every JSON file a :class:`Checkpoint` writes."""
    return {
        "weightsym_version": library_version(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "written_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------------------------
# atomic writers
# --------------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path.

    The bytes go to a temporary file in the same directory (created if missing), which is
    flushed, ``fsync``-ed and then renamed over ``path`` with :func:`os.replace`. On any error
    (including a failing rename) the temporary file is removed and ``path`` keeps its old
    content; a process killed mid-way can leave only a stray ``.<name>.*.tmp`` file.
    """
    path = Path(path)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"atomic_write_bytes needs bytes, got {type(data).__name__}")
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(directory)
    return path


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text needs str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))


def _where(location: str) -> str:
    return location or "the top level"


def to_jsonable(obj: Any, nonfinite: str = "raise", _location: str = "") -> Any:
    """Convert ``obj`` to plain JSON types.

    Tuples become lists; numpy and torch scalars become Python numbers; numpy arrays and torch
    tensors become (nested) lists; :class:`pathlib.Path` becomes str; dict keys must be str
    (int keys are converted to str). NaN and infinities are not valid JSON: with
    ``nonfinite="raise"`` (default) they raise a :class:`ValueError` that names where they are
    (e.g. ``obj['loss'][3]``); with ``nonfinite="null"`` they become ``None``; with
    ``nonfinite="string"`` they become ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.
    """
    if nonfinite not in ("raise", "null", "string"):
        raise ValueError(f"nonfinite must be 'raise', 'null' or 'string', got {nonfinite!r}")
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int | np.integer) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        if math.isfinite(value):
            return value
        if nonfinite == "null":
            return None
        if nonfinite == "string":
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        raise ValueError(
            f"non-finite value {value} at {_where('obj' + _location)} cannot be written as "
            "JSON; pass nonfinite='null' or 'string' to convert it"
        )
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        if obj.ndim == 0:
            return to_jsonable(obj.item(), nonfinite, _location)
        return [to_jsonable(v, nonfinite, f"{_location}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if isinstance(key, bool) or not isinstance(key, str | int | np.integer):
                raise TypeError(
                    f"JSON object keys must be str or int; got {type(key).__name__} key "
                    f"{key!r} at {_where('obj' + _location)}"
                )
            skey = str(key)
            if skey in out:
                raise ValueError(f"duplicate key {skey!r} at {_where('obj' + _location)}")
            out[skey] = to_jsonable(value, nonfinite, f"{_location}[{skey!r}]")
        return out
    if isinstance(obj, list | tuple):
        return [to_jsonable(v, nonfinite, f"{_location}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"cannot write {type(obj).__name__} at {_where('obj' + _location)} as JSON")


def _dumps(obj: Any, nonfinite: str = "raise") -> str:
    return json.dumps(to_jsonable(obj, nonfinite), sort_keys=True, indent=2, allow_nan=False)


def atomic_write_json(path: PathLike, obj: Any, *, nonfinite: str = "raise") -> Path:
    """Write ``obj`` as JSON (sorted keys, indent 2, trailing newline) atomically.

    ``obj`` is first passed through :func:`to_jsonable`; NaN/inf raise a :class:`ValueError`
    naming their location unless ``nonfinite`` is ``"null"`` or ``"string"``.
    """
    return atomic_write_text(path, _dumps(obj, nonfinite) + "\n")


def _as_cpu_tensor(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        # clone: a view (e.g. a layer of a flat theta) would otherwise save its whole storage
        return value.detach().cpu().clone()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"tensor {name!r}: numpy object arrays cannot be saved")
        return torch.from_numpy(np.array(value, copy=True, order="C"))
    raise TypeError(
        f"tensor {name!r}: expected a torch.Tensor or numpy.ndarray, got {type(value).__name__}"
    )


def _tensor_bytes(tensors: Mapping[str, Any]) -> bytes:
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a dict of name -> tensor, got {type(tensors).__name__}")
    payload: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r}")
        payload[name] = _as_cpu_tensor(name, value)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def atomic_save_tensors(path: PathLike, tensors: Mapping[str, torch.Tensor | np.ndarray]) -> Path:
    """Save a dict of named tensors/arrays with :func:`torch.save`, atomically.

    Tensors are detached, moved to CPU and copied (so a view saves only itself, not the storage
    it views); numpy arrays become tensors of the same dtype. Read back with
    :func:`load_tensors`.
    """
    return atomic_write_bytes(path, _tensor_bytes(tensors))


def atomic_write_csv(
    path: PathLike, rows: Iterable[Mapping[str, Any]], columns: list[str] | None = None
) -> Path:
    """Write ``rows`` (dicts) as CSV with a header line, atomically.

    ``columns`` defaults to the union of the rows' keys in first-seen order. A key missing in a
    row is written as an empty field; a key not in an explicit ``columns`` raises
    :class:`ValueError`. Floats are written with ``repr`` (round-trip exact); tensors and numpy
    scalars of size one are written as their number.
    """
    rows = list(rows)
    if columns is None:
        seen: dict[str, None] = {}
        for row in rows:
            for key in row:
                seen.setdefault(str(key), None)
        columns = list(seen)
    else:
        columns = [str(c) for c in columns]
        if len(set(columns)) != len(columns):
            raise ValueError(f"duplicate column names in {columns}")
    allowed = set(columns)

    def cell(value: Any) -> Any:
        if isinstance(value, torch.Tensor | np.ndarray | np.generic):
            value = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
            if value.size != 1:
                raise ValueError(f"CSV cells must be scalars; got an array of shape {value.shape}")
            value = value.item()
        if isinstance(value, float):
            return repr(value)
        return value

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for index, row in enumerate(rows):
        extra = set(map(str, row)) - allowed
        if extra:
            raise ValueError(f"row {index} has keys not in columns: {sorted(extra)}")
        values = {str(k): v for k, v in row.items()}
        writer.writerow(["" if c not in values else cell(values[c]) for c in columns])
    return atomic_write_text(path, buffer.getvalue())


# --------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {str(path)!r}")
    if path.is_dir():
        raise CorruptFileError(path, what, "it is a directory, not a file")


def load_json(path: PathLike, what: str = "JSON") -> Any:
    """Read a JSON file.

    Raises :class:`FileNotFoundError` if it is missing and :class:`CorruptFileError` (naming the
    file and ``what`` it is, e.g. ``"config"``) if it is empty, truncated, not UTF-8 or not JSON.
    """
    path = Path(path)
    _require_file(path, what)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(path, what, f"not UTF-8 text ({exc})") from exc
    if not text.strip():
        raise CorruptFileError(path, what, "the file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorruptFileError(path, what, f"not valid JSON ({exc})") from exc


def _tensors_from_bytes(data: bytes, path: Path, what: str) -> dict[str, torch.Tensor]:
    if not data:
        raise CorruptFileError(path, what, "the file is empty")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types: RuntimeError, UnpicklingError, EOFError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptFileError(
            path, what, f"cannot be read by torch.load ({type(exc).__name__}: {reason})"
        ) from exc
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise CorruptFileError(
            path, what, f"expected a dict of name -> tensor, found {type(obj).__name__}"
        )
    return obj


def load_tensors(path: PathLike, what: str = "tensors") -> dict[str, torch.Tensor]:
    """Load a dict of tensors written by :func:`atomic_save_tensors` (on CPU, weights only).

    Raises :class:`FileNotFoundError` if missing and :class:`CorruptFileError` naming the file
    and ``what`` it is (e.g. ``"checkpoint"``) if it is truncated, garbage or not a dict of
    tensors.
    """
    path = Path(path)
    _require_file(path, what)
    return _tensors_from_bytes(path.read_bytes(), path, what)


# --------------------------------------------------------------------------------------------
# resumable results directory
# --------------------------------------------------------------------------------------------


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
    """A directory holding one resumable computation: config, one record per step, summary.

    Parameters
    ----------
    directory:
        Folder of the run; created (with parents) if missing.
    config:
        The run's settings (JSON-able; NaN/inf not allowed). Written to ``config.json`` the first
        time; when the directory already has one, the stored config must equal this one
        (after JSON normalisation: tuples are lists, ``1 == 1.0``) or a :class:`ValueError`
        lists every differing key. ``None`` opens an existing checkpoint read-mostly, whatever
        its config (e.g. for plotting); it is an error if there is none.

    Opening removes temporary files left by killed writers and tensor files that no step
    record references. Two processes must not write to one checkpoint at the same time.
    """

    def __init__(self, directory: PathLike, config: Mapping[str, Any] | None = None) -> None:
        self.directory = Path(directory)
        self.steps_dir = self.directory / "steps"
        self.config_path = self.directory / "config.json"
        self.summary_path = self.directory / "summary.json"
        if config is None:
            if not self.config_path.exists():
                raise FileNotFoundError(
                    f"no checkpoint in {str(self.directory)!r}: config.json is missing"
                )
        elif not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        if self.config_path.exists():
            stored = self._read_config()
            if config is not None:
                new = json.loads(_dumps(config))
                differences = _diff(stored, new)
                if differences:
                    raise ValueError(
                        f"the checkpoint in {str(self.directory)!r} was made with a different "
                        "config; differing keys:\n  "
                        + "\n  ".join(differences)
                        + "\nUse a new directory, or delete this one to start over."
                    )
            self.config: dict[str, Any] = stored
        else:
            self.config = json.loads(_dumps(config))
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write_json(
                self.config_path,
                {"format": CHECKPOINT_FORMAT, "meta": metadata(), "config": self.config},
            )
        self.steps_dir.mkdir(parents=True, exist_ok=True)
        self._cleanup()

    # -- internals ---------------------------------------------------------------------------

    def _read_config(self) -> dict[str, Any]:
        raw = load_json(self.config_path, "checkpoint config")
        if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict):
            raise CorruptFileError(
                self.config_path, "checkpoint config", "expected an object with a 'config' object"
            )
        if raw.get("format") != CHECKPOINT_FORMAT:
            raise CorruptFileError(
                self.config_path,
                "checkpoint config",
                f"unknown format {raw.get('format')!r} (expected {CHECKPOINT_FORMAT!r})",
            )
        return raw["config"]

    def _cleanup(self) -> None:
        """Remove stray temporary files and tensor files that no step record references."""
        for folder in (self.directory, self.steps_dir):
            for tmp in folder.glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    tmp.unlink()
        referenced: set[str] = set()
        for path in self.steps_dir.glob("step_*.json"):
            try:
                raw = json.loads(path.read_text("utf-8"))
                name = raw["tensors"]["file"]
            except Exception:
                continue  # corrupt or tensor-less records are reported by load_step
            if isinstance(name, str):
                referenced.add(name)
        for path in self.steps_dir.glob("step_*.pt"):
            if _STEP_PT.match(path.name) and path.name not in referenced:
                with contextlib.suppress(OSError):
                    path.unlink()

    @staticmethod
    def _check_index(i: Any) -> int:
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or i < 0:
            raise ValueError(f"step index must be a non-negative int, got {i!r}")
        return int(i)

    def _record_path(self, i: int) -> Path:
        return self.steps_dir / f"step_{i:06d}.json"

    # -- public ------------------------------------------------------------------------------

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

        The tensor file is written first under a content-addressed name, then the record that
        points to it (both atomically), then a replaced tensor file is deleted: a kill at any
        point leaves step ``i`` either as it was before or fully saved. Saving an existing step
        raises :class:`ValueError` unless ``overwrite=True``.
        """
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
        old_file = None
        if record_path.exists():
            with contextlib.suppress(Exception):
                old_file = load_json(record_path)["tensors"]["file"]
        tensor_info = None
        if tensors is not None:
            data = _tensor_bytes(tensors)
            digest = hashlib.sha256(data).hexdigest()
            name = f"step_{i:06d}.{digest[:16]}.pt"
            atomic_write_bytes(self.steps_dir / name, data)
            tensor_info = {"file": name, "sha256": digest, "keys": sorted(tensors)}
        atomic_write_json(
            record_path,
            {
                "format": CHECKPOINT_FORMAT,
                "meta": metadata(),
                "step": i,
                "record": record_json,
                "tensors": tensor_info,
            },
        )
        if old_file and (tensor_info is None or old_file != tensor_info["file"]):
            with contextlib.suppress(OSError):
                (self.steps_dir / old_file).unlink()

    def _load_raw_step(self, i: int) -> tuple[Path, dict[str, Any]]:
        i = self._check_index(i)
        path = self._record_path(i)
        if not path.exists():
            raise KeyError(f"step {i} has not been saved in {str(self.directory)!r}")
        raw = load_json(path, f"step {i} record")
        if (
            not isinstance(raw, dict)
            or raw.get("step") != i
            or not isinstance(raw.get("record"), dict)
            or not (raw.get("tensors") is None or isinstance(raw.get("tensors"), dict))
        ):
            raise CorruptFileError(path, f"step {i} record", "unexpected content")
        return path, raw

    def load_record(self, i: int) -> dict[str, Any]:
        """The JSON record of step ``i`` (without reading its tensors)."""
        return self._load_raw_step(i)[1]["record"]

    def load_step(self, i: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``(record, tensors)`` of step ``i``; tensors is ``{}`` when none were saved.

        Raises :class:`KeyError` for a step never saved and :class:`CorruptFileError` when the
        record or its tensor file is damaged (the tensor file's SHA-256 is checked).
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
        _require_file(tensor_path, what)
        data = tensor_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise CorruptFileError(
                tensor_path,
                what,
                "its SHA-256 does not match the one in the step record (truncated or overwritten)",
            )
        return raw["record"], _tensors_from_bytes(data, tensor_path, what)

    def load_records(self) -> dict[int, dict[str, Any]]:
        """Records of all completed steps, by index (tensors not read)."""
        return {i: self.load_record(i) for i in self.completed_steps()}

    def finalize(self, summary: Mapping[str, Any]) -> Path:
        """Write ``summary.json`` (JSON-able, NaN/inf not allowed); marks the run as finished."""
        if not isinstance(summary, Mapping):
            raise TypeError(f"summary must be a dict, got {type(summary).__name__}")
        return atomic_write_json(
            self.summary_path,
            {"format": CHECKPOINT_FORMAT, "meta": metadata(), "summary": to_jsonable(summary)},
        )

    @property
    def is_finalized(self) -> bool:
        """Whether :meth:`finalize` has written ``summary.json``."""
        return self.summary_path.exists()

    def load_summary(self) -> dict[str, Any]:
        """The summary written by :meth:`finalize` (FileNotFoundError if not finalized)."""
        raw = load_json(self.summary_path, "checkpoint summary")
        if not isinstance(raw, dict) or not isinstance(raw.get("summary"), dict):
            raise CorruptFileError(self.summary_path, "checkpoint summary", "unexpected content")
        return raw["summary"]

    def __repr__(self) -> str:
        return (
            f"Checkpoint({str(self.directory)!r}, steps={len(self.completed_steps())}, "
            f"finalized={self.is_finalized})"
        )
