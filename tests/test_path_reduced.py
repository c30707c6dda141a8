"""Path steps solved in reduced variables (weightsym.paths.reduced): variable projection of the
output layer and whitened first-layer inputs are exact reformulations of a step
(docs/theory.md section 4.4), so a path solved in them ends at the same constrained minima, and
its steps are reported in the original chart (docs/theory.md section 6.6)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from weightsym.cli import main
from weightsym.commands import mnist, path, toy
from weightsym.commands.params import path_config
from weightsym.constraints import ConstrainedLoss, PairConstraint
from weightsym.losses import Loss
from weightsym.model import MLP
from weightsym.paths import PathConfig, find_path
from weightsym.paths.config import RECORDED_IF_SET
from weightsym.paths.reduced import SolverChart
from weightsym.paths.step import solve_step
from weightsym.varpro import VarPro

LOSS_RTOL = 1e-10  # the same constrained minimum: step losses agree to this (relative) ...
LOSS_ATOL = 1e-20  # ... or absolutely, for the zero loss at d_0
TOL = 1e-10  # grad_inf tolerance of every step
VARIANTS = {
    "varpro": {"varpro": True},
    "whiten": {"whiten": True},
    "both": {"varpro": True, "whiten": True},
}


def problem(kind: str = "mse") -> tuple[Loss, torch.Tensor]:
    """A 3-4-3-2 tanh student at its teacher (loss 0), inputs of unequal scales and nonzero
    mean (so that whitening changes the first layer's variables)."""
    gen = torch.Generator().manual_seed(0)
    net = MLP([3, 4, 3, 2], "tanh")
    scale = torch.tensor([3.0, 0.5, 1.0], dtype=torch.float64)
    X = torch.randn(40, 3, generator=gen, dtype=torch.float64) * scale + 1.0
    theta = net.init(3)
    if kind == "nll":
        return Loss(net, X, net.forward(theta, X).argmax(dim=1), "nll"), theta
    return Loss(net, X, net.forward(theta, X), kind), theta


CONFIG = PathConfig(layer=2, steps=3, ratio=0.1, solver="auto", tol=TOL)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """The plain path and the three reformulated ones; ``both`` written to a results folder."""
    loss, theta = problem()
    out = tmp_path_factory.mktemp("reduced") / "both"
    found = {"plain": find_path(loss, theta, CONFIG)}
    for name, flags in VARIANTS.items():
        where = out if name == "both" else None
        found[name] = find_path(loss, theta, CONFIG.replace(**flags), out=where)
    return loss, theta, found, out


def solved(p):
    return p.records[: p.num_solved]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_reduced_paths_end_at_the_plain_losses(paths, name):
    _, _, found, _ = paths
    plain, other = solved(found["plain"]), solved(found[name])
    assert all(r.converged for r in plain) and all(r.converged for r in other)
    assert len(plain) == len(other) == CONFIG.steps + 2
    for a, b in zip(plain, other):
        assert b.loss == pytest.approx(a.loss, rel=LOSS_RTOL, abs=LOSS_ATOL), (a.index, name)
    assert found[name].barrier.loss == pytest.approx(found["plain"].barrier.loss, rel=LOSS_RTOL)
    # the merged pair: the same loss at the permutation point (its split of w may differ)
    pp = found[name].permutation_point_loss
    assert pp == pytest.approx(found["plain"].permutation_point_loss, rel=LOSS_RTOL)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_steps_are_reported_in_the_original_chart(paths, name):
    loss, _, found, _ = paths
    p = found[name]
    con = PairConstraint(loss.net, CONFIG.layer, p.pair, CONFIG.distance)
    for r, theta in zip(solved(p), p.thetas):
        # theta satisfies the constraint of the original network at the step's d
        assert con.measure(theta) == pytest.approx(r.d, rel=1e-12, abs=1e-14)
        assert r.loss == pytest.approx(loss(theta), rel=1e-12, abs=LOSS_ATOL)
        direction = torch.ones(con.c, dtype=theta.dtype)  # used only at d = 0, where g_u = 0
        phi = con.chart(theta, direction)
        g = ConstrainedLoss(loss, con, r.d).value_and_grad(phi)[1]
        assert r.grad_inf == pytest.approx(float(g.abs().max()), rel=1e-6, abs=1e-13)
        assert r.converged == (r.grad_inf <= TOL)
        assert r.ngev > 0


def test_a_reduced_path_resumes_from_its_folder(paths):
    loss, theta, found, out = paths
    header = json.loads((out / "config.json").read_text())
    stored = header["config"]["path"]
    assert stored["varpro"] is True and stored["whiten"] is True
    again = find_path(loss, theta, CONFIG.replace(varpro=True, whiten=True), out=out)
    keep = lambda rs: [(r.loss, r.grad_inf, r.ngev) for r in rs]  # noqa: E731
    assert keep(again.records) == keep(found["both"].records)


@pytest.mark.parametrize("flags", [{"varpro": True}, {"varpro": True, "whiten": True}])
def test_lbfgs_steps_in_reduced_variables(flags):
    """The solver is the configured one: L-BFGS on x, within its budget; the step's outcome is
    measured in the original chart whether or not it converged."""
    loss, theta = problem("nmse")
    con = PairConstraint(loss.net, 2, (1, 2))
    cfg = CONFIG.replace(pair=(1, 2), solver="lbfgs", max_iter=20, **flags)
    phi = con.chart(theta)
    d = 0.5 * con.measure(theta)
    out, step = solve_step(loss, con, d, phi, phi, cfg)  # chart built from prev
    assert step.nit <= 3 * 20 and step.nhvp == 0
    assert step.loss == pytest.approx(loss(con.embed(out, d)), rel=1e-12)
    g = ConstrainedLoss(loss, con, d).value_and_grad(out)[1]
    assert step.grad_inf == pytest.approx(float(g.abs().max()), rel=1e-12)
    assert step.loss < loss(con.embed(phi, d))  # it moved downhill from the start


@pytest.mark.parametrize("name", list(VARIANTS))
def test_step_variables_map_between_the_charts(name):
    flags = VARIANTS[name]
    loss, theta = problem()
    con = PairConstraint(loss.net, 2, (1, 2))
    phi = con.chart(theta)
    d = 0.5 * con.measure(theta)
    step = SolverChart(loss, con, theta, CONFIG.replace(**flags)).at(d)
    x = step.to_x(phi)
    back = step.to_phi(x)
    value = step.objective.value_and_grad(x)[0]
    original = ConstrainedLoss(loss, con, d)
    assert value == pytest.approx(original(back), rel=1e-12)  # the solver's value, in phi
    n_out, c = loss.net.shapes[-1]  # the free output layer: every entry, bias included
    expected = con.num_params - (n_out * c if flags.get("varpro") else 0)
    assert step.objective.num_params == expected == x.numel()
    if flags.get("varpro"):  # the output layer at its least-squares optimum: not above phi
        assert isinstance(step.objective, VarPro) and value <= original(phi) * (1 + 1e-12)
        if not flags.get("whiten"):  # the other coordinates are phi's own
            assert torch.equal(back[step.varpro.keep], phi[step.varpro.keep])
    else:  # whitening alone is a bijection on the chart
        assert float((back - phi).abs().max()) <= 1e-12 * float(phi.abs().max())
    if flags.get("whiten"):  # the solver sees white first-layer inputs
        Xw = step.chart.solver_loss.X
        assert torch.allclose(Xw.T @ Xw / Xw.shape[0], torch.eye(3, dtype=Xw.dtype), atol=1e-12)


def test_bad_settings_raise_clear_errors(tmp_path):
    loss, theta = problem("nll")
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="varpro=True needs a squared-error loss"):
        find_path(loss, theta, CONFIG.replace(varpro=True), out=out)
    assert not out.exists()  # refused before a results folder is made
    mse, theta = problem()
    with pytest.raises(ValueError, match="whiten=True needs a pair in a hidden layer k >= 2"):
        find_path(mse, theta, CONFIG.replace(layer=1, whiten=True))
    with pytest.raises(TypeError, match="varpro must be a bool"):
        PathConfig(varpro=1).validate()
    with pytest.raises(TypeError, match="whiten must be a bool"):
        PathConfig(whiten="yes").validate()
    con = PairConstraint(loss.net, 2, (0, 1))
    with pytest.raises(ValueError, match="varpro"):
        SolverChart(loss, con, theta, CONFIG.replace(varpro=True))


