"""The permutation path between partner minima (paper Sec. 4.1, SPEC section 3).

From a minimum theta*, merge neurons l and m of hidden layer k: decrease d = |v_m - v_l| on a
log-spaced schedule d_0 > ... > d_S = ratio * d_0, then d = 0, re-minimizing the loss over
everything else at each d (warm-started from the previous d, optionally with a secant
predictor); at d = 0 (t = 1/4) move the pair's output weights to their mean at constant loss
(Fig. 4, t = 1/4 .. 1/2, the permutation point of Def. 4), and complete the path by the mirror
gamma(t) = sigma_{l<->m}(gamma(1 - t)), so gamma(1) = sigma_{l<->m}(theta*).

Every step is recorded (d, t, loss, grad_inf, iterations, gradient evaluations, converged, wall
time and the escape diagnostics of :mod:`weightsym.diagnostics`), its parameters kept, and with
``out=`` written to a results folder as it goes, so that a killed run resumes from its last
finished step and ends with identical numbers.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path as FsPath

import torch
from torch import Tensor
from tqdm.auto import tqdm

from weightsym import diagnostics as diag
from weightsym.constraints import (
    DISTANCES,
    ConstrainedLoss,
    PairConstraint,
    ScaledObjective,
    unit_gauge,
)
from weightsym.losses import Loss
from weightsym.optimize import minimize
from weightsym.store import Checkpoint, atomic_save_tensors, atomic_write_csv
from weightsym.symmetry import swap

SOLVERS = ("auto", "newton", "newton-cg", "lbfgs", "paper-gd")
TRUST_REGION = ("auto", "newton", "newton-cg")
PAPER_GD = {"lr": 0.05, "max_iter": 20_000}  # the paper's method: fixed step, stated budget
STEP_MAX_ITER = {"auto": 60, "newton": 60, "newton-cg": 100, "lbfgs": 5000}
"""Iteration budget of one path step (a step whose student has no finite minimizer would
otherwise spend the solver's whole budget creeping along a channel)."""


@dataclass(frozen=True)
class PathConfig:
    """Everything that determines a path (stored in the results folder's config)."""

    layer: int
    pair: tuple[int, int]
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
    shift_points: int = 10
    thresholds: diag.Thresholds = field(default_factory=diag.Thresholds)

    def validate(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(f"unknown distance {self.distance!r}; expected one of {DISTANCES}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; expected one of {SOLVERS}")
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"steps must be a positive int; got {self.steps!r}")
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"ratio must lie in (0, 1); got {self.ratio!r}")
        if not self.tol > 0:
            raise ValueError(f"tol must be positive; got {self.tol!r}")
        if self.patience is not None:
            if not (isinstance(self.patience, int) and self.patience >= 1):
                raise ValueError(f"patience must be a positive int or None; got {self.patience!r}")
            if self.solver not in TRUST_REGION:
                raise ValueError(
                    f"patience applies to the trust-region solvers {TRUST_REGION}; "
                    f"got solver {self.solver!r}"
                )
        if not (isinstance(self.shift_points, int) and self.shift_points >= 1):
            raise ValueError(f"shift_points must be a positive int; got {self.shift_points!r}")

    def schedule(self, d0: float) -> list[float]:
        """d_0 > d_1 > ... > d_S = ratio d_0 (log-spaced), then 0."""
        S = self.steps
        return [d0 * self.ratio ** (i / S) for i in range(S + 1)] + [0.0]

    def solver_options(self) -> dict:
        if self.solver == "paper-gd":
            opts = {"method": "gd", **PAPER_GD}
        else:
            opts = {"method": self.solver, "max_iter": STEP_MAX_ITER[self.solver]}
        if self.lr is not None:
            opts["lr"] = self.lr
        if self.max_iter is not None:
            opts["max_iter"] = self.max_iter
        if self.patience is not None:
            opts["patience"] = self.patience
        return opts

    def as_dict(self) -> dict:
        out = asdict(self)
        out["pair"] = list(self.pair)
        if self.patience is None:  # recorded only where it acts (older results lack it)
            del out["patience"]
        return out


def problem_fingerprint(loss: Loss, theta: Tensor) -> str:
    """SHA-256 of the network, the data, the loss kind and theta*: resume only the same problem."""
    h = hashlib.sha256()
    h.update(repr((loss.net.widths, loss.net.activation, loss.kind)).encode())
    for t in (loss.X, loss.Y, theta):
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


