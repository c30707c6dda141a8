"""Checks shared by the path builders, and the evaluation of an objective along a band of points.

Each error names the argument and what was expected.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from weightsym.optimize import Objective
from weightsym.validation import check_vector


def check_objective(objective: Any, hessian: bool = False) -> None:
    """``objective`` has ``num_params`` and ``value_and_grad`` (and ``value_grad_hessian``)."""
    if not isinstance(objective, Objective):
        raise TypeError(
            "objective must have num_params and value_and_grad(x) (the Objective protocol); "
            f"got {type(objective).__name__}"
        )
    if hessian and not callable(getattr(objective, "value_grad_hessian", None)):
        raise TypeError(
            "objective must have value_grad_hessian(x) -> (float, Tensor, Tensor) for the exact "
            f"Hessian; {type(objective).__name__} has none"
        )


def check_endpoints(objective: Any, x_a: Tensor, x_b: Tensor) -> tuple[Tensor, Tensor]:
    """Two finite, distinct 1-D float tensors of length ``objective.num_params``, same dtype."""
    check_objective(objective)
    P = int(objective.num_params)
    x_a = check_vector(x_a, P, "x_a").detach()
    x_b = check_vector(x_b, P, "x_b").detach()
    if x_a.dtype != x_b.dtype:
        raise TypeError(f"x_a and x_b must have the same dtype; got {x_a.dtype} and {x_b.dtype}")
    if bool((x_a == x_b).all()):
        raise ValueError("x_a and x_b coincide; a path between them would have zero length")
    return x_a, x_b


def check_count(name: str, value: Any, minimum: int) -> int:
    """An int >= ``minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return value


def check_positive(name: str, value: Any) -> float:
    """A finite positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e300:
        raise ValueError(f"{name} must be a finite positive number; got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {choices}")
    return value


def evaluate(objective: Any, thetas: Tensor) -> tuple[Tensor, Tensor]:
    """Losses (N,) and gradients (N, P) of ``objective`` at each row of ``thetas``.

    Raises:
        ValueError: the objective returned NaN or inf at some point (its row is named).
    """
    losses = torch.empty(thetas.shape[0], dtype=thetas.dtype)
    grads = torch.empty_like(thetas)
    for i, theta in enumerate(thetas):
        f, g = objective.value_and_grad(theta)
        losses[i], grads[i] = float(f), g
    bad = ~(torch.isfinite(losses) & torch.isfinite(grads).all(dim=1))
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0])
        raise ValueError(f"the objective is NaN or inf at point {i} of the path (of {len(bad)})")
    return losses, grads
