"""reproduce with worker processes: the same report as in one process; workers die with it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

from adabias.experiments import base  # noqa: E402
from adabias.report import run_experiments, runner  # noqa: E402


def _toy():
    return base.Experiment(
        id="test.toy", paper="CKS", title="toy", tiers=base.Tiers(quick=(), medium=(), full=()),
        claims={"test.toy.a": base.ClaimSpec("one is positive", "theory", "1 > 0")},
        measure=lambda settings, context: 1.0,
        decide=lambda settings, x: base.Decision([base.Verdict("test.toy.a", x > 0, {"x": x})]),
        plot=lambda settings, x: {}, tables=lambda settings, x: {})


def test_workers_write_the_same_claims_as_one_process(tmp_path):
    experiments = base.select(["cks.fig1", "cks.table1"]) + [_toy()]
    one = run_experiments(experiments, tmp_path / "one", progress=False, version="0")
    two = run_experiments(experiments, tmp_path / "two", progress=False, version="0", jobs=2)
    assert [r.experiment.id for r in two] == ["cks.fig1", "cks.table1", "test.toy"]
    assert [r.status for r in two] == ["ran"] * 3
    assert [r.claims for r in two] == [r.claims for r in one]
    again = run_experiments(experiments, tmp_path / "two", progress=False, version="0", jobs=2)
    assert [r.status for r in again] == ["cached"] * 3


def test_only_package_experiments_go_to_workers():
    assert runner._in_package(base.REGISTRY["cks.fig1"])
    assert not runner._in_package(_toy())


def test_experiments_sharing_a_memo_are_one_group(tmp_path):
    fig1, table1 = base.REGISTRY["cks.fig1"], base.REGISTRY["cks.table1"]
    shared = [base.dataclasses.replace(e, shares="memo") for e in (fig1, table1)]
    assert [[e.id for e in g] for g in runner._groups(shared, tmp_path)] == [["cks.fig1", "cks.table1"]]
    assert len(runner._groups([fig1, table1], tmp_path)) == 2


def test_jobs_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="jobs must be a positive number"):
        run_experiments([], tmp_path, jobs=0)


def _children(pid: int) -> set[int]:
    try:
        return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_die_with_a_killed_parent(tmp_path):
    command = [sys.executable, "-m", "adabias.cli", "reproduce", "--only", "lwl.slow_ode",
               "cks.thm31", "--out", str(tmp_path / "r"), "--jobs", "2", "--no-progress"]
    parent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while time.monotonic() < deadline and len(workers) < 2:
            workers = {c for c in _children(parent.pid)
                       if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}
            time.sleep(0.5)
        assert len(workers) == 2, "the workers did not start"
        time.sleep(3)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
            time.sleep(0.2)
        alive = [w for w in workers if Path(f"/proc/{w}").exists()
                 and "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2]]
        assert not alive, f"workers {alive} outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
