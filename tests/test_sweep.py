"""``aimcflow sweep``: input validation, worker-count independence, agreement with
``aimcflow run``, results.json keys and no leaked cluster processes."""

import json
import time

import numpy as np
import psutil
import pytest
import torch
from aimcflow.models.config import load_config
from aimcflow.models.nn.datasets import load_dataset
from aimcflow.models.nn.importer import export_module
from flow_helpers import cli, write_config
from torch import nn

IMAGES = 40


@pytest.mark.parametrize(
    "sets, words",
    [
        (["adc.bitz=4,6"], "unknown key 'bitz' in adc; allowed: bits, bound"),
        (["foo.bar=1"], "unknown key 'foo' in the config; allowed: name, seed, tile"),
        (["adc=4"], "'adc' is a section; name one of its fields: adc.bits"),
        (["adc.bits.x=4"], "'adc.bits' is not a section"),
        (["adc.bits=4,x"], "--set adc.bits: 'x' is not an integer"),
        (["adc.bits=4,1"], "--set adc.bits=1: adc.bits = 1 is out of range; allowed: >= 2"),
        (
            ["mgmt.noise=off,loud"],
            "mgmt.noise = 'loud' is not allowed; allowed: 'off' or 'absmax_pow2'",
        ),
        (["nmpu.out_signed=maybe"], "'maybe' is not a boolean; allowed: true, false"),
        (["adc.bits="], "empty value in the list"),
        (["adc.bits=4,,6"], "empty value in the list"),
        (["adc.bits"], "give KEY=V1,V2,..."),
        (["adc.bits=4", "adc.bits=6"], "given twice"),
        (["adc.bits=4,04"], "value '04' is listed twice"),
        # each value alone is valid; the combination with the preset's gain_frac (14) is not
        (["nmpu.gain_bits=8,16"], "gain_frac (14) must be < gain_bits (8)"),
        ([], "give at least one --set"),
    ],
)
def test_bad_set_exits_2_before_any_work(sets, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--config", "ideal", "--out", "o"]
    for s in sets:
        argv += ["--set", s]
    assert cli(*argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        (
            ["--levels", "analog-rtl"],
            "unknown level 'analog-rtl'; allowed: analog-float, analog-golden",
        ),
        (["--workers", "0"], "give an integer in 1.."),
        (["--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"], "give one of them"),
        (["--images", "361"], "the test split has only 360 images"),
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--repeats", "0"], "argument --repeats: 0 is not allowed; give an integer in 1..100"),
        (["--repeats", "101"], "argument --repeats: 101 is not allowed; give an integer in 1..100"),
        (
            ["--repeats", "100", "--set", "seed=" + ",".join(str(i) for i in range(21))],
            "21 points x --repeats 100 = 2100 evaluations; allowed: at most 2000",
        ),
        (["--grid", "thesis-3.4"], "--grid thesis-3.4: no such grid; allowed: thesis-3.3"),
        (["--grid", "thesis-3.3"], "--grid and --set: give one of them"),
    ],
)
def test_bad_options_exit_2(extra, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("sweep", "--config", "ideal", "--set", "adc.bits=4", "--out", "o", *extra) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_unreachable_scheduler_exits_2_without_results(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    port = _free_port()  # nothing listens there: the connection is refused
    argv = [
        "sweep",
        "--config",
        "ideal",
        "--set",
        "adc.bits=4",
        "--images",
        "5",
        "--scheduler",
        f"tcp://127.0.0.1:{port}",
        "--out",
        "o",
    ]
    monkeypatch.setattr("aimcflow.flows.cluster.SCHEDULER_TIMEOUT_S", 2)
    assert cli(*argv) == 2
    err = capsys.readouterr().err
    assert "cannot connect" in err and "Traceback" not in err, err
    assert not (tmp_path / "o" / "results.json").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 64-16-10 MLP trained for a moment on the digits training split (so accuracies
    sit well above chance and the periphery settings visibly matter)."""
    data = load_dataset(None)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    x = torch.from_numpy(np.asarray(data.x_train, dtype=np.float32))
    y = torch.from_numpy(np.asarray(data.y_train, dtype=np.int64))
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    path = tmp_path_factory.mktemp("model") / "tiny.pt2"
    torch.export.save(export_module(model, (64,)), path)  # a .pt2 for any batch size
    return path


def _children() -> set[int]:
    """Child processes, without multiprocessing's resource tracker: the stdlib starts one per
    interpreter on the first spawn and keeps it for the interpreter's life (not per sweep)."""
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if "multiprocessing.resource_tracker" not in " ".join(_cmdline(p))
    }


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:  # exited meanwhile
        return []


def _sweep(tmp_path, model, workers: int, out: str) -> dict:
    argv = [
        "sweep",
        "--config",
        "baseline-ftj",
        "--model",
        model,
        "--images",
        IMAGES,
        "--set",
        "adc.bits=5,8",
        "--repeats",
        "2",
        "--workers",
        workers,
        "--out",
        out,
    ]
    assert cli(*argv) == 0
    return json.loads((tmp_path / out / "results.json").read_text())


def test_sweep_same_results_on_1_and_2_workers(tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _children()
    r1 = _sweep(tmp_path, tiny_model, 1, "w1")
    r2 = _sweep(tmp_path, tiny_model, 2, "w2")
    printed = capsys.readouterr().out
    assert "adc.bits" in printed and "analog-golden" in printed and "±" in printed
    for key in ("config", "model", "set", "points", "wall_s", "workers"):
        assert key in r1, key
    assert r1["workers"] == 1 and r2["workers"] == 2
    assert r1["set"] == {"adc.bits": [5, 8]}
    assert [p["params"] for p in r1["points"]] == [{"adc.bits": 5}, {"adc.bits": 8}]
    for p in r1["points"]:
        assert set(p["levels"]) == {"analog_float", "analog_golden"}
        assert 0 <= p["levels"]["analog_golden"]["accuracy"] <= 1
        for lv in p["levels"].values():  # --repeats 2 at every level, analog-golden included
            assert len(lv["accuracies"]) == 2 and len(lv["a_stars"]) == 2
            assert lv["accuracy"] == np.mean(lv["accuracies"])
            assert lv["std"] == np.std(lv["accuracies"], ddof=1)
        gold = p["levels"]["analog_golden"]
        assert len(gold["analog_float_same_tiles"]) == 2
        # level 2 on the tiles level 3 compiled: the analog-float repeats, seed by seed
        assert gold["analog_float_same_tiles"] == p["levels"]["analog_float"]["accuracies"]
    # bit-identical, down to the per-layer ADC saturation rates and gain widths: noise is
    # keyed by seed/layer/tile/image, never by process or completion order
    assert r1["points"] == r2["points"]
    png = (tmp_path / "w1" / "sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # the LocalCluster's worker processes are gone once the command returns
    deadline = time.monotonic() + 10
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _children() - before


def test_sweep_point_equals_aimcflow_run(tiny_model, tmp_path, capsys, monkeypatch):
    """A sweep point, run on a separately started scheduler (the ``--scheduler ADDR`` path),
    gives what ``aimcflow run`` gives under that point's config file."""
    from distributed import LocalCluster

    monkeypatch.chdir(tmp_path)
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    ) as cluster:
        argv = ["sweep", "--config", "baseline-ftj", "--model", tiny_model, "--images", IMAGES,
                "--set", "mgmt.noise=off", "--repeats", "2", "--drift", "1d",
                "--scheduler", cluster.scheduler_address, "--out", "s"]  # fmt: skip
        assert cli(*argv) == 0
    r = json.loads((tmp_path / "s" / "results.json").read_text())
    assert r["workers"] == 1 and r["scheduler"] == cluster.scheduler_address
    (point,) = r["points"]
    cfg = load_config("baseline-ftj").replace(**{"mgmt.noise": "off"})
    write_config(cfg, tmp_path / "point.toml")
    argv = ["run", "--config", "point.toml", "--model", tiny_model, "--images", IMAGES,
            "--repeats", "2", "--drift", "1d", "--no-rtl", "--out", "r"]  # fmt: skip
    assert cli(*argv) == 0
    run = json.loads((tmp_path / "r" / "results.json").read_text())["levels"]
    # ``aimcflow run`` compiles the seed-``cfg.seed`` programming only: the sweep's repeat 0
    assert point["levels"]["analog_golden"]["accuracies"][0] == run["analog_golden"]["accuracy"]
    assert point["levels"]["analog_float"]["accuracy"] == run["analog_float"]["accuracy"]
    assert point["levels"]["analog_float"]["a_star"] == run["analog_float"]["a_star"]


def test_thesis_grid_cli_ranks_and_writes_csv(tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--grid", "thesis-3.3", "--model", tiny_model, "--images", 20,
            "--repeats", 2, "--levels", "analog-float", "--workers", 1, "--out", "g"]  # fmt: skip
    assert cli(*argv) == 0
    printed = capsys.readouterr().out
    assert "ranked by the accuracy" in printed
    r = json.loads((tmp_path / "g" / "results.json").read_text())
    assert r["grid"] == "thesis-3.3" and len(r["points"]) == 26
    ranking = r["ranking"]["analog_float"]
    assert {e["factor"] for e in ranking} == {
        "DAC precision", "ADC precision", "output noise", "weight noise", "IR drop", "drift"
    }  # fmt: skip
    drops = [e["accuracy_drop"]["mean"] for e in ranking]
    assert drops == sorted(drops, reverse=True)
    rows = (tmp_path / "g" / "sweep.csv").read_text().splitlines()
    assert rows[0].startswith("point,factor,dac.bits,adc.bits,noise.out_noise,noise.w_noise,")
    assert len(rows) == 1 + 26 * 1 * 5  # header + point x level x statistic
    assert (tmp_path / "g" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
