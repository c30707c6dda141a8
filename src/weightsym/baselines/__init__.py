"""Paths between two parameter vectors other than the permutation path, and barrier heights
(docs/theory.md section 9): the straight line, Bezier curves and polygonal chains with trained
bends (Garipov et al. 2018), the nudged elastic band with a climbing image (Henkelman, Uberuaga
and Jonsson 2000) and its saddle refinement with a certificate from the exact Hessian.
"""

from weightsym.baselines.barriers import (
    DEFINITIONS,
    BarrierReport,
    arc_length,
    barrier_height,
    barrier_report,
    mean_loss,
)
from weightsym.baselines.bezier import bezier_path
from weightsym.baselines.linear import linear_path
from weightsym.baselines.neb import neb_path
from weightsym.baselines.record import CurvePath, Fit
from weightsym.baselines.saddle import SaddleCertificate, certify, refine_saddle

__all__ = [
    "DEFINITIONS",
    "BarrierReport",
    "CurvePath",
    "Fit",
    "SaddleCertificate",
    "arc_length",
    "barrier_height",
    "barrier_report",
    "bezier_path",
    "certify",
    "linear_path",
    "mean_loss",
    "neb_path",
    "refine_saddle",
]
