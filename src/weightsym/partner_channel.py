"""Channels of a third neuron onto a partner: their limit at a step's fixed d, where a path
meets one, and a restart off one.

A path step (docs/theory.md section 4) can have its infimum at infinity along a channel that is
not the merging pair's own: another neuron j of the pair's layer moves onto a *partner* p (a pair
neuron or not) while the two output weights diverge in opposite directions (docs/certification.md
section 1, "A channel with a third neuron"; measured on full MNIST in docs/varpro.md section 4).
In the channel coordinates of (p, j) (docs/theory.md section 5.4,
:class:`weightsym.channels.ChannelChart`: sigma = w_p + w_j, kappa = delta (w_j - w_p),
vartheta_j = vartheta_p + delta e) the network computes the same function for every delta > 0,
and as delta -> 0 it tends to one in which p computes sigma g(a_p) and j the derivative neuron
kappa g'(a_p) (e . h~) / 2.

:class:`PartnerLimitLoss` is the loss of that limiting network written on a theta-shaped vector
(theta with vartheta_j replaced by the direction e, w_p by sigma and w_j by kappa), so the path's
own chart (:class:`weightsym.constraints.ConstrainedLoss`) runs on it unchanged: the pair's
distance constraint holds exactly while the partner channel sits at its limit.
:func:`partner_limit` minimizes it from a step's point: the loss the step tends to along that
channel.

On a path, :func:`partner_on_channel` says whether a step's point sits on such a channel (the
elsewhere flag up, j moved onto p, output weights diverging in opposite directions),
:func:`find_partner_channel` which channel a path's descent steps sit on and at which step its
limit is taken (:class:`PartnerChannel`, in the path's summary), and :func:`pulled_back` the
same network with j moved back from p, where a step stalled on the channel is solved again
(``PathConfig.partner_restart``; docs/certification.md section 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from weightsym.channels import ChannelChart, ChannelLoss, solver_fields
from weightsym.constraints import ConstrainedLoss, PairConstraint
from weightsym.diagnostics import StepDiagnostics
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.optimize import minimize


class PartnerLimitLoss(ChannelLoss):
    """The loss of the limiting network of the channel of ``partner`` = (p, j) in ``layer``.

    Its argument theta' is theta with vartheta_j holding the direction e (any length: e is its
    normalization), w_p holding sigma and w_j holding kappa; every other entry means what it
    means in theta. It is :class:`weightsym.channels.ChannelLoss` at d = 0 with its argument
    laid out as theta (derivatives from ``torch.func``, a second autodiff path to
    :class:`weightsym.Loss`'s), so it can stand wherever a :class:`weightsym.Loss` is evaluated.
    """

    def __init__(self, loss: Loss, layer: int, partner: tuple[int, int]) -> None:
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be a weightsym.Loss; got {type(loss).__name__}")
        super().__init__(ChannelChart(loss, layer, partner), 0.0)
        self.loss, self.net, self.layer = loss, loss.net, layer
        self.partner = self.chart.pair
        c = self.chart
        self._order = torch.cat([c.I_rest, c.I_l, c.I_m, c.O_l, c.O_m])  # x = theta'[order]

    def to_limit(self, theta: Tensor) -> tuple[Tensor, float]:
        """(theta', delta): the channel coordinates of theta laid out as theta' (delta > 0)."""
        x, delta = self.chart.to_channel(theta)
        out = torch.empty_like(theta)
        out[self._order] = x
        return out, delta

    def functional(self, theta: Tensor) -> Tensor:
        return super().functional(theta[self._order])

    def grad(self, theta: Tensor) -> Tensor:
        return self.value_and_grad(theta)[1]


class PartnerLimit(NamedTuple):
    """The loss a step tends to along the channel of (p, j) (see :func:`partner_limit`).

    ``start_loss`` is the limiting network's loss at the start's channel coordinates,
    ``delta_start`` the start's |vartheta_j - vartheta_p|, ``kappa_norm`` the |kappa| reached;
    ``distance`` is the pair's distance at the end (the step's d, by construction).
    """

    loss: float
    grad_inf: float
    converged: bool
    nit: int
    message: str
    start_loss: float
    delta_start: float
    kappa_norm: float
    distance: float


def partner_limit(
    loss: Loss,
    constraint: PairConstraint,
    d: float,
    theta: Tensor,
    partner: tuple[int, int],
    tol: float = 1e-12,
    **options: object,
) -> PartnerLimit:
    """Minimize the step problem at distance ``d`` with the channel of ``partner`` at its limit.

    Args:
        loss: the objective.
        constraint: the path's pair constraint (its layer is the partner channel's too).
        d: the step's distance, > 0.
        theta: the step's point (the pair at distance d, p and j apart).
        partner: (p, j): the partner p (a pair neuron or not) and the neuron j that moved onto
            it, j not in the pair.
        tol, options: of :func:`weightsym.optimize.minimize` (method, max_iter, ...).

    Returns:
        The :class:`PartnerLimit`; ``converged`` False means its loss is an upper bound.

    Raises:
        ValueError: partner is not a tuple (p, j), j is a pair neuron, p = j, a neuron the layer
            lacks, d not > 0, or the joint distance with p in the pair (its output weights are
            constrained, and the channel replaces them by sigma).
    """
    if not (isinstance(partner, tuple) and len(partner) == 2):
        raise ValueError(f"partner must be a tuple (p, j) of two neurons; got {partner!r}")
    p, j = partner
    if j in constraint.pair:
        raise ValueError(f"partner: j = {j} is a neuron of the merging pair {constraint.pair}")
    if constraint.distance != "incoming" and p in constraint.pair:
        raise ValueError(
            f"partner: p = {p} is a pair neuron and the {constraint.distance!r} distance "
            "constrains its output weights, which the channel replaces by sigma"
        )
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 < d < math.inf:
        raise ValueError(f"d must be a finite real number > 0; got {d!r}")
    limit = PartnerLimitLoss(loss, constraint.layer, (p, j))
    start, delta = limit.to_limit(theta)
    objective = ConstrainedLoss(limit, constraint, d)  # type: ignore[arg-type]
    phi0 = constraint.normalize(constraint.chart(start))
    res = minimize(objective, phi0, tol=tol, **options)
    end = objective.theta(res.x)
    return PartnerLimit(
        **solver_fields(res),
        start_loss=objective(phi0),
        delta_start=delta,
        kappa_norm=float(end[limit.chart.O_m].norm()),
        distance=constraint.measure(end),
    )


PARTNER_APPROACH = 10.0
"""Neuron j has moved onto its partner p when delta = |vartheta_j - vartheta_p| fell below the
path's first point's by more than this factor ..."""
PARTNER_CLOSE = 1e-2
"""... and below this fraction of |vartheta_p|: close enough for the derivative neuron to be what
the pair computes (on the ReLU toy, weights that grew with delta still 13% of |vartheta_p| are
no channel: the limiting network's loss there is 38x the step's)."""


def partner_on_channel(
    net: MLP,
    theta: Tensor,
    first: Tensor,
    layer: int,
    pair: tuple[int, int],
    step: StepDiagnostics,
    cancel: float,
) -> tuple[int, int] | None:
    """(p, j) where the point ``theta`` sits on a channel of a third neuron, else ``None``.

    The step's elsewhere flag is up with the grown neuron j in the pair's ``layer`` (j not a
    pair neuron; its weights grew, see :class:`weightsym.diagnostics.Thresholds`), j's incoming
    vector has moved onto its nearest neighbour p's (their distance delta fell below its value
    at the path's ``first`` point by more than :data:`PARTNER_APPROACH`, and below
    :data:`PARTNER_CLOSE` |vartheta_p|), and their output
    weights diverge in opposite directions, |w_j + w_p| <= ``cancel`` |w_j - w_p| (the rule of
    the pair's own channel flag): two copies of one neuron whose outputs cancel but for a
    derivative term, kappa g'(a_p) (e . h~) / 2 as delta -> 0 (docs/theory.md section 5.4).
    """
    j, p = step.other_neuron, step.other_partner
    if not step.flag_elsewhere or step.other_layer != layer or j in pair or p < 0:
        return None
    v_p, v_j = net.neuron_slice(layer, p), net.neuron_slice(layer, j)
    delta, delta_first = step.other_partner_distance, float((first[v_j] - first[v_p]).norm())
    close = delta <= PARTNER_CLOSE * float(theta[v_p].norm())
    if not (close and delta * PARTNER_APPROACH <= delta_first):
        return None
    w_p, w_j = theta[net.output_index(layer, p)], theta[net.output_index(layer, j)]
    if float((w_j + w_p).norm()) > cancel * float((w_j - w_p).norm()):
        return None
    return p, j


PULL_BACK = 1e-2
""":func:`pulled_back` moves j to this fraction of |vartheta_p| from its partner p."""


def pulled_back(
    loss: Loss, theta: Tensor, layer: int, partner: tuple[int, int], fraction: float = PULL_BACK
) -> Tensor:
    """theta with neuron j moved to ``fraction`` |vartheta_p| from p along its direction e,
    sigma = w_p + w_j and kappa = delta (w_j - w_p) kept (the channel coordinates of
    docs/theory.md section 5.4): the same network to O(delta), with |w_j - w_p| = |kappa| / delta
    of a size a solver can work with. A step stalled with j a few 1e-9 from p (output weights
    1e9) restarts from here (:class:`weightsym.paths.PathConfig` ``partner_restart``)."""
    chart = ChannelChart(loss, layer, partner)
    x, _ = chart.to_channel(theta)
    return chart.to_theta(x, fraction * float(theta[chart.I_l].norm()))


class PartnerChannel(NamedTuple):
    """A channel of neuron j onto its partner p, met on a path's descent (d > 0) steps.

    ``partner`` is (p, j); ``steps`` the indices of the descent steps that sit on it
    (:func:`partner_on_channel`); ``limit_index`` the step whose limit was taken: the barrier's
    step where it is one of them, else the last; ``limit`` the loss that step tends to along
    the channel (:func:`partner_limit`), ``None`` where it cannot be taken (the joint distance
    with p in the pair).
    """

    partner: tuple[int, int]
    steps: tuple[int, ...]
    limit_index: int
    limit: PartnerLimit | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (``summary.json``)."""
        return {
            "partner": list(self.partner),
            "steps": list(self.steps),
            "limit_index": self.limit_index,
            "limit": None if self.limit is None else self.limit._asdict(),
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> PartnerChannel:
        """The inverse of :meth:`as_dict`.

        Raises:
            ValueError: keys or fields that are not those :meth:`as_dict` writes.
        """
        if not isinstance(body, Mapping) or set(body) != set(cls._fields):
            raise ValueError("partner_channel has unexpected fields")
        limit = body["limit"]
        if limit is not None and (
            not isinstance(limit, Mapping) or set(limit) != set(PartnerLimit._fields)
        ):
            raise ValueError("partner_channel limit has unexpected fields")
        partner, steps = body["partner"], body["steps"]
        if not (isinstance(partner, list) and len(partner) == 2):
            raise ValueError("partner_channel partner is not a pair (p, j)")
        if not isinstance(steps, list):
            raise ValueError("partner_channel steps is not a list")
        return cls(
            partner=(int(partner[0]), int(partner[1])),
            steps=tuple(int(i) for i in steps),
            limit_index=int(body["limit_index"]),
            limit=None if limit is None else PartnerLimit(**limit),
        )


def find_partner_channel(
    net: MLP,
    thetas: Tensor,
    layer: int,
    pair: tuple[int, int],
    steps: Sequence[tuple[int, StepDiagnostics]],
    barrier_index: int,
    cancel: float,
) -> tuple[tuple[int, int], tuple[int, ...], int] | None:
    """The partner channel a path's descent steps sit on: ((p, j), steps, limit_index).

    ``steps`` are (index, diagnostics) of the descent steps, ``thetas`` the path's points
    (the first, ``thetas[0]``, is what the approach is measured against).
    Where several (p, j) occur, the one the barrier's step sits on is taken, else the one met
    on the most steps (the later on a tie); ``limit_index`` is the barrier's step if it sits on
    that channel, else its last step. ``None`` where no step sits on one.
    """
    met: dict[tuple[int, int], list[int]] = {}
    for i, dg in steps:
        partner = partner_on_channel(net, thetas[i], thetas[0], layer, pair, dg, cancel)
        if partner is not None:
            met.setdefault(partner, []).append(i)
    if not met:
        return None
    at_barrier = [p for p, idx in met.items() if barrier_index in idx]
    partner = at_barrier[0] if at_barrier else max(met, key=lambda p: (len(met[p]), met[p][-1]))
    idx = met[partner]
    return partner, tuple(idx), barrier_index if barrier_index in idx else idx[-1]
