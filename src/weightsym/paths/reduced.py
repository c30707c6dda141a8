"""The variables a path step is solved in: the chart itself or an exact reformulation of it.

A path step minimizes the constrained loss over the chart phi at fixed d (docs/theory.md
sections 4.3 and 4.4). Two exact reformulations change only the variables the solver sees, not
the problem:

* ``varpro``: variable projection (:class:`weightsym.varpro.VarPro`) eliminates the free
  output-layer entries B_F by least squares, x = phi without B_F, and the solver minimizes
  phi_red(x) = min_B L(x, B) (squared-error losses ``mse`` / ``nmse`` only, docs/theory.md
  section 1.3);
* ``whiten``: the first layer in whitened input variables
  (:class:`weightsym.whitening.WhitenedProblem`), W1~ = W1 Q, b1~ = b1 + W1 mu, for pairs in
  hidden layers k >= 2, whose chart coordinates of the pair are the same in both variables.

* ``channel``: the pair's output vectors in channel coordinates (sigma, kappa) =
  (w_l + w_m, d (w_m - w_l)) at every d > 0 (:class:`weightsym.channels.ChannelVariables`), a
  linear change of variables in which the channel escape stays finite (docs/theory.md
  section 5.4).

Variable projection and whitening combine (variable projection of the whitened chart), and
so do whitening and channel coordinates. A :class:`SolverChart` is built once
per path (whitening fits the inputs once, lazily, on the first step that needs it);
:meth:`SolverChart.at` gives one step's :class:`StepVariables`: the objective the solver
minimizes and the maps x <-> phi between its variables and the original chart. Every reported
quantity (loss, grad_inf, convergence) is evaluated in the original chart at the mapped-back
point, so paths solved in different variables stay comparable (docs/theory.md section 6.6).
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from weightsym.channels import ChannelObjective, ChannelVariables
from weightsym.constraints import ConstrainedLoss, PairConstraint
from weightsym.losses import Loss
from weightsym.paths.config import PathConfig
from weightsym.varpro import KINDS, VarPro
from weightsym.whitening import WhitenedProblem


def check_settings(cfg: PathConfig, loss: Loss) -> None:
    """Raise where ``cfg`` is out of range (:meth:`PathConfig.validate`, which also refuses
    ``whiten=True`` for a pair in hidden layer 1) or its solver variables do not fit ``loss``.

    Raises:
        ValueError: ``varpro=True`` with a loss kind other than ``mse`` / ``nmse`` (no linear
            least-squares output layer); any error of :meth:`PathConfig.validate`.
        TypeError: as :meth:`PathConfig.validate`.
    """
    cfg.validate()
    if cfg.varpro and loss.kind not in KINDS:
        raise ValueError(
            f"varpro=True needs a squared-error loss whose output layer is a linear least-squares "
            f"problem (loss kind in {KINDS}); got kind={loss.kind!r}"
        )


class SolverChart:
    """One path's solver variables (see the module docstring).

    Args:
        loss: the path's loss (original variables).
        con: the path's :class:`PairConstraint` (original chart).
        theta: a point of the path (theta*); with ``whiten`` its first-layer weights along
            the inputs' flat directions are the ones held fixed.
        cfg: the path's settings (``varpro``, ``whiten``).

    Raises:
        ValueError: as :func:`check_settings`.
    """

    def __init__(self, loss: Loss, con: PairConstraint, theta: Tensor, cfg: PathConfig) -> None:
        check_settings(cfg, loss)
        self.loss, self.con, self.theta = loss, con, theta
        self.varpro, self.whiten = cfg.varpro, cfg.whiten
        self.use_channel = cfg.channel

    @property
    def plain(self) -> bool:
        """The solver runs on the chart phi itself."""
        return not (self.varpro or self.whiten or self.use_channel)

    @cached_property
    def channel(self) -> ChannelVariables | None:
        """Channel coordinates of the pair's output vectors in the solver's chart."""
        return ChannelVariables(self.solver_constraint) if self.use_channel else None

    @cached_property
    def whitened(self) -> WhitenedProblem:
        """The whitened problem, fitted on the first use (only with ``whiten``)."""
        return WhitenedProblem(self.loss, self.theta)

    @property
    def solver_loss(self) -> Loss:
        """The loss in the solver's network (the whitened one with ``whiten``)."""
        return self.whitened.loss if self.whiten else self.loss

    @cached_property
    def solver_constraint(self) -> PairConstraint:
        """The pair constraint in the solver's network (the whitened one with ``whiten``)."""
        return self.whitened.constraint(self.con) if self.whiten else self.con

    def at(self, d: float) -> StepVariables:
        """The step at distance ``d``."""
        return StepVariables(self, d)

    def to_solver_chart(self, phi: Tensor, d: float) -> Tensor:
        """The chart point of the solver's network at the same theta (phi itself unless
        whitened: the pair's coordinates z are the same, the rest is theta~ outside the pair)."""
        if not self.whiten:
            return phi
        con, con_w = self.con, self.solver_constraint
        theta_w = self.whitened.to_whitened(con.embed(phi, d))
        return torch.cat([theta_w[con_w.I_rest], phi[con.n_rest :]])

    def from_solver_chart(self, phi_s: Tensor, d: float) -> Tensor:
        """The inverse of :meth:`to_solver_chart`."""
        if not self.whiten:
            return phi_s
        con, con_w = self.con, self.solver_constraint
        theta = self.whitened.from_whitened(con_w.embed(phi_s, d))
        return torch.cat([theta[con.I_rest], phi_s[con_w.n_rest :]])


class StepVariables:
    """The objective of one step in the solver's variables x, and the maps x <-> phi.

    ``objective`` is the :class:`ConstrainedLoss` of the solver's network at d, or its
    :class:`VarPro` with ``varpro``; :meth:`to_x` maps a point phi of the original chart to x,
    :meth:`to_phi` maps x back (with ``varpro`` at the least-squares output layer B_F*(x)).
    """

    def __init__(self, chart: SolverChart, d: float) -> None:
        self.chart, self.d = chart, float(d)
        full = ConstrainedLoss(chart.solver_loss, chart.solver_constraint, d)
        self.varpro = VarPro(full) if chart.varpro else None
        self.objective: ConstrainedLoss | VarPro | ChannelObjective = self.varpro or full
        # channel coordinates of the pair's output vectors (d > 0; the merge runs on phi)
        self.channel = chart.channel if self.d > 0 else None
        if self.channel is not None:
            self.objective = self.channel.objective(full)

    @property
    def plain(self) -> bool:
        """x = phi."""
        return self.varpro is None and self.channel is None and not self.chart.whiten

    def to_x(self, phi: Tensor) -> Tensor:
        """x from a point phi of the original chart."""
        phi_s = self.chart.to_solver_chart(phi, self.d)
        if self.channel is not None:
            return self.channel.to_x(phi_s, self.d)
        return phi_s if self.varpro is None else self.varpro.restrict(phi_s)

    def to_phi(self, x: Tensor) -> Tensor:
        """The point phi of the original chart at x."""
        phi_s = x if self.varpro is None else self.varpro.expand(x)
        if self.channel is not None:
            phi_s = self.channel.to_phi(x, self.d)
        return self.chart.from_solver_chart(phi_s, self.d)
