"""The paper's toy experiment (Fig. 2, with Figs. 4 and 5): every pair of a 2-5-1 teacher.

Setup (Sec. 4.1, Fig. 2 caption; SPEC section 5): teacher 2 -> 5 -> 1 with a linear output,
T = 1000 inputs from N(0, I_2), targets from the teacher, the student starts at the teacher and
every pair (l, m) of layer 1 is merged in 200 log-spaced steps to 1e-4 d_0. The paper gives no
teacher weights; ours (:func:`toy_teacher`) are seeded: neuron i's input weights point at angle
2 pi i / 5 plus a seeded jitter, with norms in [0.8, 1.6]; biases have |b| in [0.3, 1.0] with
random signs (so the dual coordinates W_i / b_i of Fig. 2 stay finite); output weights
have |w| in [0.5, 1.5] with random signs. The same weights serve ReLU and softplus.

Variants: ``paper`` (incoming distance, the paper's constraint), ``joint`` (input and output
vectors together) and ``gauge`` (incoming distance on the unit sphere; homogeneous g only).
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path as FsPath

import torch
from tqdm.auto import tqdm

from weightsym.curvature import saddle_index
from weightsym.data import gaussian_inputs
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.paths import TRUST_REGION, find_path
from weightsym.store import atomic_write_csv, atomic_write_json, metadata

VARIANTS = {
    "paper": {"distance": "incoming", "gauge": False},
    "joint": {"distance": "joint", "gauge": False},
    "gauge": {"distance": "incoming", "gauge": True},
}
ACTIVATIONS = ("relu", "softplus")


@dataclass
class ToyConfig:
    activations: Sequence[str] = ACTIVATIONS
    variants: Sequence[str] = ("paper", "joint", "gauge")
    pairs: Sequence[tuple[int, int]] | None = None  # None: all 10 pairs of layer 1
    steps: int = 200
    ratio: float = 1e-4
    samples: int = 1000
    width: int = 5
    seed: int = 0
    solver: str = "auto"
    tol: float = 1e-12
    max_iter: int | None = 40  # per path step; None: the solver's own step budget
    patience: int | None = 10  # trust-region solvers: see find_path; None: off
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))

    def all_pairs(self) -> list[tuple[int, int]]:
        if self.pairs is not None:
            return [(int(a), int(b)) for a, b in self.pairs]
        return list(itertools.combinations(range(self.width), 2))

    def jobs(self) -> list[tuple[str, str, tuple[int, int]]]:
        """(activation, variant, pair) for every path; ``gauge`` only for homogeneous g."""
        out = []
        for act in self.activations:
            for var in self.variants:
                if var == "gauge" and not MLP([1, 1, 1], act).act.positively_homogeneous:
                    continue
                out.extend((act, var, p) for p in self.all_pairs())
        return out

    def validate(self) -> None:
        for a in self.activations:
            MLP([1, 1, 1], a)  # raises on an unknown activation
        for v in self.variants:
            if v not in VARIANTS:
                raise ValueError(f"unknown variant {v!r}; expected one of {tuple(VARIANTS)}")
        for a, b in self.all_pairs():
            if not (0 <= a < self.width and 0 <= b < self.width) or a == b:
                raise ValueError(
                    f"pairs must name two different neurons in 0..{self.width - 1}; got {(a, b)}"
                )


def toy_teacher(activation: str, width: int = 5, seed: int = 0) -> tuple[MLP, torch.Tensor]:
    """The seeded 2 -> width -> 1 teacher described in the module docstring."""
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
    net, theta = toy_teacher(activation, cfg.width, cfg.seed)
    X = gaussian_inputs(cfg.samples, 2, cfg.seed)
    return Loss(net, X, net.forward(theta, X), kind="mse"), theta


def _run_one(args: tuple[ToyConfig, str, str, tuple[int, int], str]) -> dict:
    cfg, act, var, pair, folder = args
    torch.set_num_threads(1)
    loss, theta = toy_problem(act, cfg)
    t0 = time.perf_counter()
    path = find_path(
        loss,
        theta,
        1,
        pair,
        steps=cfg.steps,
        ratio=cfg.ratio,
        solver=cfg.solver,
        tol=cfg.tol,
        max_iter=cfg.max_iter,
        patience=cfg.patience if cfg.solver in TRUST_REGION else None,
        out=folder,
        **VARIANTS[var],
    )
    wall = time.perf_counter() - t0
    point = path.thetas[-1]
    neg, zero, pos = saddle_index(loss, point)
    s = path.summary()
    return {
        "activation": act,
        "variant": var,
        "pair": f"{pair[0]}-{pair[1]}",
        "barrier": s["barrier"],
        "barrier_t": s["barrier_t"],
        "barrier_at_permutation_point": s["barrier_at_permutation_point"],
        "barrier_converged": s["barrier_converged"],
        "loss_permutation_point": s["loss_permutation_point"],
        "loss_min_on_path": float(path.loss.min()),
        "flag_channel": s["flag_channel"],
        "flag_rescaling": s["flag_rescaling"],
        "flag_elsewhere": s["flag_elsewhere"],
        "all_converged": s["all_converged"],
        "not_converged": len(s["not_converged_steps"]),
        "worst_grad_inf": s["worst_grad_inf"],
        "grad_inf_permutation_point": float(loss.grad(point).abs().max()),
        "saddle_negative": neg,
        "saddle_zero": zero,
        "saddle_positive": pos,
        "wall_time": wall,
        "folder": str(FsPath(folder).name),
    }


def path_folder(out: FsPath, act: str, var: str, pair: tuple[int, int]) -> FsPath:
    return out / "paths" / f"{act}-{var}-pair{pair[0]}{pair[1]}"


def run_toy(cfg: ToyConfig, out: str | FsPath, progress: bool = True) -> list[dict]:
    """Run every path (resuming finished steps), then write summary.csv and summary.json."""
    cfg.validate()
    out = FsPath(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(cfg, a, v, p, str(path_folder(out, a, v, p))) for a, v, p in cfg.jobs()]
    bar = tqdm(total=len(jobs), desc="toy paths", disable=not progress)
    rows: list[dict] = []
    if cfg.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(cfg.workers) as pool:
            for row in pool.map(_run_one, jobs):
                rows.append(row)
                bar.update(1)
    else:
        for job in jobs:
            rows.append(_run_one(job))
            bar.update(1)
    bar.close()
    atomic_write_csv(out / "summary.csv", rows)
    config = asdict(cfg) | {"pairs": [list(p) for p in cfg.all_pairs()]}
    atomic_write_json(out / "summary.json", {"config": config, "meta": metadata(), "rows": rows})
    return rows
