"""Variable projection for one path step: the linear output layer solved by least squares.

For the squared-error losses (``mse``, ``nmse``; docs/theory.md section 1) the network's output
layer is linear (f = A B^T with A = [h^(d-1), 1], the augmented last hidden layer, and
B = [W^(d) | b^(d)]), so at fixed hidden parameters the loss is a linear least-squares problem
in B. Variable projection (Golub and Pereyra 1973; O'Leary and Rust 2013) eliminates B: the
reduced functional

    phi_red(x) = min_B L(x, B)

is minimized over the remaining chart coordinates x only. At the minimizer B*(x) the partial
gradient in B vanishes, so (envelope theorem) grad phi_red(x) = d_x L(x, B*(x)): one forward
pass, a least-squares solve and one backward pass per evaluation. Its Hessian is the Schur
complement H_xx - H_xB H_BB^+ H_Bx (implicit function theorem, dB*/dx = -H_BB^+ H_Bx), where
H_BB = 2 c (A^T A) (x) I for each output row, c = scale / (T n_d).

The objective works on a path step's chart, :class:`weightsym.constraints.ConstrainedLoss`
(docs/theory.md section 4). Only output coordinates that are free chart coordinates are
eliminated: with ``distance="joint"`` and the pair in the last hidden layer, the pair's output
columns w_l, w_m are tied by the constraint (vartheta_m, w_m) = (vartheta_l, w_l) + d e, stay
in x, and enter the least-squares problem as a fixed part of the fit.

The least-squares solve uses the thin SVD of the free columns A_F = U S V^T, with singular
values below ``rcond * s_max`` treated as zero (the minimum-norm solution; default
:data:`RCOND`). As d -> 0 the merging pair's columns h_l, h_m of A become collinear: the
smallest singular value falls like d, the solve's condition number grows like 1 / d (not
1 / d^2 as with the normal equations), and the pair's optimal output weights w_l - w_m ~ 1 / d
(a channel, docs/theory.md section 5) are computed directly rather than crept towards. At d = 0
the columns coincide exactly and the minimum-norm solution splits the output weight equally.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from weightsym.constraints import ConstrainedLoss
from weightsym.losses import Loss
from weightsym.validation import check_vector

KINDS = ("mse", "nmse")
"""The loss kinds whose output layer is a linear least-squares problem."""
RCOND = 1e-12
"""Singular values of the least-squares matrix below RCOND * s_max are treated as zero."""


class LeastSquaresFit(NamedTuple):
    """The output-layer solve at one point: the full theta with B_F = B*, and the SVD pieces.

    ``V`` (m, r) and ``s`` (r,) are the kept right singular vectors and values of A_F;
    ``rank`` = r of m free columns; ``condition`` = s_max / s_min over the kept values.
    """

    theta: Tensor
    V: Tensor
    s: Tensor
    rank: int
    condition: float


class ProjectedLoss:
    """L(theta) with the free output columns replaced by their least-squares optimum.

    A function of theta that ignores the free output entries; its gradient is the gradient of
    L at the projected point (whose free output entries vanish up to the solve's rounding).
    Used by :class:`VarPro` through the chart of :class:`ConstrainedLoss`.
    """

    def __init__(self, loss: Loss, free: Tensor, rcond: float = RCOND) -> None:
        self.loss, self.net, self.free, self.rcond = loss, loss.net, free, rcond
        c = self.net.shapes[-1][1]
        mask = torch.ones(c, dtype=torch.bool)
        mask[free] = False
        self.fixed = torch.nonzero(mask)[:, 0]
        self.num_params = self.net.num_params
        self._last: tuple[Tensor, tuple[LeastSquaresFit, list[Tensor], list[Tensor]]] | None = None

    def fit(self, theta: Tensor) -> LeastSquaresFit:
        """B_F* = argmin_B |A_F B_F^T - (Y - A_P B_P^T)|^2 by the truncated thin SVD of A_F."""
        return self._solve(theta)[0]

    def _solve(self, theta: Tensor) -> tuple[LeastSquaresFit, list[Tensor], list[Tensor]]:
        """The fit and the forward pass it came from (pre-activations, augmented inputs)."""
        if self._last is not None and torch.equal(self._last[0], theta):
            return self._last[1]
        net, Y = self.net, self.loss.Y
        pre, h_aug = net.activations(theta, self.loss.X)
        A = h_aug[-1]
        B = net.block(theta, net.depth)
        R = Y - A[:, self.fixed] @ B[:, self.fixed].T if self.fixed.numel() else Y
        U, s, Vh = torch.linalg.svd(A[:, self.free], full_matrices=False)
        r = int((s > self.rcond * s[0]).sum()) if s.numel() and s[0] > 0 else 0
        U, s, V = U[:, :r], s[:r], Vh[:r].T
        out = theta.clone()
        B_out = net.block(out, net.depth)
        B_out[:, self.free] = ((V / s) @ (U.T @ R)).T
        pre[-1] = A @ B_out.T
        cond = float(s[0] / s[-1]) if r else math.inf
        result = (LeastSquaresFit(out, V, s, r, cond), pre, h_aug)
        self._last = (theta.clone(), result)
        return result

    def __call__(self, theta: Tensor) -> float:
        return self.loss(self.fit(theta).theta)

    def value_and_grad(self, theta: Tensor) -> tuple[float, Tensor]:
        """(L, dL/dtheta) at the projected point: one forward, the solve, one backward."""
        loss, net = self.loss, self.net
        fit, pre, h_aug = self._solve(theta)
        th = fit.theta
        value = float(loss._of_output(pre[-1], loss.Y))
        delta, _ = loss._output_derivatives(pre[-1], loss.Y)
        g = torch.empty_like(th)
        for k in range(net.depth, 0, -1):  # back-propagation, as Loss.value_and_grad
            g[net.offsets[k - 1] : net.offsets[k]] = (delta.T @ h_aug[k - 1]).reshape(-1)
            if k > 1:
                delta = (delta @ net.block(th, k)[:, :-1]) * net.act.dg(pre[k - 2])
        return value, g


class VarPro:
    """The reduced objective phi_red(x) = min_B L(theta(x, B; d)) of one path step.

    Implements the :class:`weightsym.optimize.Objective` protocol (``num_params``,
    ``value_and_grad``) with the exact Hessian-vector product (``hvp``, the Schur complement;
    two Hessian-vector products of the chart) and the exact dense Hessian
    (``value_grad_hessian``, for small networks). x = phi[keep]: the chart coordinates phi of
    ``objective`` without the free output-layer entries; :meth:`expand` gives the full chart
    point at the optimal output layer, :meth:`restrict` the inverse.

    Args:
        objective: the step's :class:`ConstrainedLoss` on a ``mse`` or ``nmse`` loss.
        rcond: relative cut-off of the least-squares SVD (:data:`RCOND`).

    Raises:
        TypeError: ``objective`` is not a ConstrainedLoss on a weightsym.Loss.
        ValueError: the loss kind is not ``mse`` / ``nmse``; ``rcond`` not in (0, 1).
    """

    def __init__(self, objective: ConstrainedLoss, rcond: float = RCOND) -> None:
        if not isinstance(objective, ConstrainedLoss):
            raise TypeError(
                f"objective must be a weightsym.constraints.ConstrainedLoss (a path step's "
                f"chart); got {type(objective).__name__}"
            )
        loss = objective.loss
        if not isinstance(loss, Loss):
            raise TypeError(f"objective.loss must be a weightsym.Loss; got {type(loss).__name__}")
        if loss.kind not in KINDS:
            raise ValueError(
                f"variable projection needs a squared-error loss with the linear output layer "
                f"(kind in {KINDS}); got kind={loss.kind!r}"
            )
        if isinstance(rcond, bool) or not isinstance(rcond, (int, float)) or not 0 < rcond < 1:
            raise ValueError(f"rcond must be a number in (0, 1); got {rcond!r}")
        con, net = objective.con, loss.net
        self.full, self.con, self.d = objective, con, objective.d
        pos = torch.full((net.num_params,), -1, dtype=torch.long)
        pos[con.I_rest] = torch.arange(con.n_rest)
        n_out, c = net.shapes[-1]
        block = net.offsets[-2] + torch.arange(n_out)[:, None] * c + torch.arange(c)[None, :]
        free = torch.nonzero((pos[block] >= 0).all(dim=0))[:, 0]
        self.elim = pos[block[:, free]]  # (n_d, m): chart positions of B_F
        keep = torch.ones(con.num_params, dtype=torch.bool)
        keep[self.elim.reshape(-1)] = False
        self.keep = torch.nonzero(keep)[:, 0]
        self.num_params = int(self.keep.numel())
        self.projected = ProjectedLoss(loss, free, rcond)
        self._reduced = ConstrainedLoss(self.projected, con, objective.d)  # type: ignore[arg-type]
        self._c2 = 2.0 * loss.scale / (loss.T * n_out)  # H_BB = c2 (A^T A) per output row

    # -- coordinates ------------------------------------------------------------------------------
    def _scatter(self, x: Tensor) -> Tensor:
        check_vector(x, self.num_params, "x")
        phi = torch.zeros(self.con.num_params, dtype=x.dtype)
        phi[self.keep] = x
        return phi

    def restrict(self, phi: Tensor) -> Tensor:
        """x = phi without the eliminated output entries."""
        check_vector(phi, self.con.num_params, "phi")
        return phi[self.keep].clone()

    def fit(self, x: Tensor) -> LeastSquaresFit:
        """The least-squares solve at x (theta at the optimal output layer, rank, condition)."""
        return self.projected.fit(self.con.embed(self._scatter(x), self.d))

    def expand(self, x: Tensor) -> Tensor:
        """phi at x with the free output entries at their least-squares optimum B*(x)."""
        phi = self._scatter(x)
        theta = self.projected.fit(self.con.embed(phi, self.d)).theta
        phi[self.elim] = theta[self.con.I_rest[self.elim]]
        return phi

    # -- the objective ----------------------------------------------------------------------------
    def __call__(self, x: Tensor) -> float:
        return self.full(self.expand(x))

    def value_and_grad(self, x: Tensor) -> tuple[float, Tensor]:
        """(phi_red(x), grad phi_red(x)) = (L, d_x L) at (x, B*(x)) (envelope theorem)."""
        value, g = self._reduced.value_and_grad(self._scatter(x))
        return value, g[self.keep]

    def _solve_bb(self, G: Tensor, fit: LeastSquaresFit) -> Tensor:
        """H_BB^+ G for G of shape (n_d, m): G V S^-2 V^T / c2."""
        return ((G @ fit.V) / fit.s**2) @ fit.V.T / self._c2

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        """(H_xx - H_xB H_BB^+ H_Bx) v, exact: two Hessian-vector products of the chart."""
        check_vector(v, self.num_params, "v")
        phi = self.expand(x)
        fit = self.fit(x)
        a = self.full.hvp(phi, self._scatter(v))
        w = torch.zeros_like(phi)
        w[self.elim] = -self._solve_bb(a[self.elim], fit)
        b = self.full.hvp(phi, w)
        return a[self.keep] + b[self.keep]

    def value_grad_hessian(self, x: Tensor) -> tuple[float, Tensor, Tensor]:
        """(phi_red, gradient, dense Hessian as the Schur complement) at x, for small nets."""
        phi = self.expand(x)
        fit = self.fit(x)
        value, g, H = self.full.value_grad_hessian(phi)
        k, e = self.keep, self.elim.reshape(-1)
        H_ke = H[k][:, e]  # columns in elim's row-major (output row, free column) order
        n_out, m = self.elim.shape
        X = self._solve_bb(H_ke.T.reshape(n_out, m, -1).permute(2, 0, 1), fit)
        H_red = H[k][:, k] - H_ke @ X.reshape(-1, n_out * m).T
        return value, g[k], 0.5 * (H_red + H_red.T)
