"""MNIST teachers of the student-teacher experiment (paper Sec. 5, Fig. 3; docs/theory.md
section 7).

A teacher is a 784 -> H -> H -> 10 network (linear output, logits), or K -> H -> H -> 10 on the
top K whitened principal components of the digits (``pca``, :mod:`weightsym.pca`), trained
with the negative log-likelihood (``nll``) on MNIST, "pre-trained on the MNIST data set using
negative log-likelihood loss" in the paper's words. The paper states neither the activation, the
optimizer nor how far it trained; we fix them here and say so:

* **activation** ``softplus`` by default (:data:`DEFAULT_ACTIVATION`). It is smooth, so the path
  solvers use exact second derivatives and the channel escape of docs/theory.md section 5 shows
  up as it is (growing output weights), while ReLU teachers would in addition allow the
  rescaling escape (vartheta, w) -> (a vartheta, w / a) at zero cost. Any activation of
  :mod:`weightsym.activations` can be chosen.
* **training**: from ``MLP.init(seed)`` (weights and biases N(0, 1 / fan_in)), full-batch
  L-BFGS in float64 (:func:`weightsym.optimize.minimize`, ``method="lbfgs"``) on the nll of the
  training digits, stopped at the first iteration whose **training accuracy** reaches
  ``target_accuracy`` (default :data:`DEFAULT_TARGET_ACCURACY`), or after ``max_iter``
  iterations, whichever comes first. The accuracy reached is stored and reported; a teacher
  that missed its target is kept and flagged (``reached=False``), never silently passed off.

Teachers are written atomically to ``<folder>/H{H}-seed{seed}.pt`` (a ``torch.save`` dict with
the widths, activation, theta, the training configuration and the achieved accuracy) and reused
when a file with the same configuration exists; a file with a different configuration is an
error, because paths computed from it would no longer match.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from weightsym import activations
from weightsym.hashing import fingerprint
from weightsym.io import CorruptFileError, atomic_write_bytes
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.optimize import minimize

DEFAULT_ACTIVATION = "softplus"
DEFAULT_TARGET_ACCURACY = 0.98
DEFAULT_MAX_ITER = 2000
PIXELS = 784
TEACHER_FORMAT = "weightsym.mnist-teacher/1"
TRAIN_TOL = 1e-10
"""grad_inf tolerance of teacher training (in practice the accuracy target stops it first)."""


@dataclass(frozen=True)
class TeacherConfig:
    """Everything that determines a teacher (stored in its file and compared on reuse).

    ``data`` is the fingerprint of the training inputs (:func:`data_fingerprint`); ``pca`` the
    number K of whitened principal components they are projected onto (None: the 784 pixels).
    """

    width: int
    seed: int
    activation: str = DEFAULT_ACTIVATION
    target_accuracy: float = DEFAULT_TARGET_ACCURACY
    max_iter: int = DEFAULT_MAX_ITER
    data: str = ""
    pca: int | None = None

    @property
    def widths(self) -> list[int]:
        """The layer widths [784, H, H, 10], or [K, H, H, 10] with ``pca`` = K."""
        return [PIXELS if self.pca is None else self.pca, self.width, self.width, 10]

    def validate(self) -> None:
        """Raise ValueError (TypeError for a non-string activation) naming the bad setting."""
        if not (isinstance(self.width, int) and self.width >= 2):
            raise ValueError(f"the hidden width H must be an int >= 2; got {self.width!r}")
        if not 0.0 < self.target_accuracy <= 1.0:
            raise ValueError(f"target_accuracy must lie in (0, 1]; got {self.target_accuracy!r}")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be a positive int; got {self.max_iter!r}")
        check_pca(self.pca)
        activations.get(self.activation)


def check_pca(pca: object) -> None:
    """Raise ValueError unless ``pca`` is None or an int in 1..784 (components of the pixels)."""
    is_int = isinstance(pca, int) and not isinstance(pca, bool)
    if pca is not None and not (is_int and 1 <= pca <= PIXELS):
        raise ValueError(f"pca must be None or an int in 1..{PIXELS}; got {pca!r}")


@dataclass
class Teacher:
    """A trained teacher: network, parameters and how training ended."""

    net: MLP
    theta: Tensor
    config: TeacherConfig
    accuracy: float
    loss: float
    iterations: int
    message: str

    @property
    def reached(self) -> bool:
        """Whether training reached the target accuracy."""
        return self.accuracy >= self.config.target_accuracy


class TeacherSummary(NamedTuple):
    """How one teacher of a sweep turned out (``summary.json``); ``nll`` is its training loss,
    ``wall_time`` the seconds to train or load it."""

    width: int
    seed: int
    accuracy: float
    reached: bool
    nll: float
    iterations: int
    wall_time: float

    @classmethod
    def of(cls, teacher: Teacher, wall_time: float) -> TeacherSummary:
        c = teacher.config
        return cls(
            c.width, c.seed, teacher.accuracy, teacher.reached, teacher.loss, teacher.iterations,
            wall_time,
        )  # fmt: skip


def data_fingerprint(X: Tensor, y: Tensor) -> str:
    """The first 16 hex digits of the SHA-256 of the digits' and labels' bytes (the teacher's
    data identity, :func:`weightsym.hashing.fingerprint` with an empty header)."""
    return fingerprint("", X, y)[:16]


def accuracy(net: MLP, theta: Tensor, X: Tensor, y: Tensor) -> float:
    """Training accuracy (Fig. 3 B): the fraction of digits mu with argmax_i f_i(x_mu) = y_mu."""
    return float((net.forward(theta, X).argmax(dim=1) == y).double().mean())


def train_teacher(cfg: TeacherConfig, X: Tensor, y: Tensor) -> Teacher:
    """Train one teacher as the module docstring describes (seeded, deterministic).

    Args:
        cfg: the teacher's settings.
        X: (T, n_0) float64 inputs (pixels or principal components); y: (T,) int64 labels.

    Returns:
        The trained :class:`Teacher`.

    Raises:
        ValueError: a setting of ``cfg`` out of range.
    """
    cfg.validate()
    net = MLP(cfg.widths, cfg.activation)
    loss = Loss(net, X, y, kind="nll")

    def stop_at_target(x: Tensor, info: dict) -> bool:
        return accuracy(net, x, X, y) >= cfg.target_accuracy

    res = minimize(
        loss,
        net.init(cfg.seed),
        method="lbfgs",
        tol=TRAIN_TOL,
        max_iter=cfg.max_iter,
        callback=stop_at_target,
        growth_limit=None,
    )
    return Teacher(
        net=net,
        theta=res.x.clone(),
        config=cfg,
        accuracy=accuracy(net, res.x, X, y),
        loss=float(res.fun),
        iterations=int(res.nit),
        message=str(res.message),
    )


def teacher_file(folder: str | Path, width: int, seed: int) -> Path:
    """``<folder>/H{width}-seed{seed}.pt``."""
    return Path(folder) / f"H{width}-seed{seed}.pt"


def save_teacher(teacher: Teacher, path: str | Path) -> Path:
    """Write the teacher atomically (see the module docstring for the content)."""
    payload = {
        "format": TEACHER_FORMAT,
        "widths": list(teacher.net.widths),
        "activation": teacher.net.activation,
        "theta": teacher.theta.detach().clone(),
        "config": asdict(teacher.config),
        "accuracy": teacher.accuracy,
        "loss": teacher.loss,
        "iterations": teacher.iterations,
        "message": teacher.message,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_teacher(path: str | Path) -> Teacher:
    """Read a teacher written by :func:`save_teacher`.

    Raises:
        FileNotFoundError: no such file.
        CorruptFileError: the file is not a teacher of this format.
    """
    path = Path(path)
    try:
        raw = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CorruptFileError(path, "MNIST teacher", f"cannot be read ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != TEACHER_FORMAT:
        raise CorruptFileError(path, "MNIST teacher", f"expected format {TEACHER_FORMAT!r}")
    cfg = TeacherConfig(**raw["config"])
    net = MLP(raw["widths"], raw["activation"])
    return Teacher(
        net=net,
        theta=net.check_theta(raw["theta"]),
        config=cfg,
        accuracy=float(raw["accuracy"]),
        loss=float(raw["loss"]),
        iterations=int(raw["iterations"]),
        message=str(raw["message"]),
    )


def get_teacher(cfg: TeacherConfig, X: Tensor, y: Tensor, folder: str | Path) -> Teacher:
    """The teacher of ``cfg`` from ``folder`` if saved there, else trained and saved.

    Raises:
        ValueError: the saved file was made with another configuration.
    """
    path = teacher_file(folder, cfg.width, cfg.seed)
    if path.exists():
        teacher = load_teacher(path)
        if teacher.config != cfg:
            raise ValueError(
                f"the teacher in {str(path)!r} was trained with a different configuration:\n"
                f"  stored {asdict(teacher.config)}\n  wanted {asdict(cfg)}\n"
                "Use a new results folder, or delete the file to retrain it."
            )
        return teacher
    path.parent.mkdir(parents=True, exist_ok=True)
    teacher = train_teacher(cfg, X, y)
    save_teacher(teacher, path)
    return teacher
