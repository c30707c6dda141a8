"""The scalar distance constraint of the permutation path (paper Sec. 4.1) as a chart.

The paper reparametrizes vartheta_m = vartheta_l + d e with |e| = 1 and minimizes over
everything else at fixed d. :class:`PairConstraint` is that reparametrization: free variables
phi = (all of theta outside the pair, z), where z holds the pair's own coordinates, and a map
theta(phi; d) that satisfies the constraint exactly for every phi. Variants (docs/theory.md
section 5):

* ``distance="incoming"`` (the paper's): the pair's parameter vectors vartheta (Def. 1);
* ``distance="joint"``: (vartheta, w) together, so that d = 0 is the permutation point itself
  and the output weights cannot open a channel;
* ``gauge=True`` (positively homogeneous g only, incoming distance): both vectors of the pair are
  held on the unit sphere, d is their chord, which removes the rescaling escape
  (vartheta, w) -> (a vartheta, w / a).

:class:`ConstrainedLoss` is the loss on phi with exact gradient, Hessian and Hessian-vector
products (chain rule through the small pair map, whose derivatives are in closed form), so
any solver of :mod:`weightsym.optimize` runs on it unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.symmetry import check_pair, distance_indices

DISTANCES = ("incoming", "joint")


def unit_gauge(net: MLP, theta: Tensor, layer: int, neurons: tuple[int, ...]) -> Tensor:
    """Rescale (vartheta_i, w_i) -> (vartheta_i / |vartheta_i|, w_i |vartheta_i|) for the neurons.

    For a positively homogeneous g this leaves f unchanged exactly (up to rounding).
    """
    if not net.act.positively_homogeneous:
        raise ValueError(
            f"the unit-norm gauge needs a positively homogeneous activation (relu, leaky_relu, "
            f"identity); got {net.activation!r}"
        )
    out = theta.clone()
    for i in neurons:
        sl = net.neuron_slice(layer, i)
        norm = theta[sl].norm()
        if norm == 0:
            raise ValueError(f"neuron {i} of layer {layer} has a zero parameter vector")
        out[sl] = theta[sl] / norm
        out[net.output_index(layer, i)] = theta[net.output_index(layer, i)] * norm
    return out


class PairConstraint:
    """theta(phi; d) with |v_m - v_l| = d exactly, v = the pair's vectors (Sec. 4.1)."""

    def __init__(
        self,
        net: MLP,
        layer: int,
        pair: tuple[int, int],
        distance: str = "incoming",
        gauge: bool = False,
    ) -> None:
        l, m = check_pair(net, layer, *pair, names=("pair[0]", "pair[1]"))
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; expected one of {DISTANCES}")
        if gauge and distance != "incoming":
            raise ValueError("gauge=True applies to distance='incoming' only")
        if gauge and not net.act.positively_homogeneous:
            raise ValueError(
                f"gauge=True needs a positively homogeneous activation; got {net.activation!r}"
            )
        self.net, self.layer, self.pair = net, layer, (l, m)
        self.distance, self.gauge = distance, gauge
        self.I_l = distance_indices(net, layer, l, distance)
        self.I_m = distance_indices(net, layer, m, distance)
        self.I_pair = torch.cat([self.I_l, self.I_m])
        mask = torch.ones(net.num_params, dtype=torch.bool)
        mask[self.I_pair] = False
        self.I_rest = torch.nonzero(mask)[:, 0]
        self.order = torch.cat([self.I_rest, self.I_pair])  # theta's entries in chart order
        self.n_rest = int(self.I_rest.numel())
        self.c = int(self.I_l.numel())
        self.num_params = self.n_rest + 2 * self.c

    def measure(self, theta: Tensor) -> float:
        """d(theta) = |v_m - v_l| (Def. 5 as docs/theory.md section 1 fixes it)."""
        return float((theta[self.I_m] - theta[self.I_l]).norm())

    def pair_map(self, z: Tensor, d: float) -> Tensor:
        """(v_l, v_m) from the pair's chart coordinates z = (z_l, u)."""
        z_l, u = z[: self.c], z[self.c :]
        if not self.gauge:
            return torch.cat([z_l, z_l + d * u / u.norm()])
        v_l = z_l / z_l.norm()
        perp = u - (u @ v_l) * v_l
        alpha = 2.0 * math.asin(min(d / 2.0, 1.0))
        return torch.cat([v_l, math.cos(alpha) * v_l + math.sin(alpha) * perp / perp.norm()])

    def pair_derivatives(self, z: Tensor, d: float, c: Tensor) -> tuple[Tensor, Tensor]:
        """(J, S): the Jacobian of :meth:`pair_map` and S = sum_j c_j d^2 map_j / dz^2.

        Closed forms from the derivatives of the normalisation n(x) = x / |x|
        (:func:`_normalize_derivatives`) and the chain rule; ``tests/test_constraints.py``
        checks both against ``torch.func``.
        """
        k = self.c
        z_l, u = z[:k], z[k:]
        c_l, c_m = c[:k], c[k:]
        eye = torch.eye(k, dtype=z.dtype)
        J = torch.zeros(2 * k, 2 * k, dtype=z.dtype)
        S = torch.zeros_like(J)
        if not self.gauge:  # (v_l, v_m) = (z_l, z_l + d n(u))
            _, Jn, Sn = _normalize_derivatives(u, c_m)
            J[:k, :k] = eye
            J[k:, :k] = eye
            J[k:, k:] = d * Jn
            S[k:, k:] = d * Sn
            return J, S
        # gauge: v = n(z_l), p = u - (u.v) v, e = n(p), (v_l, v_m) = (v, C v + S_ e)
        alpha = 2.0 * math.asin(min(d / 2.0, 1.0))
        C, Sa = math.cos(alpha), math.sin(alpha)
        a = c_l + C * c_m  # Phi = a.v + b.e
        b = Sa * c_m
        v, Jv, Sv_a = _normalize_derivatives(z_l, a)
        uv = float(u @ v)
        p = u - uv * v
        _, Je, Se_b = _normalize_derivatives(p, b)
        dp_dv = -uv * eye - torch.outer(v, u)
        dp_du = eye - torch.outer(v, v)
        Jp = torch.cat([dp_dv @ Jv, dp_du], dim=1)  # dp/dz, (k, 2k)
        J[:k, :k] = Jv
        J[k:, :k] = C * Jv
        J[k:, :] += Sa * (Je @ Jp)
        # second derivatives of q.p in (v, u), with q = Je^T b
        q = Je.T @ b
        qv = float(q @ v)
        H_vv = -(torch.outer(u, q) + torch.outer(q, u))
        H_uv = -(torch.outer(v, q)) - qv * eye  # [a, b] = d^2 / du_a dv_b
        grad_v = -qv * u - uv * q  # d(q.p)/dv
        _, _, Sv_g = _normalize_derivatives(z_l, grad_v)
        S[:k, :k] = Sv_a + Jv.T @ H_vv @ Jv + Sv_g
        S[k:, :k] = H_uv @ Jv
        S[:k, k:] = S[k:, :k].T
        S += Jp.T @ Se_b @ Jp
        return J, S

    def embed(self, phi: Tensor, d: float) -> Tensor:
        theta = torch.empty(self.net.num_params, dtype=phi.dtype)
        theta[self.I_rest] = phi[: self.n_rest]
        theta[self.I_pair] = self.pair_map(phi[self.n_rest :], d)
        return theta

    def chart(self, theta: Tensor, direction: Tensor | None = None) -> Tensor:
        """phi with embed(phi, d(theta)) == theta; ``direction`` is used where v_m == v_l."""
        diff = theta[self.I_m] - theta[self.I_l]
        if float(diff.norm()) == 0.0:
            if direction is None:
                raise ValueError("the pair coincides; pass the direction e to chart()")
            diff = direction
        return torch.cat([theta[self.I_rest], theta[self.I_l], diff / diff.norm()])

    def normalize(self, phi: Tensor) -> Tensor:
        """The same point with z_l (gauge) and u rescaled to unit length; theta is unchanged."""
        out = phi.clone()
        z = out[self.n_rest :]
        if self.gauge:
            z[: self.c] /= z[: self.c].norm()
            v_l = z[: self.c]
            z[self.c :] -= (z[self.c :] @ v_l) * v_l
        z[self.c :] /= z[self.c :].norm()
        return out


