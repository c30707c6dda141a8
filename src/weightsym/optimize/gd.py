"""Full-batch gradient descent (``"gd"``), the paper's solver (Sec. 4.1).

x_{k+1} = x_k - lr * grad f(x_k) with a fixed step ``lr``. For a quadratic with largest Hessian
eigenvalue L it converges when lr < 2 / L and the iterates grow when lr > 2 / L; a run whose
loss rose in :data:`GD_RISES` consecutive steps is therefore stopped as unstable (no progress).
See docs/theory.md section 6.
"""

from __future__ import annotations

from weightsym.optimize.run import _positive, _Run

DEFAULT_LR = 1e-2  # step of "gd" (the paper does not give its step)
GD_RISES = 20  # "gd" stops as unstable after this many consecutive increases of the loss


def _gd(run: _Run, *, lr: float = DEFAULT_LR) -> None:
    """Full-batch gradient descent x <- x - lr * grad, the paper's solver (Sec. 4.1).

    Stops as unstable (no progress) once the loss rose in :data:`GD_RISES` consecutive steps.
    """
    _positive("lr", lr)
    rises = 0
    while True:
        x = run.x - lr * run.g
        run.move(x, *run.value_and_grad(x))
        rises = rises + 1 if run.f > run.f_prev else 0
        run.end_iteration(step=lr * float(run.g.norm()))
        if rises >= GD_RISES:
            raise run.no_progress(
                f"the loss rose in {rises} consecutive steps: lr {lr:g} is too large for the "
                "curvature here (gradient descent is unstable)"
            )
