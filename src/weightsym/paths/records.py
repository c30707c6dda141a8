"""Typed records of a permutation path: one step, the barrier, the path and its summary.

The path gamma runs from theta* (t = 0) through the merge (d = 0, t = 1/4) and the output-weight
shift to the permutation point (t = 1/2); the second half is the mirror
gamma(t) = sigma_{l<->m}(gamma(1 - t)) (paper Sec. 4.1, docs/theory.md section 4). Only the first
half is stored; :meth:`PermutationPath.full` builds the whole of it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from weightsym import diagnostics as diag
from weightsym.channels import ChannelLimit, ChannelTrend, channel_trend
from weightsym.model import MLP
from weightsym.partner_channel import PartnerChannel, find_partner_channel
from weightsym.paths.config import PathConfig
from weightsym.symmetry import swap

AT_POINT_RTOL = 1e-9
"""The barrier "sits at the permutation point" when the loss there is within this relative
distance of the highest loss on the path."""


@dataclass(frozen=True)
class StepOutcome:
    """What the solver reached at one d: ``converged`` says whether grad_inf <= tol was
    reached, ``message`` why the solver stopped; ``nit``, ``ngev``, ``nhev``, ``nhvp`` count
    iterations, gradient evaluations, Hessians and Hessian-vector products; ``predicted``: the
    step started from the extrapolated point rather than the previous solution; ``excess``: the
    loss still to gain at the solution, the Newton decrement in the chart's tangent space
    (:func:`weightsym.excess.step_excess`; docs/certification.md section 4), NaN where not
    computed (the output-weight shift, rows of older versions); ``excess_bound``: that number
    is a lower bound only (curvature <= 0 met, or its CG stopped short); ``restarted``: the
    step was solved again off a partner channel (``PathConfig.partner_restart``) and that solve
    is the one kept; ``swept``: the step was solved again from the next step's solution in the
    backward sweep (``PathConfig.sweep_back``) and that solve is the one kept."""

    loss: float
    grad_inf: float
    nit: int
    ngev: int
    nhev: int
    nhvp: int
    converged: bool
    message: str
    predicted: bool
    wall_time: float
    excess: float = float("nan")
    excess_bound: bool = False
    restarted: bool = False
    swept: bool = False


PLACE = ("index", "segment", "d", "t")
"""The fields of a :class:`StepRecord` that say where the point is; its first CSV columns."""


@dataclass(frozen=True, kw_only=True)
class StepRecord(StepOutcome):
    """One point of the path: where it is, what the solver reached, the escape diagnostics.

    ``segment`` is ``"descent"`` (d > 0), ``"merge"`` (d = 0) or ``"shift"`` (the output-weight
    shift, t in (1/4, 1/2]); the solver's fields are those of :class:`StepOutcome`.
    """

    index: int
    segment: str
    d: float
    t: float
    diagnostics: diag.StepDiagnostics

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The CSV columns of :meth:`as_row`, in their fixed order."""
        solver = tuple(f.name for f in dataclasses.fields(StepOutcome))
        return PLACE + solver + diag.StepDiagnostics.columns()

    def as_row(self) -> dict[str, Any]:
        """A flat row (place, solver, diagnostics) in the order of :meth:`columns`."""
        own = PLACE + tuple(f.name for f in dataclasses.fields(StepOutcome))
        return {name: getattr(self, name) for name in own} | self.diagnostics.as_row()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StepRecord:
        """The inverse of :meth:`as_row` (e.g. for a record read from a checkpoint); a field
        with a default that an older row lacks (``excess``, ``excess_bound``, ``restarted``,
        ``swept``) takes it."""
        own = {
            f.name: row[f.name]
            for f in dataclasses.fields(cls)
            if f.name != "diagnostics" and (f.name in row or f.default is dataclasses.MISSING)
        }
        if "excess" in own:  # JSON writes NaN as the text "NaN"
            own["excess"] = float(own["excess"])
        return cls(**own, diagnostics=diag.StepDiagnostics.from_row(row))


class Barrier(NamedTuple):
    """The highest loss on the path (it need not sit at the permutation point, Fig. 5).

    ``index`` is its position in :meth:`PermutationPath.full`; ``converged`` whether that step
    converged (else the loss is an upper bound of the constrained minimum only).
    """

    loss: float
    t: float
    index: int
    at_point: bool
    converged: bool


