"""Figures from results folders; nothing here recomputes a path.

* :func:`toy_figures`: Fig. 2 (first-layer vectors W_i / b_i at the minimum and at the
  permutation point; loss against d), Fig. 4 (constant loss during the output-weight shift) and
  Fig. 5 (a path whose barrier is not at the permutation point), from a ``weightsym toy`` folder.
* :func:`mnist_figure`: Fig. 3 (loss and training accuracy along the path for every H and seed).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from weightsym.store import load_tensors  # noqa: E402


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a CSV written by :func:`weightsym.store.atomic_write_csv`, numbers parsed."""
    with open(path, newline="") as fh:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _parse(v: str):
    if v in ("True", "False"):
        return v == "True"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write a figure atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _first_layer_duals(theta, width: int):
    """(W_i1 / b_i, W_i2 / b_i) of the 2-input first layer (Fig. 2, top row)."""
    blk = theta[: width * 3].view(width, 3)
    return blk[:, 0] / blk[:, 2], blk[:, 1] / blk[:, 2]


def _group(rows: Iterable[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        out.setdefault((r["activation"], r["variant"]), []).append(r)
    return out


def toy_figures(folder: str | Path, width: int = 5) -> list[Path]:
    """Write fig2_*.png, fig4_output_shift.png and (if one occurs) fig5_*.png; return paths."""
    folder = Path(folder)
    rows = read_csv(folder / "summary.csv")
    written = []
    for (act, var), group in _group(rows).items():
        written.append(_fig2(folder, act, var, group, width))
    written.append(_fig4(folder, rows))
    fig5 = _fig5(folder, rows)
    if fig5 is not None:
        written.append(fig5)
    return written


def _fig2(folder: Path, act: str, var: str, group: list[dict], width: int) -> Path:
    n = len(group)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.4), squeeze=False)
    for j, row in enumerate(group):
        pdir = folder / "paths" / row["folder"]
        th = load_tensors(pdir / "thetas.pt", "path parameters")["thetas"]
        steps = [r for r in read_csv(pdir / "steps.csv") if r["segment"] == "descent"]
        top, bottom = axes[0, j], axes[1, j]
        for theta, colour, label in (
            (th[0], "tab:blue", "minimum"),
            (th[-1], "tab:red", "perm. point"),
        ):
            x, y = _first_layer_duals(theta, width)
            top.scatter(x, y, c=colour, s=22, label=label)
            for i in range(width):
                top.annotate(str(i), (float(x[i]), float(y[i])), fontsize=7, color=colour)
        top.set_title(f"pair {row['pair']}", fontsize=9)
        top.set_xlabel("$W_{i1}/b_i$", fontsize=8)
        bottom.plot([r["d"] for r in steps], [r["loss"] for r in steps], ".-", ms=2)
        bottom.axhline(row["loss_permutation_point"], color="tab:red", ls="--", lw=0.8)
        bottom.set_xscale("log")
        bottom.invert_xaxis()
        bottom.set_xlabel("distance d", fontsize=8)
    axes[0, 0].set_ylabel("$W_{i2}/b_i$", fontsize=8)
    axes[1, 0].set_ylabel("loss L (dashed: perm. point)", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Fig. 2 ({act}, {var} variant): first-layer vectors and loss along d")
    return save_figure(fig, folder / f"fig2_{act}_{var}.png")


def _fig4(folder: Path, rows: list[dict]) -> Path:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    worst = []
    for row in rows:
        steps = read_csv(folder / "paths" / row["folder"] / "steps.csv")
        seg = [r for r in steps if r["segment"] in ("merge", "shift")]
        base = seg[0]["loss"]
        change = [abs(r["loss"] - base) / max(1.0, abs(base)) for r in seg]
        worst.append(max(change))
        a1.plot([r["t"] for r in seg], change, lw=0.8)
    a1.set_yscale("symlog", linthresh=1e-16)
    a1.set_xlabel("t (1/4: merged, 1/2: permutation point)")
    a1.set_ylabel("|L(t) - L(1/4)| / max(1, L)")
    a1.set_title("loss during the output-weight shift")
    a2.hist(worst, bins=20)
    a2.set_xlabel("largest relative loss change per path")
    a2.set_title(f"{len(rows)} paths; max {max(worst):.1e}")
    fig.suptitle("Fig. 4: the output-weight shift keeps the loss constant")
    return save_figure(fig, folder / "fig4_output_shift.png")


def _fig5(folder: Path, rows: list[dict]) -> Path | None:
    off = [r for r in rows if not r["barrier_at_permutation_point"]]
    if not off:
        return None
    # a barrier from a converged step if there is one; else an upper bound, and said so
    solid = [r for r in off if r.get("barrier_converged", False)]
    row = max(solid or off, key=lambda r: r["barrier"] - r["loss_permutation_point"])
    note = "" if row.get("barrier_converged", False) else " (barrier step not converged)"
    steps = read_csv(folder / "paths" / row["folder"] / "steps.csv")
    t = [r["t"] for r in steps] + [1 - r["t"] for r in reversed(steps[:-1])]
    L = [r["loss"] for r in steps] + [r["loss"] for r in reversed(steps[:-1])]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(t, L, ".-", ms=2)
    ax.axvline(0.5, color="tab:red", ls="--", lw=0.8, label="permutation point")
    ax.axhline(row["barrier"], color="k", ls=":", lw=0.8, label="barrier")
    ax.set_xlabel("t")
    ax.set_ylabel("loss L")
    ax.legend(fontsize=8)
    ax.set_title(
        f"Fig. 5: {row['activation']}, {row['variant']}, pair {row['pair']}: "
        f"barrier away from the permutation point{note}",
        fontsize=9,
    )
    return save_figure(fig, folder / "fig5_barrier_off_point.png")


def mnist_figure(folder: str | Path) -> Path:
    """Fig. 3 from a ``weightsym mnist`` folder: A, the loss along the path (t from 0 to 1/2,
    the permutation point) for every H and seed, coloured by H; B, the training accuracy.

    One row of panels per variant; written to ``fig3_<loss>.png``.
    """
    folder = Path(folder)
    steps = read_csv(folder / "steps.csv")
    curves: dict[tuple[str, int, int], list[dict]] = {}
    for r in steps:
        curves.setdefault((r["variant"], r["H"], r["seed"]), []).append(r)
    variants = list(dict.fromkeys(v for v, _, _ in curves))
    widths = sorted({H for _, H, _ in curves})
    cmap = plt.get_cmap("viridis")
    colour = {H: cmap(i / max(1, len(widths) - 1)) for i, H in enumerate(widths)}
    fig, axes = plt.subplots(len(variants), 2, figsize=(11, 3.8 * len(variants)), squeeze=False)
    # the teacher's own loss (t = 0) is at rounding level: the axis starts at the first step's
    positive = [r["loss"] for r in steps if r["t"] > 0 and r["loss"] > 0]
    floor = min(positive) if positive else 1e-16
    for row, variant in zip(axes, variants):
        for (v, H, _seed), rs in curves.items():
            if v != variant:
                continue
            t = [r["t"] for r in rs]
            row[0].plot(t, [r["loss"] for r in rs], color=colour[H], lw=0.9, alpha=0.85)
            row[1].plot(t, [100 * r["accuracy"] for r in rs], color=colour[H], lw=0.9, alpha=0.85)
        for ax in row:
            ax.axvline(0.5, color="tab:red", ls="--", lw=0.7)
            ax.set_xlim(0, 0.5)
            ax.set_xlabel("t (0: teacher, 1/4: merged, 1/2: permutation point)")
        row[0].set_yscale("log")  # barriers differ by orders of magnitude across H
        row[0].set_ylim(bottom=0.5 * floor)
        row[0].set_ylabel(f"loss L ({steps[0]['loss_kind']}, log scale)")
        row[1].set_ylabel("training accuracy (%)")
        row[0].set_title(f"A ({variant} variant): loss along the path", fontsize=10)
        row[1].set_title(f"B ({variant} variant): training accuracy", fontsize=10)
    handles = [plt.Line2D([], [], color=colour[H], label=f"H = {H}") for H in widths]
    axes[0, 0].legend(handles=handles, fontsize=8)
    fig.suptitle("Fig. 3: merging the most similar pair of layer 2 of MNIST teachers")
    fig.tight_layout()
    return save_figure(fig, folder / f"fig3_{steps[0]['loss_kind']}.png")
