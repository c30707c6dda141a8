"""Barrier heights of a path between two minima, under the definitions in use (docs/theory.md
section 9).

For a path gamma from a = gamma(0) to b = gamma(1) with losses L(t):

* ``"max"``: max_t L(t), the highest loss (the paper's barrier, Sec. 4.1);
* ``"frankle"``: max_t L(t) - max(L(a), L(b)) (Frankle et al. 2020, linear mode connectivity);
* ``"entezari"``: max_t L(t) - (L(a) + L(b)) / 2 (Entezari et al. 2022).

The endpoints lie on the path, so the last two are >= 0. ``relative=True`` divides by the mean
endpoint loss m = (L(a) + L(b)) / 2. Rule for m = 0 (e.g. a teacher and its permuted copy, both
at zero loss): the relative barrier is 0 where the absolute one is 0 and +inf where it is
positive. A negative m (an objective that is not a loss, e.g. an energy surface) has no relative
barrier: :func:`barrier_height` raises and :class:`BarrierReport` holds NaN.

The position of the barrier is given in normalised arc length s in [0, 1]: the cumulative
Euclidean length of the polygon through the path's points over its total length, so that paths
with different parametrisations (permutation path, straight line, Bezier curve, elastic band)
are compared on one axis.

Every function accepts any object with ``full() -> (t, thetas, losses)``: the permutation path
(:class:`weightsym.paths.PermutationPath`) and :class:`weightsym.baselines.CurvePath` alike.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from weightsym.validation import check_finite

DEFINITIONS = ("max", "frankle", "entezari")


class BarrierReport(NamedTuple):
    """Every barrier definition of one path, absolute and relative (see the module docstring).

    ``position`` is the normalised arc length of the highest point, ``index`` its row in
    ``full()``; ``loss_a`` and ``loss_b`` the endpoint losses; ``mean_loss`` the mean of the
    loss over normalised arc length (:func:`mean_loss`). Relative values are NaN when the mean
    endpoint loss is negative.
    """

    max: float
    frankle: float
    entezari: float
    max_relative: float
    frankle_relative: float
    entezari_relative: float
    position: float
    index: int
    loss_a: float
    loss_b: float
    mean_loss: float


def arc_length(thetas: Tensor) -> Tensor:
    """Normalised cumulative arc length s_i = sum_{j <= i} |theta_j - theta_{j-1}| / total.

    Args:
        thetas: (N, P) points of a path, N >= 2, finite.

    Returns:
        (N,) float64, s_0 = 0 and s_{N-1} = 1 exactly, non-decreasing.

    Raises:
        TypeError: ``thetas`` is not a float tensor.
        ValueError: wrong shape, NaN or inf, or all points coincide (zero length).
    """
    if not isinstance(thetas, Tensor) or not thetas.is_floating_point():
        raise TypeError(f"thetas must be a float torch.Tensor; got {_describe(thetas)}")
    if thetas.dim() != 2 or thetas.shape[0] < 2:
        raise ValueError(f"thetas must have shape (N, P) with N >= 2; got {tuple(thetas.shape)}")
    check_finite("thetas", thetas)
    seg = torch.linalg.vector_norm(thetas[1:] - thetas[:-1], dim=1).to(torch.float64)
    total = float(seg.sum())
    if total == 0.0:
        raise ValueError("thetas: all points coincide; the path has zero arc length")
    s = torch.cat([seg.new_zeros(1), torch.cumsum(seg, 0) / total])
    s[-1] = 1.0
    return s


def barrier_height(path: Any, definition: str = "max", relative: bool = False) -> float:
    """The barrier of ``path`` under ``definition`` (see the module docstring).

    Args:
        path: any object with ``full() -> (t, thetas, losses)``.
        definition: ``"max"``, ``"frankle"`` or ``"entezari"``.
        relative: divide by the mean endpoint loss (0 / 0 = 0, positive / 0 = +inf).

    Returns:
        The barrier, a float.

    Raises:
        ValueError: unknown ``definition``; ``path.full()`` malformed or not finite;
            ``relative=True`` with a negative mean endpoint loss.
        TypeError: ``path`` has no ``full()``, or ``relative`` is not a bool.
    """
    if definition not in DEFINITIONS:
        raise ValueError(f"unknown definition {definition!r}; expected one of {DEFINITIONS}")
    if not isinstance(relative, bool):
        raise TypeError(f"relative must be a bool; got {type(relative).__name__}")
    _, _, losses = _curve(path)
    absolute = _absolute(losses)[definition]
    if not relative:
        return absolute
    mean = 0.5 * (float(losses[0]) + float(losses[-1]))
    if mean < 0:
        raise ValueError(
            f"relative barrier needs a non-negative mean endpoint loss; got {mean:.6g} "
            "(an objective that is not a loss has no relative barrier)"
        )
    return _relative(absolute, mean)


def barrier_report(path: Any) -> BarrierReport:
    """All definitions of :func:`barrier_height`, absolute and relative, and where the top is."""
    _, thetas, losses = _curve(path)
    s = arc_length(thetas)
    absolute = _absolute(losses)
    mean = 0.5 * (float(losses[0]) + float(losses[-1]))
    rel = {k: (_relative(v, mean) if mean >= 0 else math.nan) for k, v in absolute.items()}
    i = int(torch.argmax(losses))
    return BarrierReport(
        max=absolute["max"],
        frankle=absolute["frankle"],
        entezari=absolute["entezari"],
        max_relative=rel["max"],
        frankle_relative=rel["frankle"],
        entezari_relative=rel["entezari"],
        position=float(s[i]),
        index=i,
        loss_a=float(losses[0]),
        loss_b=float(losses[-1]),
        mean_loss=_trapezoid(losses, s),
    )


def mean_loss(path: Any) -> float:
    """The mean loss over normalised arc length, int_0^1 L ds, by the trapezoid rule."""
    _, thetas, losses = _curve(path)
    return _trapezoid(losses, arc_length(thetas))


def _trapezoid(losses: Tensor, s: Tensor) -> float:
    return float(torch.trapezoid(losses.to(torch.float64), s))


def _absolute(losses: Tensor) -> dict[str, float]:
    top, a, b = float(losses.max()), float(losses[0]), float(losses[-1])
    return {"max": top, "frankle": top - max(a, b), "entezari": top - 0.5 * (a + b)}


def _relative(absolute: float, mean: float) -> float:
    if mean > 0:
        return absolute / mean
    return 0.0 if absolute == 0 else math.inf


def _curve(path: Any) -> tuple[Tensor, Tensor, Tensor]:
    """``path.full()``, checked: t (N,), thetas (N, P) and losses (N,), finite, N >= 2."""
    full = getattr(path, "full", None)
    if not callable(full):
        raise TypeError(f"path must have full() -> (t, thetas, losses); got {type(path).__name__}")
    out = full()
    if not (isinstance(out, tuple) and len(out) == 3 and all(isinstance(x, Tensor) for x in out)):
        raise ValueError("path.full() must return a tuple of three tensors (t, thetas, losses)")
    t, thetas, losses = out
    N = losses.shape[0] if losses.dim() == 1 else -1
    if N < 2 or t.shape != (N,) or thetas.dim() != 2 or thetas.shape[0] != N:
        raise ValueError(
            "path.full() must return t (N,), thetas (N, P) and losses (N,) with N >= 2; got "
            f"{tuple(t.shape)}, {tuple(thetas.shape)}, {tuple(losses.shape)}"
        )
    check_finite("path.full() losses", losses)
    return t, thetas, losses


def _describe(x: Any) -> str:
    return f"{x.dtype} tensor" if isinstance(x, Tensor) else type(x).__name__
