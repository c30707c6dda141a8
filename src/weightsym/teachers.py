"""MNIST teachers for the student-teacher experiment of the paper's Sec. 5 (Fig. 3).

A teacher is a 784 -> H -> H -> 10 network (linear output, logits) trained with the negative
log-likelihood (``nll``) on MNIST, "pre-trained on the MNIST data set using negative
log-likelihood loss" in the paper's words. The paper states neither the activation, the
optimizer nor how far it trained; we fix them here and say so:

* **activation** ``softplus`` by default (:data:`DEFAULT_ACTIVATION`). It is smooth, so the path
  solvers use exact second derivatives and the channel escape of SPEC section 4 shows up as it
  is (growing output weights), while ReLU teachers would in addition allow the rescaling escape
  (vartheta, w) -> (a vartheta, w / a) at zero cost. Any activation of
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

import hashlib
import io
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.optimize import minimize
from weightsym.store import CorruptFileError, atomic_write_bytes

DEFAULT_ACTIVATION = "softplus"
DEFAULT_TARGET_ACCURACY = 0.98
DEFAULT_MAX_ITER = 2000
TEACHER_FORMAT = "weightsym.mnist-teacher/1"


@dataclass(frozen=True)
class TeacherConfig:
    """Everything that determines a teacher (stored in its file and compared on reuse)."""

    width: int
    seed: int
    activation: str = DEFAULT_ACTIVATION
    target_accuracy: float = DEFAULT_TARGET_ACCURACY
    max_iter: int = DEFAULT_MAX_ITER
    data: str = ""  # fingerprint of the training digits (see data_fingerprint)

    @property
    def widths(self) -> list[int]:
        return [784, self.width, self.width, 10]

    def validate(self) -> None:
        if not (isinstance(self.width, int) and self.width >= 2):
            raise ValueError(f"the hidden width H must be an int >= 2; got {self.width!r}")
        if not 0.0 < self.target_accuracy <= 1.0:
            raise ValueError(f"target_accuracy must lie in (0, 1]; got {self.target_accuracy!r}")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be a positive int; got {self.max_iter!r}")
        MLP([1, 1, 1], self.activation)  # raises on an unknown activation


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
        return self.accuracy >= self.config.target_accuracy


def data_fingerprint(X: Tensor, y: Tensor) -> str:
    """Short SHA-256 of the training digits and labels (the teacher's data identity)."""
    h = hashlib.sha256()
    for t in (X, y):
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def accuracy(net: MLP, theta: Tensor, X: Tensor, y: Tensor) -> float:
    """Fraction of digits whose largest logit is the label (training accuracy, Fig. 3 B)."""
    return float((net.forward(theta, X).argmax(dim=1) == y).double().mean())


def train_teacher(cfg: TeacherConfig, X: Tensor, y: Tensor) -> Teacher:
    """Train one teacher as the module docstring describes (seeded, deterministic)."""
    cfg.validate()
    net = MLP(cfg.widths, cfg.activation)
    loss = Loss(net, X, y, kind="nll")
    reached: list[float] = []

    def stop_at_target(x: Tensor, info: dict) -> bool:
        acc = accuracy(net, x, X, y)
        reached.append(acc)
        return acc >= cfg.target_accuracy

    res = minimize(
        loss,
        net.init(cfg.seed),
        method="lbfgs",
        tol=1e-10,
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
    """Read a teacher written by :func:`save_teacher`."""
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

    Raises :class:`ValueError` when the saved file was made with another configuration.
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
