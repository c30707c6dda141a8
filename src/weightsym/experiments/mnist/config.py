"""The settings of the MNIST sweep (paper Sec. 5, Fig. 3; docs/theory.md section 7).

Teachers 784 -> H -> H -> 10 (:mod:`weightsym.experiments.mnist.teachers`), or K -> H -> H -> 10
on the top K whitened principal components of the digits (``pca``), H in {10, 15, 20, 25}, 6
seeds each; in hidden layer k = 2 the most similar pair is merged in 100
log-spaced steps to 1e-4 d_0, for each path variant (the presets of
:class:`weightsym.paths.PathConfig`, docs/theory.md section 5). The path settings live in one
:class:`~weightsym.paths.PathConfig` template, :data:`MNIST_PATH`; why its solver is L-BFGS with
a budget of 60 iterations a step is measured in docs/mnist.md.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from weightsym import activations
from weightsym.experiments.mnist.teachers import (
    DEFAULT_ACTIVATION,
    DEFAULT_MAX_ITER,
    DEFAULT_TARGET_ACCURACY,
    TeacherConfig,
    check_pca,
)
from weightsym.paths import PRESETS, PathConfig
from weightsym.varpro import KINDS as VARPRO_KINDS

LAYER = 2
"""The paper merges a pair in the second hidden layer (Sec. 5)."""
MNIST_PATH = PathConfig(layer=LAYER, steps=100, solver="lbfgs", tol=1e-6, max_iter=60)
"""The MNIST path settings: the library defaults (pair ``None``: the most similar pair; ratio
d_S / d_0), with 100 steps and L-BFGS to grad_inf 1e-6 within 60 iterations a step; a step that
ends on the budget is recorded as not converged (docs/mnist.md)."""
LOSSES = ("nmse", "nll")
"""``nmse``: against the teacher's logits (Fig. 3); ``nll``: the task loss on the labels."""
LANCZOS_STEPS = 100
"""Lanczos steps on the Hessian at the permutation point
(:func:`weightsym.curvature.ritz_values`)."""


def _default_workers() -> int:
    return min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class MnistConfig:
    """The sweep: widths x seeds x variants, and how each teacher and path is computed.

    Attributes:
        widths, seeds: the teachers (H, seed).
        variants: path presets (``paper``, ``joint``, ``gauge``), each run on every teacher.
        loss: one of :data:`LOSSES`.
        source, limit: the digits (:func:`weightsym.data.load_mnist`).
        pca: None (the 784 pixels) or K: the teachers' and students' inputs are the digits'
            top K whitened principal components, fitted on these training digits
            (:func:`weightsym.pca.fit_pca`; at most their rank).
        activation, target_accuracy, teacher_max_iter: the teachers' training
            (:class:`~weightsym.experiments.mnist.teachers.TeacherConfig`).
        path: the template of every path; its ``distance`` and ``gauge`` are set per variant.
        lanczos_steps: Lanczos steps at the permutation point (0: skip).
        workers: processes of the sweep; threads: torch threads each (None: cores / workers).
    """

    widths: Sequence[int] = (10, 15, 20, 25)
    seeds: Sequence[int] = (0, 1, 2, 3, 4, 5)
    variants: Sequence[str] = ("paper", "joint")
    loss: str = "nmse"
    source: str = "embedded"
    limit: int | None = None
    pca: int | None = None
    activation: str = DEFAULT_ACTIVATION
    target_accuracy: float = DEFAULT_TARGET_ACCURACY
    teacher_max_iter: int = DEFAULT_MAX_ITER
    path: PathConfig = MNIST_PATH
    lanczos_steps: int = LANCZOS_STEPS
    workers: int = field(default_factory=_default_workers)
    threads: int | None = None

    def validate(self) -> None:
        """Raise ValueError (TypeError for a wrong type) naming the first bad setting."""
        g = activations.get(self.activation)
        if not self.widths or not self.seeds or not self.variants:
            raise ValueError("widths, seeds and variants must each name at least one value")
        for v in self.variants:
            if v not in PRESETS:
                raise ValueError(f"unknown variant {v!r}; expected one of {tuple(PRESETS)}")
            if v == "gauge" and not g.positively_homogeneous:
                raise ValueError(
                    f"variant 'gauge' needs a positively homogeneous activation; "
                    f"got {self.activation!r}"
                )
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        if self.path.varpro and self.loss not in VARPRO_KINDS:
            raise ValueError(
                f"path varpro=True needs a squared-error loss (one of {VARPRO_KINDS}); "
                f"got loss {self.loss!r}"
            )
        for H in self.widths:
            if isinstance(H, bool) or not isinstance(H, int) or H < 2:
                raise ValueError(f"widths must be ints >= 2 (a pair needs two); got {H!r}")
        check_pca(self.pca)
        if self.lanczos_steps < 0:
            raise ValueError(f"lanczos_steps must be >= 0; got {self.lanczos_steps!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1; got {self.workers!r}")
        for v in self.variants:
            self.path_config(v).validate()

    def path_config(self, variant: str) -> PathConfig:
        """The settings of one path: the template with the preset ``variant`` applied."""
        return self.path.variant(variant)

    def teacher_config(self, width: int, seed: int, data: str) -> TeacherConfig:
        """The settings of teacher (H, seed) trained on the inputs fingerprinted ``data``."""
        return TeacherConfig(
            width=int(width),
            seed=int(seed),
            activation=self.activation,
            target_accuracy=self.target_accuracy,
            max_iter=self.teacher_max_iter,
            data=data,
            pca=self.pca,
        )

    def teachers(self) -> list[tuple[int, int]]:
        """(H, seed) of every teacher, in the order of ``widths`` then ``seeds``."""
        return [(int(H), int(s)) for H in self.widths for s in self.seeds]

    def natural_jobs(self) -> list[tuple[int, int, str]]:
        """(H, seed, variant) of every path in table order."""
        return [(H, s, v) for H, s in self.teachers() for v in self.variants]

    def jobs(self) -> list[tuple[int, int, str]]:
        """(H, seed, variant) of every path, ordered so that the widest run first."""
        return sorted(self.natural_jobs(), key=lambda j: -j[0])

    def num_threads(self) -> int:
        """torch threads per worker: ``threads``, else the cores shared among the workers."""
        return self.threads or max(1, (os.cpu_count() or 1) // self.workers)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able settings, as stored in ``summary.json``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return out | {
            "widths": [int(w) for w in self.widths],
            "seeds": [int(s) for s in self.seeds],
            "variants": list(self.variants),
            "path": self.path.as_dict(),
        }
