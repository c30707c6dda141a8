"""Check each claim of docs/theory.md section 2 on a network with three hidden layers.

The network is 3-3-3-1-2 (hidden widths 3, 3, 1): layer 1 feeds n_2 = 3 neurons and layer 2
feeds n_3 = 1, so the paper's Props. 1 (ii) and 2 (ii) are expected to fail as printed in layer
1 and to hold in layer 2 (docs/theory.md section 2.4). The smaller network and the figures
measured at its permutation points are :mod:`weightsym.experiments.verify_figures`; the setup,
and why at least :data:`MIN_SAMPLES` samples are needed, is docs/theory.md section 7.3.

Each claim is a :class:`Claim`, printed as ``[PASS]`` (it holds; the figure reached follows)
or ``[FAIL]``, tagged ``paper`` (a claim of the paper that docs/theory.md keeps), ``as
printed`` (Props. 1/2 (ii) in the paper's words: a subspace *of critical points*) or
``corrected`` (the replacement of docs/theory.md section 2.4). A run comes out as expected
when the paper's kept claims and the corrections hold and the printed (ii) holds exactly where
n_{k+1} = 1 (:attr:`VerifyReport.as_expected`). With ReLU the Hessian claims may come out
otherwise (docs/theory.md section 7.3), and the report says so.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from weightsym import activations
from weightsym.experiments.verify_figures import (
    ATTEMPTS,
    PATH_ORDERINGS,
    STEP,
    WIDTHS,
    PathFigures,
    PointFigures,
    fit_example,
    measure_paths,
    measure_point,
    silent,
)

POINTS = ((1, {0: 2}), (1, {0: 2, 2: 2}), (2, {0: 2}), (2, {1: 3}))
"""(layer, copies) of the permutation points checked: first and second order, n_{k+1} = 3 and 1."""
GRAD_TOL = 1e-11  # "critical": grad_inf at rounding level
REL_TOL = 1e-12  # "same f", "equal loss": relative to max(1, |f|) or max(1, L)
NULL_TOL = 1e-12  # "null vector": |Hv| <= NULL_TOL |H| |v|, |H| the spectral norm. Rounding is
# ~1e-17; the deep net's own smallest eigenvalues are ~1e-9 |H|, so 1e-8 would not separate them.
MIN_SAMPLES = 31
"""Fewest samples for which the claims are meaningful (docs/theory.md section 7.3): with T
samples, a critical point of the 32-parameter smaller network at which the back-propagated
error vanishes on every sample solves T + 2 equations, so for T <= 30 such points exist and
make every equal-loss direction critical."""
KINDS = ("paper", "as printed", "corrected")
THEORY = "docs/theory.md section 2"


@dataclass(frozen=True)
class VerifyConfig:
    """The settings of one check: teacher and data seed, hidden activation, sample count."""

    seed: int = 0
    activation: str = "tanh"
    samples: int = 200

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0; got {self.seed!r}")
        if self.activation not in activations.NAMES:
            raise ValueError(
                f"unknown activation {self.activation!r}; expected one of {activations.NAMES}"
            )
        samples = self.samples
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < MIN_SAMPLES:
            raise ValueError(
                f"samples must be an int >= {MIN_SAMPLES} (docs/theory.md section 7.3); "
                f"got {samples!r}"
            )


class NoExampleError(RuntimeError):
    """No teacher seed gave a converged smaller network without dead neurons."""


@dataclass(frozen=True)
class Claim:
    """One checked statement: ``holds`` is what we found, ``expected`` what docs/theory.md
    section 2 predicts; ``kind`` is one of :data:`KINDS`."""

    ref: str
    text: str
    figure: str
    holds: bool
    kind: str = "paper"
    expected: bool = True

    def line(self) -> str:
        """The claim as one report line."""
        verdict = "PASS" if self.holds else "FAIL"
        note = ""
        if self.kind == "as printed":
            note = f"  [theory: expected to {'hold' if self.expected else 'fail'}]"
        if self.holds != self.expected:
            note += "  <-- NOT AS THEORY EXPECTS"
        return f"[{verdict}] {self.ref} ({self.kind}): {self.text}: {self.figure}{note}"


# -- claims -------------------------------------------------------------------------------------


def _critical_figure(ratio: float, grad: float, bound: str = "<=", word: str = "up to") -> str:
    return (
        f"{'max' if bound == '<=' else 'min'} |Hv|/(|H||v|) {ratio:.1e} ({bound} {NULL_TOL:g}), "
        f"grad_inf at step {STEP} {word} {grad:.1e} ({bound} {GRAD_TOL:g})"
    )


def _kept_claims(fig: PointFigures, grad_small: float, prop: str) -> list[Claim]:
    """Def. 4/6, (i) and the equal-loss half of (ii): claims of the paper that hold as printed."""
    K, n_next = fig.K, fig.n_next
    return [
        Claim(
            f"Def. {4 if K == 1 else 6}",
            "the point computes the smaller net's f",
            f"max |df| / max(1, |f|) {fig.f_change:.1e} (<= {REL_TOL:g})",
            fig.f_change <= REL_TOL,
        ),
        Claim(
            f"{prop} (i)",
            "a critical point of the bigger net",
            f"grad_inf {fig.grad:.1e} (smaller net {grad_small:.1e}; <= {GRAD_TOL:g})",
            fig.grad <= GRAD_TOL,
        ),
        Claim(
            f"{prop} (ii)",
            f"equal loss on a {K * n_next}-dim. affine subspace (K n_k+1)",
            f"max rel. loss change {fig.loss_change:.1e} at unit steps (<= {REL_TOL:g})",
            fig.loss_change <= REL_TOL,
        ),
    ]


def _critical_claims(fig: PointFigures, prop: str) -> list[Claim]:
    """(ii) as printed (every equal-loss direction critical) and as corrected (split ratios
    critical, the rest not, K zero eigenvalues, a strict saddle where n_{k+1} >= 2)."""
    K, n_next = fig.K, fig.n_next
    claims = [
        Claim(
            f"{prop} (ii)",
            f"all {K * n_next} equal-loss directions are critical",
            _critical_figure(fig.all_ratio, fig.all_grad),
            fig.all_ratio <= NULL_TOL and fig.all_grad <= GRAD_TOL,
            kind="as printed",
            expected=n_next == 1,
        ),
        Claim(
            f"{prop} (ii)",
            f"the {K}-dim. split-ratio family is critical",
            _critical_figure(fig.split_ratio, fig.split_grad),
            fig.split_ratio <= NULL_TOL and fig.split_grad <= GRAD_TOL,
            kind="corrected",
        ),
    ]
    other = fig.other
    if other.count:
        claims.append(
            Claim(
                f"{prop} (ii)",
                f"the other {other.count} equal-loss directions are not",
                _critical_figure(other.null_ratio, other.grad, ">", "at least"),
                other.null_ratio > NULL_TOL and other.grad > GRAD_TOL,
                kind="corrected",
            )
        )
    neg, zero, pos = fig.counts
    saddle = "a strict saddle with " if n_next > 1 else ""
    claims.append(
        Claim(
            f"{prop} (ii)",
            f"{saddle}>= K = {K} zero eigenvalues (smaller net: {fig.small_zero})",
            f"eigenvalues negative/zero/positive {neg}/{zero}/{pos}",
            zero >= K + fig.small_zero and (neg >= 1 or n_next == 1),
            kind="corrected",
        )
    )
    return claims


def point_claims(fig: PointFigures, grad_small: float) -> list[Claim]:
    """Def. 4/6 and Props. 1/2 (i), (ii) (printed and corrected) from the figures of a point.

    Args:
        fig: the point's figures (:func:`measure_point`).
        grad_small: the smaller network's grad_inf, quoted next to the point's.

    Returns:
        The claims in report order.
    """
    prop = f"Prop. {1 if fig.K == 1 else 2}"
    return _kept_claims(fig, grad_small, prop) + _critical_claims(fig, prop)


def path_claims(fig: PathFigures, layer: int) -> list[Claim]:
    """Sec. 4.1's output shift (Lemma 1) and Prop. 1 (iii) from the figures of
    :func:`~weightsym.experiments.verify_figures.measure_paths` at layer ``layer``."""
    return [
        Claim(
            "Sec. 4.1, Fig. 4",
            "moving w_l, w_m to their mean keeps the loss",
            f"max rel. loss change {fig.shift:.1e} (<= {REL_TOL:g})",
            fig.shift <= REL_TOL,
        ),
        Claim(
            "Prop. 1 (iii)",
            f"any ordering of layer {layer} is reachable at equal loss",
            f"{PATH_ORDERINGS} random orderings, {fig.points} points: max rel. loss change "
            f"{fig.worst:.1e} (<= {REL_TOL:g}); ends on the permuted point: {fig.exact}",
            fig.worst <= REL_TOL and fig.exact,
        ),
    ]


# -- the whole check ----------------------------------------------------------------------------


class ClaimGroup(NamedTuple):
    """The claims checked at one place (a permutation point, or the paths), under a title."""

    title: str
    claims: list[Claim]


@dataclass(frozen=True)
class VerifyReport:
    """Every claim checked, grouped, and the seconds the whole check took."""

    groups: list[ClaimGroup]
    seconds: float

    @property
    def claims(self) -> list[Claim]:
        """All claims, in report order."""
        return [c for g in self.groups for c in g.claims]

    @property
    def as_expected(self) -> bool:
        """Whether every claim came out as docs/theory.md section 2 says."""
        return all(c.holds == c.expected for c in self.claims)

    def summary(self) -> str:
        """The closing tally (preceded by a blank line)."""
        kept = [c for c in self.claims if c.kind != "as printed"]
        printed = [c for c in self.claims if c.kind == "as printed"]
        verdict = f"all as {THEORY} says" if self.as_expected else f"NOT AS {THEORY} SAYS"
        return (
            f"\npaper and corrected claims: {sum(c.holds for c in kept)}/{len(kept)} PASS; "
            f"(ii) as printed: {sum(c.holds for c in printed)}/{len(printed)} hold, expected "
            f"exactly where n_k+1 = 1; {verdict} ({self.seconds:.1f} s)"
        )


def _group(title: str, claims: list[Claim], echo: Callable[[str], None]) -> ClaimGroup:
    echo(f"\n-- {title}")
    for claim in claims:
        echo(claim.line())
    return ClaimGroup(title, claims)


def run_verify(cfg: VerifyConfig, echo: Callable[[str], None] = silent) -> VerifyReport:
    """Fit the smaller network, then check every claim, echoing the report as it goes.

    Args:
        cfg: the settings.
        echo: receives the report line by line: the fit attempts, each group's title and
            claims (:meth:`Claim.line`) and the closing :meth:`VerifyReport.summary`.

    Returns:
        The :class:`VerifyReport`.

    Raises:
        ValueError: a setting of ``cfg`` out of range.
        NoExampleError: none of the :data:`ATTEMPTS` teacher seeds gave a usable fit.
    """
    cfg.validate()
    t0 = time.perf_counter()
    ex = fit_example(cfg.seed, cfg.activation, cfg.samples, echo)
    if ex is None:
        raise NoExampleError(
            f"none of {ATTEMPTS} teacher seeds gave a converged smaller network without dead "
            "neurons; claims (i) need a critical point"
        )
    rng = random.Random(cfg.seed)
    groups = []
    for layer, copies in POINTS:
        title = f"layer {layer}, copies {copies} (n_k+1 = {WIDTHS[layer + 1]})"
        groups.append(
            _group(title, point_claims(measure_point(ex, layer, copies, rng), ex.grad_inf), echo)
        )
    layer = POINTS[0][0]
    groups.append(
        _group(
            f"paths at the first-order point of layer {layer}",
            path_claims(measure_paths(ex, layer, rng), layer),
            echo,
        )
    )
    report = VerifyReport(groups, time.perf_counter() - t0)
    echo(report.summary())
    return report
