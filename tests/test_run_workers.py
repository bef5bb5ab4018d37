"""``aimcflow run --workers N / --scheduler ADDR``: the images of levels 2-4 on Dask.

* A run on a 2-worker LocalCluster writes the same results as a run in one process, bit
  for bit (every accuracy, the drift table, level 3's per-layer statistics, every level-4
  count and RTL cycle with and without stalls); only timings and where it ran differ.
* A worker killed while it runs level 4 is an error (exit 2, nothing written), and the
  simulator it had started dies with it.
* The Verilated build is made once per machine: concurrent builders of one key wait for
  the first one's lock and reuse its build.
* Shard planning and the level-4 batch rule, and the bounds of ``--workers``.

The level-4 batch size is lowered here (:data:`aimcflow.flows.shards.LEVEL4_BATCH`, read
by the host, which plans the shards and hands the batch size to the workers) so that a
few images make two batches, hence two shards.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time

import psutil
import pytest
from aimcflow.cosim.buildcache import cached_dir
from aimcflow.cosim.runner import cache_dir
from aimcflow.flows import shards
from aimcflow.flows.cli import main
from aimcflow.flows.cluster import MAX_WORKERS
from aimcflow.flows.shards import Shards, level4_batch
from flow_helpers import cli

IMAGES = "16"
BATCH = 8  # 16 images -> 2 level-4 batches -> 2 shards
# what may differ between two runs of the same work: timings and where it ran
VARYING = {
    "wall_s", "sim_wall_s", "verilator_build_s", "verilator_build_cached", "workers",
    "scheduler", "chip_program", "shards",
}  # fmt: skip


def _strip(d):
    if isinstance(d, dict):
        return {k: _strip(v) for k, v in d.items() if k not in VARYING}
    if isinstance(d, list):
        return [_strip(v) for v in d]
    return d


def _run(tmp_path, out: str, *extra: str) -> dict:
    argv = ["run", "--images", IMAGES, "--repeats", "2", "--drift", "1h,1d", "--out", out]
    assert main([*argv, *extra]) == 0
    return json.loads((tmp_path / out / "results.json").read_text())


@pytest.mark.cosim
def test_two_workers_equal_one_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shards, "LEVEL4_BATCH", BATCH)
    one = _run(tmp_path, "one")
    two = _run(tmp_path, "two", "--workers", "2")
    assert one["workers"] == 1 and two["workers"] == 2
    assert two["scheduler"] == "LocalCluster"
    rtl = two["levels"]["analog_rtl"]
    assert rtl["shards"] == 2 and rtl["batch_images"] == BATCH
    assert rtl["mismatches"] == 0 and rtl["stalled"]["mismatches"] == 0
    assert rtl["activations_compared"] > 0 and rtl["stalled"]["rtl_cycles"] > rtl["rtl_cycles"]
    assert _strip(one) == _strip(two)


def _simulators_under(pid: int) -> list[psutil.Process]:
    builds = str(cache_dir() / "verilator")
    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if p.exe().startswith(builds):
                found.append(p)
        except psutil.Error:
            continue
    return found


@pytest.mark.cosim
def test_killed_worker_is_an_error_not_a_shorter_result(tmp_path, monkeypatch, capsys):
    """SIGKILL one worker while its level-4 simulator runs: exit 2 naming the lost images,
    no results, and that worker's simulator gone.  The scheduler is told not to retry
    (``allowed_failures=0``, as ``--workers`` sets it) so the test does not wait for the
    retries."""
    from distributed import Client, LocalCluster

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shards, "LEVEL4_BATCH", BATCH)
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0", "allowed_failures": 0},
    ) as cluster, Client(cluster, set_as_default=False) as client:  # fmt: skip
        pids = list(client.run(os.getpid).values())
        killed: dict = {}

        def killer():
            deadline = time.monotonic() + 900  # a cold build on a loaded machine
            while time.monotonic() < deadline and not killed:
                for pid in pids:
                    sims = _simulators_under(pid)
                    if sims:
                        killed["pid"], killed["sims"] = pid, sims
                        os.kill(pid, signal.SIGKILL)
                        return
                time.sleep(0.2)

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        argv = ["run", "--images", IMAGES, "--repeats", "1", "--drift", "1h",
                "--scheduler", cluster.scheduler_address, "--out", "o"]  # fmt: skip
        rc = main(argv)
        t.join(timeout=5)
    err = capsys.readouterr().err
    assert killed, "no level-4 simulator was seen under a worker"
    assert rc == 2, err
    assert "worker died" in err and "level 4" in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()
    gone_by = time.monotonic() + 10
    while time.monotonic() < gone_by and any(s.is_running() for s in killed["sims"]):
        time.sleep(0.1)
    alive = []
    for s in killed["sims"]:
        try:
            if s.is_running() and s.status() != psutil.STATUS_ZOMBIE:
                alive.append(s.pid)
        except psutil.NoSuchProcess:
            pass
    assert not alive, f"simulator(s) {alive} outlived their killed worker"


def _fill_slowly(bdir, counter):
    with open(counter, "a") as fh:  # one line per fill: the build must run once
        fh.write("fill\n")
    time.sleep(1.0)
    (bdir / "model").write_text("built")
    return "ok"


def _build_once(cache: str, counter: str, q) -> None:
    os.environ["AIMCFLOW_CACHE"] = cache
    d, cached = cached_dir("verilator", "probe-key", lambda b: _fill_slowly(b, counter))
    q.put((str(d), cached, (d / "model").read_text()))


def test_build_cache_builds_once_for_concurrent_workers(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    counter = tmp_path / "fills"
    procs = [
        ctx.Process(target=_build_once, args=(str(tmp_path / "c"), str(counter), q))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    got = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert counter.read_text() == "fill\n"
    assert sorted(c for _, c, _ in got) == [False, True, True]
    assert {(d, m) for d, _, m in got} == {(got[0][0], "built")}


@pytest.mark.parametrize(
    ("n", "batch"), [(1, 1), (64, 64), (65, 33), (360, 60), (1797, 62)]
)  # fmt: skip
def test_level4_batch(n, batch):
    assert level4_batch(n) == batch
    assert batch <= shards.LEVEL4_BATCH
    assert -(-n // batch) == -(-n // shards.LEVEL4_BATCH)  # the fewest batches


@pytest.mark.parametrize(("n", "workers"), [(360, 2), (360, 4), (360, 16), (10, 3), (65, 2)])
def test_shards_are_whole_batches_covering_every_image(n, workers):
    s = Shards.plan(n, None, workers)
    b = level4_batch(n)
    assert s.bounds[0][0] == 0 and s.bounds[-1][1] == n
    assert all(a < c for a, c in s.bounds)
    assert all(p[1] == q[0] for p, q in zip(s.bounds, s.bounds[1:], strict=False))
    assert all(a % b == 0 for a, _ in s.bounds)
    assert len(s.bounds) == min(workers, -(-n // b))


@pytest.mark.parametrize("bad", ["0", str(MAX_WORKERS + 1), "x"])
def test_workers_out_of_bounds_exit_2(tmp_path, monkeypatch, capsys, bad):
    monkeypatch.chdir(tmp_path)
    assert cli("run", "--images", "5", "--workers", bad, "--out", "o") == 2
    err = capsys.readouterr().err
    assert "--workers" in err and (f"1..{MAX_WORKERS}" in err or "not an integer" in err), err
    assert not (tmp_path / "o").exists()


def test_workers_and_scheduler_exclude_each_other(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--images", "5", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]
    assert cli(*argv, "--out", "o") == 2
    assert "give one of them" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.cosim
def test_stalled_run_after_the_first_equals_it_run_alone():
    """``then_stalls``: the stalled run that follows in the same simulator (reusing the
    first run's golden reference) costs the cycles it costs in a simulator of its own,
    and matches level 3 the same way (stalls are reseeded per batch)."""
    import numpy as np
    from aimcflow.cosim.network import run_level4
    from aimcflow.models.config import load_config
    from aimcflow.models.nn.compiler import compile_network
    from aimcflow.models.nn.convert import convert
    from aimcflow.models.nn.data import load_digits_dataset
    from aimcflow.models.nn.workloads import pretrained

    d = load_digits_dataset()
    net = convert(pretrained("digits-mlp", d), load_config("baseline-ftj"))
    net.drift(3600.0)
    prog = compile_network(net, d.x_train[:512], t_s=3600.0)
    n = int(IMAGES)
    x, ids = d.x_test[:n], np.arange(n)
    both = run_level4(prog, x, ids, batch_size=BATCH, then_stalls=0.25)
    alone = run_level4(prog, x, ids, batch_size=BATCH, stalls=0.25)
    st = both.stalled
    assert both.mismatches == 0 and st is not None and st.mismatches == 0 == alone.mismatches
    assert st.rtl_cycles == alone.rtl_cycles > both.rtl_cycles
    assert (st.conv_cycles, st.ideal_cycles) == (alone.conv_cycles, alone.ideal_cycles)
    assert st.layers == alone.layers and st.activations_compared == alone.activations_compared
    np.testing.assert_array_equal(st.logits, alone.logits)
    np.testing.assert_array_equal(st.logits, both.logits)
