"""Losses L(theta) = (1/T) sum_mu l(y_mu, f(x_mu; theta)) (paper Sec. 3) with exact derivatives.

Kinds (docs/theory.md section 1): ``mse`` (mean over samples and outputs of the squared error),
``nmse`` (mse / mean(y^2), the paper's Fig. 3 loss) and ``nll`` (cross-entropy on logits, labels Y).

The gradient is back-propagation written out; the Hessian is assembled exactly from per-sample
Jacobians of the pre-activations, as a sum of three kinds of terms:

* Gauss-Newton terms  J_{a^(d)}^T (d^2 l / df^2) J_{a^(d)},
* activation curvature  sum_k sum_i (dL/dh^(k)_i) g''(a^(k)_i) J_{a^(k)_i}^T J_{a^(k)_i},
* bilinear terms of a^(k) = W^(k) h^(k-1): (dL/da^(k)_i) between W^(k)_{is} and dh^(k-1)_s/dtheta,

with the Kronecker structure of each layer's own block used so that the work is a handful of
matrix products (see ``benchmarks/hessian.py``). Hessian-vector products are autograd's double
backward (reverse over reverse, 2-4x faster here than ``torch.func``'s forward over reverse) and
never form the Hessian.
"""

from __future__ import annotations

import torch
from torch import Tensor

from weightsym.model import MLP
from weightsym.validation import check_dtype, check_finite

KINDS = ("mse", "nmse", "nll")
_CHUNK_ELEMS = 2**22  # samples per Hessian chunk: T_chunk * max_k(n_k * P_<k) stays below this


