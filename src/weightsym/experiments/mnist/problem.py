"""The student's loss and what is measured along an MNIST path (paper Sec. 5, Fig. 3;
docs/theory.md section 7).

The student starts at the teacher. Its loss is the paper's normalized mean squared error
between teacher and student logits,

    L(theta) = mean_{mu,i} (y_{mu,i} - f_i(x_mu; theta))^2 / mean_{mu,i} y_{mu,i}^2   (``nmse``),

with y = f(x; theta_teacher), so the teacher is a global minimum (L = 0) and every path starts
at one. ``nll`` replaces the teacher's logits by the task loss on the labels (the paper's
closing suggestion: paths between minima that are not teacher copies); a trained network is
then not an exact critical point, and on separable data the nll has no finite minimizer, which
the path's convergence flags report.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from weightsym.data import load_mnist
from weightsym.experiments.mnist.config import MnistConfig
from weightsym.experiments.mnist.teachers import Teacher, accuracy
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.pca import fit_pca, project

MONOTONE_RTOL = 1e-6
"""A fall of the loss by at most this fraction of the barrier still counts as monotone."""


def mnist_problem(teacher: Teacher, X: Tensor, y: Tensor, kind: str) -> Loss:
    """The student's loss: ``nmse`` against the teacher's logits (Fig. 3) or ``nll`` on labels.

    Args:
        teacher: the teacher (its network is the student's).
        X: (T, n_0) inputs (:func:`load_digits`); y: (T,) labels (used by ``nll`` only).
        kind: ``"nmse"`` or ``"nll"``.

    Returns:
        The :class:`weightsym.Loss`.
    """
    if kind == "nmse":
        return Loss(teacher.net, X, teacher.net.forward(teacher.theta, X), kind="nmse")
    return Loss(teacher.net, X, y, kind="nll")


def accuracy_curve(net: MLP, thetas: Tensor, X: Tensor, y: Tensor) -> list[float]:
    """Training accuracy at every point of a path (Fig. 3 B).

    Args:
        net: the student's network; thetas: (N, P) points of the path.
        X: (T, n_0) inputs (:func:`load_digits`); y: (T,) labels.

    Returns:
        The N accuracies (:func:`~weightsym.experiments.mnist.teachers.accuracy`).
    """
    return [accuracy(net, th, X, y) for th in thetas]


def rises_monotonically(losses: Sequence[float], rtol: float = MONOTONE_RTOL) -> tuple[bool, float]:
    """Whether ``losses`` never falls by more than ``rtol`` x its maximum, and its largest fall.

    The largest fall is max(0, max_j (L_j - L_{j+1})); the path is monotone when it is at most
    rtol max(0, max_j L_j). Claim 1 of Fig. 3 A: "the loss increases monotonically along our
    constructed paths from a global minimum until the permutation point".

    Args:
        losses: the loss along the path, in order.
        rtol: the tolerated fall, relative to the highest loss.

    Returns:
        (monotone, largest fall).
    """
    top = max(max(losses), 0.0)
    fall = max((a - b for a, b in zip(losses, losses[1:])), default=0.0)
    fall = max(fall, 0.0)
    return fall <= rtol * top, fall


def load_digits(cfg: MnistConfig) -> tuple[Tensor, Tensor]:
    """The training inputs of the sweep and their labels.

    The digits are ``cfg.limit`` of ``cfg.source`` (class-balanced), as 784 pixels, or with
    ``cfg.pca`` = K their top K whitened principal components fitted on these same digits
    (:mod:`weightsym.pca`, docs/theory.md section 8): the teachers are trained on the projected
    inputs, so the student-teacher setup stays exact on them.

    Returns:
        X: (T, 784) or (T, K) float64; y: (T,) int64 labels.

    Raises:
        ValueError: ``cfg.pca`` exceeds the rank of the centred digits.
    """
    X, y = load_mnist(cfg.source, "train", cfg.limit)
    if cfg.pca is None:
        return X, y
    try:
        pcs = fit_pca(X, cfg.pca)
    except ValueError as exc:
        raise ValueError(f"pca = {cfg.pca} is too many components for these digits: {exc}") from exc
    return project(X, pcs), y
