"""`weightsym verify`: check each claim of SPEC section 2 on a network with three hidden layers.

The network is 3-3-3-1-2 (hidden widths 3, 3, 1): layer 1 feeds n_2 = 3 neurons and layer 2
feeds n_3 = 1, so the paper's Props. 1 (ii) and 2 (ii) are expected to fail as printed in layer
1 and to hold in layer 2 (SPEC section 2). The smaller network is fitted by Newton's method to
the outputs of a random teacher of the same shape plus Gaussian noise (std :data:`NOISE`),
started at the teacher: a finite minimum with nonzero loss. (An under-parameterized student of a
larger teacher, the other natural choice, usually has no finite minimizer: SPEC section 4.) A
teacher seed whose fit does not reach grad_inf <= :data:`TOL` within :data:`MAX_ITER` steps, or
that has a dead neuron (g' = 0 on every input, as a ReLU can: f then ignores part of the net),
is skipped for the next one.

ReLU (``--activation relu``) is not smooth and the Hessian claims may come out otherwise: the
smaller network has extra zero eigenvalues (one rescaling symmetry per neuron), and g' is
piecewise constant, so where the copies are active only inside one linear region of the layers
above, the back-propagated errors at layer k+1 span a single direction and every equal-loss
direction is critical, as if n_{k+1} = 1. The command then says NOT AS SPEC SAYS and exits 1
(seen with ``--activation relu --seed 1``).

Each claim is printed as ``[PASS]`` (it holds; the figure reached follows) or ``[FAIL]``, tagged
``paper`` (a claim of the paper that SPEC keeps), ``as printed`` (Props. 1/2 (ii) in the paper's
words: a subspace *of critical points*) or ``corrected`` (SPEC's replacement). The exit code is
0 when every claim comes out as SPEC says (the paper's kept claims and the corrections hold; the
printed (ii) holds exactly where n_{k+1} = 1), else 1.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import click
import torch
from torch import Tensor

import weightsym as ws
from weightsym import activations

WIDTHS = (3, 3, 3, 1, 2)
POINTS = ((1, {0: 2}), (1, {0: 2, 2: 2}), (2, {0: 2}), (2, {1: 3}))
"""(layer, copies) of the permutation points checked: first and second order, n_{k+1} = 3 and 1."""
SCALE = 2.0  # teacher weights N(0, SCALE^2 / fan-in)
NOISE = 1e-4  # target noise: loss ~1e-8, far above rounding, and Newton converges in few steps
ATTEMPTS = 5  # teacher seeds tried
MAX_ITER = 100  # Newton iterations per teacher seed
TOL = 1e-14  # the smaller net's grad_inf (SPEC section 1): to rounding, since at grad_inf 1e-12
# the split-ratio directions already show |Hv| ~ 1e-13 |H| |v|, too close to NULL_TOL
GRAD_TOL = 1e-11  # "critical": grad_inf at rounding level
REL_TOL = 1e-12  # "same f", "equal loss": relative to max(1, |f|) or max(1, L)
NULL_TOL = 1e-12  # "null vector": |Hv| <= NULL_TOL |H| |v|, |H| the spectral norm. Rounding is
# ~1e-17; the deep net's own smallest eigenvalues are ~1e-9 |H|, so 1e-8 would not separate them.
ZERO_RTOL = 1e-12  # "zero eigenvalue": |lambda| <= ZERO_RTOL |H|
STEP = 0.5  # step along a unit direction at which the gradient is measured
PATH_ORDERINGS = 3  # random target orderings for Prop. 1 (iii)

KINDS = ("paper", "as printed", "corrected")


@dataclass
class Claim:
    """One checked statement: ``holds`` is what we found, ``expected`` what SPEC predicts."""

    ref: str
    text: str
    figure: str
    holds: bool
    kind: str = "paper"  # one of KINDS
    expected: bool = True

    def line(self) -> str:
        verdict = "PASS" if self.holds else "FAIL"
        note = ""
        if self.kind == "as printed":
            note = f"  [SPEC: expected to {'hold' if self.expected else 'fail'}]"
        if self.holds != self.expected:
            note += "  <-- NOT AS SPEC EXPECTS"
        return f"[{verdict}] {self.ref} ({self.kind}): {self.text}: {self.figure}{note}"


@dataclass
class Example:
    """The fitted smaller network and its data."""

    net: ws.MLP
    theta: Tensor
    X: Tensor
    Y: Tensor
    grad_inf: float

    def loss(self, net: ws.MLP) -> ws.Loss:
        return ws.Loss(net, self.X, self.Y)


def _dead_neurons(net: ws.MLP, theta: Tensor, X: Tensor) -> int:
    """How many hidden neurons have g' = 0 on every input."""
    pre = net.activations(theta, X)[0][:-1]
    return sum(int((net.act.dg(a) == 0).all(dim=0).sum()) for a in pre)


