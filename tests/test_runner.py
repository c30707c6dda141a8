"""The Dask sweep runner (experiments/runner.py) with real Dask components, on 127.0.0.1 only.

Local clusters, a scheduler and workers started with Dask's own command-line tools, a worker
and a driver killed with SIGKILL mid-sweep. Results are compared bitwise (torch.equal, float
==): the runner must not change a number.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from distributed import Client

import weightsym
from weightsym import MLP, Loss, find_path
from weightsym.experiments.runner import (
    SCHEDULER_ENV,
    Dep,
    InvalidSweepError,
    StepFiles,
    SweepError,
    Task,
    plan,
    run_sweep,
)

HERE = Path(__file__).resolve().parent
DASK = Path(sys.executable).with_name("dask")
ENV = os.environ | {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
PATH_STEPS = 3
STARTUP = 90.0  # seconds allowed for a Dask process to come up on a busy 2-core machine


# -- task functions (module level: workers import them from this file) ---------------------------
def tiny_path(seed: int, folder: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A permutation path of a 2-3-1 softplus student started at its teacher, in ``folder``."""
    net = MLP([2, 3, 1], "softplus")
    theta = net.init(seed=seed)
    X = torch.randn(20, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    loss = Loss(net, X, net.forward(theta, X), kind="mse")
    path = find_path(loss, theta, 1, (0, 1), steps=PATH_STEPS, max_iter=5, out=folder)
    return path.loss, path.thetas[-1]


def stepper(folder: str, n: int, delay: float) -> float:
    """``n`` steps of x <- sin(1.7 x + i), one checkpoint file per step, resumed from the files.

    Logs each step it computes (``pid step`` in computed.log) after its checkpoint is written,
    and at its start its pid (pid) and the steps it found on disk (``pid found`` in
    starts.log), so a test can see who computed what.
    """
    root = Path(folder)
    (root / "steps").mkdir(parents=True, exist_ok=True)
    (root / "pid").write_text(str(os.getpid()))
    with open(root / "starts.log", "a") as f:
        f.write(f"{os.getpid()} {StepFiles(root)()}\n")
    x = 0.25
    for i in range(n):
        step = root / "steps" / f"step_{i:06d}.json"
        if step.exists():
            x = json.loads(step.read_text())["x"]
            continue
        x = math.sin(1.7 * x + i)
        tmp = step.with_suffix(".tmp")
        tmp.write_text(json.dumps({"x": x}))
        os.replace(tmp, step)
        with open(root / "computed.log", "a") as f:
            f.write(f"{os.getpid()} {i}\n")
        time.sleep(delay)
    return x


def offset(value: torch.Tensor, by: float) -> torch.Tensor:
    return value + by


def write_marker(folder: str) -> str:
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / "marker").write_text("here")
    return "written"


def read_marker(folder: str) -> str:
    return (Path(folder) / "marker").read_text()


def torch_threads() -> int:
    return torch.get_num_threads()


def fail(message: str) -> None:
    raise ValueError(message)


# -- helpers and fixtures ------------------------------------------------------------------------
def path_tasks(root: Path, seeds=(0, 1)) -> list[Task]:
    return [
        Task(
            f"seed{s}",
            tiny_path,
            (s, str(root / f"seed{s}")),
            steps=PATH_STEPS + 2,  # d_0 .. d_S and d = 0 are checkpointed
            count=StepFiles(root / f"seed{s}"),
        )
        for s in seeds
    ]


def assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        for x, y in zip(a[key], b[key]):
            assert torch.equal(x, y), key


def computed(folder: Path, log: str = "computed.log") -> list[tuple[int, int]]:
    """(pid, step) per line of a stepper's log."""
    log = folder / log
    lines = log.read_text().split() if log.exists() else []
    return [(int(p), int(i)) for p, i in zip(lines[::2], lines[1::2])]


