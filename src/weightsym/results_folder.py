"""Which folders weightsym may write to, and one writer per folder (docs/theory.md section 11).

A folder is a weightsym results folder when it carries the marker file :data:`MARKER_NAME`
(a small JSON: format and version). :func:`open_results_folder` is the one way in: it marks a
new or empty folder, refuses anything else that has no marker, takes the folder's lock and
removes the temporary files killed writers left (only weightsym's own, see
:func:`weightsym.io.is_temp_name`). The full rules are in docs/results-folders.md.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from weightsym.io import (
    CorruptFileError,
    PathLike,
    ResultsFolderError,
    atomic_write_json,
    is_temp_name,
    library_version,
    load_json,
)

__all__ = [
    "MARKER_NAME",
    "LOCK_NAME",
    "HOLDER_NAME",
    "FolderInUseError",
    "ResultsFolder",
    "open_results_folder",
]

MARKER_NAME = ".weightsym-results"
"""The file that makes a folder a weightsym results folder."""
MARKER_FORMAT = "weightsym.results/1"
LOCK_NAME = ".weightsym-lock"
"""The lock file (:class:`filelock.FileLock`) held by the folder's one writer."""
HOLDER_NAME = ".weightsym-lock.holder"
"""JSON naming the lock's holder (pid, host, since), for the second writer's error message."""
BOOKKEEPING = frozenset({MARKER_NAME, LOCK_NAME, HOLDER_NAME})
_LISTED = 5  # entries named when a foreign folder is refused


class FolderInUseError(ResultsFolderError):
    """Another process (or thread) holds the results folder's lock."""


def folder_argument(path: object, name: str = "results folder") -> Path:
    """``path`` as a :class:`~pathlib.Path`, refusing an empty string (which would silently
    mean the current folder) and anything that is not a str or path."""
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise TypeError(f"{name} must be a str or path, got {type(path).__name__}")
    if isinstance(path, str) and not path.strip():
        raise ResultsFolderError(
            f"{name} is an empty string; name a folder (use '.' for the current one)"
        )
    return Path(path)


@dataclass
class _Hold:
    pid: int
    thread: int
    lock: FileLock
    count: int


_HELD: dict[str, _Hold] = {}
_GUARD = threading.RLock()  # re-entrant: a collected handle may release inside _acquire


def _holder_text(folder: Path) -> str:
    try:
        info = load_json(folder / HOLDER_NAME, "lock holder")
        return f"pid {info['pid']} on host {info['host']} (since {info['since']})"
    except Exception:  # noqa: BLE001 - missing or half-written: the holder is just starting
        return "a process that has not yet written its name"


