"""The permutation path (paper Sec. 4.1; docs/theory.md section 4).

* :mod:`~weightsym.paths.config`: :class:`PathConfig`, the settings and their presets;
* :mod:`~weightsym.paths.records`: :class:`StepRecord`, :class:`Barrier`,
  :class:`PathSummary`, :class:`PermutationPath`;
* :mod:`~weightsym.paths.reduced`: the variables a step is solved in (the chart, variable
  projection, whitened inputs, channel coordinates);
* :mod:`~weightsym.paths.step`: one step (predict, minimize at fixed d, diagnose);
* :mod:`~weightsym.paths.find`: :func:`find_path`, the whole path with its results folder;
* :mod:`~weightsym.paths.load`: :func:`load_path`, a stored path read back.
"""

from weightsym.paths.config import (
    PAPER_GD,
    PRESETS,
    SOLVERS,
    STEP_MAX_ITER,
    TRUST_REGION,
    PathConfig,
)
from weightsym.paths.find import find_path, problem_fingerprint
from weightsym.paths.load import load_path
from weightsym.paths.records import Barrier, PathSummary, PermutationPath, StepRecord

__all__ = [
    "PAPER_GD",
    "PRESETS",
    "SOLVERS",
    "STEP_MAX_ITER",
    "TRUST_REGION",
    "Barrier",
    "PathConfig",
    "PathSummary",
    "PermutationPath",
    "StepRecord",
    "find_path",
    "load_path",
    "problem_fingerprint",
]