def wait_for(condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stop_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group this test started (the process and its children)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group has already gone
        pass
    proc.wait(timeout=30)


def scheduler_address(file: Path) -> str:
    """The address in a scheduler file, once it has been written in full."""
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        return json.loads(file.read_text())["address"]
    return ""


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """A scheduler and two workers started with ``dask scheduler`` / ``dask worker``."""
    tmp = tmp_path_factory.mktemp("cli")
    file = tmp / "scheduler.json"
    procs, logs = [], []

    def start(*args: str) -> None:
        logs.append(open(tmp / f"log{len(logs)}.txt", "w"))
        procs.append(
            subprocess.Popen(
                [str(DASK), *args], env=ENV, stdout=logs[-1], stderr=logs[-1], cwd=tmp,
                start_new_session=True,
            )
        )  # fmt: skip

    local = ("--host", "127.0.0.1", "--no-dashboard")
    try:
        start("scheduler", *local, "--port", "0", "--scheduler-file", str(file))
        wait_for(lambda: scheduler_address(file), STARTUP, "the scheduler file")
        address = scheduler_address(file)
        for _ in range(2):
            start("worker", address, *local, "--nthreads", "1")
        with Client(address, timeout=STARTUP) as client:
            client.wait_for_workers(2, timeout=STARTUP)
        yield address
    finally:
        for proc in reversed(procs):
            stop_group(proc)
        for log in logs:
            log.close()


# -- tests ---------------------------------------------------------------------------------------
def test_two_workers_one_worker_and_serial_give_identical_paths(tmp_path, capfd):
    serial = {t.key: t.fn(*t.args) for t in path_tasks(tmp_path / "serial")}
    one = run_sweep(path_tasks(tmp_path / "one"), workers=1, progress=False)
    assert_same(one, serial)
    two = run_sweep(path_tasks(tmp_path / "two"), workers=2, progress=True)
    assert_same(two, serial)
    err = capfd.readouterr().err
    assert "2 local worker processes; dashboard" in err and "10/10" in err


def test_dependencies_get_their_results_and_wait(cli_cluster, tmp_path):
    tasks = [
        Task("b", offset, (Dep("a"), 1.0)),
        Task("a", offset, (torch.arange(3, dtype=torch.float64), 0.5)),
        Task("nested", sum, ([Dep("a"), Dep("b")],)),
        Task("reader", read_marker, (str(tmp_path),), after=("writer",)),
        Task("writer", write_marker, (str(tmp_path),)),
    ]
    out = run_sweep(tasks, scheduler=cli_cluster, progress=False)
    assert list(out) == ["b", "a", "nested", "reader", "writer"]
    assert torch.equal(out["a"], torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64))
    assert torch.equal(out["b"], out["a"] + 1.0)
    assert torch.equal(out["nested"], out["a"] + out["b"])
    assert out["reader"] == "here"


def test_cli_scheduler_and_workers_give_the_serial_results(cli_cluster, tmp_path, monkeypatch):
    serial = {t.key: t.fn(*t.args) for t in path_tasks(tmp_path / "serial")}
    remote = run_sweep(path_tasks(tmp_path / "remote"), scheduler=cli_cluster, progress=False)
    assert_same(remote, serial)
    monkeypatch.setenv(SCHEDULER_ENV, cli_cluster)  # the variable Dask users set
    again = run_sweep(path_tasks(tmp_path / "env"), progress=False)
    assert_same(again, serial)


def test_torch_threads_per_task(cli_cluster):
    tasks = [Task("threads", torch_threads)]
    assert run_sweep(tasks, scheduler=cli_cluster, progress=False) == {"threads": 1}
    two = run_sweep(tasks, scheduler=cli_cluster, progress=False, threads_per_task=2)
    assert two == {"threads": 2}