class Path:
    """A computed permutation path; the first half is stored, the second is its mirror."""

    def __init__(
        self,
        loss: Loss,
        theta_star: Tensor,
        config: PathConfig,
        records: list[dict],
        thetas: Tensor,
    ) -> None:
        self.net = loss.net
        self.theta_star = theta_star
        self.config = config
        self.layer, self.pair = config.layer, config.pair
        self.records = records
        self.thetas = thetas  # (N, P): t from 0 to 1/2
        col = lambda key: diag.as_tensor(records, key)  # noqa: E731
        self.d, self.t, self.loss, self.grad_inf = col("d"), col("t"), col("loss"), col("grad_inf")
        self.converged = torch.tensor([bool(r["converged"]) for r in records])
        self.diagnostics = [
            {k: r[k] for k in r if k.startswith(("in_norm", "out_", "flag_", "other_"))}
            | {"max_weight": r["max_weight"]}
            for r in records
        ]

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
        return float(self.loss[-1])

    @property
    def barrier(self) -> tuple[float, float, int, bool]:
        """(highest loss, its t, its index in :meth:`full`, whether it sits at the point)."""
        i = int(torch.argmax(self.loss))
        top = float(self.loss[i])
        at_point = self.permutation_point_loss >= top - 1e-9 * max(abs(top), 1e-300)
        return top, float(self.t[i]), i, at_point

    def flags(self) -> dict[str, bool]:
        return diag.any_flags(self.records)

    def table(self) -> list[dict]:
        return [dict(r) for r in self.records]

    def summary(self) -> dict:
        top, t_top, i_top, at_point = self.barrier
        return {
            "config": self.config.as_dict(),
            "barrier": top,
            "barrier_t": t_top,
            "barrier_index": i_top,
            "barrier_at_permutation_point": at_point,
            "barrier_converged": bool(self.converged[i_top]),  # else an upper bound only
            "loss_start": float(self.loss[0]),
            "loss_permutation_point": self.permutation_point_loss,
            "worst_grad_inf": float(self.grad_inf[: self.num_solved].max()),
            "all_converged": bool(self.converged[: self.num_solved].all()),
            "not_converged_steps": [
                int(i) for i in torch.nonzero(~self.converged[: self.num_solved])[:, 0]
            ],
            **self.flags(),
        }

    @property
    def num_solved(self) -> int:
        return sum(1 for r in self.records if r["segment"] != "shift")


PREDICTOR_ORDER = 2  # polynomial extrapolation in log d through the last 3 solutions


def _predict(phis: list[Tensor], ds: list[float], d_new: float, con: PairConstraint) -> Tensor:
    """Extrapolate the solution to ``d_new``: a Lagrange polynomial in log d through the last
    (up to PREDICTOR_ORDER + 1) solutions; the warm start when there are too few."""
    n = min(PREDICTOR_ORDER + 1, len(phis))
    if n < 2 or d_new <= 0 or min(ds[-n:]) <= 0:
        return phis[-1]
    s = [math.log(x) for x in ds[-n:]]
    s_new = math.log(d_new)
    out = torch.zeros_like(phis[-1])
    for j in range(n):
        w = math.prod((s_new - s[i]) / (s[j] - s[i]) for i in range(n) if i != j)
        out += w * phis[len(phis) - n + j]
    return con.normalize(out)


POLISH_ROUNDS = 3
MERGE_BUDGET_FACTOR = 5