class Loss:
    """L(theta) for a fixed network and data set.

    ``loss(theta)`` is the value (a float); ``grad``, ``hvp`` and ``hessian`` its derivatives.
    ``Y`` is (T, n_d) targets for ``mse`` / ``nmse`` and (T,) integer labels for ``nll``.
    """

    def __init__(self, net: MLP, X: Tensor, Y: Tensor, kind: str = "mse") -> None:
        if not isinstance(net, MLP):
            raise TypeError(f"net must be a weightsym.MLP; got {type(net).__name__}")
        if kind not in KINDS:
            raise ValueError(f"unknown loss kind {kind!r}; expected one of {KINDS}")
        net.check_inputs(X, "X")
        if not isinstance(Y, Tensor):
            raise TypeError(f"Y must be a torch.Tensor; got {type(Y).__name__}")
        T, n_out = X.shape[0], net.widths[-1]
        if T == 0:
            raise ValueError("X must hold at least one sample; got T = 0")
        if kind == "nll":
            if Y.dim() != 1 or Y.shape[0] != T or Y.is_floating_point() or Y.is_complex():
                raise ValueError(
                    f"Y must be integer labels of shape ({T},) for nll; got "
                    f"{tuple(Y.shape)} {Y.dtype}"
                )
            if int(Y.min()) < 0 or int(Y.max()) >= n_out:
                raise ValueError(f"Y labels must lie in 0..{n_out - 1} for nll")
            Y = Y.long()
        else:
            if Y.dim() != 2 or tuple(Y.shape) != (T, n_out):
                raise ValueError(
                    f"Y must have shape ({T}, {n_out}) for {kind}; got {tuple(Y.shape)}"
                )
            check_dtype("Y", Y)
            check_finite("Y", Y)
        self.net, self.X, self.Y, self.kind = net, X, Y, kind
        self.T = T
        self._indices: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
        self.scale = 1.0  # mse multiplier: 1 / mean(Y^2) for nmse
        if kind == "nmse":
            msq = float((Y * Y).mean())
            if msq == 0.0:
                raise ValueError("Y must not be all zeros for nmse (it divides by mean(Y^2))")
            self.scale = 1.0 / msq

    def __repr__(self) -> str:
        return f"Loss({self.net}, T={self.T}, kind={self.kind!r})"

    @property
    def num_params(self) -> int:
        return self.net.num_params

    # -- the single-sample loss and its first two derivatives in f --------------------------------
    def _of_output(self, f: Tensor, Y: Tensor) -> Tensor:
        """Sum over the given samples of l(y, f), divided by the full sample count T."""
        if self.kind == "nll":
            return (torch.logsumexp(f, dim=1) - f.gather(1, Y[:, None])[:, 0]).sum() / self.T
        return ((f - Y) ** 2).sum() * (self.scale / (self.T * f.shape[1]))

    def _output_derivatives(self, f: Tensor, Y: Tensor) -> tuple[Tensor, tuple[str, Tensor]]:
        """dL/df per sample, and d^2L/df^2 as ("scalar", c) or ("full", (T, n_d, n_d))."""
        if self.kind == "nll":
            p = torch.softmax(f, dim=1)
            r = p.clone()
            r[torch.arange(f.shape[0]), Y] -= 1.0
            C = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
            return r / self.T, ("full", C / self.T)
        c = 2.0 * self.scale / (self.T * f.shape[1])
        return c * (f - Y), ("scalar", torch.tensor(c, dtype=f.dtype))

    # -- value and gradient ---------------------------------------------------------------------
    def functional(self, theta: Tensor) -> Tensor:
        """L(theta) as a differentiable 0-d tensor (for torch.func / autograd)."""
        f = self.net.activations(theta, self.X)[0][-1]
        return self._of_output(f, self.Y)

    def of_output(self, f: Tensor) -> Tensor:
        """L as a function of the network's outputs f (T, n_d) on this loss's data."""
        return self._of_output(f, self.Y)

    def __call__(self, theta: Tensor) -> float:
        self.net.check_theta(theta)
        return float(self.functional(theta))

    def value_and_grad(self, theta: Tensor) -> tuple[float, Tensor]:
        """(L, dL/dtheta) by back-propagation."""
        net = self.net
        net.check_theta(theta)
        pre, h_aug = net.activations(theta, self.X)
        value = float(self._of_output(pre[-1], self.Y))
        r, _ = self._output_derivatives(pre[-1], self.Y)
        g = torch.empty_like(theta)
        delta = r
        for k in range(net.depth, 0, -1):
            g[net.offsets[k - 1] : net.offsets[k]] = (delta.T @ h_aug[k - 1]).reshape(-1)
            if k > 1:
                delta = (delta @ net.block(theta, k)[:, :-1]) * net.act.dg(pre[k - 2])
        return value, g

    def grad(self, theta: Tensor) -> Tensor:
        return self.value_and_grad(theta)[1]

    def grad_inf(self, theta: Tensor) -> float:
        """Infinity norm of the gradient (the convention of MLPGradientFlow.jl)."""
        return float(self.grad(theta).abs().max())

    def hvp(self, theta: Tensor, v: Tensor) -> Tensor:
        """H(theta) v by reverse-over-reverse automatic differentiation (double backward)."""
        self.net.check_theta(theta)
        self.net.check_theta(v, "v")
        with torch.enable_grad():
            x = theta.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.functional(x), x, create_graph=True)
            (hv,) = torch.autograd.grad(g, x, grad_outputs=v.to(theta.dtype))
        return hv

    # -- exact dense Hessian --------------------------------------------------------------------
    def hessian(self, theta: Tensor) -> Tensor:
        """The dense (P, P) Hessian, exact up to rounding."""
        return self.value_grad_hessian(theta)[2]

    def value_grad_hessian(self, theta: Tensor) -> tuple[float, Tensor, Tensor]:
        """(L, gradient, Hessian) in one pass over the data."""
        net = self.net
        net.check_theta(theta)
        P = net.num_params
        H = torch.zeros(P, P, dtype=theta.dtype)
        widest = max(net.widths[k] * max(net.offsets[k - 1], 1) for k in range(1, net.depth + 1))
        chunk = max(1, _CHUNK_ELEMS // widest)
        value, g = 0.0, torch.zeros_like(theta)
        for start in range(0, self.T, chunk):
            sl = slice(start, start + chunk)
            v_c, g_c = self._hessian_chunk(theta, self.X[sl], self.Y[sl], H)
            value += v_c
            g += g_c
        return value, g, H

    def _hessian_chunk(
        self, theta: Tensor, X: Tensor, Y: Tensor, H: Tensor
    ) -> tuple[float, Tensor]:
        net, d, off = self.net, self.net.depth, self.net.offsets
        pre, h_aug = net.activations(theta, X)
        value = float(self._of_output(pre[-1], Y))
        r, C_out = self._output_derivatives(pre[-1], Y)
        gp = [net.act.dg(a) for a in pre[:-1]]
        # backward: delta_a[k] = dL/da^(k), delta_h[k] = dL/dh^(k) (index k-1 in the lists)
        delta_a: list[Tensor] = [r] * d
        delta_h: list[Tensor] = [r] * d
        g = torch.empty_like(theta)
        for k in range(d, 0, -1):
            g[off[k - 1] : off[k]] = (delta_a[k - 1].T @ h_aug[k - 1]).reshape(-1)
            if k > 1:
                delta_h[k - 2] = delta_a[k - 1] @ net.block(theta, k)[:, :-1]
                delta_a[k - 2] = delta_h[k - 2] * gp[k - 2]
        T = X.shape[0]
        D = X.new_zeros(T, net.widths[1], 0)  # D = d a^(k) / d theta_{<k}, (T, n_k, P_<k)
        for k in range(1, d + 1):
            n_k, c_k = net.shapes[k - 1]
            blk = slice(off[k - 1], off[k])
            if k >= 2:
                D_prev = D
                G = net.block(theta, k)[None, :, :-1] * gp[k - 2][:, None, :]
                own = (G[..., None] * h_aug[k - 2][:, None, None, :]).reshape(T, n_k, -1)
                D = torch.cat([G @ D_prev, own], dim=2) if D_prev.shape[2] else own
                self._add_bilinear(
                    H, k, delta_a[k - 1][:, :, None] * gp[k - 2][:, None, :], D_prev, h_aug[k - 2]
                )
            if k == d:
                kind, C = C_out
            else:
                kind, C = "diag", delta_h[k - 1] * net.act.d2g(pre[k - 1])
            hk = h_aug[k - 1]
            P_lt = off[k - 1]
            if P_lt:
                self._add_lower(H, kind, C, D, hk, blk)
            if kind == "full":
                own_block = torch.einsum("trq,ts,tu->rsqu", C, hk, hk).reshape(n_k * c_k, -1)
                H[blk, blk] += own_block
            else:  # block diagonal: add neuron r's (c, c) block in place
                own = H[blk, blk].view(n_k, c_k, n_k, c_k).diagonal(dim1=0, dim2=2)
                own += _diagonal_curvature(kind, C, hk, n_k).permute(1, 2, 0)
        return value, g

    @staticmethod
    def _add_lower(H: Tensor, kind: str, C: Tensor, D: Tensor, hk: Tensor, blk: slice) -> None:
        """Curvature terms of a^(k) with the earlier layers: D^T C D and D^T C (I x h~)."""
        T, n_k, P_lt = D.shape
        D2 = D.reshape(T * n_k, P_lt)
        if kind == "scalar":  # a scalar multiplies the small results, not the (T, n_k, P) D
            H[:P_lt, :P_lt] += C * (D2.T @ D2)
            cross = C * torch.einsum("trp,ts->prs", D, hk).reshape(P_lt, -1)
        else:
            CD = _apply(kind, C, D)
            H[:P_lt, :P_lt] += D2.T @ CD.reshape(T * n_k, P_lt)
            cross = torch.einsum("trp,ts->prs", CD, hk).reshape(P_lt, -1)
        H[:P_lt, blk] += cross
        H[blk, :P_lt] += cross.T

    def _add_bilinear(self, H: Tensor, k: int, E: Tensor, D_prev: Tensor, h_prev: Tensor) -> None:
        """Terms of a^(k) = W^(k) h^(k-1): E[t, i, s] = dL/da^(k)_i * g'(a^(k-1)_s)."""
        rows, r_idx, c_idx = self._bilinear_indices(k)
        # with the previous layer's own weights: column (s, u) of block k-1
        B2 = torch.einsum("tis,tu->isu", E, h_prev).reshape(-1)
        H.index_put_((r_idx, c_idx), B2, accumulate=True)
        H.index_put_((c_idx, r_idx), B2, accumulate=True)
        P_lt = D_prev.shape[2]
        if P_lt:
            B1 = torch.einsum("tis,tsp->isp", E, D_prev).reshape(-1, P_lt)
            H[rows, :P_lt] += B1
            H[:P_lt, rows] += B1.T

    def _bilinear_indices(self, k: int) -> tuple[Tensor, Tensor, Tensor]:
        """Entries of theta touched by :meth:`_add_bilinear` for layer k: the rows of W^(k)
        (i, s) for s a neuron of layer k-1, and for (i, s, u) the row (i, s) and column (s, u)
        of block k-1 (computed once per layer)."""
        if k in self._indices:
            return self._indices[k]
        net, off = self.net, self.net.offsets
        n_k, c_k = net.shapes[k - 1]
        n_prev, c_prev = net.shapes[k - 2]
        rows = off[k - 1] + torch.arange(n_k)[:, None] * c_k + torch.arange(n_prev)[None, :]
        cols = off[k - 2] + torch.arange(n_prev)[:, None] * c_prev + torch.arange(c_prev)[None, :]
        shape = (n_k, n_prev, c_prev)
        r_idx = rows[:, :, None].expand(shape).reshape(-1)
        c_idx = cols[None, :, :].expand(shape).reshape(-1)
        self._indices[k] = (rows.reshape(-1), r_idx, c_idx)
        return self._indices[k]


def _diagonal_curvature(kind: str, C: Tensor, h: Tensor, n: int) -> Tensor:
    """M[r] = sum_t C[t, r] h_t h_t^T, (n, c, c), for C a scalar or a diagonal (T, n).

    For the diagonal, one matrix product over the narrower of the two per-sample outer
    products: (T, c^2) when c <= n (the first layer: c = n_0 + 1), else (T, n c).
    """
    T, c = h.shape
    if kind == "scalar":
        return (C * (h.T @ h)).expand(n, c, c)
    if c <= n:
        return (C.T @ (h[:, :, None] * h[:, None, :]).reshape(T, c * c)).reshape(n, c, c)
    return ((C[:, :, None] * h[:, None, :]).reshape(T, n * c).T @ h).reshape(n, c, c)


def _apply(kind: str, C: Tensor, D: Tensor) -> Tensor:
    """C D for per-sample curvature C given as a diagonal (T, n) or full (T, n, n)."""
    if kind == "diag":
        return C[:, :, None] * D
    return C @ D
