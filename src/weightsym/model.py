"""The multilayer perceptron f(x; theta) of the paper's Sec. 3 on one flat parameter vector.

Conventions (docs/theory.md section 1): layers k = 1..d, widths n_0..n_d; hidden layers k = 1..d-1
use the activation g, the output layer is linear. The flat vector theta holds, layer after layer,
the augmented matrix [W^(k) | b^(k)] (n_k rows of length n_{k-1} + 1) in row-major order, so that
the parameter vector of neuron m in layer k (Def. 1), vartheta_m = [W^(k)_{m,:}, b^(k)_m], is one
contiguous slice of theta, and the output weight vector (Def. 2) w_m = W^(k+1)_{:,m} is a strided
one. Everything is float64 unless a caller passes another dtype."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from weightsym import activations as acts
from weightsym.validation import check_dtype, check_finite, check_vector

DTYPE = torch.float64


class MLP:
    """Architecture of a fully connected network: widths [n_0, ..., n_d] and a hidden activation.

    An ``MLP`` holds no parameters; every method takes the flat vector ``theta``.
    """

    def __init__(
        self,
        widths: Sequence[int],
        activation: str = "tanh",
        negative_slope: float = acts.LEAKY_SLOPE,
    ) -> None:
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
            raise TypeError(f"widths must be a sequence of ints; got {type(widths).__name__}")
        widths = list(widths)
        if len(widths) < 2:
            raise ValueError(f"widths must list at least input and output sizes; got {widths}")
        for w in widths:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ValueError(f"widths must be positive integers; got {widths}")
        self.act = acts.get(activation, negative_slope)  # checks both
        self.widths: list[int] = widths
        self.activation: str = activation
        self.negative_slope = float(negative_slope)
        self.shapes: list[tuple[int, int]] = [
            (widths[k], widths[k - 1] + 1) for k in range(1, len(widths))
        ]
        sizes = [r * c for r, c in self.shapes]
        self.offsets: list[int] = [sum(sizes[:k]) for k in range(len(sizes) + 1)]
        self.num_params: int = self.offsets[-1]

    # -- structure ----------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """d, the number of weight layers (hidden layers are 1..d-1)."""
        return len(self.widths) - 1

    @property
    def hidden_layers(self) -> range:
        return range(1, self.depth)

    def __repr__(self) -> str:
        return f"MLP({self.widths}, activation={self.activation!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MLP)
            and self.widths == other.widths
            and self.activation == other.activation
            and (self.activation != "leaky_relu" or self.negative_slope == other.negative_slope)
        )

    def __hash__(self) -> int:
        return hash((tuple(self.widths), self.activation))

    def with_width(self, layer: int, width: int) -> MLP:
        """The same architecture with hidden layer ``layer`` resized to ``width``."""
        self.check_hidden_layer(layer)
        widths = list(self.widths)
        widths[layer] = width
        return MLP(widths, self.activation, self.negative_slope)

    def check_hidden_layer(self, layer: int, name: str = "layer") -> int:
        """Validate a hidden-layer index (1..d-1, numbered as in the paper)."""
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise TypeError(f"{name} must be an int; got {type(layer).__name__}")
        if not 1 <= layer <= self.depth - 1:
            raise ValueError(
                f"{name}={layer} is not a hidden layer of {self}; hidden layers are "
                f"1..{self.depth - 1} (layers are numbered as in the paper, 1 = first hidden)"
            )
        return layer

    def check_neuron(self, layer: int, neuron: int, name: str = "neuron") -> int:
        if isinstance(neuron, bool) or not isinstance(neuron, int):
            raise TypeError(f"{name} must be an int; got {type(neuron).__name__}")
        n = self.widths[layer]
        if not 0 <= neuron < n:
            raise ValueError(f"{name}={neuron} out of range for layer {layer} of width {n}")
        return neuron

    def check_theta(self, theta: Tensor, name: str = "theta") -> Tensor:
        """A finite float64 vector of length :attr:`num_params`, else a clear error."""
        check_vector(theta, self.num_params, name)
        return check_dtype(name, theta)

    # -- views --------------------------------------------------------------------------------
    def block(self, theta: Tensor, k: int) -> Tensor:
        """The augmented matrix [W^(k) | b^(k)] of layer k (1-based), a view into theta."""
        r, c = self.shapes[k - 1]
        return theta[self.offsets[k - 1] : self.offsets[k]].view(r, c)

    def unflatten(self, theta: Tensor) -> list[tuple[Tensor, Tensor]]:
        """[(W1, b1), ..., (Wd, bd)], views into theta."""
        self.check_theta(theta)
        out = []
        for k in range(1, self.depth + 1):
            blk = self.block(theta, k)
            out.append((blk[:, :-1], blk[:, -1]))
        return out

    def flatten(self, layers: Sequence[tuple[Tensor, Tensor]]) -> Tensor:
        """Inverse of :meth:`unflatten`: one float64 vector of length ``num_params``."""
        if len(layers) != self.depth:
            raise ValueError(f"layers must hold {self.depth} (W, b) pairs; got {len(layers)}")
        parts = []
        for k, (W, b) in enumerate(layers, start=1):
            r, c = self.shapes[k - 1]
            if tuple(W.shape) != (r, c - 1) or tuple(b.shape) != (r,):
                raise ValueError(
                    f"layer {k}: expected W of shape {(r, c - 1)} and b of shape {(r,)}; "
                    f"got {tuple(W.shape)} and {tuple(b.shape)}"
                )
            parts.append(torch.cat([W, b[:, None]], dim=1).reshape(-1))
        return torch.cat(parts).to(DTYPE)

    def neuron_slice(self, layer: int, neuron: int) -> slice:
        """Indices in theta of vartheta_neuron (Def. 1): incoming weights, then bias."""
        c = self.shapes[layer - 1][1]
        start = self.offsets[layer - 1] + neuron * c
        return slice(start, start + c)

    def output_index(self, layer: int, neuron: int) -> Tensor:
        """Indices in theta of the output weight vector w_neuron (Def. 2), length n_{k+1}."""
        r, c = self.shapes[layer]
        return self.offsets[layer] + torch.arange(r) * c + neuron

    # -- initialisation and forward -------------------------------------------------------------
    def init(self, seed: int = 0, scale: float = 1.0) -> Tensor:
        """Random theta: weights N(0, scale^2 / n_{k-1}), biases N(0, scale^2 / n_{k-1}).

        Raises:
            TypeError, ValueError: ``seed`` not an int >= 0, ``scale`` not finite and >= 0.
        """
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise TypeError(f"seed must be an int >= 0; got {seed!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise TypeError(f"scale must be a real number; got {type(scale).__name__}")
        if not 0.0 <= scale < float("inf"):
            raise ValueError(f"scale must be finite and >= 0; got {scale!r}")
        gen = torch.Generator().manual_seed(seed)
        theta = torch.empty(self.num_params, dtype=DTYPE)
        for k in range(1, self.depth + 1):
            r, c = self.shapes[k - 1]
            std = scale / (c - 1) ** 0.5
            blk = torch.randn(r, c, generator=gen, dtype=DTYPE) * std
            theta[self.offsets[k - 1] : self.offsets[k]] = blk.reshape(-1)
        return theta

    def check_inputs(self, X: Tensor, name: str = "X") -> Tensor:
        if not isinstance(X, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(X).__name__}")
        if X.dim() != 2 or X.shape[1] != self.widths[0]:
            raise ValueError(
                f"{name} must have shape (T, {self.widths[0]}) for {self}; got {tuple(X.shape)}"
            )
        check_dtype(name, X)
        check_finite(name, X)
        return X

    def activations(self, theta: Tensor, X: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Pre-activations [a^(1)..a^(d)] and augmented inputs [h~^(0)..h~^(d-1)] = [h, 1]."""
        ones = torch.ones(X.shape[0], 1, dtype=X.dtype)
        h_aug = [torch.cat([X, ones], dim=1)]
        pre = []
        for k in range(1, self.depth + 1):
            a = h_aug[-1] @ self.block(theta, k).T
            pre.append(a)
            if k < self.depth:
                h_aug.append(torch.cat([self.act.g(a), ones], dim=1))
        return pre, h_aug

    def forward(self, theta: Tensor, X: Tensor) -> Tensor:
        """f(X; theta), shape (T, n_d)."""
        self.check_theta(theta)
        self.check_inputs(X)
        return self.activations(theta, X)[0][-1]

    __call__ = forward

    # -- torch.nn interop -------------------------------------------------------------------------
    def to_module(self, theta: Tensor) -> nn.Sequential:
        """An ``nn.Sequential`` of ``Linear`` and activation modules computing the same f."""
        mods: list[nn.Module] = []
        for k, (W, b) in enumerate(self.unflatten(theta), start=1):
            lin = nn.Linear(W.shape[1], W.shape[0], dtype=theta.dtype)
            with torch.no_grad():
                lin.weight.copy_(W)
                lin.bias.copy_(b)
            mods.append(lin)
            if k < self.depth:
                mods.append(self.act.module())
        return nn.Sequential(*mods)

    @classmethod
    def from_module(cls, seq: nn.Module) -> tuple[MLP, Tensor]:
        """(net, theta) from an ``nn.Sequential`` alternating ``Linear`` and one activation."""
        if not isinstance(seq, nn.Sequential):
            raise TypeError(f"seq must be an nn.Sequential; got {type(seq).__name__}")
        mods = list(seq)
        if not mods or not isinstance(mods[0], nn.Linear) or not isinstance(mods[-1], nn.Linear):
            raise ValueError("seq must start and end with nn.Linear (the output layer is linear)")
        linears = mods[0::2]
        hidden_acts = mods[1::2]
        if len(mods) % 2 == 0 or not all(type(m) is nn.Linear for m in linears):
            raise ValueError(
                "seq must alternate nn.Linear and an activation module: Linear, act, Linear, ..."
            )
        spec = {acts.from_module(m) for m in hidden_acts} or {("identity", acts.LEAKY_SLOPE)}
        if len(spec) > 1:
            raise ValueError(f"all hidden activations must be the same; got {sorted(spec)}")
        name, slope = spec.pop()
        for lin in linears:
            if lin.bias is None:
                raise ValueError("every nn.Linear must have a bias (bias=True)")
        widths = [linears[0].in_features] + [lin.out_features for lin in linears]
        for a, b in zip(linears[:-1], linears[1:]):
            if a.out_features != b.in_features:
                raise ValueError(
                    f"consecutive Linear layers do not chain: {a.out_features} -> {b.in_features}"
                )
        net = cls(widths, name, slope)
        theta = net.flatten(
            [(lin.weight.detach().to(DTYPE), lin.bias.detach().to(DTYPE)) for lin in linears]
        )
        check_finite("seq parameters", theta)
        return net, theta
