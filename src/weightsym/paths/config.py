"""The settings of one permutation path (paper Sec. 4.1; docs/theory.md section 4).

:class:`PathConfig` is the single source of a path's settings and their defaults. The named
presets are the path variants of docs/theory.md section 5:

* ``paper``: the paper's constraint, the Euclidean distance of the incoming vectors
  vartheta = [W_{m,:}, b_m] (Def. 5);
* ``joint``: input and output vectors together, (vartheta_m, w_m) = (vartheta_l, w_l) + d e,
  which ends on the permutation point itself and rules out the channel escape;
* ``gauge``: the incoming distance with every neuron of the pair held on the unit sphere
  (positively homogeneous g only), which rules out the rescaling escape.
"""

from __future__ import annotations

import dataclasses
import numbers
import operator
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from weightsym import diagnostics as diag
from weightsym.constraints import DISTANCES

SOLVERS = ("auto", "newton", "newton-cg", "lbfgs", "paper-gd")
TRUST_REGION = ("auto", "newton", "newton-cg")
PAPER_GD = {"lr": 0.05, "max_iter": 20_000}  # the paper's method: fixed step, stated budget
STEP_MAX_ITER = {"auto": 60, "newton": 60, "newton-cg": 100, "lbfgs": 5000}
"""Iteration budget of one path step when ``max_iter`` is not given (a step whose student has
no finite minimizer would otherwise spend the solver's whole budget creeping along a channel)."""

SWITCHES = ("varpro", "whiten", "channel", "partner_restart", "sweep_back")
"""The bool settings that are off by default (each changes how the steps are solved)."""

RECORDED_IF_SET = ("patience", *SWITCHES)
"""Fields that :meth:`PathConfig.as_dict` leaves out at their defaults, so that the config
stored by older results folders, which lack them, still matches (and resumes)."""

MAX_STEPS = 100_000
"""The most distances a path may have (each step keeps a parameter vector in memory)."""

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"distance": "incoming", "gauge": False},
    "joint": {"distance": "joint", "gauge": False},
    "gauge": {"distance": "incoming", "gauge": True},
}
"""The path variants by name (docs/theory.md section 5)."""