def _solve_step(
    loss: Loss,
    con: PairConstraint,
    d: float,
    phi0: Tensor,
    prev: Tensor,
    cfg: PathConfig,
    merge: bool = False,
) -> tuple[Tensor, dict]:
    """Solve one d from ``phi0`` (the prediction) or ``prev`` (the last solution) if that is
    lower."""
    obj = ConstrainedLoss(loss, con, d)
    start = phi0
    if phi0 is not prev and obj(phi0) > obj(prev):
        start = prev
    options = cfg.solver_options()
    if merge:  # d = 0 can be far from the last d > 0 (after an escape): a larger budget,
        # and no patience: the permutation point is a critical point of the smaller network
        options["max_iter"] = MERGE_BUDGET_FACTOR * options["max_iter"]
        options.pop("patience", None)
    if options["method"] in TRUST_REGION:  # rescaled, and started at the predicted move
        scaled = ScaledObjective.for_start(obj, start)
        # a local start: the predicted move, else the smallest radius. Larger starts where the
        # prediction was rejected (order 1, the last step's move, the rejected move) sent merge
        # steps on ReLU toy pairs to other basins (merged loss 1.1 instead of 0.024) and
        # softplus steps onto spikes (barrier 0.07 instead of 5e-5)
        move = float(scaled.to_psi(start - prev).norm())
        options.setdefault("radius", max(2.0 * move, 1e-8))
    else:  # the paper's gradient descent and L-BFGS-B run on phi itself
        scaled = ScaledObjective(obj, torch.ones_like(start))
    t0 = time.perf_counter()
    x = scaled.to_psi(start)
    nit = ngev = nhev = nhvp = 0
    for _ in range(POLISH_ROUNDS):  # the chart's |u| drifts: renormalise, and polish if needed
        res = minimize(scaled, x, tol=cfg.tol, **options)
        nit, ngev, nhev, nhvp = nit + res.nit, ngev + res.ngev, nhev + res.nhev, nhvp + res.nhvp
        phi = con.normalize(scaled.to_phi(res.x))
        grad_inf = float(obj.value_and_grad(phi)[1].abs().max())
        if grad_inf <= cfg.tol or not res.success:
            break
        x = scaled.to_psi(phi)
    wall = time.perf_counter() - t0
    converged = grad_inf <= cfg.tol
    message = str(res.message)
    if converged and not res.success:  # met in phi, though not in the scaled variables
        message = f"converged: grad_inf {grad_inf:.3g} <= tol {cfg.tol:.3g} ({message})"
    elif not converged:
        message += _diagnose(loss, con.embed(start, d), con.embed(phi, d))
    rec = {
        "loss": float(res.fun),
        "grad_inf": grad_inf,
        "nit": nit,
        "ngev": ngev,
        "nhev": nhev,
        "nhvp": nhvp,
        "converged": converged,
        "message": message,
        "predicted": start is phi0 and phi0 is not prev,
        "wall_time": wall,
    }
    return phi, rec


KINK_RTOL = 1e-9  # |a| <= KINK_RTOL * |vartheta| |x~|: a sample sits on a kink of g


def _diagnose(loss: Loss, before: Tensor, after: Tensor) -> str:
    """Why a step may not converge: a kink of a non-smooth g, or weights that keep growing."""
    net = loss.net
    notes = []
    if net.activation in ("relu", "leaky_relu"):
        pre, h_aug = net.activations(after, loss.X)
        on_kink = 0
        for k in net.hidden_layers:
            scale = h_aug[k - 1].norm(dim=1)[:, None] * net.block(after, k).norm(dim=1)[None, :]
            on_kink += int((pre[k - 1].abs() <= KINK_RTOL * scale).sum())
        if on_kink:
            notes.append(
                f"{on_kink} pre-activation(s) sit on a kink of {net.activation} (|a| <= "
                f"{KINK_RTOL:g} |vartheta||x|): the loss is not differentiable there, so "
                "grad_inf may not fall below the jump of the gradient"
            )
    grew = float(after.abs().max()) / max(float(before.abs().max()), 1e-300)
    if grew > 1.01 and loss(after) < loss(before):
        notes.append(
            f"the largest weight grew {grew:.4g}x during the step while the loss fell: "
            "possibly a channel to infinity (no finite minimizer at this d)"
        )
    return "".join(f"; {n}" for n in notes)


