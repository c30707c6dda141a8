"""The paper's toy experiment (Fig. 2, with Figs. 4 and 5): every pair of a 2-5-1 teacher.

Setup (paper Sec. 4.1 and the caption of Fig. 2; docs/theory.md section 7): teacher
2 -> 5 -> 1 with a linear output, T = 1000 inputs from N(0, I_2), targets from the teacher; the
student starts at the teacher and every pair (l, m) of layer 1 is merged in 200 log-spaced steps
to 1e-4 d_0, for each path variant (the presets of :class:`weightsym.paths.PathConfig`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from weightsym import activations as acts
from weightsym.certify import certify_path
from weightsym.curvature import saddle_index
from weightsym.data import gaussian_inputs
from weightsym.experiments.rows import FlagRow
from weightsym.experiments.runner import StepFiles, Task, run_sweep
from weightsym.io import atomic_write_csv, atomic_write_json, metadata
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.paths import PRESETS, TRUST_REGION, PathConfig, find_path
from weightsym.results_folder import open_results_folder

ACTIVATIONS = ("relu", "softplus")
TOY_LAYER = 1
TOY_PATH = PathConfig(layer=TOY_LAYER, max_iter=40, patience=10, sweep_back=True)
"""The toy's path settings: the library defaults, with a per-step budget of 40 trust-region
iterations and a patience of 10 (docs/theory.md section 6), and the backward sweep, which on
the toy lowered 23 of the 50 barriers, raised none and certified 33 paths against 29 without it
(docs/certification.md section 5)."""


@dataclass(frozen=True)
class ToyConfig:
    """The toy sweep: which teachers, variants and pairs, and the path settings they share.

    ``path`` is the template of every path (its ``pair`` and preset fields are set per job);
    ``pairs=None`` means all pairs of layer 1. With ``certify`` every path is computed twice
    more, with a doubled budget (and a tighter tolerance) and with other rounding
    (:func:`weightsym.certify.certify_path`).
    """

    activations: Sequence[str] = ACTIVATIONS
    variants: Sequence[str] = ("paper", "joint", "gauge")
    pairs: Sequence[tuple[int, int]] | None = None
    samples: int = 1000
    width: int = 5
    seed: int = 0
    path: PathConfig = TOY_PATH
    certify: bool = False
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))

    def all_pairs(self) -> list[tuple[int, int]]:
        """The pairs to merge, in order, duplicates removed."""
        if self.pairs is not None:
            return list(dict.fromkeys((int(a), int(b)) for a, b in self.pairs))
        return list(itertools.combinations(range(self.width), 2))

    def jobs(self) -> list[tuple[str, str, tuple[int, int]]]:
        """(activation, variant, pair) for every path; ``gauge`` only for homogeneous g."""
        out = []
        for act in self.activations:
            for var in self.variants:
                if var == "gauge" and not acts.get(act).positively_homogeneous:
                    continue
                out.extend((act, var, p) for p in self.all_pairs())
        return out

    def path_config(self, variant: str, pair: tuple[int, int]) -> PathConfig:
        """The settings of one path (patience only where the solver has it)."""
        cfg = self.path.variant(variant, pair=pair)
        return cfg if cfg.solver in TRUST_REGION else cfg.replace(patience=None)

    def validate(self) -> None:
        """Raise ValueError naming the first setting that is out of range."""
        for a in self.activations:
            acts.get(a)
        for v in self.variants:
            if v not in PRESETS:
                raise ValueError(f"unknown variant {v!r}; expected one of {tuple(PRESETS)}")
        for a, b in self.all_pairs():
            if not (0 <= a < self.width and 0 <= b < self.width) or a == b:
                raise ValueError(
                    f"pairs must name two different neurons in 0..{self.width - 1}; got {(a, b)}"
                )
        if not self.jobs():
            raise ValueError(
                f"no path to compute: variants {list(self.variants)} with activations "
                f"{list(self.activations)} (gauge needs a positively homogeneous activation)"
            )
        self.path_config(self.variants[0], self.all_pairs()[0]).validate()

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return out | {
            "activations": list(self.activations),
            "variants": list(self.variants),
            "pairs": [list(p) for p in self.all_pairs()],
            "path": self.path.as_dict(),
        }


def toy_teacher(activation: str, width: int = 5, seed: int = 0) -> tuple[MLP, torch.Tensor]:
    """The seeded 2 -> width -> 1 teacher (the paper gives none; docs/theory.md section 7).

    Neuron i's input weights point at angle 2 pi i / width plus a seeded jitter in
    [-0.3, 0.3], with norms in [0.8, 1.6]; biases have |b| in [0.3, 1.0] with random signs (so
    the dual coordinates W_i / b_i of Fig. 2 stay finite); output weights have |w| in
    [0.5, 1.5] with random signs; the output bias is 0. The same weights serve every g.
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(lo: float, hi: float, n: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)

    def signs(n: int) -> torch.Tensor:
        return torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double()

    angles = 2 * math.pi * torch.arange(width, dtype=torch.float64) / width
    angles = angles + uniform(-0.3, 0.3, width)
    norms = uniform(0.8, 1.6, width)
    W1 = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1) * norms[:, None]
    b1 = signs(width) * uniform(0.3, 1.0, width)
    W2 = (signs(width) * uniform(0.5, 1.5, width))[None, :]
    b2 = torch.zeros(1, dtype=torch.float64)
    net = MLP([2, width, 1], activation)
    return net, net.flatten([(W1, b1), (W2, b2)])


