"""TEMPORARY: the process pool the sweeps used before the Dask runner (to be replaced)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm.auto import tqdm


def execute(fn: Callable, jobs: Sequence[Any], workers: int, progress: bool, desc: str) -> list:
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress)
    rows = []
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            for row in pool.map(fn, jobs):
                rows.append(row)
                bar.update(1)
    else:
        for job in jobs:
            rows.append(fn(job))
            bar.update(1)
    bar.close()
    return rows
