"""The paper's MNIST student-teacher experiment (Sec. 5, Fig. 3), as a resumable sweep.

Setup (Sec. 5, Fig. 3 caption; SPEC section 5): teachers 784 -> H -> H -> 10 trained on MNIST
with the nll (:mod:`weightsym.teachers`), H in {10, 15, 20, 25}, 6 seeds each. The student
starts at the teacher; in hidden layer k = 2 the pair (l, m) whose parameter vectors have the
highest cosine similarity is merged (:func:`weightsym.symmetry.most_similar_pair`) in 100
log-spaced steps to 1e-4 d_0 (:func:`weightsym.paths.find_path`). The loss is the paper's
normalized mean squared error between teacher and student logits,
L = mean_{mu,i} (y_mu,i - f_i(x_mu))^2 / mean_{mu,i} y_mu,i^2 (``nmse``), and at every step
we record the training accuracy of the student (argmax of its logits against the labels),
Fig. 3 B. The teacher is a global minimum of this loss (L = 0), so every path starts at one.

Variants (the same teachers for all): ``paper`` (the paper's constraint, incoming distance
|vartheta_m - vartheta_l|) and ``joint`` (the well-posed one, SPEC section 4: input and output
vectors together, which ends on the permutation point itself); ``gauge`` for positively
homogeneous activations only. ``loss="nll"`` replaces the teacher's logits by the task loss on
the labels (the paper's closing suggestion: paths between minima that are not teacher copies);
a trained network is then not an exact critical point, and on separable data the nll has no
finite minimizer, which the path's convergence flags report.

Solver. The Hessian of these students is very ill-conditioned (largest eigenvalue ~3.6 at the
H = 25 teacher, a continuum of tiny ones), so a step is expensive to converge. Measured on the
first steps of an H = 25 path (5,000 digits, float64, one thread, CPU time): trust-region
Newton-CG (``solver="auto"``) took 2,300 to 4,400 Hessian-vector products and 80 to 160 s per
step to grad_inf 1e-6; capping CG at 20 iterations made it slower (430 to 2,800 products); L-BFGS
took 220 to 650 gradients, 6 to 16 s per step. A path has 102 solved steps and the aim is three
minutes, about 60 gradients a step, so the default is L-BFGS with tol 1e-6 and a budget of
:data:`DEFAULT_STEP_ITER` iterations per step: most steps end on the budget and are recorded as
not converged (with their grad_inf), and the loss along the path is an upper bound on the
constrained minimum, off by ~1e-7 to 1e-6 on the first steps (measured against converged steps),
small against the barriers (~1e-4 and up). ``--solver auto --max-iter N`` and ``--tol`` select
the converged alternative.

A results folder holds ``teachers/H{H}-seed{s}.pt``, one checkpointed folder per path under
``paths/`` (resumed step by step; a path whose ``mnist.json`` exists is skipped), and the
tables :func:`run_mnist` writes: ``steps.csv`` (every step of every path, with the accuracy),
``summary.csv`` (one row per path), ``table.csv`` (per loss, variant and H: barrier mean and
spread, accuracy drop, where the barrier sits, escape flags, saddle index) and
``summary.json`` (all of it, the configuration, and the verdict on the paper's three claims).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path as FsPath

import torch
from torch import Tensor
from tqdm.auto import tqdm

from weightsym.data import load_mnist
from weightsym.experiments.toy import VARIANTS
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.paths import Path, find_path
from weightsym.store import atomic_write_csv, atomic_write_json, load_json, metadata
from weightsym.symmetry import most_similar_pair, pairwise_cosine
from weightsym.teachers import (
    DEFAULT_ACTIVATION,
    DEFAULT_MAX_ITER,
    DEFAULT_TARGET_ACCURACY,
    Teacher,
    TeacherConfig,
    accuracy,
    data_fingerprint,
    get_teacher,
)

LAYER = 2  # the paper merges a pair in the second hidden layer (Sec. 5)
LOSSES = ("nmse", "nll")
DEFAULT_SOLVER = "lbfgs"
DEFAULT_TOL = 1e-6
DEFAULT_STEP_ITER = 60
"""Path solver defaults for MNIST (see "Solver" in the module docstring)."""
MONOTONE_RTOL = 1e-6
"""A fall of the loss by at most this fraction of the barrier still counts as monotone."""
SMALL_ACCURACY_DROP = 0.02
"""Claim 3 ("accuracy drops only a little") holds when every drop is at most this (2 points)."""
RESULT_FILE = "mnist.json"
LANCZOS_STEPS = 100
RITZ_RTOL = 1e-8


@dataclass
class MnistConfig:
    """The sweep: widths x seeds x variants, and how each teacher and path is computed."""

    widths: Sequence[int] = (10, 15, 20, 25)
    seeds: Sequence[int] = (0, 1, 2, 3, 4, 5)
    variants: Sequence[str] = ("paper", "joint")
    loss: str = "nmse"
    source: str = "embedded"
    limit: int | None = None
    activation: str = DEFAULT_ACTIVATION
    target_accuracy: float = DEFAULT_TARGET_ACCURACY
    teacher_max_iter: int = DEFAULT_MAX_ITER
    steps: int = 100
    ratio: float = 1e-4
    solver: str = DEFAULT_SOLVER
    tol: float = DEFAULT_TOL
    max_iter: int | None = DEFAULT_STEP_ITER
    lanczos_steps: int = LANCZOS_STEPS
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    threads: int | None = None  # torch threads per worker; None: cores / workers

    def validate(self) -> None:
        net = MLP([1, 1, 1], self.activation)  # raises on an unknown activation
        for v in self.variants:
            if v not in VARIANTS:
                raise ValueError(f"unknown variant {v!r}; expected one of {tuple(VARIANTS)}")
            if v == "gauge" and not net.act.positively_homogeneous:
                raise ValueError(
                    f"variant 'gauge' needs a positively homogeneous activation; "
                    f"got {self.activation!r}"
                )
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        for H in self.widths:
            if isinstance(H, bool) or not isinstance(H, int) or H < 2:
                raise ValueError(f"widths must be ints >= 2 (a pair needs two); got {H!r}")
        if not self.widths or not self.seeds or not self.variants:
            raise ValueError("widths, seeds and variants must each name at least one value")
        if self.lanczos_steps < 0:
            raise ValueError(f"lanczos_steps must be >= 0; got {self.lanczos_steps!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1; got {self.workers!r}")

    def teacher_config(self, width: int, seed: int, data: str) -> TeacherConfig:
        return TeacherConfig(
            width=int(width),
            seed=int(seed),
            activation=self.activation,
            target_accuracy=self.target_accuracy,
            max_iter=self.teacher_max_iter,
            data=data,
        )

    def teachers(self) -> list[tuple[int, int]]:
        return [(int(H), int(s)) for H in self.widths for s in self.seeds]

    def jobs(self) -> list[tuple[int, int, str]]:
        """(H, seed, variant) for every path, ordered so that the widest run first."""
        out = [(H, s, v) for H, s in self.teachers() for v in self.variants]
        return sorted(out, key=lambda j: -j[0])

    def num_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // self.workers)

    def as_dict(self) -> dict:
        return asdict(self) | {
            "widths": [int(w) for w in self.widths],
            "seeds": [int(s) for s in self.seeds],
            "variants": list(self.variants),
        }


# -- the pieces of one path --------------------------------------------------------------------
def mnist_problem(teacher: Teacher, X: Tensor, y: Tensor, kind: str) -> Loss:
    """The student's loss: ``nmse`` against the teacher's logits (Fig. 3) or ``nll`` on labels."""
    if kind == "nmse":
        return Loss(teacher.net, X, teacher.net.forward(teacher.theta, X), kind="nmse")
    return Loss(teacher.net, X, y, kind="nll")


def accuracy_curve(net: MLP, thetas: Tensor, X: Tensor, y: Tensor) -> list[float]:
    """Training accuracy at every point of a path (Fig. 3 B); ``thetas`` is (N, P)."""
    return [accuracy(net, th, X, y) for th in thetas]


def rises_monotonically(losses: Sequence[float], rtol: float = MONOTONE_RTOL) -> tuple[bool, float]:
    """Whether ``losses`` never falls by more than ``rtol`` x its maximum, and its largest fall.

    Claim 1 of Fig. 3 A: "the loss increases monotonically along our constructed paths from a
    global minimum until the permutation point".
    """
    top = max(max(losses), 0.0)
    fall = max((a - b for a, b in zip(losses, losses[1:])), default=0.0)
    fall = max(fall, 0.0)
    return fall <= rtol * top, fall


def path_folder(out: FsPath, H: int, seed: int, variant: str, loss: str) -> FsPath:
    return out / "paths" / f"H{H}-seed{seed}-{variant}-{loss}"


def ritz_values(loss: Loss, theta: Tensor, steps: int, seed: int = 0) -> Tensor:
    """Ritz values of the Hessian at ``theta`` after ``steps`` Lanczos steps, ascending.

    Plain Lanczos on Hessian-vector products with full reorthogonalization, from a seeded
    random start, stopped after a fixed number of steps (not at a tolerance). By Cauchy
    interlacing the j-th lowest Ritz value is at least the j-th lowest eigenvalue, so a Ritz value
    below zero certifies a negative eigenvalue: the count of negative Ritz values is a lower
    bound on the saddle index that holds however early Lanczos stops. (ARPACK at a tolerance,
    :func:`weightsym.curvature.saddle_index`, did not finish k = 10 in 10 minutes at H = 25,
    P = 20,535: the low end of these Hessians is a cluster around zero.)
    """
    P = int(loss.num_params)
    m = min(int(steps), P)
    gen = torch.Generator().manual_seed(seed)
    Q = torch.zeros(m + 1, P, dtype=theta.dtype)
    q = torch.randn(P, generator=gen, dtype=theta.dtype)
    Q[0] = q / q.norm()
    alpha, beta = [], []
    for j in range(m):
        w = loss.hvp(theta, Q[j])
        alpha.append(float(Q[j] @ w))
        for _ in range(2):  # full reorthogonalization, twice is enough
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        b = float(w.norm())
        if j == m - 1 or b <= 1e-14 * max(abs(a) for a in alpha):
            break
        beta.append(b)
        Q[j + 1] = w / b
    T = torch.diag(torch.tensor(alpha, dtype=theta.dtype))
    if beta:
        off = torch.tensor(beta[: len(alpha) - 1], dtype=theta.dtype)
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigvalsh(T)


def saddle_bound(ritz: Tensor, rtol: float = RITZ_RTOL) -> dict[str, float | int]:
    """Negative Ritz values (below -rtol x the largest |Ritz value|): a lower bound on the
    index; with the lowest and highest Ritz values."""
    cut = rtol * float(ritz.abs().max())
    return {
        "saddle_negative": int((ritz < -cut).sum()),
        "ritz_lowest": float(ritz[0]),
        "ritz_highest": float(ritz[-1]),
        "lanczos_steps": int(ritz.numel()),
    }


def _saddle(loss: Loss, theta: Tensor, steps: int) -> dict[str, float | int | None]:
    if steps == 0:
        return dict.fromkeys(("saddle_negative", "ritz_lowest", "ritz_highest", "lanczos_steps"))
    return saddle_bound(ritz_values(loss, theta, steps))


@dataclass(frozen=True)
class PathJob:
    """One (H, seed, variant) path of a sweep, with all it needs to run in a worker."""

    cfg: MnistConfig
    width: int
    seed: int
    variant: str
    out: str

    @property
    def folder(self) -> FsPath:
        return path_folder(FsPath(self.out), self.width, self.seed, self.variant, self.cfg.loss)

    def key(self) -> dict:
        """What the stored result must match to be reused (path-level resume)."""
        c = self.cfg
        return {
            "width": self.width,
            "seed": self.seed,
            "variant": self.variant,
            "loss": c.loss,
            "source": c.source,
            "limit": c.limit,
            "activation": c.activation,
            "target_accuracy": c.target_accuracy,
            "teacher_max_iter": c.teacher_max_iter,
            "steps": c.steps,
            "ratio": c.ratio,
            "solver": c.solver,
            "tol": c.tol,
            "max_iter": c.max_iter,
            "lanczos_steps": c.lanczos_steps,
        }


def _load_data(cfg: MnistConfig) -> tuple[Tensor, Tensor]:
    return load_mnist(cfg.source, "train", cfg.limit)


@contextlib.contextmanager
def limited_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads and one BLAS thread, then restore torch's setting.

    scipy's OpenBLAS runs the vector updates of L-BFGS-B (teachers, ``solver="lbfgs"``) and of
    ARPACK (Lanczos); on vectors of 20k entries its threads only spin, and on a busy machine we
    measured 55 to 120 ms of CPU per L-BFGS-B iteration with two OpenBLAS threads against 2 ms
    with one (n = 20,535, 2 cores). threadpoolctl (installed with mlxtend's scikit-learn) sets
    it; without it the BLAS is left alone.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - a dependency of scikit-learn, hence mlxtend
            yield
        else:
            with threadpool_limits(1, user_api="blas"):
                yield
    finally:
        torch.set_num_threads(before)


def _limited(args: tuple[Callable, int, object]) -> object:
    fn, threads, job = args
    with limited_threads(threads):
        return fn(job)


def _train_one(args: tuple[MnistConfig, int, int, str]) -> dict:
    """Train (or reuse) one teacher; returns its description for the summary."""
    cfg, H, seed, out = args
    X, y = _load_data(cfg)
    t0 = time.perf_counter()
    teacher = get_teacher(cfg.teacher_config(H, seed, data_fingerprint(X, y)), X, y, out)
    return {
        "width": H,
        "seed": seed,
        "accuracy": teacher.accuracy,
        "reached": teacher.reached,
        "nll": teacher.loss,
        "iterations": teacher.iterations,
        "wall_time": time.perf_counter() - t0,
    }


def _stored_result(job: PathJob) -> dict | None:
    file = job.folder / RESULT_FILE
    if not file.exists():
        return None
    stored = load_json(file, "MNIST path result")
    return stored if stored.get("key") == job.key() else None


def run_path(job: PathJob) -> dict:
    """Compute (or resume) one path and return {"key", "row", "steps"}; written to the folder."""
    done = _stored_result(job)
    if done is not None:
        return done
    cfg = job.cfg
    X, y = _load_data(cfg)
    tcfg = cfg.teacher_config(job.width, job.seed, data_fingerprint(X, y))
    teacher = get_teacher(tcfg, X, y, FsPath(job.out) / "teachers")
    net, theta = teacher.net, teacher.theta
    loss = mnist_problem(teacher, X, y, cfg.loss)
    pair = most_similar_pair(net, theta, LAYER)
    t0 = time.perf_counter()
    path = find_path(
        loss,
        theta,
        LAYER,
        pair,
        steps=cfg.steps,
        ratio=cfg.ratio,
        solver=cfg.solver,
        tol=cfg.tol,
        max_iter=cfg.max_iter,
        out=job.folder,
        **VARIANTS[job.variant],
    )
    path_time = time.perf_counter() - t0
    acc = accuracy_curve(net, path.thetas, X, y)
    t1 = time.perf_counter()
    saddle = _saddle(loss, path.thetas[-1], cfg.lanczos_steps)
    saddle_time = time.perf_counter() - t1
    cosine = float(pairwise_cosine(net, theta, LAYER)[pair[0], pair[1]])
    row = _summary_row(job, teacher, path, acc, pair, cosine, saddle)
    row.update(path_time=path_time, saddle_time=saddle_time)
    result = {"key": job.key(), "row": row, "steps": _step_rows(job, path, acc)}
    atomic_write_json(job.folder / RESULT_FILE, result)
    return result


def _summary_row(
    job: PathJob,
    teacher: Teacher,
    path: Path,
    acc: list[float],
    pair: tuple[int, int],
    cosine: float,
    saddle: dict,
) -> dict:
    s = path.summary()
    losses = [float(v) for v in path.loss]
    monotone, fall = rises_monotonically(losses)
    solved = [r for r in path.records if r["segment"] != "shift"]
    return {
        "loss_kind": job.cfg.loss,
        "variant": job.variant,
        "H": job.width,
        "seed": job.seed,
        "pair": f"{pair[0]}-{pair[1]}",
        "cosine": cosine,
        "d0": float(path.d[0]),
        "teacher_accuracy": teacher.accuracy,
        "teacher_reached": teacher.reached,
        "loss_start": s["loss_start"],
        "barrier": s["barrier"],
        "barrier_height": s["barrier"] - s["loss_start"],
        "barrier_t": s["barrier_t"],
        "barrier_at_permutation_point": s["barrier_at_permutation_point"],
        "loss_permutation_point": s["loss_permutation_point"],
        "monotone": monotone,
        "largest_fall": fall,
        "accuracy_start": acc[0],
        "accuracy_permutation_point": acc[-1],
        "accuracy_min": min(acc),
        "accuracy_drop": acc[0] - min(acc),
        "flag_channel": s["flag_channel"],
        "flag_rescaling": s["flag_rescaling"],
        "flag_elsewhere": s["flag_elsewhere"],
        "max_out_norm": max(max(r["out_norm_l"], r["out_norm_m"]) for r in path.records),
        "not_converged": len(s["not_converged_steps"]),
        "worst_grad_inf": s["worst_grad_inf"],
        "total_iterations": sum(int(r["nit"]) for r in solved),
        "total_hvp": sum(int(r.get("nhvp", 0)) for r in solved),
        "total_grad": sum(int(r.get("ngev", 0)) for r in solved),
        **saddle,
        "solve_time": sum(float(r["wall_time"]) for r in solved),
        "folder": job.folder.name,
    }


STEP_COLUMNS = ("index", "segment", "d", "t", "loss", "grad_inf", "nit", "converged")


def _step_rows(job: PathJob, path: Path, acc: list[float]) -> list[dict]:
    head = {"loss_kind": job.cfg.loss, "variant": job.variant, "H": job.width, "seed": job.seed}
    rows = []
    for rec, a in zip(path.records, acc):
        row = head | {k: rec[k] for k in STEP_COLUMNS} | {"accuracy": a}
        row.update({k: rec[k] for k in rec if k.startswith(("flag_", "out_norm_", "in_norm_"))})
        row["wall_time"] = rec["wall_time"]
        rows.append(row)
    return rows


# -- running a sweep -----------------------------------------------------------------------------
def _completed_steps(folder: FsPath) -> int:
    steps = folder / "steps"
    return sum(1 for _ in steps.glob("step_*.json")) if steps.is_dir() else 0


def _run_all(
    fn: Callable,
    jobs: Sequence,
    workers: int,
    threads: int,
    bar: tqdm,
    progress_of: Callable[[], int] | None = None,
) -> list:
    """``[fn(job) for job in jobs]`` on ``workers`` processes with ``threads`` torch threads
    each (:func:`limited_threads`), updating ``bar`` as work lands.

    With ``progress_of`` the bar shows its count (polled each second, e.g. finished path
    steps on disk); otherwise it counts finished jobs.
    """
    results: list = [None] * len(jobs)
    calls = [(fn, threads, job) for job in jobs]

    def refresh(done: int) -> None:
        bar.n = progress_of() if progress_of is not None else done
        bar.refresh()

    if workers == 1 or len(jobs) == 1:
        for i, call in enumerate(calls):
            results[i] = _limited(call)
            refresh(i + 1)
        return results
    with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
        pending: dict[Future, int] = {pool.submit(_limited, c): i for i, c in enumerate(calls)}
        done = 0
        while pending:
            finished, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in finished:
                results[pending.pop(fut)] = fut.result()
                done += 1
            refresh(done)
    return results


def run_mnist(cfg: MnistConfig, out: str | FsPath, progress: bool = True) -> dict:
    """Run the sweep into ``out`` (resuming), write the tables and return ``summary.json``."""
    cfg.validate()
    out = FsPath(out)
    out.mkdir(parents=True, exist_ok=True)
    teacher_dir = out / "teachers"
    teacher_jobs = [(cfg, H, s, str(teacher_dir)) for H, s in cfg.teachers()]
    with tqdm(total=len(teacher_jobs), desc="teachers", unit="net", disable=not progress) as bar:
        teachers = _run_all(_train_one, teacher_jobs, cfg.workers, cfg.num_threads(), bar)
    jobs = [PathJob(cfg, H, s, v, str(out)) for H, s, v in cfg.jobs()]
    per_path = cfg.steps + 2  # d_0 .. d_S and d = 0 are solved; the shift is not checkpointed
    total = per_path * len(jobs)

    def steps_on_disk() -> int:
        return sum(min(_completed_steps(j.folder), per_path) for j in jobs)

    with tqdm(total=total, desc="mnist path steps", unit="step", disable=not progress) as bar:
        results = _run_all(run_path, jobs, cfg.workers, cfg.num_threads(), bar, steps_on_disk)
    return write_tables(cfg, out, teachers, results)


def write_tables(cfg: MnistConfig, out: FsPath, teachers: list[dict], results: list[dict]) -> dict:
    """steps.csv, summary.csv, table.csv and summary.json from the per-path results."""
    order = {(H, s, v): i for i, (H, s, v) in enumerate(_natural_jobs(cfg))}
    results = sorted(
        results, key=lambda r: order[(r["row"]["H"], r["row"]["seed"], r["row"]["variant"])]
    )
    rows = [r["row"] for r in results]
    steps = [s for r in results for s in r["steps"]]
    table = aggregate(rows)
    verdict = claims(rows, table)
    atomic_write_csv(out / "steps.csv", steps)
    atomic_write_csv(out / "summary.csv", rows)
    atomic_write_csv(out / "table.csv", table)
    summary = {
        "config": cfg.as_dict(),
        "meta": metadata(),
        "teachers": teachers,
        "table": table,
        "claims": verdict,
        "rows": rows,
        "notes": {
            "saddle": "saddle_negative counts the Ritz values below -"
            f"{RITZ_RTOL:g} x |H| after {cfg.lanczos_steps} Lanczos steps on the Hessian at the "
            "permutation point: a lower bound on its index (negative eigenvalues), by Cauchy "
            "interlacing, not the index itself; ritz_lowest is an upper bound on the lowest "
            "eigenvalue",
            "monotone": f"the loss never falls by more than {MONOTONE_RTOL:g} x its barrier",
        },
    }
    atomic_write_json(out / "summary.json", summary, nonfinite="null")
    return summary


def _natural_jobs(cfg: MnistConfig) -> list[tuple[int, int, str]]:
    return [(H, s, v) for H, s in cfg.teachers() for v in cfg.variants]


def _stats(values: Iterable[float]) -> dict[str, float]:
    v = [float(x) for x in values]
    return {
        "mean": statistics.fmean(v),
        "std": statistics.stdev(v) if len(v) > 1 else 0.0,
        "min": min(v),
        "max": max(v),
    }


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per (loss, variant, H): barrier and accuracy-drop statistics, barrier position,
    monotone paths, escape flags, convergence and saddle index (Fig. 3's claims by width)."""
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["loss_kind"], r["variant"], r["H"]), []).append(r)
    table = []
    for (kind, variant, H), g in groups.items():
        barrier = _stats(r["barrier"] for r in g)
        drop = _stats(r["accuracy_drop"] for r in g)
        neg = [r["saddle_negative"] for r in g if r["saddle_negative"] is not None]
        table.append(
            {
                "loss_kind": kind,
                "variant": variant,
                "H": H,
                "paths": len(g),
                "barrier_mean": barrier["mean"],
                "barrier_std": barrier["std"],
                "barrier_min": barrier["min"],
                "barrier_max": barrier["max"],
                "accuracy_start_mean": statistics.fmean(r["accuracy_start"] for r in g),
                "accuracy_drop_mean": drop["mean"],
                "accuracy_drop_std": drop["std"],
                "accuracy_drop_max": drop["max"],
                "barrier_at_point": sum(bool(r["barrier_at_permutation_point"]) for r in g),
                "barrier_t_mean": statistics.fmean(r["barrier_t"] for r in g),
                "monotone": sum(bool(r["monotone"]) for r in g),
                "flag_channel": sum(bool(r["flag_channel"]) for r in g),
                "flag_rescaling": sum(bool(r["flag_rescaling"]) for r in g),
                "flag_elsewhere": sum(bool(r["flag_elsewhere"]) for r in g),
                "not_converged_steps": sum(int(r["not_converged"]) for r in g),
                "worst_grad_inf": max(r["worst_grad_inf"] for r in g),
                "saddle_negative_median": statistics.median(neg) if neg else None,
                "saddle_negative_min": min(neg) if neg else None,
                "path_time_mean": statistics.fmean(r["path_time"] for r in g),
            }
        )
    return sorted(table, key=lambda r: (r["loss_kind"], r["variant"], r["H"]))


