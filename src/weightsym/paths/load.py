"""Reading a computed permutation path back from its results folder (nothing is recomputed)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from weightsym.channels import ChannelLimit
from weightsym.io import CorruptFileError, load_json, load_tensors, read_csv
from weightsym.model import MLP
from weightsym.partner_channel import PartnerChannel
from weightsym.paths.config import PathConfig
from weightsym.paths.records import (
    PermutationPath,
    StepRecord,
    stored_channel_limit,
    stored_partner_channel,
)


def load_path(folder: str | PathLike, net: MLP) -> PermutationPath:
    """The :class:`PermutationPath` stored in ``folder`` by ``find_path(..., out=folder)``.

    Args:
        folder: a finished path's results folder (``config.json``, ``steps.csv``,
            ``thetas.pt``).
        net: the network the path belongs to (a results folder stores no network).

    Returns:
        The path, with ``theta_star`` set to its first point (after any gauge).

    Raises:
        FileNotFoundError: a file is missing (the path did not finish);
        weightsym.io.CorruptFileError: a file is damaged.
    """
    folder = Path(folder)
    config = load_json(folder / "config.json", "path config")["config"]["path"]
    records = [StepRecord.from_row(r) for r in read_csv(folder / "steps.csv")]
    thetas = load_tensors(folder / "thetas.pt", "path parameters")["thetas"]
    net.check_theta(thetas[0], "thetas[0]")
    cfg = PathConfig.from_dict(config)
    limit, partner = _stored_limits(folder / "summary.json")
    return PermutationPath(
        net, thetas[0], cfg, records, thetas, channel_limit=limit, partner_channel=partner
    )


def _stored_limits(summary: Path) -> tuple[ChannelLimit | None, PartnerChannel | None]:
    """The stored loss the pair channel tends to and the stored partner channel; None where
    the path had none, or the folder predates them (or is unfinished: no summary.json)."""
    if not summary.exists():
        return None, None
    body = load_json(summary, "path summary").get("summary", {})
    try:
        return stored_channel_limit(body)[1], stored_partner_channel(body)[1]
    except ValueError as err:
        raise CorruptFileError(summary, "path summary", str(err)) from None