def toy_problem(activation: str, cfg: ToyConfig) -> tuple[Loss, torch.Tensor]:
    """The mse loss of the student against the teacher on T = ``cfg.samples`` Gaussian inputs."""
    net, theta = toy_teacher(activation, cfg.width, cfg.seed)
    X = gaussian_inputs(cfg.samples, 2, cfg.seed)
    return Loss(net, X, net.forward(theta, X), kind="mse"), theta


@dataclass(frozen=True)
class ToyRow(FlagRow):
    """One row of the toy's ``summary.csv``: one path and its permutation point."""

    activation: str
    variant: str
    pair: str
    barrier: float
    barrier_t: float
    barrier_at_permutation_point: bool
    barrier_converged: bool
    loss_permutation_point: float
    loss_min_on_path: float
    flags: dict[str, bool]
    all_converged: bool
    not_converged: int
    worst_grad_inf: float
    grad_inf_permutation_point: float
    saddle_negative: int
    saddle_zero: int
    saddle_positive: int
    certified: bool | None  # None: not certified because not asked (--certify)
    certify_reason: str
    certify_spread: float | None  # largest relative difference of the three runs' losses
    channel: str  # "pair": |w_m - w_l| ~ kappa / d (docs/theory.md section 5.4), else "none"
    channel_limit: float | None  # the loss the pair channel tends to (None: no channel)
    channel_limit_converged: bool | None
    partner_channel: str | None  # "p~j": descent steps sit on a channel of j onto p (None: none)
    partner_steps: int  # how many
    partner_limit_index: int | None  # the step whose limit was taken (the barrier's if on it)
    partner_limit: float | None  # the loss that step tends to along the channel
    partner_limit_converged: bool | None
    wall_time: float
    folder: str


def path_folder(out: Path, act: str, var: str, pair: tuple[int, int]) -> Path:
    """The results folder of one toy path."""
    return out / "paths" / f"{act}-{var}-pair{pair[0]}{pair[1]}"


def run_one(cfg: ToyConfig, act: str, var: str, pair: tuple[int, int], folder: str) -> ToyRow:
    """Compute (or resume) one path and measure its permutation point's saddle index."""
    loss, theta = toy_problem(act, cfg)
    t0 = time.perf_counter()
    config = cfg.path_config(var, pair)
    certificate = None
    if cfg.certify:
        certificate = certify_path(loss, theta, config=config, out=folder, threads=1)
    path = find_path(loss, theta, config, out=folder)  # resumed: every step is on disk
    wall = time.perf_counter() - t0
    point = path.thetas[-1]
    neg, zero, pos = saddle_index(loss, point)
    s = path.summary()
    return ToyRow(
        activation=act,
        variant=var,
        pair=f"{pair[0]}-{pair[1]}",
        barrier=s.barrier.loss,
        barrier_t=s.barrier.t,
        barrier_at_permutation_point=s.barrier.at_point,
        barrier_converged=s.barrier.converged,
        loss_permutation_point=s.loss_permutation_point,
        loss_min_on_path=float(path.loss.min()),
        flags=s.flags,
        all_converged=s.all_converged,
        not_converged=len(s.not_converged_steps),
        worst_grad_inf=s.worst_grad_inf,
        grad_inf_permutation_point=float(loss.grad(point).abs().max()),
        saddle_negative=neg,
        saddle_zero=zero,
        saddle_positive=pos,
        certified=None if certificate is None else certificate.certified,
        certify_reason="" if certificate is None else certificate.reason,
        certify_spread=None if certificate is None else certificate.spread,
        **s.channel_columns(),
        **s.partner_columns(),
        wall_time=wall,
        folder=Path(folder).name,
    )


def run_toy(
    cfg: ToyConfig, out: str | Path, progress: bool = True, scheduler: str | None = None
) -> list[ToyRow]:
    """Run every path (resuming finished steps), then write summary.csv and summary.json.

    One sweep task per path (:mod:`weightsym.experiments.runner`): on a local cluster of
    ``cfg.workers`` processes, or on the running Dask ``scheduler`` named by address.
    """
    cfg.validate()
    with open_results_folder(out) as folder:  # marker and lock: docs/results-folders.md
        out = folder.path
        tasks = []
        for a, v, p in cfg.jobs():
            path = path_folder(out, a, v, p)
            tasks.append(
                Task(
                    path.name,
                    run_one,
                    (cfg, a, v, p, str(path)),
                    steps=cfg.path.checkpoint_steps,
                    count=StepFiles(path),
                )
            )
        done = run_sweep(tasks, workers=cfg.workers, scheduler=scheduler, progress=progress)
        rows = [done[t.key] for t in tasks]
        write_summary(cfg, out, rows)
        return rows


def write_summary(cfg: ToyConfig, out: Path, rows: Sequence[ToyRow]) -> None:
    """summary.csv (one row per path, fixed columns) and summary.json (config, meta, rows)."""
    table = [r.as_row() for r in rows]
    atomic_write_csv(out / "summary.csv", table, columns=ToyRow.columns())
    atomic_write_json(
        out / "summary.json", {"config": cfg.as_dict(), "meta": metadata(), "rows": table}
    )