def test_as_dict_omits_defaults_and_round_trips():
    plain = PathConfig(layer=2).as_dict()
    assert not set(RECORDED_IF_SET) & set(plain)  # as older results folders stored it
    assert PathConfig.from_dict(plain) == PathConfig(layer=2)
    for flags in [*VARIANTS.values(), {"varpro": False, "whiten": True}]:
        cfg = PathConfig(layer=2, **flags)
        data = json.loads(json.dumps(cfg.as_dict()))
        assert {k for k, v in flags.items() if v} == {"varpro", "whiten"} & set(data)
        assert PathConfig.from_dict(data) == cfg


@pytest.mark.parametrize("command", [path.cmd, mnist.cmd, toy.cmd], ids=["path", "mnist", "toy"])
def test_cli_flags_parse_with_defaults_from_the_config(command):
    required = ["model.pt", "data.pt"] if command is path.cmd else []
    ctx = command.make_context(command.name, [*required, "--varpro", "--no-whiten"])
    assert ctx.params["varpro"] is True and ctx.params["whiten"] is False
    ctx = command.make_context(command.name, [*required, "--whiten"])
    assert ctx.params["whiten"] is True
    assert ctx.params["varpro"] is PathConfig().varpro
    cfg = path_config(PathConfig(layer=2), dict(ctx.params))
    assert cfg.whiten is True and cfg.varpro is False


def test_cli_refuses_whitening_a_layer_one_pair(tmp_path):
    result = CliRunner().invoke(main, ["toy", "--out", str(tmp_path / "t"), "--whiten"])
    assert result.exit_code != 0
    assert "whiten=True needs a pair in a hidden layer k >= 2" in result.output
