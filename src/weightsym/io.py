"""Atomic file writes and checked reads (docs/theory.md section 11; docs/results-folders.md).

Every file weightsym writes goes through :func:`atomic_write_bytes`: the bytes go to a
temporary file in the target's own folder, named ``.<name>.weightsym-<12 hex>.tmp`` (a pattern
only weightsym uses, see :func:`is_temp_name`), created with mode ``0o666`` so that the user's
umask applies as for any new file, written, ``fsync``-ed and moved over the target with
:func:`os.replace`; then the folder is ``fsync``-ed where the platform allows it. A process
killed at any instant leaves the target with its old or its new content, never a mix, plus at
worst a stray temporary file.

Operating-system errors while writing (read-only folder, disk full, a file where a folder is
expected) remove the temporary file, leave the target as it was and surface as one
:class:`ResultsFolderError` whose message names the file and the cause. Readers
(:func:`load_json`, :func:`load_tensors`) raise :class:`FileNotFoundError` for a missing file and
:class:`CorruptFileError` naming the file and what it was meant to be for anything unreadable.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import io
import json
import os
import platform
import re
import secrets
from collections.abc import Iterable, Mapping
from importlib import metadata as _importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weightsym.jsonable import to_jsonable

__all__ = [
    "CorruptFileError",
    "ResultsFolderError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_csv",
    "atomic_save_tensors",
    "is_temp_name",
    "load_json",
    "load_tensors",
    "read_csv",
    "library_version",
    "metadata",
]

PathLike = str | os.PathLike

TEMP_TAG = ".weightsym-"
"""Infix of every temporary file weightsym writes: ``.<name>.weightsym-<12 hex>.tmp``."""
_TEMP_NAME = re.compile(r"^\..+\.weightsym-[0-9a-f]{12}\.tmp$")
_MAX_TEMP_STEM = 200  # keeps the temporary name within the usual 255-byte limit


class CorruptFileError(ValueError):
    """A file exists but cannot be read as what it should be (truncated, garbage, wrong shape)."""

    def __init__(self, path: PathLike, what: str, reason: str) -> None:
        self.path = Path(path)
        self.what = what
        self.reason = reason
        super().__init__(f"corrupt {what} file {str(self.path)!r}: {reason}")


class ResultsFolderError(OSError, ValueError):
    """A results folder, or a file weightsym writes, cannot be used as asked.

    Raised for an operating-system error while writing (read-only folder, disk full, a file
    where a folder is expected; ``errno`` keeps the code), for a folder that is not a weightsym
    results folder and for one that another process is writing to. The message is one line
    that names the path and the cause. It is an :class:`OSError` (it is one) and a
    :class:`ValueError` (the path the caller gave cannot be used), so commands report it as a
    usage error with exit code 2.
    """


def library_version() -> str:
    """The installed ``weightsym`` distribution's version, or ``"unknown"`` when it is not
    installed (e.g. run from a source tree without ``pip install``)."""
    try:
        return _importlib_metadata.version("weightsym")
    except _importlib_metadata.PackageNotFoundError:
        return "unknown"


def metadata() -> dict[str, str]:
    """Provenance stored in the JSON files weightsym writes: library, torch and Python
    versions and the UTC time of writing."""
    return {
        "weightsym_version": library_version(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "written_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary-file name that only weightsym's writers create."""
    return bool(_TEMP_NAME.match(name))


