"""weightsym: weight-space symmetry in neural-network loss landscapes.

An implementation of Brea, Simsek, Illing and Gerstner, "Weight-space symmetry in neural network
loss landscapes revisited" (2019): permutation points, permutation paths, equal-loss plateaus
and their count.
"""

from weightsym import counting
from weightsym.baselines import (
    CurvePath,
    barrier_height,
    bezier_path,
    linear_path,
    neb_path,
    refine_saddle,
)
from weightsym.certify import PathCertificate, certify_path
from weightsym.curvature import hessian_operator, hessian_spectrum, saddle_index
from weightsym.equal_loss_path import equal_loss_permutation_path, output_shift
from weightsym.io import library_version
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.optimize import OptimizeResult, minimize
from weightsym.paths import (
    Barrier,
    PathConfig,
    PathSummary,
    PermutationPath,
    StepRecord,
    find_path,
    load_path,
)
from weightsym.points import (
    critical_directions,
    equal_loss_directions,
    higher_order_point,
    noncritical_directions,
    permutation_point,
)
from weightsym.symmetry import (
    compose,
    distance,
    invert,
    most_similar_pair,
    neuron_vector,
    output_vector,
    pairwise_cosine,
    permutation_set_size,
    permute,
    same_function,
    swap,
)

__version__ = library_version()  # from the installed metadata (pyproject.toml)

__all__ = [
    "MLP",
    # paths (Sec. 4.1)
    "find_path",
    "load_path",
    "PathConfig",
    "PermutationPath",
    "StepRecord",
    "Barrier",
    "PathSummary",
    "counting",
    "Loss",
    "__version__",
    # symmetry (Defs. 1-3, 5)
    "neuron_vector",
    "output_vector",
    "permute",
    "swap",
    "compose",
    "invert",
    "same_function",
    "distance",
    "permutation_set_size",
    "pairwise_cosine",
    "most_similar_pair",
    # points (Defs. 4, 6; Props. 1, 2)
    "permutation_point",
    "higher_order_point",
    "equal_loss_directions",
    "critical_directions",
    "noncritical_directions",
    "output_shift",
    "equal_loss_permutation_path",
    # certificates (docs/certification.md)
    "certify_path",
    "PathCertificate",
    # paths between minima (docs/theory.md section 9)
    "CurvePath",
    "linear_path",
    "bezier_path",
    "neb_path",
    "refine_saddle",
    "barrier_height",
    # optimize, curvature
    "minimize",
    "OptimizeResult",
    "hessian_spectrum",
    "saddle_index",
    "hessian_operator",
]
