"""The README's library example runs as printed (it is the first thing a user copies)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README.md has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    path = namespace["path"]
    assert float(path.t[-1]) == 0.5 and path.barrier.loss >= 0.0
    assert namespace["E"].shape[1] >= namespace["C"].shape[1]  # K n_{k+1} >= K directions