def find_path(
    loss: Loss,
    theta: Tensor,
    layer: int,
    pair: tuple[int, int],
    steps: int = 200,
    ratio: float = 1e-4,
    distance: str = "incoming",
    solver: str = "auto",
    tol: float = 1e-12,
    *,
    gauge: bool = False,
    max_iter: int | None = None,
    patience: int | None = None,
    lr: float | None = None,
    predictor: bool = True,
    shift_points: int = 10,
    thresholds: diag.Thresholds | None = None,
    out: str | FsPath | None = None,
    progress: bool = False,
) -> Path:
    """Compute the permutation path of Sec. 4.1 from the minimum ``theta``.

    ``solver="paper-gd"`` is the paper's full-batch gradient descent with a fixed step and a
    budget (``PAPER_GD``); the default ``"auto"`` is trust-region Newton on the exact Hessian
    for small networks and Newton-CG otherwise, with a secant predictor between steps. With
    ``out`` the path is written to that folder as it goes and resumed from it.

    ``max_iter`` is the per-step budget; ``patience`` (trust-region solvers, default off) ends
    a step after that many accepted iterations that did not halve grad_inf, as a walk along a
    channel or around a ReLU kink does (SPEC section 4): such a step never converges, and the
    walk continues from its end at the next d. Off, each such step walks to ``max_iter``, which
    follows a channel of the pair further (its 1/d law) at 1.3-1.8 times the cost on the toy's
    slow paths. The merge step (d = 0) always runs without it.
    """
    net = loss.net
    net.check_theta(theta)
    cfg = PathConfig(
        layer=layer,
        pair=(int(pair[0]), int(pair[1])),
        steps=steps,
        ratio=ratio,
        distance=distance,
        gauge=gauge,
        solver=solver,
        tol=tol,
        max_iter=max_iter,
        patience=patience,
        lr=lr,
        predictor=predictor,
        shift_points=shift_points,
        thresholds=thresholds or diag.Thresholds(),
    )
    cfg.validate()
    con = PairConstraint(net, layer, cfg.pair, distance, gauge)
    start = unit_gauge(net, theta, layer, cfg.pair) if gauge else theta.clone()
    d0 = con.measure(start)
    if d0 == 0.0:
        raise ValueError(f"neurons {cfg.pair} of layer {layer} already coincide (d = 0)")
    schedule = cfg.schedule(d0)
    ckpt = None
    if out is not None:
        ckpt = Checkpoint(out, {"path": cfg.as_dict(), "problem": problem_fingerprint(loss, theta)})
    records: list[dict] = []
    thetas: list[Tensor] = []
    phis: list[Tensor] = [con.chart(start)]
    ds: list[float] = [d0]
    bar = tqdm(total=len(schedule), disable=not progress, desc=f"path {cfg.pair}", leave=False)
    for i, d in enumerate(schedule):
        if ckpt is not None and i in ckpt:
            rec, tens = ckpt.load_step(i)
            phi = tens["phi"]
        else:
            phi0 = _predict(phis, ds, d, con) if (cfg.predictor and i > 1) else phis[-1]
            phi, rec = _solve_step(loss, con, d, phi0, phis[-1], cfg, merge=d == 0.0)
            th = con.embed(phi, d)
            rec.update(
                index=i,
                segment="merge" if d == 0.0 else "descent",
                d=d,
                t=0.25 * i / (len(schedule) - 1),
                **diag.step_diagnostics(net, th, start, layer, cfg.pair, cfg.thresholds),
            )
            if ckpt is not None:
                ckpt.save_step(i, rec, {"phi": phi, "theta": th})
        records.append(rec)
        thetas.append(con.embed(phi, d))
        if i > 0:
            phis.append(phi)
            ds.append(d)
        else:
            phis[0] = phi
        bar.update(1)
    bar.close()
    _append_output_shift(loss, con, thetas, records, start, cfg)
    path = Path(loss, theta, cfg, records, torch.stack(thetas))
    if ckpt is not None:
        _write_results(ckpt, path)
    return path


def _append_output_shift(
    loss: Loss,
    con: PairConstraint,
    thetas: list[Tensor],
    records: list[dict],
    start: Tensor,
    cfg: PathConfig,
) -> None:
    """t = 1/4 .. 1/2: move the merged pair's output weights linearly to their mean (Fig. 4)."""
    net, layer = loss.net, cfg.layer
    l, m = cfg.pair
    base = thetas[-1]
    o_l, o_m = net.output_index(layer, l), net.output_index(layer, m)
    mean = 0.5 * (base[o_l] + base[o_m])
    merged = records[-1]
    J = cfg.shift_points
    for j in range(1, J + 1):
        s = j / J
        th = base.clone()
        th[o_l] = (1 - s) * base[o_l] + s * mean
        th[o_m] = (1 - s) * base[o_m] + s * mean
        value, g = loss.value_and_grad(th)
        rec = {
            "index": len(records),
            "segment": "shift",
            "d": 0.0,
            "t": 0.25 + 0.25 * s,
            "loss": value,
            "grad_inf": float(g.abs().max()),
            "nit": 0,
            "ngev": 1,
            "nhev": 0,
            "nhvp": 0,
            "converged": merged["converged"],
            "message": "output-weight shift (constant loss)",
            "predicted": False,
            "wall_time": 0.0,
            **diag.step_diagnostics(net, th, start, layer, cfg.pair, cfg.thresholds),
        }
        records.append(rec)
        thetas.append(th)


def _write_results(ckpt: Checkpoint, path: Path) -> None:
    """steps.csv, thetas.pt and summary.json next to the per-step checkpoint."""
    atomic_write_csv(ckpt.directory / "steps.csv", path.table())
    atomic_save_tensors(ckpt.directory / "thetas.pt", {"thetas": path.thetas, "t": path.t})
    ckpt.finalize(path.summary())
