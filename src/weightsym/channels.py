"""Channel coordinates of a merging pair, in which the channel escape stays finite.

On the paper's (incoming) distance with a smooth g the pair's output vectors may diverge as
d -> 0, w_{l,m} ~ w_bar -/+ c / d (the channel escape, docs/theory.md section 5.1). In the
channel coordinates (docs/theory.md section 5.4)

    sigma = w_l + w_m,   kappa = d (w_m - w_l),   v_m = v_l + d e,  |e| = 1,

the pair's contribution to the next layer's pre-activation is, with a_l = v_l . h~ and
delta = e . h~ (h~ the augmented input of layer k),

    w_l g(a_l) + w_m g(a_m) = sigma M + kappa D,
    M = (g(a_l) + g(a_l + d delta)) / 2,   D = (g(a_l + d delta) - g(a_l)) / (2 d),

the same function for every d > 0, and as d -> 0 it tends to sigma g(a_l) + kappa g'(a_l)
delta / 2: the pair becomes a neuron computing g and one computing the derivative of g along e.
D is evaluated without cancellation: as the difference quotient where |d delta| is large, and
as delta/2 times the Gauss-Legendre mean of g' over [a_l, a_m] where it is small (and at d = 0).

:class:`ChannelChart` maps theta to and from these coordinates, :class:`ChannelLoss` is the
loss in them at a fixed d >= 0 (derivatives by ``torch.func``), :func:`channel_limit`
minimizes it at d = 0 (the loss a pair channel tends to) and :func:`channel_trend` reads from a
path's steps whether |w_m - w_l| grows like 1/d.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.func import grad, jvp

from weightsym.activations import Activation
from weightsym.constraints import ConstrainedLoss, PairConstraint
from weightsym.losses import Loss
from weightsym.optimize import minimize
from weightsym.symmetry import check_pair, distance_indices

SWITCH = 1e-3
"""|d delta| above which D is the difference quotient; below it, the quadrature of g'."""
QUADRATURE_NODES = 6  # Gauss-Legendre nodes: error ~ |d delta|^12 g^(13) for |d delta| <= SWITCH
_T, _W = (
    torch.tensor(a, dtype=torch.float64) for a in np.polynomial.legendre.leggauss(QUADRATURE_NODES)
)
_T, _W = (_T + 1.0) / 2.0, _W / 2.0  # nodes and weights on [0, 1]


