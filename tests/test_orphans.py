"""Every simulator dies with aimcflow, and an interrupted or failed run leaves no partial
results.

The kill test runs ``aimcflow run`` up to level 4, waits until the Verilated
``periphery_top`` simulator is running under it, kills aimcflow with SIGKILL (no chance to
clean up) and checks that the simulator is gone within seconds
(``aimcflow.cosim.deathsig``) and that ``--out`` was never created (outputs are staged).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from aimcflow.cosim.runner import cache_dir
from aimcflow.flows.cli import main

SIM_START_TIMEOUT_S = 900  # a cold Verilator build of periphery_top on a loaded machine


def _simulators(proc: psutil.Process) -> list[psutil.Process]:
    """Descendants of ``proc`` running a Verilated binary from the build cache."""
    builds = str(cache_dir() / "verilator")
    found = []
    for p in proc.children(recursive=True):
        try:
            if p.exe().startswith(builds):
                found.append(p)
        except psutil.Error:  # exited meanwhile, or a process we may not inspect
            continue
    return found


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.cosim
def test_killed_run_leaves_no_simulator(tmp_path):
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "aimcflow.flows.cli", "run", "--levels", "analog-rtl"]
    cmd += ["--drift", "1h", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        me = psutil.Process(proc.pid)
        deadline = time.monotonic() + SIM_START_TIMEOUT_S
        sims: list[psutil.Process] = []
        while not sims:
            assert proc.poll() is None, f"aimcflow run ended ({proc.returncode}) before level 4"
            assert time.monotonic() < deadline, "no simulator started within the time limit"
            time.sleep(0.2)
            sims = _simulators(me)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        gone_by = time.monotonic() + 10
        while any(_running(s) for s in sims) and time.monotonic() < gone_by:
            time.sleep(0.1)
        left = [s.pid for s in sims if _running(s)]
        assert not left, f"simulator(s) {left} still running after aimcflow was killed"
        assert not out.exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_interrupted_level4_leaves_nothing(tmp_path, monkeypatch, capsys):
    """Ctrl-C (or SIGTERM, which aimcflow turns into the same unwinding) during level 4:
    the chip program level 3 already wrote is not left without results.json."""
    from aimcflow.flows import levels

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(levels, "level4", interrupted)
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--images", "20", "--repeats", "1", "--drift", "1h", "--out", "o"]
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert not [p.name for p in tmp_path.iterdir()]  # no staging directory either


def test_force_replaces_outputs_of_an_older_run(tmp_path, monkeypatch, capsys):
    """--force into an old run directory: the old chip program does not stay beside new
    results of a run that made none; the user's own files stay."""
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "o"
    old.mkdir()
    (old / "results.json").write_text("{}")
    (old / "chip_program.npz").write_text("old")
    (old / "notes.txt").write_text("mine")
    argv = ["run", "--config", "ideal", "--images", "5", "--levels", "float", "--out", "o"]
    assert main([*argv, "--force"]) == 0
    assert sorted(p.name for p in old.iterdir()) == ["notes.txt", "report.html", "results.json"]
    assert json.loads((old / "results.json").read_text())["images"] == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_sweep_leaves_no_directory(tmp_path, monkeypatch):
    """A sweep whose points fail (here: the cluster breaks) leaves no --out directory."""
    from aimcflow.flows import sweep as sweep_lib
    from aimcflow.flows.commands import sweep as sweep_cmd

    class _Client:
        def scheduler_info(self):
            return {"workers": {"w0": {}}}

    def broken(*args, **kwargs):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(sweep_cmd, "_connect", lambda args, stack: _Client())
    monkeypatch.setattr(sweep_lib, "run_points", broken)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="worker lost"):  # a bug, not bad input: re-raised
        main(["sweep", "--set", "adc.bits=4,6", "--images", "5", "--out", "o"])
    assert not [p.name for p in tmp_path.iterdir()]
