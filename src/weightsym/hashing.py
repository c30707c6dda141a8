"""Content fingerprints: SHA-256 over a header string and the bytes of tensors.

A results folder records the fingerprint of the problem it was computed for (network, data,
loss kind, starting point), so that a resume continues only the same problem (docs/theory.md
section 11).
"""

from __future__ import annotations

import hashlib

from torch import Tensor


def fingerprint(header: str, *tensors: Tensor) -> str:
    """Hex SHA-256 of ``header`` (UTF-8) followed by each tensor's contiguous bytes.

    Args:
        header: text that identifies the structure (widths, activation, loss kind ...); may be
            empty.
        *tensors: CPU tensors whose exact values belong to the identity.

    Returns:
        The 64-character hex digest.
    """
    h = hashlib.sha256()
    if header:
        h.update(header.encode())
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()
