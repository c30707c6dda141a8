"""The straight line between two parameter vectors (linear mode connectivity; docs/theory.md
section 9): gamma(s) = (1 - s) x_a + s x_b, sampled at equally spaced s, so that the normalised
arc length t equals s."""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor

from weightsym.baselines.common import check_count, check_endpoints, evaluate
from weightsym.baselines.record import CurvePath, Fit

DEFAULT_POINTS = 101


def line_points(x_a: Tensor, x_b: Tensor, s: Tensor) -> Tensor:
    """(1 - s) x_a + s x_b for each s, with the endpoints reproduced exactly."""
    s = s.to(x_a.dtype)[:, None]
    thetas = (1 - s) * x_a + s * x_b
    thetas[s[:, 0] == 0] = x_a
    thetas[s[:, 0] == 1] = x_b
    return thetas


def linear_path(
    objective: Any, x_a: Tensor, x_b: Tensor, points: int = DEFAULT_POINTS
) -> CurvePath:
    """The objective along the straight line from ``x_a`` to ``x_b``.

    Args:
        objective: anything with ``num_params`` and ``value_and_grad(x) -> (float, Tensor)``.
        x_a, x_b: the endpoints, distinct finite 1-D float tensors of length num_params.
        points: number of equally spaced points, endpoints included (>= 2).

    Returns:
        A :class:`CurvePath` of kind ``"linear"`` (nothing is optimised: ``converged`` is True).

    Raises:
        TypeError: ``objective`` lacks the Objective protocol; ``x_a`` / ``x_b`` not float.
        ValueError: wrong shapes, NaN or inf, coinciding endpoints, ``points`` < 2, or the
            objective NaN / inf somewhere on the line.
    """
    x_a, x_b = check_endpoints(objective, x_a, x_b)
    points = check_count("points", points, minimum=2)
    t0 = time.perf_counter()
    thetas = line_points(x_a, x_b, torch.linspace(0.0, 1.0, points, dtype=torch.float64))
    loss, grads = evaluate(objective, thetas)
    fit = Fit("none", 0.0, 0.0, 0, points, time.perf_counter() - t0, math.nan)
    msg = f"straight line at {points} equally spaced points (nothing optimised)"
    return CurvePath.build("linear", thetas, loss, grads, converged=True, message=msg, fit=fit)
