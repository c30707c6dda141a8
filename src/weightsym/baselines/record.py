"""The typed record of a path between two parameter vectors (docs/theory.md section 9).

One record for every baseline (straight line, Bezier curve, polygonal chain, nudged elastic
band), shaped like the permutation path's: ``full() -> (t, thetas, losses)`` and a ``barrier``
of the same type (:class:`weightsym.paths.Barrier`), so that
:func:`weightsym.baselines.barrier_report` and the plots treat them alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from weightsym.baselines.barriers import arc_length
from weightsym.baselines.saddle import SaddleCertificate
from weightsym.optimize import OptimizeResult
from weightsym.paths import Barrier

KINDS = ("linear", "bezier", "chain", "neb")


class Fit(NamedTuple):
    """How the free points of a path were optimised.

    ``method``: ``"none"`` (straight line), ``"lbfgs"`` (Bezier / chain bends) or ``"fire"``
    (elastic band). ``tol`` is the stopping tolerance and ``residual`` what was reached, both on
    the inf-norm of the quantity driven to zero (the gradient in the bends; the NEB force);
    ``nit`` iterations, ``ngev`` gradient evaluations of the objective, ``wall_time`` seconds.
    ``objective`` is the optimised quantity's final value where there is one (Bezier / chain:
    the mean loss along the curve by quadrature), else NaN.
    """

    method: str
    tol: float
    residual: float
    nit: int
    ngev: int
    wall_time: float
    objective: float


@dataclass(frozen=True)
class CurvePath:
    """A path gamma from ``thetas[0]`` to ``thetas[-1]`` sampled at N points.

    Attributes:
        kind: ``"linear"``, ``"bezier"``, ``"chain"`` or ``"neb"``.
        t: (N,) normalised arc length of ``thetas`` (:func:`weightsym.baselines.arc_length`).
        loss: (N,) the objective at each point.
        grad_inf: (N,) inf-norm of the gradient at each point (NaN where not computed).
        thetas: (N, P) the points.
        converged: whether the path's optimisation met its tolerance (always True for the
            straight line; for the band, the force tolerance and, where run, the saddle
            refinement's).
        message: what happened, in words.
        fit: a :class:`Fit`.
        bends: Bezier / chain: the trained control points (bends, P); else None.
        climbing: NEB: the row of the climbing image (None without climbing).
        refined: NEB: :func:`weightsym.baselines.refine_saddle`'s result from the climbing
            image (its ``x`` is the refined saddle), or None.
        saddle: NEB: the certificate at ``refined.x``, or None.
    """

    kind: str
    t: Tensor
    loss: Tensor
    grad_inf: Tensor
    thetas: Tensor
    converged: bool
    message: str
    fit: Fit
    bends: Tensor | None = None
    climbing: int | None = None
    refined: OptimizeResult | None = None
    saddle: SaddleCertificate | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {KINDS}")
        N = self.thetas.shape[0]
        for name in ("t", "loss", "grad_inf"):
            if tuple(getattr(self, name).shape) != (N,):
                raise ValueError(
                    f"{name} must have shape ({N},) like thetas' rows; "
                    f"got {tuple(getattr(self, name).shape)}"
                )

    @classmethod
    def build(cls, kind: str, thetas: Tensor, loss: Tensor, grads: Tensor, **fields) -> CurvePath:
        """The record of points ``thetas`` with their losses and gradients (t from arc length)."""
        grad_inf = grads.abs().amax(dim=1) if grads.numel() else torch.zeros_like(loss)
        return cls(kind, arc_length(thetas), loss, grad_inf, thetas, **fields)

    def __len__(self) -> int:
        return int(self.thetas.shape[0])

    def full(self) -> tuple[Tensor, Tensor, Tensor]:
        """(t, thetas, losses), as :meth:`weightsym.paths.PermutationPath.full`."""
        return self.t, self.thetas, self.loss

    @property
    def barrier(self) -> Barrier:
        """The highest point: (loss, t, index, at_point, converged).

        ``at_point`` is True when the highest point is at a certified first-order saddle: the
        band's climbing image, refined to ``refined.success`` with index 1, and the refined
        point closer to that image than half the distance to either neighbour. It is False for
        the straight line and the Bezier / chain curves, which claim no saddle.
        """
        i = int(torch.argmax(self.loss))
        return Barrier(float(self.loss[i]), float(self.t[i]), i, self._at_saddle(i), self.converged)

    def _at_saddle(self, i: int) -> bool:
        r, c = self.refined, self.saddle
        if r is None or c is None or not r.success or c.negative != 1 or i != self.climbing:
            return False
        th = self.thetas
        gap = min(float(torch.linalg.vector_norm(th[j] - th[i])) for j in (i - 1, i + 1))
        return float(torch.linalg.vector_norm(r.x - th[i])) < 0.5 * gap
