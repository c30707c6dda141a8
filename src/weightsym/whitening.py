"""Whitened first-layer inputs: an exact change of variables of the first layer's weights.

The first layer sees X (T, n_0). With mu the mean digit and the thin SVD of the centred inputs
restricted to their non-constant columns, X - mu = U S V^T (r singular values above
``rcond * s_max``), the whitened inputs are

    X~ = (X - mu) Q^+^T,   Q = V S / sqrt(T),   Q^+ = sqrt(T) S^-1 V^T,

so that X~^T X~ / T = I_r. Since X - mu = X~ Q^+ on the data (exactly where the dropped
directions are constant columns, to ``rcond`` otherwise), the first layer's pre-activations
X W1^T + b1 = X~ W1~^T + b1~ with

    W1~ = W1 Q   (n_1, r),    b1~ = b1 + W1 mu.

The weights along the dropped directions, F = W1 (I - V V^T), do not affect the loss (exactly
for the zero-variance input columns, whose centred values are exactly 0) and are held fixed:
W1 = W1~ Q^+ + F, b1 = b1~ - W1 mu. Every other parameter is unchanged, so the loss in the new
variables equals the old one to rounding, and its gradient maps back as the transpose of the
linear map: dL/dW1 = (dL/dW1~) Q^T + (dL/db1~) mu^T, dL/db1 = dL/db1~.

The whitened network is an :class:`MLP` with r inputs, so :class:`Loss`, the path chart and the
solvers run on it unchanged. The chart of a pair in hidden layer k >= 2 is the same in both
variables; a pair in layer 1 is not (its incoming vectors are the changed ones), which
:meth:`WhitenedProblem.constraint` refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from weightsym.constraints import PairConstraint
from weightsym.losses import Loss
from weightsym.model import MLP

RCOND = 1e-10
"""Singular values of the centred inputs below RCOND * s_max count as zero variance."""


@dataclass(frozen=True)
class InputWhitening:
    """The map X -> X~ fitted once on the inputs (see the module docstring).

    Attributes:
        mu: (n_0,) the mean input.
        Q: (n_0, r) with W1~ = W1 Q; Qp: (r, n_0), its pseudo-inverse.
        V: (n_0, r) the kept orthonormal input directions.
        zero_variance: indices of the input columns that are constant on the data.
    """

    mu: Tensor
    Q: Tensor
    Qp: Tensor
    V: Tensor
    zero_variance: Tensor

    @classmethod
    def fit(cls, X: Tensor, rcond: float = RCOND) -> InputWhitening:
        """Fit mu and the kept directions on X (T, n_0), float64.

        Raises:
            TypeError: X is not a 2-D float64 tensor.
            ValueError: X is empty or has no input direction of nonzero variance;
                ``rcond`` not in (0, 1).
        """
        if not isinstance(X, Tensor) or X.dim() != 2 or X.dtype != torch.float64:
            raise TypeError(f"X must be a 2-D float64 tensor; got {_describe(X)}")
        if isinstance(rcond, bool) or not isinstance(rcond, (int, float)) or not 0 < rcond < 1:
            raise ValueError(f"rcond must be a number in (0, 1); got {rcond!r}")
        T, n0 = X.shape
        if T == 0:
            raise ValueError("X must hold at least one sample; got T = 0")
        constant = (X == X[0]).all(dim=0)
        varying = torch.nonzero(~constant)[:, 0]
        if varying.numel() == 0:
            raise ValueError("X has no input column of nonzero variance: nothing to whiten")
        mu = X.mean(dim=0)
        mu[constant] = X[0, constant]  # exact, so that the centred constant columns are 0
        _, s, Vh = torch.linalg.svd(X[:, varying] - mu[varying], full_matrices=False)
        r = int((s > rcond * s[0]).sum())
        V = torch.zeros(n0, r, dtype=X.dtype)
        V[varying] = Vh[:r].T
        s = s[:r]
        root = float(T) ** 0.5
        return cls(mu, V * (s / root), (V * (root / s)).T, V, torch.nonzero(constant)[:, 0])

    @property
    def rank(self) -> int:
        """r, the number of whitened inputs."""
        return int(self.V.shape[1])

    def transform(self, X: Tensor) -> Tensor:
        """X~ = (X - mu) Q^+^T, (T, r)."""
        return (X - self.mu) @ self.Qp.T


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"a {x.dim()}-D {x.dtype} tensor"
    return type(x).__name__


class WhitenedProblem:
    """A loss in whitened first-layer variables, with the maps between theta and theta~.

    Args:
        loss: the original :class:`Loss`.
        theta: a point of the original problem; its weights along the dropped input
            directions (F) are the ones held fixed.
        rcond: see :meth:`InputWhitening.fit`.

    Attributes:
        whitening: the fitted :class:`InputWhitening`; net, loss: the whitened network
            (r inputs) and its :class:`Loss` on X~ (same targets and kind); held: F.
    """

    def __init__(self, loss: Loss, theta: Tensor, rcond: float = RCOND) -> None:
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be a weightsym.Loss; got {type(loss).__name__}")
        self.original = loss
        loss.net.check_theta(theta)
        self.whitening = w = InputWhitening.fit(loss.X, rcond)
        net = loss.net
        self.net = MLP([w.rank, *net.widths[1:]], net.activation, net.negative_slope)
        self.loss = Loss(self.net, w.transform(loss.X), loss.Y, loss.kind)
        W1 = net.unflatten(theta)[0][0]
        self.held = W1 - (W1 @ w.V) @ w.V.T

    def to_whitened(self, theta: Tensor) -> Tensor:
        """theta~: W1~ = W1 Q, b1~ = b1 + W1 mu, the other layers unchanged."""
        layers = self.original.net.unflatten(theta)
        W1, b1 = layers[0]
        w = self.whitening
        return self.net.flatten([(W1 @ w.Q, b1 + W1 @ w.mu), *layers[1:]])

    def from_whitened(self, theta_w: Tensor) -> Tensor:
        """theta: W1 = W1~ Q^+ + F, b1 = b1~ - W1 mu, the other layers unchanged."""
        layers = self.net.unflatten(theta_w)
        W1w, b1w = layers[0]
        W1 = W1w @ self.whitening.Qp + self.held
        return self.original.net.flatten([(W1, b1w - W1 @ self.whitening.mu), *layers[1:]])

    def grad_to_original(self, grad_w: Tensor) -> Tensor:
        """dL/dtheta from dL/dtheta~: (dL/dW1~) Q^T + (dL/db1~) mu^T; dL/db1 = dL/db1~."""
        layers = self.net.unflatten(grad_w)
        G1, g1 = layers[0]
        W = self.whitening
        return self.original.net.flatten([(G1 @ W.Q.T + torch.outer(g1, W.mu), g1), *layers[1:]])

    def constraint(self, con: PairConstraint) -> PairConstraint:
        """The same pair constraint on the whitened network (pairs in layer k >= 2 only).

        Raises:
            ValueError: the pair is in layer 1, whose incoming vectors whitening changes.
        """
        if con.layer == 1:
            raise ValueError(
                "whitening changes the incoming vectors of layer 1, so a layer-1 pair's "
                "distance is not preserved; whiten only for pairs in layers >= 2"
            )
        return PairConstraint(self.net, con.layer, con.pair, con.distance, con.gauge)