@dataclass(frozen=True)
class PathSummary:
    """What a path amounts to: its barrier, its ends, how well it converged, its escapes.

    ``channel``: whether |w_m - w_l| grows like 1/d (docs/theory.md section 5.4);
    ``channel_limit``: where it does, the loss the channel tends to (``None`` otherwise);
    ``worst_excess_ratio``: the largest estimated remaining excess of a solved step over its
    loss (NaN where no step has an estimate; docs/certification.md); ``partner_channel``: the
    channel of a third neuron with a partner that descent steps sit on, with the loss its
    limit step tends to (``None``: none met; docs/certification.md section 1); ``swept_steps``:
    the steps whose point the backward sweep lowered (``PathConfig.sweep_back``;
    docs/certification.md section 5).
    """

    config: PathConfig
    barrier: Barrier
    loss_start: float
    loss_permutation_point: float
    worst_grad_inf: float
    not_converged_steps: tuple[int, ...]
    flags: dict[str, bool]
    channel: ChannelTrend
    channel_limit: ChannelLimit | None = None
    worst_excess_ratio: float = math.nan
    partner_channel: PartnerChannel | None = None
    swept_steps: tuple[int, ...] = ()

    @property
    def all_converged(self) -> bool:
        return not self.not_converged_steps

    def channel_columns(self) -> dict[str, Any]:
        """The table columns of the pair channel: its kind, the loss it tends to (``None``
        where not followed) and whether that limit converged."""
        limit = self.channel_limit
        return {
            "channel": self.channel.kind,
            "channel_limit": None if limit is None else limit.loss,
            "channel_limit_converged": None if limit is None else limit.converged,
        }

    def partner_columns(self) -> dict[str, Any]:
        """The table columns of a partner channel: ``p~j`` (``None``: none met), the number of
        descent steps on it, the step whose limit was taken, the loss it tends to (``None``
        where not taken) and whether that limit converged."""
        pc = self.partner_channel
        limit = None if pc is None else pc.limit
        return {
            "partner_channel": None if pc is None else "{}~{}".format(*pc.partner),
            "partner_steps": 0 if pc is None else len(pc.steps),
            "partner_limit_index": None if pc is None else pc.limit_index,
            "partner_limit": None if limit is None else limit.loss,
            "partner_limit_converged": None if limit is None else limit.converged,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, with the keys of a results folder's ``summary.json``."""
        b = self.barrier
        return {
            "config": self.config.as_dict(),
            "barrier": b.loss,
            "barrier_t": b.t,
            "barrier_index": b.index,
            "barrier_at_permutation_point": b.at_point,
            "barrier_converged": b.converged,
            "loss_start": self.loss_start,
            "loss_permutation_point": self.loss_permutation_point,
            "worst_grad_inf": self.worst_grad_inf,
            "worst_excess_ratio": _finite_or_none(self.worst_excess_ratio),
            "all_converged": self.all_converged,
            "not_converged_steps": list(self.not_converged_steps),
            **self.flags,
            "channel": self.channel.kind,
            "channel_slope": _finite_or_none(self.channel.slope),
            "channel_kappa": _finite_or_none(self.channel.kappa),
            "channel_limit": None if self.channel_limit is None else self.channel_limit._asdict(),
            "partner_channel": (
                None if self.partner_channel is None else self.partner_channel.as_dict()
            ),
            "swept_steps": list(self.swept_steps),
        }


def stored_channel_limit(summary: Mapping[str, Any]) -> tuple[bool, ChannelLimit | None]:
    """(recorded, limit) from a ``summary.json`` body written by :meth:`PathSummary.as_dict`:
    ``recorded`` is False for a summary written before the channel limit existed; ``limit`` is
    ``None`` where no channel was followed.

    Raises:
        ValueError: a stored limit whose fields are not those of :class:`ChannelLimit`.
    """
    stored = summary.get("channel_limit")
    if stored is None:
        return "channel_limit" in summary, None
    if not isinstance(stored, Mapping) or set(stored) != set(ChannelLimit._fields):
        raise ValueError("channel_limit has unexpected fields")
    return True, ChannelLimit(**stored)


def stored_partner_channel(summary: Mapping[str, Any]) -> tuple[bool, PartnerChannel | None]:
    """(recorded, channel) from a ``summary.json`` body, as :func:`stored_channel_limit`:
    ``recorded`` is False for a summary written before partner channels were looked for.

    Raises:
        ValueError: a stored channel whose fields are not those of :class:`PartnerChannel`.
    """
    stored = summary.get("partner_channel")
    if stored is None:
        return "partner_channel" in summary, None
    return True, PartnerChannel.from_dict(stored)


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


class PermutationPath:
    """A computed permutation path; the first half (t in [0, 1/2]) is stored.

    Attributes:
        net, layer, pair, config: the network and the settings it was computed with.
        theta_star: the minimum it starts from (before any gauge).
        records: one :class:`StepRecord` per stored point.
        thetas: (N, P) parameters of the stored points.
        d, t, loss, grad_inf: (N,) float64 columns of the records; ``converged``: (N,) bool.
    """

    def __init__(
        self,
        net: MLP,
        theta_star: Tensor,
        config: PathConfig,
        records: Sequence[StepRecord],
        thetas: Tensor,
        channel_limit: ChannelLimit | None = None,
        partner_channel: PartnerChannel | None = None,
    ) -> None:
        self.net = net
        self.theta_star = theta_star
        self.config = config
        self.layer = config.layer
        self.pair: tuple[int, int] = config.pair  # type: ignore[assignment]
        self.records = list(records)
        self.thetas = thetas
        self.channel_limit = channel_limit
        self.partner_channel = partner_channel

        def col(name: str) -> Tensor:
            return torch.tensor(
                [float(getattr(r, name)) for r in self.records], dtype=torch.float64
            )

        self.d, self.t, self.loss, self.grad_inf = col("d"), col("t"), col("loss"), col("grad_inf")
        self.converged = torch.tensor([r.converged for r in self.records])

    def __len__(self) -> int:
        return len(self.records)

    def full(self) -> tuple[Tensor, Tensor, Tensor]:
        """(t, thetas, losses) from theta* (t = 0) to sigma_{l<->m}(theta*) (t = 1)."""
        l, m = self.pair
        back = torch.stack(
            [swap(self.net, th, self.layer, l, m) for th in self.thetas[:-1].flip(0)]
        )
        t = torch.cat([self.t, 1.0 - self.t[:-1].flip(0)])
        return t, torch.cat([self.thetas, back]), torch.cat([self.loss, self.loss[:-1].flip(0)])

    @property
    def permutation_point_loss(self) -> float:
        """The loss at t = 1/2, the permutation point (Def. 4)."""
        return float(self.loss[-1])

    @property
    def barrier(self) -> Barrier:
        """The highest loss on the path, where it sits, and whether its step converged."""
        i = int(torch.argmax(self.loss))
        top = float(self.loss[i])
        at_point = self.permutation_point_loss >= top - AT_POINT_RTOL * max(abs(top), 1e-300)
        return Barrier(top, float(self.t[i]), i, at_point, bool(self.converged[i]))

    @property
    def num_solved(self) -> int:
        """Points computed by the solver (descent and merge; not the output-weight shift)."""
        return sum(1 for r in self.records if r.segment != "shift")

    @property
    def worst_excess_ratio(self) -> float:
        """max over the solved steps (descent and merge) of excess / max(loss, 1e-300): the
        largest share of its loss a step could still gain (docs/certification.md section 4);
        steps without an estimate (NaN) are left out, NaN if none has one."""
        ratios = torch.tensor(
            [r.excess / max(r.loss, 1e-300) for r in self.records if r.segment != "shift"],
            dtype=torch.float64,
        )
        ratios = ratios[~ratios.isnan()]
        return float(ratios.max()) if ratios.numel() else float("nan")

    @property
    def channel_trend(self) -> ChannelTrend:
        """How |w_m - w_l| scales with d on the descent (``channels.channel_trend``); a 1/d
        law while the rescaling or linearization flag is up at the last step is that escape's
        (the pair shrinks), not a channel, and the joint distance has none (docs/theory.md
        section 5.4)."""
        descent = [i for i, r in enumerate(self.records) if r.segment == "descent"]
        l, m = self.pair
        th = self.thetas[descent]
        spread = (
            th[:, self.net.output_index(self.layer, m)]
            - th[:, self.net.output_index(self.layer, l)]
        )
        trend = channel_trend(self.d[descent], spread.norm(dim=1))
        last = self.records[descent[-1]].diagnostics
        shrinks = last.flag_rescaling or last.flag_linearization  # w ~ 1/d: that escape's
        if trend.kind == "pair" and (shrinks or self.config.distance != "incoming"):
            return trend._replace(kind="none")  # the joint distance bounds |w_m - w_l| by d
        return trend

    def partner_channel_steps(self) -> tuple[tuple[int, int], tuple[int, ...], int] | None:
        """((p, j), steps, limit_index) of the channel of a third neuron that descent steps sit
        on (:func:`weightsym.partner_channel.find_partner_channel`), ``None`` where none."""
        descent = [(i, r.diagnostics) for i, r in enumerate(self.records) if r.segment == "descent"]
        return find_partner_channel(
            self.net,
            self.thetas,
            self.layer,
            self.pair,
            descent,
            self.barrier.index,
            self.config.thresholds.cancel,
        )

    def flags(self) -> dict[str, bool]:
        """Whether each escape flag rose anywhere on the path (docs/theory.md section 5)."""
        return diag.any_flags(r.diagnostics for r in self.records)

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per stored point (``steps.csv``)."""
        return [r.as_row() for r in self.records]

    def summary(self) -> PathSummary:
        """The path's :class:`PathSummary`."""
        n = self.num_solved
        return PathSummary(
            config=self.config,
            barrier=self.barrier,
            loss_start=float(self.loss[0]),
            loss_permutation_point=self.permutation_point_loss,
            worst_grad_inf=float(self.grad_inf[:n].max()),
            not_converged_steps=tuple(int(i) for i in torch.nonzero(~self.converged[:n])[:, 0]),
            flags=self.flags(),
            channel=self.channel_trend,
            channel_limit=self.channel_limit,
            worst_excess_ratio=self.worst_excess_ratio,
            partner_channel=self.partner_channel,
            swept_steps=tuple(r.index for r in self.records if r.swept),
        )
