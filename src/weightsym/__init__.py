"""weightsym: weight-space symmetry in neural-network loss landscapes.

An implementation of Brea, Simsek, Illing and Gerstner, "Weight-space symmetry in neural network
loss landscapes revisited" (2019): permutation points, permutation paths, equal-loss plateaus
and their count.
"""

from weightsym.losses import Loss
from weightsym.model import MLP

__version__ = "0.1.0"

__all__ = ["MLP", "Loss", "__version__"]