@dataclass(frozen=True)
class PathConfig:
    """Everything that determines a permutation path (stored in its results folder).

    Attributes:
        layer: hidden layer k of the pair (1 = first hidden layer).
        pair: the neurons (l, m) to merge; ``None``: the most similar pair of the layer (highest
            cosine of the parameter vectors, as in the paper's Sec. 5).
        steps: S, the number of log-spaced distances d_1 .. d_S after d_0.
        ratio: d_S / d_0.
        distance: ``"incoming"`` (the paper's, Def. 5) or ``"joint"``.
        gauge: hold the pair on the unit sphere (positively homogeneous g only).
        solver: one of :data:`SOLVERS`; ``"paper-gd"`` is the paper's gradient descent.
        tol: grad_inf tolerance of every step.
        max_iter: per-step iteration budget; ``None``: :data:`STEP_MAX_ITER` of the solver.
        patience: trust-region solvers: end a step after this many accepted iterations that
            did not halve grad_inf (docs/theory.md section 6); ``None``: off.
        lr: step of ``"paper-gd"`` (``None``: the paper's 0.05).
        predictor: extrapolate the next start in log d (else warm start only).
        varpro: solve each step on the variable projection of its objective: the free
            output-layer entries eliminated by least squares (loss kinds ``mse`` / ``nmse``
            only; :mod:`weightsym.paths.reduced`).
        whiten: solve each step with the first layer in whitened input variables (pairs in
            hidden layers k >= 2 only; :mod:`weightsym.paths.reduced`). Loss, grad_inf and
            convergence are reported in the original chart either way.
        channel: solve each step at d > 0 with the pair's output vectors in channel
            coordinates (sigma, kappa) = (w_l + w_m, d (w_m - w_l)), and extrapolate those
            (incoming distance without the gauge only; not with ``varpro``;
            docs/theory.md section 5.4).
        partner_restart: a descent step that ends not converged on a partner channel (neuron j
            moved onto p, :func:`weightsym.partner_channel.partner_on_channel`) is solved again
            from the same network with j pulled back from p
            (:func:`weightsym.partner_channel.pulled_back`), and the lower of the two solves is
            kept (docs/certification.md section 1).
        sweep_back: after the descent, solve every step d_S .. d_1 again from the solution of
            the step after it (the lower-d one, from the merge backwards) and keep that solve
            where it is lower by more than ``weightsym.paths.find.SWEEP_GAIN``: a branch of
            lower solutions that the descent found late is carried back to where it exists
            (docs/certification.md section 5).
        shift_points: points of the output-weight shift, t = 1/4 .. 1/2 (Fig. 4).
        thresholds: when the escape flags rise (docs/theory.md section 5).
    """

    layer: int = 1
    pair: tuple[int, int] | None = None
    steps: int = 200
    ratio: float = 1e-4
    distance: str = "incoming"
    gauge: bool = False
    solver: str = "auto"
    tol: float = 1e-12
    max_iter: int | None = None
    patience: int | None = None
    lr: float | None = None
    predictor: bool = True
    varpro: bool = False
    whiten: bool = False
    channel: bool = False
    partner_restart: bool = False
    sweep_back: bool = False
    shift_points: int = 10
    thresholds: diag.Thresholds = field(default_factory=diag.Thresholds)

    def __post_init__(self) -> None:
        if isinstance(self.pair, (list, tuple)) and all(_is_index(i) for i in self.pair):
            object.__setattr__(self, "pair", tuple(operator.index(i) for i in self.pair))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PathConfig:
        """The variant ``name`` (``paper``, ``joint`` or ``gauge``) with ``overrides`` applied.

        Raises:
            ValueError: for an unknown preset name.

        Example:
            >>> cfg = PathConfig.preset("joint", layer=1, pair=(0, 1), steps=50)
            >>> cfg.distance, cfg.steps, cfg.ratio
            ('joint', 50, 0.0001)
        """
        if name not in PRESETS:
            raise ValueError(f"unknown path preset {name!r}; expected one of {tuple(PRESETS)}")
        return cls.from_options(**(PRESETS[name] | overrides))

    @classmethod
    def from_options(cls, **options: Any) -> PathConfig:
        """A config from keyword options, rejecting unknown names in one place.

        Raises:
            TypeError: an option that is not a field of :class:`PathConfig`.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unknown path option(s) {unknown}; expected some of {sorted(names)}")
        if options.get("thresholds") is None:
            options.pop("thresholds", None)
        return cls(**options)

    def variant(self, name: str, **changes: Any) -> PathConfig:
        """This template as the variant ``name`` (a :data:`PRESETS` key) with ``changes``;
        ``channel`` is kept only on the variants it applies to (the incoming distance without
        the gauge), so one template serves a sweep over variants.

        Raises:
            ValueError: for an unknown variant name.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown variant {name!r}; expected one of {tuple(PRESETS)}")
        preset = PRESETS[name]
        follows = preset["distance"] == "incoming" and not preset["gauge"]
        return self.replace(**preset, **changes, channel=self.channel and follows)

    def replace(self, **changes: Any) -> PathConfig:
        """A copy with ``changes`` applied (unknown names rejected as in :meth:`from_options`)."""
        return type(self).from_options(**(self.fields() | changes))

    def fields(self) -> dict[str, Any]:
        """The fields by name (shallow, unlike :meth:`as_dict`)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def validate(self) -> None:
        """Raise ValueError/TypeError naming the first setting that is out of range."""
        _check_int("layer", self.layer, 0)  # whether it is a hidden layer: the network says
        if self.pair is not None:
            _check_pair(self.pair)
        if self.distance not in DISTANCES:
            raise ValueError(f"unknown distance {self.distance!r}; expected one of {DISTANCES}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; expected one of {SOLVERS}")
        if not isinstance(self.gauge, bool) or not isinstance(self.predictor, bool):
            raise TypeError("gauge and predictor must be bools")
        for name in SWITCHES:
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool; got {getattr(self, name)!r}")
        if self.whiten and self.layer < 2:
            raise ValueError(
                f"whiten=True needs a pair in a hidden layer k >= 2 (whitening changes the "
                f"incoming vectors of layer 1); got layer={self.layer}"
            )
        if self.channel and (self.distance != "incoming" or self.gauge or self.varpro):
            raise ValueError(
                "channel=True needs the incoming distance without the gauge and without varpro "
                f"(the channel it follows); got distance={self.distance!r}, gauge={self.gauge}, "
                f"varpro={self.varpro}"
            )
        _check_int("steps", self.steps, 1)
        if self.steps > MAX_STEPS:
            raise ValueError(f"steps must be <= {MAX_STEPS}; got {self.steps}")
        _check_float("ratio", self.ratio)
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"ratio must lie in (0, 1); got {self.ratio!r}")
        _check_float("tol", self.tol)
        if not 0.0 < self.tol < float("inf"):
            raise ValueError(f"tol must be positive and finite; got {self.tol!r}")
        if self.max_iter is not None:
            _check_int("max_iter", self.max_iter, 1)
        if self.lr is not None:
            _check_float("lr", self.lr)
            if not 0.0 < self.lr < float("inf"):
                raise ValueError(f"lr must be positive and finite; got {self.lr!r}")
        if self.patience is not None:
            _check_int("patience", self.patience, 1, "a positive int or None")
            if self.solver not in TRUST_REGION:
                raise ValueError(
                    f"patience applies to the trust-region solvers {TRUST_REGION}; "
                    f"got solver {self.solver!r}"
                )
        _check_int("shift_points", self.shift_points, 1)

    def schedule(self, d0: float) -> list[float]:
        """d_0 > d_1 > ... > d_S = ratio d_0 (log-spaced), then 0."""
        S = self.steps
        return [d0 * self.ratio ** (i / S) for i in range(S + 1)] + [0.0]

    @property
    def checkpoint_steps(self) -> int:
        """The step records a finished path leaves in its checkpoint (the unit of a sweep's
        progress): d_0 .. d_S and the merge, and with ``sweep_back`` the second solve of each
        of d_S .. d_1."""
        n = self.steps + 2
        return n + (n - 2 if self.sweep_back else 0)

    def solver_options(self) -> dict[str, Any]:
        """Keyword options of :func:`weightsym.optimize.minimize` for one step."""
        if self.solver == "paper-gd":
            opts: dict[str, Any] = {"method": "gd", **PAPER_GD}
        else:
            opts = {"method": self.solver, "max_iter": STEP_MAX_ITER[self.solver]}
        if self.lr is not None:
            opts["lr"] = self.lr
        if self.max_iter is not None:
            opts["max_iter"] = self.max_iter
        if self.patience is not None:
            opts["patience"] = self.patience
        return opts

    def as_dict(self) -> dict[str, Any]:
        """JSON-able settings, as stored in a results folder's config."""
        out = asdict(self)
        out["pair"] = None if self.pair is None else list(self.pair)
        for f in dataclasses.fields(self):  # each recorded only where it acts
            if f.name in RECORDED_IF_SET and getattr(self, f.name) == f.default:
                del out[f.name]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PathConfig:
        """The inverse of :meth:`as_dict`."""
        data = dict(data)
        if isinstance(data.get("thresholds"), Mapping):
            data["thresholds"] = diag.Thresholds(**data["thresholds"])
        if data.get("pair") is not None:
            data["pair"] = tuple(data["pair"])
        return cls.from_options(**data)


def _check_int(name: str, value: Any, minimum: int, expected: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be {expected or f'an int >= {minimum}'}; got {value!r}")


def _check_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")


def _is_index(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_pair(pair: Any) -> None:
    ok = isinstance(pair, tuple) and len(pair) == 2
    if not (ok and all(_is_index(i) and i >= 0 for i in pair)):
        raise ValueError(f"pair must be two neuron indices (l, m), ints >= 0; got {pair!r}")