def fit_example(
    seed: int, activation: str, samples: int, echo: Callable[[str], None] = click.echo
) -> Example | None:
    """Fit the smaller network; None when no teacher seed works (each attempt is echoed)."""
    net = ws.MLP(list(WIDTHS), activation)
    for attempt in range(ATTEMPTS):
        teacher_seed = 1000 * seed + attempt
        gen = torch.Generator().manual_seed(teacher_seed)
        X = torch.randn(samples, WIDTHS[0], dtype=torch.float64, generator=gen)
        teacher = net.init(teacher_seed, scale=SCALE)
        noise = torch.randn(samples, WIDTHS[-1], dtype=torch.float64, generator=gen)
        Y = net(teacher, X) + NOISE * noise
        res = ws.minimize(ws.Loss(net, X, Y), teacher, method="newton", tol=TOL, max_iter=MAX_ITER)
        dead = _dead_neurons(net, res.x, X)
        rejected = f"; {dead} dead neuron(s), skipped" if dead else ""
        echo(
            f"fit {net} (teacher seed {teacher_seed}): {res.message}; loss {res.fun:.3e}{rejected}"
        )
        if res.success and not dead:
            return Example(net, res.x, X, Y, res.grad_inf)
    return None


# -- measurements -------------------------------------------------------------------------------


def _null_ratio(H: Tensor, V: Tensor, smallest: bool = False) -> float:
    """|Hv| / (|H||v|): the largest over the columns of V, or (``smallest``) the smallest over
    all of span V; V has orthonormal columns, |H| is the spectral norm."""
    spectral = float(torch.linalg.matrix_norm(H, ord=2))
    if smallest:
        return float(torch.linalg.svdvals(H @ V).min()) / spectral
    return float(torch.linalg.vector_norm(H @ V, dim=0).max()) / spectral


def _grad_along(loss: ws.Loss, theta: Tensor, V: Tensor, smallest: bool = False) -> float:
    """grad_inf at theta + STEP v, the largest (or smallest) over the columns v of V."""
    values = [loss.grad_inf(theta + STEP * v) for v in V.T]
    return min(values) if smallest else max(values)


def _loss_change(loss: ws.Loss, theta: Tensor, points: Tensor) -> float:
    """max |L(p) - L(theta)| / max(1, L(theta)) over the rows p of ``points``."""
    L0 = loss(theta)
    return max(abs(loss(p) - L0) for p in points) / max(1.0, L0)


def _unit_steps(E: Tensor, rng: random.Random, count: int) -> Tensor:
    """``count`` random unit vectors of span E (orthonormal columns), as rows."""
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    coef = torch.randn(count, E.shape[1], dtype=E.dtype, generator=gen)
    return (coef / coef.norm(dim=1, keepdim=True)) @ E.T


@dataclass
class PointFigures:
    """What :func:`measure_point` found at one permutation point."""

    K: int
    n_next: int
    f_change: float
    grad: float
    loss_change: float
    all_ratio: float
    all_grad: float
    split_ratio: float
    split_grad: float
    other: tuple[int, float, float]  # (directions, min |Hv|/(|H||v|), min grad_inf); 0 if none
    counts: tuple[int, int, int]
    small_zero: int


def measure_point(
    ex: Example, layer: int, copies: dict[int, int], rng: random.Random
) -> PointFigures:
    """The figures behind Def. 4/6 and Props. 1/2 (i), (ii) at the point of ``copies``."""
    net, theta, groups = ws.higher_order_point(ex.net, ex.theta, layer, copies)
    loss = ex.loss(net)
    E = ws.equal_loss_directions(net, theta, layer, groups)
    C = ws.critical_directions(net, theta, layer, groups)
    N = ws.noncritical_directions(net, theta, layer, groups)
    H = loss.hessian(theta)
    f_small = ex.net(ex.theta, ex.X)
    f_change = float((net(theta, ex.X) - f_small).abs().max()) / max(
        1.0, float(f_small.abs().max())
    )
    other = (0, 0.0, 0.0)
    if N.shape[1]:
        other = (N.shape[1], _null_ratio(H, N, True), _grad_along(loss, theta, N, True))
    return PointFigures(
        K=sum(c - 1 for c in copies.values()),
        n_next=net.widths[layer + 1],
        f_change=f_change,
        grad=loss.grad_inf(theta),
        loss_change=_loss_change(loss, theta, theta + _unit_steps(E, rng, 6)),
        all_ratio=_null_ratio(H, E),
        all_grad=_grad_along(loss, theta, E),
        split_ratio=_null_ratio(H, C),
        split_grad=_grad_along(loss, theta, C),
        other=other,
        counts=tuple(ws.saddle_index(loss, theta, rtol=ZERO_RTOL)),
        small_zero=ws.saddle_index(ex.loss(ex.net), ex.theta, rtol=ZERO_RTOL).zero,
    )


# -- claims -------------------------------------------------------------------------------------