class ChannelChart:
    """theta <-> x = (rest, v_l, u, sigma, kappa) for a pair (l, m) of hidden layer k.

    ``rest`` is theta without the pair's incoming vectors (vartheta, Def. 1) and output vectors
    (w, Def. 2); e = u / |u|. At d > 0 the map is a bijection up to the length of u; at d = 0
    the coordinates describe the limiting network (g and g' neurons), which no theta computes
    unless kappa = 0.
    """

    def __init__(self, loss: Loss, layer: int, pair: tuple[int, int]) -> None:
        net = loss.net
        l, m = check_pair(net, layer, *pair, names=("pair[0]", "pair[1]"))
        self.loss, self.net, self.layer, self.pair = loss, net, layer, (l, m)
        self.I_l = distance_indices(net, layer, l, "incoming")
        self.I_m = distance_indices(net, layer, m, "incoming")
        self.O_l, self.O_m = net.output_index(layer, l), net.output_index(layer, m)
        mask = torch.ones(net.num_params, dtype=torch.bool)
        for idx in (self.I_l, self.I_m, self.O_l, self.O_m):
            mask[idx] = False
        self.I_rest = torch.nonzero(mask)[:, 0]
        self.n_rest, self.c, self.o = int(self.I_rest.numel()), int(self.I_l.numel()), len(self.O_l)
        self.num_params = self.n_rest + 2 * self.c + 2 * self.o
        self._cols = torch.tensor([l, m])

    def split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(rest, v_l, u, sigma, kappa) views of x."""
        n, c, o = self.n_rest, self.c, self.o
        cuts = [n, n + c, n + 2 * c, n + 2 * c + o]
        return x[:n], x[cuts[0] : cuts[1]], x[cuts[1] : cuts[2]], x[cuts[2] : cuts[3]], x[cuts[3] :]

    def to_channel(self, theta: Tensor) -> tuple[Tensor, float]:
        """(x, d) with d = |v_m - v_l| > 0, sigma = w_l + w_m and kappa = d (w_m - w_l)."""
        self.net.check_theta(theta)
        diff = theta[self.I_m] - theta[self.I_l]
        d = float(diff.norm())
        if d == 0.0:
            raise ValueError("the pair coincides (d = 0): no direction e, no channel coordinates")
        w_l, w_m = theta[self.O_l], theta[self.O_m]
        x = torch.cat([theta[self.I_rest], theta[self.I_l], diff / d, w_l + w_m, d * (w_m - w_l)])
        return x, d

    def to_theta(self, x: Tensor, d: float) -> Tensor:
        """The theta of x at distance d > 0 (w_{l,m} = (sigma -/+ kappa / d) / 2)."""
        if not d > 0.0:
            raise ValueError(f"d must be > 0 to map back to theta; got {d!r}")
        rest, v_l, u, sigma, kappa = self.split(x)
        theta = torch.empty(self.net.num_params, dtype=x.dtype)
        theta[self.I_rest] = rest
        theta[self.I_l] = v_l
        theta[self.I_m] = v_l + d * u / u.norm()
        theta[self.O_l] = 0.5 * (sigma - kappa / d)
        theta[self.O_m] = 0.5 * (sigma + kappa / d)
        return theta

    def forward(self, x: Tensor, d: float, X: Tensor) -> Tensor:
        """f(X) of the network in channel coordinates at d >= 0 (finite at d = 0)."""
        net, k, l = self.net, self.layer, self.pair[0]
        rest, v_l, u, sigma, kappa = self.split(x)
        theta = torch.zeros(net.num_params, dtype=x.dtype).index_put((self.I_rest,), rest)
        theta = theta.index_put((self.I_l,), v_l).index_put((self.I_m,), v_l)
        theta = theta.index_put((self.O_l,), sigma).index_put((self.O_m,), kappa)
        ones = torch.ones(X.shape[0], 1, dtype=X.dtype)
        h = torch.cat([X, ones], dim=1)
        for j in range(1, net.depth + 1):
            a = h @ net.block(theta, j).T
            if j == net.depth:
                return a
            hj = net.act.g(a)
            if j == k:
                a_l, delta = a[:, l], h @ (u / u.norm())
                g_l, g_m = hj[:, l], net.act.g(a_l + d * delta)
                D = 0.5 * delta * _divided_difference(net.act, a_l, d * delta)
                hj = hj.index_copy(1, self._cols, torch.stack([(g_l + g_m) / 2, D], dim=1))
            h = torch.cat([hj, ones], dim=1)
        raise AssertionError("unreachable")  # pragma: no cover


def _divided_difference(act: Activation, a: Tensor, step: Tensor) -> Tensor:
    """(g(a + step) - g(a)) / step, finite and cancellation-free for every step (0 included)."""
    big = step.abs() > SWITCH
    safe = torch.where(big, step, torch.ones_like(step))
    direct = (act.g(a + torch.where(big, step, torch.zeros_like(step))) - act.g(a)) / safe
    small = torch.where(big, torch.zeros_like(step), step)
    quad = sum(w * act.dg(a + t * small) for t, w in zip(_T.tolist(), _W.tolist(), strict=True))
    return torch.where(big, direct, quad)


class ChannelLoss:
    """L in channel coordinates at a fixed d >= 0: the objective of :func:`channel_limit`.

    At d > 0, ``ChannelLoss(chart, d)(x) == loss(chart.to_theta(x, d))`` (the same function);
    at d = 0 it is the loss of the limiting network. Gradient, Hessian-vector products and the
    dense Hessian come from ``torch.func`` (a second autodiff path to :class:`weightsym.Loss`'s).
    """

    def __init__(self, chart: ChannelChart, d: float) -> None:
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d < math.inf:
            raise ValueError(f"d must be a finite real number >= 0; got {d!r}")
        self.chart, self.d = chart, float(d)
        self.num_params = chart.num_params

    def functional(self, x: Tensor) -> Tensor:
        loss = self.chart.loss
        return loss.of_output(self.chart.forward(x, self.d, loss.X))

    def __call__(self, x: Tensor) -> float:
        return float(self.functional(x))

    def value_and_grad(self, x: Tensor) -> tuple[float, Tensor]:
        g, value = torch.func.grad_and_value(self.functional)(x)
        return float(value), g

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        return jvp(grad(self.functional), (x,), (v,))[1]

    def value_grad_hessian(self, x: Tensor) -> tuple[float, Tensor, Tensor]:
        value, g = self.value_and_grad(x)
        return value, g, torch.func.hessian(self.functional)(x)


class ChannelLimit(NamedTuple):
    """The loss a pair channel tends to: the minimum of the limiting network (d = 0).

    ``start_loss`` is the limiting network's loss at the channel coordinates of the point it
    started from; ``sigma_norm`` and ``kappa_norm`` are |w_l + w_m| and the |kappa| reached.
    """

    loss: float
    grad_inf: float
    converged: bool
    nit: int
    message: str
    start_loss: float
    sigma_norm: float
    kappa_norm: float


def solver_fields(res: Any) -> dict[str, Any]:
    """The fields a limit record (:class:`ChannelLimit`,
    :class:`weightsym.partner_channel.PartnerLimit`) takes from the solver's result: loss,
    grad_inf, converged, nit and message."""
    return {
        "loss": float(res.fun),
        "grad_inf": float(res.grad_inf),
        "converged": bool(res.success),
        "nit": int(res.nit),
        "message": str(res.message),
    }


def channel_limit(
    loss: Loss,
    theta: Tensor,
    layer: int,
    pair: tuple[int, int],
    tol: float = 1e-12,
    **options: object,
) -> ChannelLimit:
    """Minimize the limiting network of a pair channel, started from ``theta`` (d > 0).

    Args:
        loss: the objective.
        theta: a point with the pair apart (typically the last step d_S of a path).
        layer, pair: the pair (hidden layer k, neurons (l, m)).
        tol: grad_inf tolerance; ``options``: further options of
            :func:`weightsym.optimize.minimize` (method, max_iter, ...).

    Returns:
        The :class:`ChannelLimit`; ``converged`` False means its loss is an upper bound.
    """
    chart = ChannelChart(loss, layer, pair)
    x0, _ = chart.to_channel(theta)
    objective = ChannelLoss(chart, 0.0)
    res = minimize(objective, x0, tol=tol, **options)
    _, _, _, sigma, kappa = chart.split(res.x)
    return ChannelLimit(
        **solver_fields(res),
        start_loss=objective(x0),
        sigma_norm=float(sigma.norm()),
        kappa_norm=float(kappa.norm()),
    )


SLOPE_BAND = (-1.25, -0.75)
"""log |w_m - w_l| against log d: slopes in this band over the last decade of d are a channel."""
TREND_DECADES = 1.0  # the trend is read over the steps with d <= d_S * 10**TREND_DECADES


class ChannelTrend(NamedTuple):
    """How |w_m - w_l| scales with d over the path's last steps.

    ``kind`` is ``"pair"`` when the slope of log |w_m - w_l| against log d lies in
    :data:`SLOPE_BAND` (|w_m - w_l| ~ kappa / d: the pair opens a channel), else ``"none"``;
    ``kappa`` is d |w_m - w_l| at the last step; ``steps`` the number of steps fitted.
    """

    kind: str
    slope: float
    kappa: float
    steps: int


def channel_trend(d: Tensor, spread: Tensor) -> ChannelTrend:
    """Least-squares slope of log ``spread`` (|w_m - w_l| per step) on log ``d`` (d > 0)."""
    if d.shape != spread.shape or d.dim() != 1:
        raise ValueError(f"d and spread must be 1-D of equal length; got {d.shape}, {spread.shape}")
    keep = (d > 0) & (spread > 0)
    d, spread = d[keep], spread[keep]
    if d.numel() < 3:
        return ChannelTrend("none", math.nan, math.nan, int(d.numel()))
    window = d <= float(d.min()) * 10.0**TREND_DECADES
    if int(window.sum()) < 3:
        window = torch.zeros_like(window)
        window[-3:] = True
    ld, ls = d[window].log(), spread[window].log()
    slope = float(((ld - ld.mean()) * (ls - ls.mean())).sum() / ((ld - ld.mean()) ** 2).sum())
    lo, hi = SLOPE_BAND
    kind = "pair" if lo <= slope <= hi else "none"
    return ChannelTrend(kind, slope, float(d[-1] * spread[-1]), int(window.sum()))


class ChannelVariables:
    """A path step's chart phi with the pair's output vectors in channel coordinates.

    x is phi with (w_l, w_m) replaced by (sigma, kappa) = (w_l + w_m, d (w_m - w_l)), a linear
    change of variables at each d > 0: phi = T_d x with (w_l, w_m) = ((sigma - kappa/d) / 2,
    (sigma + kappa/d) / 2). The step problem is unchanged; what changes is what stays finite
    along a channel (kappa, not w_m - w_l ~ kappa / d), hence the trust region's shape and what
    the predictor extrapolates (docs/theory.md section 5.4). For the incoming distance only:
    there the output vectors are chart coordinates of their own.
    """

    def __init__(self, con: PairConstraint) -> None:
        if con.distance != "incoming" or con.gauge:
            raise ValueError(
                "channel coordinates need the incoming distance without the gauge; got "
                f"distance={con.distance!r}, gauge={con.gauge}"
            )
        net, k, (l, m) = con.net, con.layer, con.pair
        self.con = con
        self.pos_l = torch.searchsorted(con.I_rest, net.output_index(k, l))
        self.pos_m = torch.searchsorted(con.I_rest, net.output_index(k, m))

    @staticmethod
    def _check_d(d: float) -> float:
        if not d > 0.0:
            raise ValueError(f"channel coordinates need d > 0; got d={d!r}")
        return float(d)

    def to_x(self, phi: Tensor, d: float) -> Tensor:
        d = self._check_d(d)
        x = phi.clone()
        w_l, w_m = phi[self.pos_l], phi[self.pos_m]
        x[self.pos_l], x[self.pos_m] = w_l + w_m, d * (w_m - w_l)
        return x

    def to_phi(self, x: Tensor, d: float) -> Tensor:
        d = self._check_d(d)
        phi = x.clone()
        sigma, kappa = x[self.pos_l], x[self.pos_m]
        phi[self.pos_l], phi[self.pos_m] = 0.5 * (sigma - kappa / d), 0.5 * (sigma + kappa / d)
        return phi

    def pull_back(self, v: Tensor, d: float) -> Tensor:
        """T_d' v for a vector v on phi (a gradient, or a column of a Hessian)."""
        out = v.clone()
        v_l, v_m = v[self.pos_l], v[self.pos_m]
        out[self.pos_l], out[self.pos_m] = 0.5 * (v_l + v_m), (0.5 / d) * (v_m - v_l)
        return out

    def objective(self, obj: ConstrainedLoss) -> ChannelObjective:
        """The step objective ``obj`` (at its d > 0) in the variables x."""
        return ChannelObjective(self, obj)


class ChannelObjective:
    """x -> obj(T_d x) with gradient T' g, Hessian T' H T and products T' H T v."""

    def __init__(self, variables: ChannelVariables, obj: ConstrainedLoss) -> None:
        self.vars, self.obj, self.d = variables, obj, variables._check_d(obj.d)
        self.num_params = obj.num_params

    def __call__(self, x: Tensor) -> float:
        return self.obj(self.vars.to_phi(x, self.d))

    def value_and_grad(self, x: Tensor) -> tuple[float, Tensor]:
        value, g = self.obj.value_and_grad(self.vars.to_phi(x, self.d))
        return value, self.vars.pull_back(g, self.d)

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        phi_v = self.vars.to_phi(v, self.d)  # T is linear: T v
        return self.vars.pull_back(self.obj.hvp(self.vars.to_phi(x, self.d), phi_v), self.d)

    def value_grad_hessian(self, x: Tensor) -> tuple[float, Tensor, Tensor]:
        value, g, H = self.obj.value_grad_hessian(self.vars.to_phi(x, self.d))
        pb = self.vars.pull_back
        H = pb(pb(H, self.d).T, self.d).T  # T' H T: pull back rows and columns
        return value, pb(g, self.d), H