def _normalize_derivatives(x: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """n = x / |x|, its Jacobian (I - n n^T) / r and sum_j c_j d^2 n_j / dx^2.

    With r = |x|: d^2 (c.n) / dx^2 = [3 (c.n) n n^T - (c.n) I - c n^T - n c^T] / r^2.
    """
    r = x.norm()
    n = x / r
    eye = torch.eye(x.numel(), dtype=x.dtype)
    cn = c @ n
    J = (eye - torch.outer(n, n)) / r
    S = (3 * cn * torch.outer(n, n) - cn * eye - torch.outer(c, n) - torch.outer(n, c)) / r**2
    return n, J, S


class ConstrainedLoss:
    """L(theta(phi; d)) with exact derivatives in phi: the objective of one path step.

    Gradient J^T g, Hessian J^T H J + sum_i g_i d^2 theta_i / dphi^2 (the chain rule), where J
    is the identity outside the pair's 2c coordinates; Hessian-vector products likewise.
    """

    def __init__(self, loss: Loss, constraint: PairConstraint, d: float) -> None:
        self.loss, self.con, self.d = loss, constraint, float(d)
        self.num_params = constraint.num_params
        self._cache: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    def theta(self, phi: Tensor) -> Tensor:
        return self.con.embed(phi, self.d)

    def __call__(self, phi: Tensor) -> float:
        return self.loss(self.theta(phi))

    def _z(self, phi: Tensor) -> Tensor:
        return phi[self.con.n_rest :]

    def _pull_back(self, v: Tensor, J: Tensor) -> Tensor:
        """J^T v for a vector v on theta."""
        return torch.cat([v[self.con.I_rest], J.T @ v[self.con.I_pair]])

    def _derivatives(self, phi: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        J, S = self.con.pair_derivatives(self._z(phi), self.d, g[self.con.I_pair])
        self._cache = (phi.clone(), g, J, S)
        return J, S

    def value_and_grad(self, phi: Tensor) -> tuple[float, Tensor]:
        value, g = self.loss.value_and_grad(self.theta(phi))
        if self.con.gauge:
            J, _ = self._derivatives(phi, g)
            return value, self._pull_back(g, J)
        # without the gauge J^T g is a sum and a tangent projection: no matrices needed
        k, n = self.con.c, self.con.n_rest
        u = phi[n + k :]
        g_l, g_m = g[self.con.I_l], g[self.con.I_m]
        r = u.norm()
        e = u / r
        g_u = (self.d / r) * (g_m - (g_m @ e) * e)
        return value, torch.cat([g[self.con.I_rest], g_l + g_m, g_u])

    def value_grad_hessian(self, phi: Tensor) -> tuple[float, Tensor, Tensor]:
        con = self.con
        value, g, H = self.loss.value_grad_hessian(self.theta(phi))
        J, S = self._derivatives(phi, g)
        n = con.n_rest
        # diag(I, J)^T H diag(I, J) + S on theta's entries in chart order (rest, then pair)
        HF = H.index_select(0, con.order).index_select(1, con.order)
        HF[:, n:] = HF[:, n:] @ J
        HF[n:, :] = J.T @ HF[n:, :]
        HF[n:, n:] += S
        return value, self._pull_back(g, J), HF

    def hvp(self, phi: Tensor, w: Tensor) -> Tensor:
        cache = self._cache
        if cache is None or not torch.equal(cache[0], phi):
            self._derivatives(phi, self.loss.grad(self.theta(phi)))
            cache = self._cache
        assert cache is not None
        _, _, J, S = cache
        con = self.con
        theta = self.theta(phi)
        w_z = w[con.n_rest :]
        theta_dot = torch.empty_like(theta)
        theta_dot[con.I_rest] = w[: con.n_rest]
        theta_dot[con.I_pair] = J @ w_z
        out = self._pull_back(self.loss.hvp(theta, theta_dot), J)
        out[con.n_rest :] += S @ w_z
        return out


class ScaledObjective:
    """The objective in the variables psi = phi / s for a fixed positive diagonal scaling s.

    With s = max(|phi_0|, 1) (:meth:`for_start`) a path step whose output weights grew to ~1e4
    while input weights shrank (the rescaling escape) stays well conditioned for the trust region,
    and since s >= 1 the scaled gradient bounds the true one: |s g|_inf >= |g|_inf, so reaching
    the tolerance in psi reaches it in phi.
    """

    def __init__(self, objective: ConstrainedLoss, scale: Tensor) -> None:
        self.obj, self.s = objective, scale
        self.num_params = objective.num_params

    @classmethod
    def for_start(cls, objective: ConstrainedLoss, phi0: Tensor) -> ScaledObjective:
        return cls(objective, phi0.abs().clamp_min(1.0))

    def to_phi(self, psi: Tensor) -> Tensor:
        return self.s * psi

    def to_psi(self, phi: Tensor) -> Tensor:
        return phi / self.s

    def value_and_grad(self, psi: Tensor) -> tuple[float, Tensor]:
        value, g = self.obj.value_and_grad(self.s * psi)
        return value, self.s * g

    def value_grad_hessian(self, psi: Tensor) -> tuple[float, Tensor, Tensor]:
        value, g, H = self.obj.value_grad_hessian(self.s * psi)
        return value, self.s * g, self.s[:, None] * H * self.s[None, :]

    def hvp(self, psi: Tensor, v: Tensor) -> Tensor:
        return self.s * self.obj.hvp(self.s * psi, self.s * v)