def test_failing_task_is_named_and_other_results_kept(cli_cluster):
    tasks = [
        Task("good", offset, (torch.ones(2), 1.0)),
        Task("H25-seed0-paper-nmse", fail, ("no minimum here",)),
        Task("downstream", offset, (Dep("H25-seed0-paper-nmse"), 1.0)),
    ]
    with pytest.raises(SweepError) as info:
        run_sweep(tasks, scheduler=cli_cluster, progress=False, retries=0)
    err = info.value
    assert "H25-seed0-paper-nmse: ValueError: no minimum here" in str(err)
    assert err.failures["downstream"] == "not run: dependency 'H25-seed0-paper-nmse' failed"
    assert list(err.results) == ["good"] and torch.equal(err.results["good"], torch.full((2,), 2.0))


def test_worker_with_another_version_is_refused_before_any_work(cli_cluster, tmp_path):
    def set_version(value):
        import weightsym

        weightsym.__version__ = value

    with Client(cli_cluster, timeout=STARTUP) as client:
        client.run(set_version, "0.0.0-other")
        try:
            with pytest.raises(SweepError, match=r"weightsym 0\.0\.0-other") as info:
                run_sweep(
                    [Task("w", write_marker, (str(tmp_path),))],
                    scheduler=cli_cluster,
                    progress=False,
                )
        finally:
            client.run(set_version, weightsym.__version__)
    assert info.value.failures == {} and str(info.value).count("tcp://127.0.0.1:") == 2
    assert not (tmp_path / "marker").exists()


