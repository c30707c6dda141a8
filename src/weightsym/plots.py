"""Figures from results folders; nothing here recomputes a path.

* :func:`toy_figures`: Fig. 2 (first-layer vectors W_i / b_i at the minimum and at the
  permutation point; loss against d), Fig. 4 (constant loss during the output-weight shift) and
  Fig. 5 (a path whose barrier is not at the permutation point), from a ``weightsym toy`` folder.
* :func:`mnist_figure`: Fig. 3 (loss and training accuracy along the path for every H and seed).
"""

from __future__ import annotations

from collections.abc import Iterable
from io import BytesIO
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402

from weightsym.io import atomic_write_bytes, load_json, read_csv  # noqa: E402
from weightsym.model import MLP  # noqa: E402
from weightsym.paths import PermutationPath, load_path  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write a figure atomically (:func:`weightsym.io.atomic_write_bytes`); the format is the
    file's suffix."""
    path = Path(path)
    buffer = BytesIO()
    try:
        fig.savefig(buffer, format=path.suffix[1:] or None, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _first_layer_duals(net: MLP, theta: Tensor) -> tuple[Tensor, Tensor]:
    """(W_i1 / b_i, W_i2 / b_i) of a 2-input first layer (Fig. 2, top row)."""
    W, b = net.unflatten(theta)[0]
    return W[:, 0] / b, W[:, 1] / b


def _toy_paths(folder: Path) -> tuple[list[dict], dict[str, PermutationPath]]:
    """The summary rows of a ``weightsym toy`` folder and each row's stored path."""
    stored = load_json(folder / "summary.json", "toy summary")
    rows, width = stored["rows"], stored["config"]["width"]
    paths = {}
    for r in rows:
        net = MLP([2, width, 1], r["activation"])
        paths[r["folder"]] = load_path(folder / "paths" / r["folder"], net)
    return rows, paths


def _group(rows: Iterable[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        out.setdefault((r["activation"], r["variant"]), []).append(r)
    return out


def toy_figures(folder: str | Path) -> list[Path]:
    """Write fig2_*.png, fig4_output_shift.png and (if one occurs) fig5_*.png; return paths.

    Everything is read from the folder (its ``summary.json`` and each path's files).
    """
    folder = Path(folder)
    rows, paths = _toy_paths(folder)
    written = []
    for (act, var), group in _group(rows).items():
        written.append(_fig2(folder, act, var, [(r, paths[r["folder"]]) for r in group]))
    written.append(_fig4(folder, list(paths.values())))
    fig5 = _fig5(folder, rows, paths)
    if fig5 is not None:
        written.append(fig5)
    return written


def _fig2(folder: Path, act: str, var: str, group: list[tuple[dict, PermutationPath]]) -> Path:
    n = len(group)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.4), squeeze=False)
    for j, (row, path) in enumerate(group):
        top, bottom = axes[0, j], axes[1, j]
        for theta, colour, label in (
            (path.thetas[0], "tab:blue", "minimum"),
            (path.thetas[-1], "tab:red", "perm. point"),
        ):
            x, y = _first_layer_duals(path.net, theta)
            top.scatter(x, y, c=colour, s=22, label=label)
            for i in range(len(x)):
                top.annotate(str(i), (float(x[i]), float(y[i])), fontsize=7, color=colour)
        top.set_title(f"pair {row['pair']}", fontsize=9)
        top.set_xlabel("$W_{i1}/b_i$", fontsize=8)
        descent = [r.segment == "descent" for r in path.records]
        bottom.plot(path.d[descent], path.loss[descent], ".-", ms=2)
        bottom.axhline(path.permutation_point_loss, color="tab:red", ls="--", lw=0.8)
        bottom.set_xscale("log")
        bottom.invert_xaxis()
        bottom.set_xlabel("distance d", fontsize=8)
    axes[0, 0].set_ylabel("$W_{i2}/b_i$", fontsize=8)
    axes[1, 0].set_ylabel("loss L (dashed: perm. point)", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Fig. 2 ({act}, {var} variant): first-layer vectors and loss along d")
    return save_figure(fig, folder / f"fig2_{act}_{var}.png")


def _fig4(folder: Path, paths: list[PermutationPath]) -> Path:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    worst = []
    for path in paths:
        seg = [r for r in path.records if r.segment in ("merge", "shift")]
        base = seg[0].loss
        change = [abs(r.loss - base) / max(1.0, abs(base)) for r in seg]
        worst.append(max(change))
        a1.plot([r.t for r in seg], change, lw=0.8)
    a1.set_yscale("symlog", linthresh=1e-16)
    a1.set_xlabel("t (1/4: merged, 1/2: permutation point)")
    a1.set_ylabel("|L(t) - L(1/4)| / max(1, L)")
    a1.set_title("loss during the output-weight shift")
    a2.hist(worst, bins=20)
    a2.set_xlabel("largest relative loss change per path")
    a2.set_title(f"{len(paths)} paths; max {max(worst):.1e}")
    fig.suptitle("Fig. 4: the output-weight shift keeps the loss constant")
    return save_figure(fig, folder / "fig4_output_shift.png")


def _fig5(folder: Path, rows: list[dict], paths: dict[str, PermutationPath]) -> Path | None:
    off = [r for r in rows if not r["barrier_at_permutation_point"]]
    if not off:
        return None
    # a certified path if there is one, else a barrier from a converged step, else an upper
    # bound; the title says which
    certified = [r for r in off if r.get("certified") is True]
    solid = [r for r in off if r["barrier_converged"]]
    row = max(certified or solid or off, key=lambda r: r["barrier"] - r["loss_permutation_point"])
    note = " (certified)" if row.get("certified") is True else ""
    note = note or ("" if row["barrier_converged"] else " (barrier step not converged)")
    t, _, L = paths[row["folder"]].full()
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