def _critical_figure(ratio: float, grad: float, bound: str = "<=", word: str = "up to") -> str:
    return (
        f"{'max' if bound == '<=' else 'min'} |Hv|/(|H||v|) {ratio:.1e} ({bound} {NULL_TOL:g}), "
        f"grad_inf at step {STEP} {word} {grad:.1e} ({bound} {GRAD_TOL:g})"
    )


def point_claims(fig: PointFigures, grad_small: float) -> list[Claim]:
    """Def. 4/6 and Props. 1/2 (i), (ii) (printed and corrected) from the figures of a point."""
    K, n_next = fig.K, fig.n_next
    prop = f"Prop. {1 if K == 1 else 2}"
    neg, zero, pos = fig.counts
    claims = [
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
    count, ratio, grad = fig.other
    if count:
        claims.append(
            Claim(
                f"{prop} (ii)",
                f"the other {count} equal-loss directions are not",
                _critical_figure(ratio, grad, ">", "at least"),
                ratio > NULL_TOL and grad > GRAD_TOL,
                kind="corrected",
            )
        )
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


def path_claims(ex: Example, layer: int, rng: random.Random) -> list[Claim]:
    """Sec. 4.1's output shift and Prop. 1 (iii)'s constant-loss path at a first-order point."""
    net, point, (l, m) = ws.permutation_point(ex.net, ex.theta, layer, 0)
    loss = ex.loss(net)
    E = ws.equal_loss_directions(net, point, layer, [(l, m)])
    start = point + _unit_steps(E, rng, 1)[0]  # w_l != w_m, as at t = 1/4
    shift = _loss_change(loss, start, ws.output_shift(net, start, layer, l, m))
    n, worst, exact, points = net.widths[layer], 0.0, True, 0
    for _ in range(PATH_ORDERINGS):
        perm = rng.sample(range(n), n)
        path = ws.equal_loss_permutation_path(net, start, layer, (l, m), perm)
        worst = max(worst, _loss_change(loss, start, path))
        exact &= torch.equal(path[-1], ws.permute(net, start, layer, perm))
        points += path.shape[0]
    return [
        Claim(
            "Sec. 4.1, Fig. 4",
            "moving w_l, w_m to their mean keeps the loss",
            f"max rel. loss change {shift:.1e} (<= {REL_TOL:g})",
            shift <= REL_TOL,
        ),
        Claim(
            "Prop. 1 (iii)",
            f"any ordering of layer {layer} is reachable at equal loss",
            f"{PATH_ORDERINGS} random orderings, {points} points: max rel. loss change "
            f"{worst:.1e} (<= {REL_TOL:g}); ends on the permuted point: {exact}",
            worst <= REL_TOL and exact,
        ),
    ]


def _echo(claims: list[Claim]) -> list[Claim]:
    for claim in claims:
        click.echo(claim.line())
    return claims


def _summary(claims: list[Claim], seconds: float) -> bool:
    """Print the tally; True when every claim came out as SPEC says."""
    kept = [c for c in claims if c.kind != "as printed"]
    printed = [c for c in claims if c.kind == "as printed"]
    as_expected = all(c.holds == c.expected for c in claims)
    click.echo(
        f"\npaper and corrected claims: {sum(c.holds for c in kept)}/{len(kept)} PASS; "
        f"(ii) as printed: {sum(c.holds for c in printed)}/{len(printed)} hold, expected exactly "
        f"where n_k+1 = 1; {'all as SPEC section 2 says' if as_expected else 'NOT AS SPEC SAYS'} "
        f"({seconds:.1f} s)"
    )
    return as_expected


@click.command("verify")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of teacher and data.",
)
@click.option(
    "--activation",
    type=click.Choice(activations.NAMES),
    default="tanh",
    show_default=True,
    help="Hidden activation (a smooth one for the Hessian claims).",
)
@click.option(
    "--samples",
    type=click.IntRange(min=10),
    default=200,
    show_default=True,
    help="Number of training inputs.",
)
def cmd(seed: int, activation: str, samples: int) -> None:
    """Check every claim of SPEC section 2 (Defs. 4, 6 and Props. 1, 2 of the paper, as printed
    and as corrected) on a 3-3-3-1-2 network, printing the figure each one reached."""
    t0 = time.perf_counter()
    ex = fit_example(seed, activation, samples)
    if ex is None:
        raise click.ClickException(
            f"none of {ATTEMPTS} teacher seeds gave a converged smaller network without dead "
            "neurons; claims (i) need a critical point: try another --seed or --samples"
        )
    rng = random.Random(seed)
    claims: list[Claim] = []
    for layer, copies in POINTS:
        click.echo(f"\n-- layer {layer}, copies {copies} (n_k+1 = {WIDTHS[layer + 1]})")
        claims += _echo(point_claims(measure_point(ex, layer, copies, rng), ex.grad_inf))
    click.echo(f"\n-- paths at the first-order point of layer {POINTS[0][0]}")
    claims += _echo(path_claims(ex, POINTS[0][0], rng))
    if not _summary(claims, time.perf_counter() - t0):
        raise click.exceptions.Exit(1)
