"""Shared test settings: one intra-op thread per worker (pytest -n 2 runs two workers)."""

import torch

torch.set_num_threads(1)