def _acquire(folder: Path, key: str) -> None:
    with _GUARD:
        hold = _HELD.get(key)
        if hold is not None and hold.pid == os.getpid():
            if hold.thread != threading.get_ident():
                raise FolderInUseError(
                    f"results folder {str(folder)!r} is in use by another thread of this "
                    f"process (pid {hold.pid}); one writer per folder"
                )
            hold.count += 1
            return
        lock = FileLock(folder / LOCK_NAME, timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise FolderInUseError(
                f"results folder {str(folder)!r} is in use by {_holder_text(folder)}; "
                "wait for that run to finish, or choose another folder"
            ) from None
        except OSError as exc:
            raise ResultsFolderError(
                f"cannot lock results folder {str(folder)!r}: {exc.strerror or exc}"
            ) from exc
        _HELD[key] = _Hold(os.getpid(), threading.get_ident(), lock, 1)
    since = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    try:
        atomic_write_json(
            folder / HOLDER_NAME, {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
        )
    except BaseException:
        _release(key)
        raise


def _release(key: str, *, remove: tuple[Path, ...] = ()) -> None:
    """Drop one hold; at the last, release the lock. ``remove``: folders this run created,
    deepest first, deleted when the folder holds nothing but bookkeeping files."""
    with _GUARD:
        hold = _HELD.get(key)
        if hold is None or hold.pid != os.getpid():
            return
        hold.count -= 1
        if hold.count > 0:
            return
        del _HELD[key]
        folder = Path(key)
        names = [HOLDER_NAME]
        if remove and set(os.listdir(folder)) <= BOOKKEEPING:
            names += [MARKER_NAME, LOCK_NAME]  # a run that failed before writing anything
        else:
            remove = ()
        for name in names:
            with contextlib.suppress(OSError):
                (folder / name).unlink()
        hold.lock.release()
    for directory in remove:
        try:
            directory.rmdir()
        except OSError:
            break


def _check_marker(folder: Path) -> bool:
    """True if ``folder`` carries a valid marker, False if none; an error if it is damaged."""
    marker = folder / MARKER_NAME
    if not marker.exists():
        return False
    try:
        info = load_json(marker, "results-folder marker")
    except (CorruptFileError, OSError) as exc:
        raise ResultsFolderError(
            f"{exc}; delete {str(marker)!r} only if the folder is yours"
        ) from exc
    if not isinstance(info, dict) or info.get("format") != MARKER_FORMAT:
        raise ResultsFolderError(
            f"the marker {str(marker)!r} is not in the format {MARKER_FORMAT!r}; this folder "
            "was not written by this version of weightsym"
        )
    return True


def _refuse_foreign(folder: Path) -> None:
    """Mark an empty folder; refuse a non-empty one without the marker, naming its entries."""
    entries = sorted(e for e in os.listdir(folder) if e not in BOOKKEEPING and not is_temp_name(e))
    if entries:
        shown = ", ".join(entries[:_LISTED])
        more = f" and {len(entries) - _LISTED} more" if len(entries) > _LISTED else ""
        raise ResultsFolderError(
            f"{str(folder)!r} is not empty and is not a weightsym results folder (it has no "
            f"{MARKER_NAME} file), so nothing is written there; it holds {shown}{more}. "
            "Choose a new or empty folder"
        )
    atomic_write_json(
        folder / MARKER_NAME, {"format": MARKER_FORMAT, "weightsym_version": library_version()}
    )


def remove_temp_files(folder: Path) -> list[Path]:
    """Delete weightsym's own temporary files in ``folder`` and in its subfolders that carry no
    marker of their own (those are cleaned by their own writer); return what was deleted.
    Symbolic links are never followed or deleted."""
    removed: list[Path] = []
    with os.scandir(folder) as entries:
        for entry in list(entries):
            if entry.is_symlink():
                continue
            path = Path(entry.path)
            if entry.is_dir() and not (path / MARKER_NAME).exists():
                removed += remove_temp_files(path)
            elif entry.is_file() and is_temp_name(entry.name):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


class ResultsFolder:
    """A results folder opened for writing by this process; holds its lock until closed.

    Use as a context manager (``with open_results_folder(out) as folder:``) or call
    :meth:`close`; the lock is also released when the object is collected and when the process
    ends. Leaving a ``with`` block by an exception removes a folder that this call created and
    in which nothing was written, so a failed run leaves no new empty folder.
    """

    def __init__(self, path: Path, key: str, created: tuple[Path, ...] = ()) -> None:
        self.path = path
        self.created = created  # folders this open created, deepest first
        self._key = key
        self.closed = False

    def close(self, *, failed: bool = False) -> None:
        """Release the lock (once); with ``failed`` also remove a new folder left empty."""
        if not self.closed:
            self.closed = True
            _release(self._key, remove=self.created if failed else ())

    def __enter__(self) -> ResultsFolder:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(failed=exc_type is not None)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"ResultsFolder({str(self.path)!r}, {state})"


def open_results_folder(path: PathLike) -> ResultsFolder:
    """Open ``path`` as this process's results folder: check, mark, lock and clean it.

    A missing folder is created (with parents) and marked, as is an empty one; a folder with
    the marker is reused; anything else is refused. The lock is taken at once or not at all
    (no waiting), and is re-entrant within one thread. Then :func:`remove_temp_files` runs.

    Args:
        path: the folder (str or path; an empty string is refused).

    Returns:
        A :class:`ResultsFolder` holding the lock.

    Raises:
        TypeError: ``path`` is not a str or path.
        FolderInUseError: another process or thread holds the folder (the message names it).
        ResultsFolderError: ``path`` is empty, a file, a non-empty folder without the marker
            (the message lists its first entries), or cannot be created or written.
    """
    folder = folder_argument(path)
    if folder.exists() and not folder.is_dir():
        raise ResultsFolderError(f"results folder {str(folder)!r} is a file, not a folder")
    created = tuple(p for p in (folder, *folder.parents) if not p.exists())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key = str(folder.resolve())
    except OSError as exc:
        raise ResultsFolderError(
            f"cannot create results folder {str(folder)!r}: {exc.strerror or exc}"
        ) from exc
    if not _check_marker(folder):
        _refuse_foreign(folder)
    _acquire(folder, key)
    handle = ResultsFolder(folder, key, created)
    try:
        remove_temp_files(folder)
    except OSError as exc:
        handle.close()
        raise ResultsFolderError(f"cannot read results folder {str(folder)!r}: {exc}") from exc
    return handle