def test_unreachable_scheduler_fails_within_the_timeout(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    tasks = [Task("t", torch_threads)]
    t0 = time.perf_counter()
    with pytest.raises(
        SweepError, match=f"cannot reach the Dask scheduler at '{address}' within 2 s"
    ):
        run_sweep(tasks, scheduler=address, connect_timeout=2.0, progress=False)
    elapsed = time.perf_counter() - t0
    assert 1.5 <= elapsed <= 2.0 + 3.0, elapsed  # the timeout, plus 3 s of slack
    monkeypatch.setenv(SCHEDULER_ENV, address)
    with pytest.raises(SweepError, match=address):
        run_sweep(tasks, connect_timeout=1.0, progress=False)


def test_worker_killed_mid_task_resumes_from_its_checkpoint(cli_cluster, tmp_path):
    n = 12
    expected = stepper(str(tmp_path / "reference"), n, 0.0)
    folder = tmp_path / "killed"
    killed: dict[str, int] = {}

    def killer() -> None:
        try:
            wait_for(lambda: StepFiles(folder)() >= 3, STARTUP, "three steps")
            killed["pid"] = int((folder / "pid").read_text())
            os.kill(killed["pid"], signal.SIGKILL)
            wait_for(lambda: gone(killed["pid"]), 10, "the killed worker to go")
        except BaseException as exc:  # reported by the test below
            killed["error"] = exc

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    tasks = [
        Task("killed", stepper, (str(folder), n, 0.3), steps=n, count=StepFiles(folder)),
        Task("other", stepper, (str(tmp_path / "other"), n, 0.0), steps=n),
    ]
    out = run_sweep(tasks, scheduler=cli_cluster, progress=False)  # its nannies restart workers
    thread.join(timeout=10)
    assert "error" not in killed, killed.get("error")
    assert out == {"killed": expected, "other": expected}
    (first, found_first), (second, found) = computed(folder, "starts.log")
    assert (first, found_first) == (killed["pid"], 0) and second != first
    # The retry found the killed worker's checkpoints and computed only the steps after them
    # (a kill between a step's checkpoint and its log line loses that line).
    assert found >= 3
    by_first = [i for p, i in computed(folder) if p == first]
    assert by_first in (list(range(found)), list(range(found - 1)))
    assert [i for p, i in computed(folder) if p == second] == list(range(found, n))


DRIVER = """
import json, os, sys
from test_runner import StepFiles, Task, run_sweep, stepper
if __name__ == "__main__":
    root, n = sys.argv[1], 12
    tasks = [Task(f"t{i}", stepper, (os.path.join(root, f"t{i}"), n, 0.3), steps=n,
                  count=StepFiles(os.path.join(root, f"t{i}"))) for i in range(2)]
    out = run_sweep(tasks, workers=2, progress=False)
    with open(os.path.join(root, "results.json"), "w") as f:
        json.dump(out, f)
"""


def test_driver_killed_and_restarted_gives_the_same_results(tmp_path):
    n = 12
    expected = stepper(str(tmp_path / "reference"), n, 0.0)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    root = tmp_path / "sweep"
    root.mkdir()
    command = [sys.executable, str(script), str(root)]
    first = subprocess.Popen(command, env=ENV, start_new_session=True)
    try:
        wait_for(lambda: StepFiles(root, "t*/steps/step_*.json")() >= 3, STARTUP, "three steps")
        children = psutil.Process(first.pid).children(recursive=True)
        assert children  # the local cluster's worker processes
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"worker processes left after the driver died: {alive}"
    finally:
        stop_group(first)
    done = {t: StepFiles(root / t)() for t in ("t0", "t1")}
    assert sum(done.values()) < 2 * n and not (root / "results.json").exists()
    before = {t: len(computed(root / t)) for t in done}
    subprocess.run(command, env=ENV, check=True, timeout=300)
    results = json.loads((root / "results.json").read_text())
    assert results == {"t0": expected, "t1": expected}
    for t in done:  # the restarted sweep computed only the steps that were not on disk
        assert [i for _, i in computed(root / t)[before[t] :]] == list(range(done[t], n))


def test_plan_merges_duplicates_and_refuses_bad_sweeps():
    a = Task("a", offset, (torch.ones(2), 1.0))
    assert plan([a, Task("a", offset, (torch.ones(2), 1.0))]) == [a]
    with pytest.raises(InvalidSweepError, match="'a' names two different tasks"):
        plan([a, Task("a", offset, (torch.ones(2), 2.0))])
    with pytest.raises(InvalidSweepError, match="depends on unknown task 'z'"):
        plan([Task("b", offset, (Dep("z"), 1.0))])
    with pytest.raises(InvalidSweepError, match="dependency cycle: x -> y -> x"):
        plan([Task("x", offset, (Dep("y"), 1.0)), Task("y", offset, (Dep("x"), 1.0))])
    order = plan([Task("late", offset, (Dep("early"), 1.0)), Task("early", torch_threads)])
    assert [t.key for t in order] == ["early", "late"]
    with pytest.raises(InvalidSweepError, match="steps must be an int >= 1"):
        Task("s", torch_threads, steps=0)
    with pytest.raises(InvalidSweepError, match="key must be a non-empty str"):
        Task("", torch_threads)
    with pytest.raises(InvalidSweepError, match="args must be a tuple"):
        Task("t", offset, [1, 2])
    with pytest.raises(InvalidSweepError, match="threads_per_task must be an int >= 1"):
        run_sweep([a], threads_per_task=0)
    with pytest.raises(InvalidSweepError, match="connect_timeout must be"):
        run_sweep([a], connect_timeout=-1)
    assert run_sweep([]) == {}


def test_toy_command_on_a_running_scheduler_gives_the_local_table(cli_cluster, tmp_path):
    """``weightsym toy --scheduler ADDRESS`` (workers started with Dask's own commands) and
    ``--workers 1`` locally: the same summary table, cell for cell (wall times aside)."""
    from click.testing import CliRunner

    from weightsym.cli import main
    from weightsym.io import read_csv

    args = ["toy", "--pairs", "0-1,2-3", "--steps", "3", "--samples", "100", "--max-iter", "8",
            "--activations", "softplus", "--no-progress"]  # fmt: skip
    tables = []
    for where, extra in (("remote", ["--scheduler", cli_cluster]), ("local", ["--workers", "1"])):
        result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / where), *extra])
        assert result.exit_code == 0, result.output
        rows = read_csv(tmp_path / where / "summary.csv")
        tables.append([{k: v for k, v in r.items() if k != "wall_time"} for r in rows])
    assert tables[0] == tables[1] and len(tables[0]) == 4