def claims(rows: list[dict], table: list[dict]) -> dict:
    """The paper's three Fig. 3 claims, per variant, each with its numbers and a verdict."""
    out = {}
    for variant in dict.fromkeys(r["variant"] for r in table):
        g_rows = [r for r in rows if r["variant"] == variant]
        g_table = sorted((r for r in table if r["variant"] == variant), key=lambda r: r["H"])
        means = [r["barrier_mean"] for r in g_table]
        mono = sum(bool(r["monotone"]) for r in g_rows)
        at_point = sum(bool(r["barrier_at_permutation_point"]) for r in g_rows)
        drops = [r["accuracy_drop"] for r in g_rows]
        out[variant] = {
            "monotone_rise": {
                "monotone_paths": mono,
                "barrier_at_permutation_point": at_point,
                "paths": len(g_rows),
                "confirmed": 2 * mono > len(g_rows) and 2 * at_point > len(g_rows),
            },
            "barrier_falls_with_H": {
                "H": [r["H"] for r in g_table],
                "barrier_mean": means,
                "confirmed": None  # undetermined with one width
                if len(means) < 2
                else all(b < a for a, b in zip(means, means[1:])),
            },
            "small_accuracy_drop": {
                "mean_drop": statistics.fmean(drops),
                "max_drop": max(drops),
                "threshold": SMALL_ACCURACY_DROP,
                "confirmed": max(drops) <= SMALL_ACCURACY_DROP,
            },
        }
    return out