def _os_error(path: Path, exc: OSError, doing: str = "write") -> ResultsFolderError:
    """A one-line :class:`ResultsFolderError` for an OSError met while writing ``path``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in errno.errorcode:
        reason += f" [{errno.errorcode[exc.errno]}]"
    error = ResultsFolderError(
        f"cannot {doing} {str(path)!r}: {reason}; any previous version of it is unchanged"
    )
    error.errno = exc.errno
    return error


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


def _create_temp(directory: Path, name: str) -> tuple[int, Path]:
    """Create ``.<name>.weightsym-<random>.tmp`` exclusively, mode 0o666 minus the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    stem = name[:_MAX_TEMP_STEM]
    for _ in range(100):
        tmp = directory / f".{stem}{TEMP_TAG}{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(directory))


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write_bytes(path: PathLike, data: bytes | bytearray | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically; return the path.

    The folder is created if missing. On any error the temporary file is removed and ``path``
    keeps its old content; an :class:`OSError` becomes a :class:`ResultsFolderError`.

    Raises:
        TypeError: ``data`` is not bytes-like.
        ResultsFolderError: the operating system refused a step (no space, read-only, ...).
    """
    path = Path(path)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"atomic_write_bytes needs bytes, got {type(data).__name__}")
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(directory, path.name)
    except OSError as exc:
        raise _os_error(path, exc) from exc
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, ResultsFolderError):
            raise _os_error(path, exc) from exc
        raise
    _fsync_dir(directory)
    return path


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text needs str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))


def json_text(obj: Any, nonfinite: str = "raise", *, sort_keys: bool = True) -> str:
    """``obj`` as indented JSON text (see :func:`to_jsonable`); keys sorted unless told not."""
    return json.dumps(to_jsonable(obj, nonfinite), sort_keys=sort_keys, indent=2, allow_nan=False)


def atomic_write_json(
    path: PathLike, obj: Any, *, nonfinite: str = "raise", sort_keys: bool = True
) -> Path:
    """Write ``obj`` as JSON (indent 2, trailing newline) atomically.

    Keys are sorted unless ``sort_keys=False`` (then they keep their order, e.g. a table row's
    column order). ``obj`` is first passed through :func:`to_jsonable`; NaN/inf raise a
    :class:`ValueError` naming their location unless ``nonfinite`` is ``"null"`` or
    ``"string"``.
    """
    return atomic_write_text(path, json_text(obj, nonfinite, sort_keys=sort_keys) + "\n")


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


def tensor_bytes(tensors: Mapping[str, Any]) -> bytes:
    """The :func:`torch.save` bytes of a dict of named tensors/arrays (copied, on CPU)."""
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
    return atomic_write_bytes(path, tensor_bytes(tensors))


def _csv_cell(value: Any) -> Any:
    if isinstance(value, torch.Tensor | np.ndarray | np.generic):
        value = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
        if value.size != 1:
            raise ValueError(f"CSV cells must be scalars; got an array of shape {value.shape}")
        value = value.item()
    if isinstance(value, float):
        return repr(value)
    return value


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
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for index, row in enumerate(rows):
        extra = set(map(str, row)) - allowed
        if extra:
            raise ValueError(f"row {index} has keys not in columns: {sorted(extra)}")
        values = {str(k): v for k, v in row.items()}
        writer.writerow(["" if c not in values else _csv_cell(values[c]) for c in columns])
    return atomic_write_text(path, buffer.getvalue())


def require_file(path: Path, what: str) -> None:
    """:class:`FileNotFoundError` if ``path`` is missing, :class:`CorruptFileError` if it is a
    folder (``what`` names the file's role in both messages)."""
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {str(path)!r}")
    if path.is_dir():
        raise CorruptFileError(path, what, "it is a directory, not a file")


def load_json(path: PathLike, what: str = "JSON") -> Any:
    """Read a JSON file (dict keys in file order).

    Raises :class:`FileNotFoundError` if it is missing and :class:`CorruptFileError` (naming the
    file and ``what`` it is, e.g. ``"config"``) if it is empty, truncated, not UTF-8 or not JSON.
    """
    path = Path(path)
    require_file(path, what)
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


def _csv_value(text: str) -> bool | int | float | str:
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(text)
    return text


def read_csv(path: PathLike, what: str = "CSV table") -> list[dict[str, Any]]:
    """Rows of a CSV written by :func:`atomic_write_csv`, as dicts in column order, with
    ``True``/``False``, integers and floats parsed (an empty field stays ``""``).

    Raises :class:`FileNotFoundError` if it is missing and :class:`CorruptFileError` naming the
    file and ``what`` it is if it is not UTF-8 text.
    """
    path = Path(path)
    require_file(path, what)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return [{k: _csv_value(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    except UnicodeDecodeError as exc:
        raise CorruptFileError(path, what, f"not UTF-8 text ({exc})") from exc


def tensors_from_bytes(data: bytes, path: Path, what: str) -> dict[str, torch.Tensor]:
    """Parse :func:`tensor_bytes` output (weights only, on CPU); :class:`CorruptFileError`
    naming ``path`` and ``what`` for anything that is not a dict of named tensors."""
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
    require_file(path, what)
    return tensors_from_bytes(path.read_bytes(), path, what)
