"""The permutation path next to the mode-connectivity baselines between the same partner minima
theta* and sigma_{l<->m}(theta*) (docs/theory.md sections 4 and 9; ``weightsym compare``).

Path types (:data:`PATH_TYPES`): the permutation path (paper Sec. 4.1, a preset variant), the
straight line, the quadratic Bezier curve and the polygonal chain with one trained bend, and the
nudged elastic band with a climbing image, refined with the exact Hessian and certified; all
between the permutation path's own ends. Results folder: ``permutation/`` (the path's
checkpoint); ``linear/``, ``bezier/``, ``chain/``, ``neb/`` (checkpoints of one step, the
finished path, whose config holds the settings and the problem's fingerprint: a rerun reuses a
match and refuses a mismatch, naming the differing keys); ``table.csv`` and ``summary.json``
(a :class:`CompareRow` per path type, the :class:`Verdict`); ``compare.png``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, get_type_hints

import torch
from matplotlib.figure import Figure
from torch import Tensor

import weightsym.baselines as bl
from weightsym.checkpoint import Checkpoint
from weightsym.constraints import PairConstraint, unit_gauge
from weightsym.experiments.pairs import DEFAULT_VARIANT
from weightsym.experiments.toy import TOY_PATH
from weightsym.io import atomic_write_csv, atomic_write_json, metadata
from weightsym.jsonable import to_jsonable
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.optimize import OptimizeResult
from weightsym.paths import PRESETS, TRUST_REGION, PathConfig, PermutationPath, find_path
from weightsym.paths.find import problem_fingerprint
from weightsym.plots import save_figure
from weightsym.results_folder import open_results_folder
from weightsym.symmetry import swap

BASELINES = ("linear", "bezier", "chain", "neb")
PATH_TYPES = ("permutation", *BASELINES)
TIME_COLUMNS = ("wall_time", "refine_time")  # differ between runs; everything else must not


@dataclass(frozen=True)
class CompareConfig:
    """The settings of one comparison.

    Attributes:
        layer, pair: the hidden layer k and the neurons (l, m) whose swap gives the partner.
        variant: the permutation path's preset (:data:`weightsym.paths.PRESETS`).
        images: the band's images, endpoints included.
        points: points at which the line and the trained curves are evaluated.
        seed: seed of the trained curves' initial bend.
        bend_iter: L-BFGS iterations at most for a curve's bend.
        band_iter: L-BFGS iterations at most for the band.
        path: the permutation path's other settings (steps, solver, tolerance ...; default:
            the toy's, :data:`weightsym.experiments.toy.TOY_PATH`).
    """

    layer: int = 1
    pair: tuple[int, int] = (0, 1)
    variant: str = DEFAULT_VARIANT
    images: int = bl.neb.DEFAULT_IMAGES
    points: int = bl.linear.DEFAULT_POINTS
    seed: int = 0
    bend_iter: int = bl.bezier.DEFAULT_MAX_ITER
    band_iter: int = bl.neb.DEFAULT_MAX_ITER
    path: PathConfig = TOY_PATH

    def path_config(self) -> PathConfig:
        """The permutation path's settings (patience only where the solver has it)."""
        preset = PRESETS[self.variant]
        cfg = self.path.replace(layer=self.layer, pair=self.pair, **preset)
        return cfg if cfg.solver in TRUST_REGION else cfg.replace(patience=None)

    def settings(self, kind: str) -> dict[str, Any]:
        """The keyword arguments of the baseline ``kind``'s builder (stored with its result)."""
        if kind == "linear":
            return {"points": self.points}
        if kind in bl.bezier.CURVES:
            return {
                "kind": kind, "bends": 1, "seed": self.seed, "points": self.points,
                "nodes": bl.bezier.DEFAULT_NODES, "tol": bl.bezier.DEFAULT_TOL,
                "max_iter": self.bend_iter,
            }  # fmt: skip
        return {"images": self.images, "climbing": True, "max_iter": self.band_iter, "refine": True}

    def validate(self, loss: Loss) -> None:
        """Raise ValueError or TypeError naming the first setting that does not fit ``loss``."""
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be a weightsym.Loss; got {type(loss).__name__}")
        if self.variant not in PRESETS:
            raise ValueError(f"unknown variant {self.variant!r}; expected one of {tuple(PRESETS)}")
        counts = (("images", 3), ("points", 2), ("seed", 0), ("bend_iter", 0), ("band_iter", 0))
        for name, low in counts:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
        cfg = self.path_config()
        cfg.validate()
        PairConstraint(loss.net, cfg.layer, cfg.pair, cfg.distance, cfg.gauge)  # layer, pair, g

    def as_dict(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return fields | {"pair": list(self.pair), "path": self.path.as_dict()}


@dataclass(frozen=True)
class CompareRow:
    """One path type in ``table.csv``: ``barriers``, its :class:`weightsym.baselines.BarrierReport`
    (``position``: the top's normalised arc length); ``length``, the Euclidean length;
    ``saddle_*``, the certificate (permutation path: at x_pp; NEB: at the refined climbing
    image; else None), ``saddle_certified`` if grad_inf is within tolerance there and the index
    1; ``top_to_pp`` = |x_top - x_pp|, ``top_to_pp_barrier`` the distance of x_top from the
    permutation path's barrier point or its mirror, ``saddle_to_pp`` = |x_saddle - x_pp| (all
    between :func:`canonical` representatives: modulo rescaling for a homogeneous g);
    iterations, gradient evaluations, seconds to tolerance (or budget) and NEB's refinement's.
    """

    path: str
    barriers: bl.BarrierReport
    length: float
    converged: bool
    saddle_loss: float | None
    saddle_grad_inf: float | None
    saddle_index: int | None
    saddle_zero: int | None
    saddle_certified: bool | None
    top_to_pp: float
    top_to_pp_barrier: float
    saddle_to_pp: float | None
    nit: int
    ngev: int
    wall_time: float
    refine_time: float
    message: str

    @classmethod
    def columns(cls) -> list[str]:
        """The CSV columns: ``path``, the barrier report's fields (its ``index`` aside), the
        rest of the row."""
        names = [f.name for f in dataclasses.fields(cls)]
        i = names.index("barriers")
        return names[:i] + list(REPORT_COLUMNS) + names[i + 1 :]

    def as_row(self) -> dict[str, Any]:
        """A flat row in the order of :meth:`columns`."""
        report = self.barriers._asdict()
        return {c: report[c] if c in REPORT_COLUMNS else getattr(self, c) for c in self.columns()}


REPORT_COLUMNS = tuple(f for f in bl.BarrierReport._fields if f != "index")
"""The fields of :class:`weightsym.baselines.BarrierReport` written to ``table.csv``."""


class Verdict(NamedTuple):
    """Which path type has the lowest ``max`` barrier (among all; among the converged, None if
    none converged), and NEB's refined saddle: its loss, index, certificate, loss minus the
    loss at the permutation point (negative: NEB found a lower saddle) and distance from it."""

    lowest: str
    lowest_converged: str | None
    permutation_point_loss: float
    neb_saddle_loss: float | None
    neb_saddle_index: int | None
    neb_saddle_certified: bool
    neb_saddle_minus_pp: float | None
    neb_saddle_to_pp: float | None


class CompareResult(NamedTuple):
    """What :func:`run_compare` returns: the rows, the verdict and the figure's path."""

    rows: list[CompareRow]
    verdict: Verdict
    figure: Path


def canonical(net: MLP, x: Tensor) -> Tensor:
    """``x`` with, for a positively homogeneous g, every hidden neuron's vartheta on the unit
    sphere (:func:`weightsym.constraints.unit_gauge`, layer after layer), so that distances do
    not count the rescaling symmetry (docs/theory.md section 5); for other g, ``x`` itself."""
    for k in range(1, net.depth) if net.act.positively_homogeneous else ():
        x = unit_gauge(net, x, k, tuple(range(net.widths[k])))
    return x


def _distance(net: MLP, x: Tensor, anchors: list[Tensor]) -> float:
    return min(float(torch.linalg.vector_norm(canonical(net, x) - a)) for a in anchors)


def _row(net: MLP, name: str, path: Any, anchors: list[Tensor], cert: bl.SaddleCertificate | None,
         saddle_x: Tensor | None, **fields: Any) -> CompareRow:  # fmt: skip
    """The row of ``path``: its barriers, and its distances from x_pp = ``anchors[0]`` and from
    the permutation path's barrier point or its mirror (``anchors[1:]``, all canonical)."""
    rep = bl.barrier_report(path)
    _, thetas, _ = path.full()
    return CompareRow(
        path=name, barriers=rep,
        length=float(torch.linalg.vector_norm(thetas[1:] - thetas[:-1], dim=1).sum()),
        saddle_grad_inf=None if cert is None else cert.grad_inf,
        saddle_index=None if cert is None else cert.negative,
        saddle_zero=None if cert is None else cert.zero,
        top_to_pp=_distance(net, thetas[rep.index], anchors[:1]),
        top_to_pp_barrier=_distance(net, thetas[rep.index], anchors[1:]),
        saddle_to_pp=None if saddle_x is None else _distance(net, saddle_x, anchors[:1]),
        **fields,
    )  # fmt: skip


def permutation_row(loss: Loss, path: PermutationPath, anchors: list[Tensor]) -> CompareRow:
    """The permutation path, with the certificate at its permutation point x_pp."""
    s, pp = path.summary(), path.thetas[-1]
    cert = bl.certify(loss, pp)
    risen = [k.removeprefix("flag_") for k, v in s.flags.items() if v]
    message = (
        f"{len(s.not_converged_steps)} of {path.num_solved} steps not converged; barrier "
        f"{'at' if s.barrier.at_point else 'not at'} the permutation point; escape flags: "
        f"{', '.join(risen) or 'none'}"
    )
    solved = path.records[: path.num_solved]
    return _row(
        loss.net, "permutation", path, anchors, cert, pp, converged=s.all_converged,
        saddle_loss=path.permutation_point_loss,
        saddle_certified=cert.negative == 1 and cert.grad_inf <= path.config.tol,
        nit=sum(r.nit for r in solved), ngev=sum(r.ngev for r in solved),
        wall_time=sum(r.wall_time for r in solved), refine_time=0.0, message=message,
    )  # fmt: skip


def curve_row(net: MLP, curve: bl.CurvePath, anchors: list[Tensor]) -> CompareRow:
    """A baseline path; for the band, the certificate at its refined climbing image."""
    r = curve.refined
    return _row(
        net, curve.kind, curve, anchors, curve.saddle, None if r is None else r.x,
        converged=curve.converged, saddle_loss=None if r is None else r.fun,
        saddle_certified=None if curve.saddle is None else curve.barrier.at_point,
        nit=curve.fit.nit, ngev=curve.fit.ngev, wall_time=curve.fit.wall_time,
        refine_time=0.0 if r is None else r.wall_time, message=curve.message,
    )  # fmt: skip


def verdict(rows: list[CompareRow]) -> Verdict:
    """:class:`Verdict` of the rows of every path type."""
    by = {r.path: r for r in rows}
    converged = [r for r in rows if r.converged]
    pp, band = by["permutation"].saddle_loss, by["neb"]
    return Verdict(
        min(rows, key=lambda r: r.barriers.max).path,
        min(converged, key=lambda r: r.barriers.max).path if converged else None,
        pp, band.saddle_loss, band.saddle_index, bool(band.saddle_certified),
        None if band.saddle_loss is None else band.saddle_loss - pp, band.saddle_to_pp,
    )  # fmt: skip


# -- one stored baseline ---------------------------------------------------------------------

BUILDERS = {"linear": bl.linear_path, "bezier": bl.bezier_path, "chain": bl.bezier_path}


def open_baseline(out: Path, kind: str, cfg: CompareConfig, problem: str) -> Checkpoint:
    """The folder of baseline ``kind``; refuses one made with other settings or problem."""
    ends = {"layer": cfg.layer, "pair": list(cfg.pair), "variant": cfg.variant}
    config = {"path": kind, "problem": problem, "endpoints": ends, "settings": cfg.settings(kind)}
    return Checkpoint(out / kind, config)


def _fields(record: Any, drop: str) -> dict[str, Any] | None:
    data = None if record is None else getattr(record, "_asdict", lambda: vars(record))()
    return None if data is None else {k: v for k, v in data.items() if k != drop}


def save_curve(ckpt: Checkpoint, curve: bl.CurvePath) -> None:
    """Store ``curve`` as step 0 of ``ckpt`` (JSON record and tensors, both checksummed)."""
    record = {
        "kind": curve.kind, "converged": curve.converged, "message": curve.message,
        "climbing": curve.climbing, "fit": curve.fit._asdict(),
        "refined": _fields(curve.refined, "x"),
        "saddle": _fields(curve.saddle, "eigenvalues_lowest"),
    }  # fmt: skip
    tensors = {"t": curve.t, "loss": curve.loss, "grad_inf": curve.grad_inf, "thetas": curve.thetas}
    optional = {"bends": curve.bends, "refined_x": curve.refined and curve.refined.x}
    optional["eigenvalues_lowest"] = curve.saddle and curve.saddle.eigenvalues_lowest
    tensors |= {k: v for k, v in optional.items() if v is not None}
    ckpt.save_step(0, to_jsonable(record, nonfinite="string"), tensors)


def _revive(cls: type, data: Mapping[str, Any], **extra: Any) -> Any:
    """``cls`` from stored fields, the float fields back from JSON's "NaN" / "Infinity"."""
    hints = get_type_hints(cls)
    return cls(**{k: float(v) if hints[k] is float else v for k, v in data.items()}, **extra)


def load_curve(ckpt: Checkpoint) -> bl.CurvePath:
    """The path :func:`save_curve` stored (checksums verified)."""
    rec, ten = ckpt.load_step(0)
    refined = rec["refined"] and _revive(OptimizeResult, rec["refined"], x=ten["refined_x"])
    saddle = rec["saddle"] and _revive(
        bl.SaddleCertificate, rec["saddle"], eigenvalues_lowest=ten["eigenvalues_lowest"]
    )
    return bl.CurvePath(
        rec["kind"], ten["t"], ten["loss"], ten["grad_inf"], ten["thetas"], rec["converged"],
        rec["message"], _revive(bl.Fit, rec["fit"]), ten.get("bends"), rec["climbing"],
        refined or None, saddle or None,
    )  # fmt: skip


def baseline(loss: Loss, x_a: Tensor, x_b: Tensor, kind: str, cfg: CompareConfig,
             ckpt: Checkpoint) -> bl.CurvePath:  # fmt: skip
    """Baseline ``kind`` between ``x_a`` and ``x_b``: the stored one, else computed and stored."""
    if 0 in ckpt:
        return load_curve(ckpt)
    curve = BUILDERS.get(kind, bl.neb_path)(loss, x_a, x_b, **cfg.settings(kind))
    save_curve(ckpt, curve)
    return curve


# -- the comparison --------------------------------------------------------------------------


def run_compare(
    loss: Loss,
    theta: Tensor,
    cfg: CompareConfig,
    out: str | Path,
    *,
    progress: bool = False,
    about: Mapping[str, Any] | None = None,
) -> CompareResult:
    """Every path type between theta* and sigma_{l<->m}(theta*), resumed where stored.

    Args:
        loss, theta: the objective (:class:`weightsym.Loss`) and theta*, a minimum of it.
        cfg: the settings; out: the results folder (see the module docstring).
        progress: the permutation path's progress bar and a line per path type, on stderr.
        about: what the problem is (the toy's activation, file names), for ``summary.json``.

    Returns:
        A :class:`CompareResult`: a :class:`CompareRow` per path type, the :class:`Verdict`
        and the figure's path.

    Raises:
        ValueError, TypeError: a bad setting, layer or pair (before any folder is made); a
            stored result made with other settings (the differing keys are named).
        weightsym.io.ResultsFolderError: a foreign folder, one in use, or one not writable.
    """
    cfg.validate(loss)
    with open_results_folder(out) as folder, contextlib.ExitStack() as stack:
        out, problem = folder.path, problem_fingerprint(loss, theta)
        ckpts = {k: stack.enter_context(open_baseline(out, k, cfg, problem)) for k in BASELINES}
        perm = find_path(loss, theta, cfg.path_config(), out=out / "permutation", progress=progress)
        _, thetas, _ = perm.full()
        b = thetas[perm.barrier.index]
        ends = (perm.thetas[-1], b, swap(loss.net, b, cfg.layer, *cfg.pair))
        anchors = [canonical(loss.net, a) for a in ends]
        rows, curves = [permutation_row(loss, perm, anchors)], [perm]
        for kind in BASELINES:
            curves.append(baseline(loss, thetas[0], thetas[-1], kind, cfg, ckpts[kind]))
            rows.append(curve_row(loss.net, curves[-1], anchors))
            if progress:
                print(f"compare: {kind} done", file=sys.stderr, flush=True)
        answer = verdict(rows)
        write_compare(out, cfg, rows, answer, about)
        figure = compare_figure(dict(zip(PATH_TYPES, curves)), out, loss, cfg)
        return CompareResult(rows, answer, figure)


def write_compare(out: Path, cfg: CompareConfig, rows: list[CompareRow], answer: Verdict,
                  about: Mapping[str, Any] | None) -> None:  # fmt: skip
    """table.csv (one row per path type) and summary.json (config, problem, rows, verdict)."""
    table = [r.as_row() for r in rows]
    atomic_write_csv(out / "table.csv", table, columns=CompareRow.columns())
    body = {"config": cfg.as_dict(), "problem": dict(about or {}), "meta": metadata()}
    body |= {"rows": table, "verdict": answer._asdict()}
    atomic_write_json(out / "summary.json", body, nonfinite="string")


def compare_figure(paths: Mapping[str, Any], out: Path, loss: Loss, cfg: CompareConfig) -> Path:
    """``compare.png``: the loss against normalised arc length, one curve per path type, log
    axis from half the lowest positive loss between the ends (ends of loss ~0 fall below)."""
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    for name, path in paths.items():
        _, thetas, losses = path.full()
        s, keep = bl.arc_length(thetas), losses > 0
        ax.plot(s[keep], losses[keep], ".-", ms=2.5, lw=1, label=name)
    inner = torch.cat([path.full()[2][1:-1] for path in paths.values()])
    bottom = 0.5 * float(inner[inner > 0].min()) if bool((inner > 0).any()) else None
    ax.set(yscale="log", ylim=(bottom, None), xlabel="normalised arc length", ylabel="loss")
    ax.legend(fontsize=8)
    where = f"layer {cfg.layer}, pair ({cfg.pair[0]}, {cfg.pair[1]}), {cfg.variant} variant"
    ax.set_title(f"{loss.net}, {where}, {loss.kind}", fontsize=9)
    return save_figure(fig, out / "compare.png")
