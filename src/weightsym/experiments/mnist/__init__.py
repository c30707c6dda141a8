"""The paper's MNIST student-teacher experiment (Sec. 5, Fig. 3), as a resumable sweep.

Teachers 784 -> H -> H -> 10 are trained on MNIST with the nll (:mod:`.teachers`); the student
starts at a teacher and the most similar pair of hidden layer 2 is merged along the permutation
path (Sec. 4.1) under the normalized mean squared error against the teacher's logits
(:mod:`.problem`), for each path variant (:mod:`.config`). One path gives one row and its step
rows (:mod:`.path`); the tables and the verdict on the paper's three claims come from all of
them (:mod:`.tables`); :func:`run_mnist` runs it all (:mod:`.sweep`). The setup is
docs/theory.md section 7; measurements are in docs/mnist.md.
"""

from weightsym.experiments.mnist.config import LANCZOS_STEPS, LAYER, LOSSES, MNIST_PATH, MnistConfig
from weightsym.experiments.mnist.path import MnistRow, MnistStep, PathJob, PathResult, run_path
from weightsym.experiments.mnist.problem import (
    accuracy_curve,
    mnist_problem,
    rises_monotonically,
)
from weightsym.experiments.mnist.sweep import run_mnist
from weightsym.experiments.mnist.tables import (
    Claims,
    MnistSummary,
    TableRow,
    aggregate,
    claims,
    write_tables,
)

__all__ = [
    "LANCZOS_STEPS",
    "LAYER",
    "LOSSES",
    "MNIST_PATH",
    "Claims",
    "MnistConfig",
    "MnistRow",
    "MnistStep",
    "MnistSummary",
    "PathJob",
    "PathResult",
    "TableRow",
    "accuracy_curve",
    "aggregate",
    "claims",
    "mnist_problem",
    "rises_monotonically",
    "run_mnist",
    "run_path",
    "write_tables",
]
